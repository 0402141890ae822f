"""ONNX export (sln/onnx_export.py): onnxruntime against PyTorch on 1,000 real MNIST test images.

One model (sln-small's recipe at N = 128, 2 layers, trained 12 steps so the boosts are no longer 1)
is exported once per module; the checks read the graphs it wrote. Tolerance: logits within
LOGIT_ATOL = 1e-4 (float32 through two runtimes' kernels), winners identical (every step, layer,
image)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from sln.config import get_config  # noqa: E402
from sln.model import SLN, encode_images  # noqa: E402
from sln.onnx_export import (  # noqa: E402
    LOGIT_ATOL,
    REPORT_FILE,
    SEQ_FILE,
    STEP_FILE,
    export_onnx,
    parity,
    run_stream,
    session,
    step_names,
    torch_stream,
)
from sln.tasks.images import ImageTask  # noqa: E402
from sln.train import RunOptions, TrainSpec, fit  # noqa: E402


@pytest.fixture(scope="module")
def exported(mnist_slice: tuple[np.ndarray, ...], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    xtr, ytr, xte, yte = mnist_slice
    torch.manual_seed(0)
    cfg = get_config("sln-small", n_neurons=128, n_layers=2, active_frac=0.05, batch_size=64)
    model = SLN(cfg)
    task = ImageTask.for_sln(cfg, xtr[:768], ytr[:768], xte[:100], yte[:100])
    fit(model, task, TrainSpec(lr=4e-3, max_steps=12, warmup_steps=2), RunOptions(out=None, progress=False,
                                                                                   threads=1, device="cpu"))
    out = tmp_path_factory.mktemp("onnx")
    report = export_onnx(model, out)
    seq = encode_images(torch.from_numpy(xte.copy()), cfg)        # (1000, 4, 196)
    return {"model": model, "out": out, "report": report, "seq": seq, "labels": yte}


def test_the_trained_boosts_are_not_trivial(exported: dict[str, Any]) -> None:
    """The export must carry the homeostatic boosts (a graph that dropped them would still pass with
    boosts of 1, so make sure they are not)."""
    b = exported["model"].cells[0].boost
    assert (b - 1).abs().max() > 1e-3


def test_files_and_report(exported: dict[str, Any]) -> None:
    out, r = exported["out"], exported["report"]
    assert (out / STEP_FILE).is_file() and (out / SEQ_FILE).is_file()
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["step"]["inputs"] == ["x", "dt", "h0", "y0", "h1", "y1", "acc", "n"]
    assert saved["step"]["outputs"][-4:] == ["win0", "win1", "acc_out", "logits"]
    assert "TopK" in r["step"]["ops"] and saved["sequence"]["x_shape"] == ["B", 4, 196]
    assert saved["opset"] >= 18


def test_parity_on_1000_real_mnist_images(exported: dict[str, Any]) -> None:
    """Identical winners at every step and layer, logits within LOGIT_ATOL, through both graphs."""
    p = parity(exported["model"], exported["out"], exported["seq"])
    assert p["inputs"] == 1000
    assert p["winner_rows"] == 1000 * 4 * 2 and p["winner_rows_identical"] == p["winner_rows"]
    assert p["max_abs_logit_diff_step"] < LOGIT_ATOL
    assert p["max_abs_logit_diff_sequence"] < LOGIT_ATOL
    assert p["same_prediction"] == 1000


def test_the_step_graph_carries_state_and_batch_is_dynamic(exported: dict[str, Any]) -> None:
    """Batch 3 (the trace used 2); a wrong state fed back changes the winners (the state matters)."""
    model, out, seq = exported["model"], exported["out"], exported["seq"][:3]
    sess = session(out / STEP_FILE)
    logits, wins = run_stream(sess, model, seq.numpy())
    ref_logits, ref_wins = torch_stream(model, seq)
    assert logits.shape == (3, 10) and np.array_equal(wins, ref_wins)
    np.testing.assert_allclose(logits, ref_logits, atol=LOGIT_ATOL)
    ins, outs = step_names(model)
    feed = {n: np.zeros((3, 128), np.float32) for n in ins[2:]}
    feed.update(x=seq[:, 1].numpy(), dt=np.ones(3, np.float32), n=np.zeros(3, np.float32))
    fresh = sess.run(["win0"], feed)[0]                      # step 2's input from zero state
    assert not np.array_equal(fresh, ref_wins[1, 0])


def test_export_cli_writes_the_graphs(exported: dict[str, Any], tmp_path: Path) -> None:
    """`sln export --onnx` from a checkpoint, with its own parity check on 50 test images."""
    from sln.checkpoint import save_checkpoint
    from sln.cli import main
    ck = tmp_path / "checkpoint.safetensors"
    save_checkpoint(ck, exported["model"], None, {"dataset": "mnist"})
    assert main(["export", "--onnx", "--checkpoint", str(ck), "--out", str(tmp_path / "o"),
                 "--onnx-check", "50"]) == 0
    r = json.loads((tmp_path / "o" / REPORT_FILE).read_text())
    assert r["parity"]["inputs"] == 50 and r["parity"]["winner_rows_identical"] == r["parity"]["winner_rows"]

"""torchrun for the character LMs (PyTorch DDP, gloo on the CPU): the SLN LM and the GPT baseline trained by
2 processes equal the 1-process run with the same global batch, with the same boosts, and --resume
continues a 2-process SLN LM run.

Tiny on purpose: real text (the first 1,200 characters of docs/DESIGN.md), SLN LM N = 64, k = 6,
8 streams (4 per rank: disjoint segments of the text) x 32-step windows, 2 epochs of 4 steps, the
2-process run stopped after epoch 1 and resumed; GPT d = 32, one layer, 8 windows of 32 per step, 4 steps.
1 thread per process. Tolerance: weights within 1e-5 (DDP averages the ranks' half-batch gradients, a
different float summation order than one full-batch gradient; measured max difference 1.9e-7 for the SLN
LM, 6.0e-8 for the GPT); the SLN's duty cycles and boosts bit-identical (the all-reduced win counts are
whole numbers, so their sum is exact).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
DRIVER = '''
import sys
from pathlib import Path
import torch
from sln.config import get_config
from sln.device import shutdown_distributed
from sln.gpt import GPTConfig, GPTLM
from sln.lm import init_unigram_bias, train_lm
from sln.model import SLN
from sln.text import prepare_user_text


def main(out, resume, stop, text):
    vocab, tr, va, _ = prepare_user_text(Path(text).read_text(encoding="utf-8")[:1200])
    V = len(vocab)
    try:
        cfg = get_config("sln-lm-small").replace(input_size=V, n_classes=V, n_neurons=64, active_frac=0.1)
        torch.manual_seed(0)
        model = SLN(cfg)
        init_unigram_bias(model, tr)
        train_lm(model, vocab, tr, va, out / "sln", lr=3e-3, batch_size=8, seed=0, time_budget_s=0, epochs=2,
                 progress=False, bptt=32, threads=1, resume=resume, device="cpu", stop_after_epoch=stop)
        if not resume:
            torch.manual_seed(0)
            gpt = GPTLM(GPTConfig(vocab_size=V, d_model=32, n_layers=1, n_heads=2, ctx=32))
            train_lm(gpt, vocab, tr, va, out / "gpt", lr=3e-3, batch_size=8, seed=0, time_budget_s=0,
                     max_steps=4, progress=False, threads=1, device="cpu")
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]) or None, sys.argv[4])
'''


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLN_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A: one process, this one (SLN LM 2 epochs, GPT 4 steps). B: torchrun x 2, the SLN LM stopped after epoch 1
    (and the GPT's 4 steps), then the SLN LM resumed to epoch 2 by torchrun x 2."""
    tmp = tmp_path_factory.mktemp("ddp_lm")
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    text = str(ROOT / "docs" / "DESIGN.md")
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver)]
    threads = torch.get_num_threads()
    ns: dict[str, object] = {}
    exec(compile(DRIVER, str(driver), "exec"), ns)                # A in this process: one interpreter start less
    try:
        ns["main"](tmp / "A", False, None, text)                  # type: ignore[operator]
    finally:
        torch.set_num_threads(threads)
    _run([*run, str(tmp / "B"), "0", "1", text])
    from sln.checkpoint import read_checkpoint
    state = json.loads(read_checkpoint(tmp / "B" / "sln" / "checkpoint.safetensors")[0]["train"])
    assert state["step"] == 4 and state["world_size"] == 2       # stopped after epoch 1 (4 windows)
    _run([*run, str(tmp / "B"), "1", "0", text])
    return tmp / "A", tmp / "B"


def _compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    keys = sorted(k for k in a if k.startswith("model."))
    assert keys and keys == sorted(k for k in b if k.startswith("model."))
    for k in keys:
        if k.endswith((".boost", ".duty")):
            assert torch.equal(a[k], b[k]), k                    # identical homeostasis on every rank
        else:
            torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0, msg=k)


def test_two_processes_train_the_one_process_sln_lm(runs: tuple[Path, Path]) -> None:
    a, b = (load_file(str(r / "sln" / "checkpoint.safetensors")) for r in runs)
    _compare(a, b)
    assert (a["model.cells.0.boost"] - 1).abs().max() > 1e-3     # the boosts did move (the check means something)
    torch.testing.assert_close(b["optim.0.exp_avg_sq"], a["optim.0.exp_avg_sq"], atol=1e-8, rtol=1e-3)
    ma, mb = (json.loads((r / "sln" / "metrics.json").read_text()) for r in runs)
    assert ma["steps"] == mb["steps"] == 8
    assert abs(ma["val_bpc"] - mb["val_bpc"]) < 1e-4 and ma["val_bpc"] < 6.0


def test_two_processes_train_the_one_process_gpt(runs: tuple[Path, Path]) -> None:
    a, b = (load_file(str(r / "gpt" / "checkpoint.safetensors")) for r in runs)
    _compare(a, b)
    ma, mb = (json.loads((r / "gpt" / "metrics.json").read_text()) for r in runs)
    assert ma["steps"] == mb["steps"] == 4 and abs(ma["val_bpc"] - mb["val_bpc"]) < 1e-4
    assert not list(runs[1].rglob("*.tmp")) and not list(runs[1].rglob("*.partial"))

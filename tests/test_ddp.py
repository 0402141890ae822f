"""torchrun (PyTorch DDP, gloo on the CPU): 2 processes train the same model as 1 process with the same
global batch, with the same boosts, and --resume continues a 2-process run.

Tiny on purpose: N = 64, k = 6, 256 real MNIST training images, global batch 64 (32 per rank), 2 epochs
= 8 steps, 1 thread per process. Tolerance: weights within 1e-5 (the ranks' half-batch gradients are
averaged by DDP, a different float summation order than one full-batch gradient; measured max
difference 1.4e-6 after 8 steps); homeostatic duty cycles and boosts bit-identical (the all-reduced win
counts are whole numbers, so their sum is exact).
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

DRIVER = '''
import sys
from pathlib import Path
from sln.config import get_config
from sln.device import shutdown_distributed
from sln.train import RunOptions, train
out, resume, stop = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]) or None
cfg = get_config("sln-small", n_neurons=64, active_frac=0.1, batch_size=64, epochs=2)
try:
    train(cfg, RunOptions(out=Path(out), resume=resume, stop_after_epoch=stop, limit_train=256, limit_test=100,
                          progress=False, threads=1, device="cpu"))
finally:
    shutdown_distributed()
'''


def _torchrun(driver: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(driver), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mnist_slice: object) -> tuple[Path, Path]:
    """A: one process, 2 epochs. B: torchrun x 2, stopped after epoch 1, then resumed to epoch 2."""
    tmp = tmp_path_factory.mktemp("ddp")
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    one = subprocess.run([sys.executable, str(driver), str(tmp / "A"), "0", "0"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    _torchrun(driver, str(tmp / "B"), "0", "1")
    from sln.checkpoint import read_checkpoint
    state = json.loads(read_checkpoint(tmp / "B" / "checkpoint.safetensors")[0]["train"])
    assert state["step"] == 4 and state["world_size"] == 2       # stopped after epoch 1 (4 steps of 64)
    _torchrun(driver, str(tmp / "B"), "1", "0")
    return tmp / "A", tmp / "B"


def test_two_processes_train_the_one_process_model(runs: tuple[Path, Path]) -> None:
    a, b = (load_file(str(r / "checkpoint.safetensors")) for r in runs)
    keys = sorted(k for k in a if k.startswith("model."))
    assert keys == sorted(k for k in b if k.startswith("model."))
    for k in keys:
        if k.endswith((".boost", ".duty")):
            assert torch.equal(a[k], b[k]), k                    # identical homeostasis on every rank
        else:
            torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0, msg=k)
    assert (a["model.cells.0.boost"] - 1).abs().max() > 1e-3     # the boosts did move (the check means something)
    # the Adam moments too: resume continued the same optimizer
    torch.testing.assert_close(b["optim.0.exp_avg_sq"], a["optim.0.exp_avg_sq"], atol=1e-8, rtol=1e-3)


def test_rank_zero_wrote_metrics_of_the_whole_run(runs: tuple[Path, Path]) -> None:
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in runs)
    assert mb["steps"] == ma["steps"] == 8
    assert [h["epoch"] for h in mb["history"]] == [1, 2]
    assert mb["test_accuracy"] == ma["test_accuracy"]
    assert not list(runs[1].glob("*.partial"))

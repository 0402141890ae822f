"""Crash tests: training killed with SIGKILL, at random moments and inside the checkpoint write, then
resumed until done, ends with exactly the weights of an uninterrupted run; a torn temporary file of a
killed write never survives the next save.

Each run is a child process (a real kill, not an exception). The child trains sln-tiny at N=64 on 256
real MNIST images for 16 epochs at 1 thread (a checkpoint per epoch), so it is deterministic; it resumes
when its folder holds a checkpoint. A kill inside the write is made by the child itself: its copy of
`sln.checkpoint.save_file` writes half the file under the temporary name and then kills the process,
which is what SIGKILL during the write leaves behind.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sln.checkpoint import TMP_SUFFIX, load_checkpoint

CHILD = r"""
import os, signal, sys
from pathlib import Path
import sln.checkpoint as ck
from sln import get_config
from sln.train import RunOptions, train
out = Path(sys.argv[1])
kill_at = int(os.environ.get("KILL_IN_WRITE", "0"))   # kill inside the n-th checkpoint write (0: never)
calls = [0]
real = ck.save_file
def torn(tensors, name, metadata=None):
    calls[0] += 1
    real(tensors, name, metadata=metadata)
    if calls[0] == kill_at:
        size = os.path.getsize(name)
        with open(name, "r+b") as f:
            f.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
ck.save_file = torn
cfg = get_config("sln-tiny", epochs=int(os.environ["EPOCHS"]), n_neurons=64, active_frac=0.0625, batch_size=32)
train(cfg, RunOptions(out=out, resume=(out / "checkpoint.safetensors").is_file(), limit_train=256,
                      limit_test=50, progress=False, threads=1))
"""


# 16 epochs of 8 steps: a kill 0-300 ms after an epoch line must land before the run ends, also on a fast,
# idle machine (with 4 epochs, a kill after the first could come after the last checkpoint: a finished run)
EPOCHS = 16


def _child(out: Path, kill_in_write: int = 0) -> subprocess.Popen:
    env = {**os.environ, "KILL_IN_WRITE": str(kill_in_write), "OMP_NUM_THREADS": "1", "EPOCHS": str(EPOCHS)}
    return subprocess.Popen([sys.executable, "-u", "-c", CHILD, str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    model, state = load_checkpoint(out / "checkpoint.safetensors")
    assert state["step"] == EPOCHS * 8, state["step"]       # 256 / 32 = 8 steps per epoch
    return model.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The uninterrupted run's final weights."""
    out = tmp_path_factory.mktemp("ref")
    ref = _child(out)
    assert ref.wait(timeout=300) == 0, ref.communicate()[1]
    return _weights(out)


def test_kill_inside_the_checkpoint_write_then_resume_equals_uninterrupted(tmp_path: Path, reference) -> None:
    run = tmp_path / "run"
    p = _child(run, kill_in_write=2)        # dies writing the checkpoint of epoch 2
    assert p.wait(timeout=300) == -signal.SIGKILL
    torn = run / ("checkpoint.safetensors" + TMP_SUFFIX)
    assert torn.is_file() and torn.stat().st_size > 0              # what a killed write leaves
    _, state = load_checkpoint(run / "checkpoint.safetensors")     # the previous checkpoint is intact
    assert state["step"] == 8
    p = _child(run)
    assert p.wait(timeout=300) == 0, p.communicate()[1]
    assert not torn.exists()                                       # the next save removed the torn file
    _same(_weights(run), reference)


def test_kills_at_random_moments_then_resume_equals_uninterrupted(tmp_path: Path, reference) -> None:
    """Two kills, each at a random moment (0-300 ms) after the child logs an epoch: in the next epoch's
    steps, its evaluation or its checkpoint write; then a last start runs to the end."""
    run, rnd = tmp_path / "run", random.Random(12)
    for _ in range(2):
        p = _child(run)
        line = ""
        while not line.startswith("epoch") and p.poll() is None:
            line = p.stdout.readline()
        assert line.startswith("epoch"), p.communicate()[1]
        time.sleep(rnd.uniform(0.0, 0.3))
        assert p.poll() is None, "the run ended before the kill: the test needs more epochs"
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
        p.stdout.close()
        p.stderr.close()
    p = _child(run)
    assert p.wait(timeout=300) == 0, p.communicate()[1]
    assert not (run / ("checkpoint.safetensors" + TMP_SUFFIX)).exists()
    _same(_weights(run), reference)

"""--device (sln/device.py, sln/tasks/loop.py): selection, the clear error without CUDA, batches that
stay where the data is, no per-step host sync in the loop, and checkpoints that load on the CPU.

No GPU is needed: CUDA's presence is simulated (monkeypatched) where only the choice is tested."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sln.config import get_config
from sln.device import resolve_device, shard, to_device
from sln.model import SLN
from sln.tasks.images import ImageTask, random_shift
from sln.train import RunOptions, TrainSpec, fit


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_picks_cuda_only_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")              # torchrun: each process its own GPU
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="2 CUDA device"):
        resolve_device("cuda:5")


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    with pytest.raises(ValueError, match=r"--device cuda: .*use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="choose auto, cpu, cuda"):
        resolve_device("tpu")


def test_train_cli_refuses_cuda_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    """Exit code 2 (a bad argument) before any data is read; one line on stderr."""
    from sln.cli import main
    _no_cuda(monkeypatch)
    rc = main(["train", "--device", "cuda", "--limit-train", "10", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--device cuda" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "r").exists()


def test_to_device_and_shard() -> None:
    batch = (torch.arange(10).reshape(5, 2), None, 1.5, [torch.ones(5)], {"y": torch.zeros(5)})
    moved = to_device(batch, torch.device("cpu"))
    assert moved[0] is batch[0] and moved[1] is None and moved[2] == 1.5 and isinstance(moved[3], list)
    x, y = torch.arange(7), torch.arange(7) * 10
    parts = [shard((x, y, None), r, 2) for r in range(2)]
    assert [p[0][0].tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6]]      # disjoint, together x
    assert [p[0][1].tolist() for p in parts] == [[0, 10, 20, 30], [40, 50, 60]] and parts[0][0][2] is None
    assert [p[1] for p in parts] == [4 / 7, 3 / 7]
    assert shard((x, y), 0, 1) == ((x, y), 1.0)
    with pytest.raises(ValueError, match="global batch"):
        shard((torch.arange(1),), 0, 2)


def test_image_batches_are_the_same_draws_as_before(mnist_slice: tuple[np.ndarray, ...]) -> None:
    """The epoch's shifts are drawn up front (so they can live on the device): they must be exactly
    the per-batch random_shift draws of the same generator, or resumed and old runs would change."""
    xtr, ytr, xte, yte = mnist_slice
    cfg = get_config("sln-small", batch_size=100)
    task = ImageTask.for_sln(cfg, xtr[:250], ytr[:250], xte[:10], yte[:10])
    task.to(torch.device("cpu"))
    g = torch.Generator().manual_seed(cfg.seed * 100003 + 1)                   # epoch 1
    perm = torch.randperm(250, generator=g)
    x = torch.from_numpy(xtr[:250].copy())
    for b in range(3):
        idx = perm[b * 100:(b + 1) * 100]
        want = random_shift(x[idx], cfg.augment_shift, g)
        got, labels = task.get_batch(3 + b)
        assert torch.equal(got, task.to_input(want)) and torch.equal(labels, torch.from_numpy(ytr[:250])[idx])


def _syncs_during_fit(monkeypatch: pytest.MonkeyPatch, mnist_slice: tuple[np.ndarray, ...], steps: int) -> int:
    """Count tensor -> host conversions (item, int, float, bool, tolist, numpy) while fit trains `steps`.
    Not counted: torch.optim's reads of Adam's step counter, a CPU tensor even when training on a GPU
    (torch keeps it there unless the optimizer is capturable or fused), so no device sync."""
    xtr, ytr, xte, yte = mnist_slice
    cfg = get_config("sln-small", n_neurons=64, batch_size=32)
    torch.manual_seed(0)
    model = SLN(cfg)
    task = ImageTask.for_sln(cfg, xtr[:32 * steps], ytr[:32 * steps], xte[:50], yte[:50])
    count = [0]
    for name in ("item", "__int__", "__float__", "__bool__", "tolist", "numpy"):
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *a, _orig=orig, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            count[0] += "torch/optim" not in sys._getframe(1).f_code.co_filename
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, wrapped)
    fit(model, task, TrainSpec(lr=4e-3, epochs=1), RunOptions(out=None, progress=False, threads=1, device="cpu"))
    monkeypatch.undo()
    return count[0]


def test_no_host_round_trip_per_step(monkeypatch: pytest.MonkeyPatch, mnist_slice: tuple[np.ndarray, ...]) -> None:
    """One epoch of 4 steps and one of 12 (the same evaluation) sync the host the same number of
    times: the running stats stay on the device until the epoch ends."""
    assert _syncs_during_fit(monkeypatch, mnist_slice, 4) == _syncs_during_fit(monkeypatch, mnist_slice, 12)


def test_checkpoint_loads_on_cpu_and_resumes(mnist_slice: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    """The CPU leg of 'written on a GPU, loaded on a CPU': the file holds plain tensors (no device),
    the loader maps them to the CPU, the int8 exporter reads them, and a resume under --device auto
    continues the run (here on the CPU; on a GPU machine auto would move it there)."""
    from safetensors import safe_open

    from sln import quant
    from sln.checkpoint import load_checkpoint
    xtr, ytr, xte, yte = mnist_slice
    cfg = get_config("sln-small", n_neurons=64, batch_size=64, epochs=2)
    torch.manual_seed(0)
    task = ImageTask.for_sln(cfg, xtr[:128], ytr[:128], xte[:50], yte[:50])
    res = fit(SLN(cfg), task, TrainSpec.from_config(cfg),
              RunOptions(out=tmp_path, progress=False, threads=1, device="cpu", stop_after_epoch=1))
    assert res.device == "cpu" and res.world_size == 1 and res.steps == 2
    with safe_open(str(tmp_path / "checkpoint.safetensors"), framework="pt", device="cpu") as f:
        assert all(f.get_tensor(k).device.type == "cpu" for k in f.keys())
    model, state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state["step"] == 2 and state["world_size"] == 1
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    qm = quant.quantize(model, xtr[:64])
    assert qm.n_neurons == 64
    task2 = ImageTask.for_sln(cfg, xtr[:128], ytr[:128], xte[:50], yte[:50])
    res2 = fit(SLN(cfg), task2, TrainSpec.from_config(cfg),
               RunOptions(out=tmp_path, progress=False, threads=1, device="auto", resume=True))
    assert res2.steps == 4 and [h["epoch"] for h in res2.history] == [1, 2]

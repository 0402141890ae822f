"""Batches built on the training device (issue 13): the time-series, detector (domains, packets), SLN LM and
GPT tasks keep their data where the model trains (`task.to(dev)`, called by the loop) and a step only
indexes it.

No GPU here, so two CPU-checkable proxies:
  * the meta device: a device that holds no values, where any read of a value to the host (item, int,
    float, bool, tolist, numpy, a Python branch on a tensor) raises. Every task's data and the model go
    there; get_batch + loss + backward over more than one epoch must not raise, and every batch tensor
    must be on it: no host round trip per step and no per-step host-built batch.
  * on the CPU, the batches are exactly the ones the host-built code drew before (reference code written
    out below), so old and resumed runs are unchanged; the SLN LM's windows are views of the preloaded
    streams (no copy); and a 4-step and a 12-step LM/GPT run read the host the same number of times.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from sln.config import SLNConfig, get_config
from sln.gpt import GPTLM, GPTConfig
from sln.lm import StreamTask, WindowTask
from sln.model import SLN
from sln.security.detect import DomainTask
from sln.security.domains import VOCAB_SIZE, Sample
from sln.security.ids import WINDOW, PacketTask
from sln.sequence_tasks import SeriesTask
from sln.timeseries import TSSplits
from sln.train import RunOptions, TrainSpec, fit
from sln.ts_transformer import TSTransformer

META = torch.device("meta")
TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
        "in want of a wife. However little known the feelings or views of such a man may be on his first "
        "entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families. ") * 6


def _ids() -> torch.Tensor:
    chars = sorted(set(TEXT))
    return torch.tensor([chars.index(c) for c in TEXT], dtype=torch.long)


def _series(variable: bool = True) -> TSSplits:
    g = torch.Generator().manual_seed(3)
    n, T, D = 22, 17, 3
    lens = torch.randint(5, T + 1, (n,), generator=g) if variable else torch.full((n,), T)
    x = torch.randn(n, T, D, generator=g) * (torch.arange(T)[None, :, None] < lens[:, None, None])
    y = torch.arange(n) % 2
    return TSSplits(x, lens, y, x[:6], lens[:6], y[:6], ["a", "b"], np.zeros(D, np.float32), np.ones(D, np.float32))


def _domains() -> tuple[list[Sample], list[Sample]]:
    rng = np.random.default_rng(0)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789-"
    texts = ["".join(rng.choice(list(letters), size=rng.integers(3, 30))) + ".com" for _ in range(70)]
    samples = [Sample(t, i % 3 == 0, t) for i, t in enumerate(texts)]
    return samples[:60], samples[60:]


def _packets() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    rng = np.random.default_rng(1)
    T = 700
    x = rng.random((T, 58), dtype=np.float32)
    dt = rng.random(T, dtype=np.float32)
    y = (rng.random(T) < 0.2).astype(np.int64)
    return x, dt, y, [(0, 300), (310, 700)]


def _tasks_and_models() -> list[tuple[str, object, torch.nn.Module]]:
    """(name, task, model) for every task this issue moved onto the device; small models."""
    ids = _ids()
    V = int(ids.max()) + 1
    torch.manual_seed(0)
    lm = SLN(get_config("sln-lm-small").replace(input_size=V, n_classes=V, n_neurons=32, active_frac=0.125))
    gpt = GPTLM(GPTConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, ctx=16))
    ts = SLN(SLNConfig(input_size=3, n_classes=2, n_neurons=32, active_frac=0.125))
    dom = SLN(get_config("sln-domains-small").replace(n_neurons=32, active_frac=0.125))
    pk = SLN(get_config("sln-ids-small").replace(n_neurons=32, active_frac=0.125))
    pk2 = SLN(get_config("sln-ids-sup").replace(n_neurons=32, active_frac=0.125))
    tr, va = _domains()
    x, dt, y, segs = _packets()
    return [
        ("lm", StreamTask(ids[:900], ids[900:], 4, bptt=40), lm),
        ("gpt", WindowTask(ids[:900], ids[900:], 4, 16, seed=0), gpt),
        ("series", SeriesTask(_series(), 8, 0, 0.0), ts),
        ("series-drop", SeriesTask(_series(), 8, 0, 0.5), ts),
        ("series-transformer-drop", SeriesTask(_series(False), 8, 0, 0.5, transformer=True),
         TSTransformer(3, 2, d_model=16, heads=2, layers=1)),
        ("domains", DomainTask(tr, va, 24, True, 16, 0), dom),
        ("packets", PacketTask(x, dt, y, segs, "reconstruct", 8, 0), pk),
        ("packets-classify", PacketTask(x, dt, y, segs, "classify", 8, 0), pk2),
    ]


@pytest.mark.parametrize("which", range(8))
def test_steps_never_read_a_device_value(which: int) -> None:
    """On the meta device (values cannot reach the host) a whole epoch and the first steps of the next
    (a fresh epoch plan) build, forward and backward without a single host read."""
    name, task, model = _tasks_and_models()[which]
    if name == "domains":
        assert model.cfg.input_size == VOCAB_SIZE
    model.to(META).train()
    task.to(META)
    steps = task.steps_per_epoch + 2
    assert task.steps_per_epoch >= 2, name
    for step in range(steps):
        batch = task.get_batch(step)
        tensors = [b for b in batch if isinstance(b, torch.Tensor)]
        assert tensors and all(t.device == META for t in tensors), (name, step)
        loss, stats = task.loss(model, batch)
        assert loss.device == META and all(v.device == META for v in stats.values())
        loss.backward()


def test_the_device_batches_are_the_host_batches_of_before() -> None:
    """On the CPU the device path draws exactly what the host-built batches drew (references below)."""
    tasks = {name: task for name, task, _ in _tasks_and_models()}
    ids = _ids()
    # GPT: one (B,) randint per step from the generator seeded with the seed, then stacked windows
    g = torch.Generator().manual_seed(0)
    win = tasks["gpt"]
    win.to(torch.device("cpu"))
    for step in range(2 * win.steps_per_epoch + 1):
        ix = torch.randint(0, 900 - 16 - 1, (4,), generator=g).tolist()
        x, y = win.get_batch(step)
        assert torch.equal(x, torch.stack([ids[i:i + 16] for i in ix]))
        assert torch.equal(y, torch.stack([ids[i + 1:i + 17] for i in ix]))
    # time series with dropped steps: the old drop_steps, written out, on each batch of the epoch plan
    for name in ("series-drop", "series-transformer-drop", "series"):
        task = tasks[name]
        d = task.data
        for epoch in range(2):
            batches, g = task.epoch_batches(epoch)
            for b, idx in enumerate(batches):
                x, dt, lengths, times, labels = task.get_batch(epoch * task.steps_per_epoch + b)
                assert torch.equal(labels, d.y_train[idx])
                if task.train_drop == 0:
                    T_b = int(d.len_train[idx].max())
                    assert dt is None and torch.equal(x, d.x_train[idx, :T_b])
                    assert torch.equal(lengths, d.len_train[idx])
                    assert torch.equal(times, torch.arange(T_b)[None].expand(len(idx), -1))
                    continue
                want = _old_drop_steps(d.x_train[idx, :int(d.len_train[idx].max())], d.len_train[idx],
                                       float(torch.rand(1, generator=g)) * task.train_drop, g)
                for got, ref in zip((x, dt, lengths, times), want):
                    assert torch.equal(got, ref), (name, epoch, b)
    # domains: the batch cut to its longest sample
    dom = tasks["domains"]
    for epoch in range(2):
        plan = dom._plan(epoch)
        for b, idx in enumerate(plan):
            x, L, y = dom.get_batch(epoch * dom.steps_per_epoch + b)
            assert torch.equal(x, dom.ids[idx, :int(dom.lengths[idx].max())])
            assert torch.equal(L, dom.lengths[idx]) and torch.equal(y, dom.y[idx])
    # packets: step b of epoch e from a numpy generator seeded (seed, e, b)
    pk = tasks["packets"]
    for step in (0, 1, pk.steps_per_epoch, pk.steps_per_epoch + 3):
        epoch, b = divmod(step, pk.steps_per_epoch)
        rng = np.random.default_rng([0, epoch, b])
        seg = rng.choice(len(pk.segs), size=8, p=pk.p)
        starts = np.array([rng.integers(pk.segs[s][0], pk.segs[s][1] - WINDOW + 1) for s in seg])
        idx = torch.from_numpy(starts[:, None] + np.arange(WINDOW)[None, :])
        got = pk.get_batch(step)
        for t, ref in zip(got, (pk.x[idx], pk.dt[idx], pk.y[idx])):
            assert torch.equal(t, ref), step


def _old_drop_steps(x: torch.Tensor, lengths: torch.Tensor, drop: float, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """sln.timeseries.drop_steps as it was before the plan / gather split (the reference)."""
    n, _, D = x.shape
    keep_n = [max(1, int(round((1.0 - drop) * int(L)))) for L in lengths]
    T2 = max(keep_n)
    xo, dto, times = torch.zeros(n, T2, D), torch.zeros(n, T2), torch.zeros(n, T2, dtype=torch.long)
    for i, L in enumerate(lengths.tolist()):
        rest = torch.randperm(L - 1, generator=generator)[: keep_n[i] - 1] + 1 if L > 1 else torch.empty(0)
        idx = torch.cat([torch.zeros(1, dtype=torch.long), torch.sort(rest.long()).values])
        xo[i, : len(idx)] = x[i, idx]
        prev = torch.cat([torch.full((1,), -1, dtype=torch.long), idx[:-1]])
        dto[i, : len(idx)] = (idx - prev).float()
        times[i, : len(idx)] = idx
    return xo, dto, torch.tensor(keep_n, dtype=torch.long), times


def test_lm_windows_are_views_of_the_preloaded_streams() -> None:
    task = StreamTask(_ids()[:900], _ids()[900:], 4, bptt=40)
    task.to(torch.device("cpu"))
    for step in range(task.steps_per_epoch):
        _, x, y = task.get_batch(step)
        assert x.untyped_storage().data_ptr() == task.xs.untyped_storage().data_ptr()
        assert y.untyped_storage().data_ptr() == task.ys.untyped_storage().data_ptr()
        assert torch.equal(x, task.xs[:, step * 40:(step + 1) * 40])


def _host_reads(monkeypatch: pytest.MonkeyPatch, which: str, steps: int) -> int:
    """Tensor -> host conversions while fit trains `steps` steps of the SLN LM or the GPT (Adam's CPU step
    counter excluded, as in tests/test_device.py)."""
    name, task, model = next(t for t in _tasks_and_models() if t[0] == which)
    count = [0]
    for meth in ("item", "__int__", "__float__", "__bool__", "tolist", "numpy", "__index__"):
        orig = getattr(torch.Tensor, meth)

        def wrapped(self, *a, _orig=orig, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            count[0] += "torch/optim" not in sys._getframe(1).f_code.co_filename
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, meth, wrapped)
    fit(model, task, TrainSpec(lr=1e-3, max_steps=steps, warmup_steps=1),
        RunOptions(out=None, progress=False, threads=1, device="cpu"))
    monkeypatch.undo()
    return count[0]


@pytest.mark.parametrize("which", ["lm", "gpt"])
def test_lm_loop_reads_the_host_only_to_evaluate(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """4 steps and 12 steps (over several epochs) read the host equally often: the final evaluation's reads
    only, none per step (the progress bar is off; with it on, its refresh reads once per 0.5 s)."""
    a, b = _host_reads(monkeypatch, which, 4), _host_reads(monkeypatch, which, 12)
    assert a == b and a > 0          # > 0: the counter does see the evaluation's reads
    assert math.isfinite(a)


def test_char_cnn_baseline_takes_a_device_and_comes_back_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The security char-CNN (its own loop) trains where --device says and is scored on the CPU; a CUDA
    request without a GPU is the one clear error of sln.device."""
    from sln.security.baselines import CharCNN
    tr, _ = _domains()
    texts, y = [s.text for s in tr], np.array([int(s.label) for s in tr])
    m = CharCNN(max_len=24, epochs=1, batch=16, device="cpu").fit(texts, y)
    assert all(p.device.type == "cpu" for p in m.net.parameters())
    s1 = m.score(texts)
    s2 = CharCNN(max_len=24, epochs=1, batch=16).fit(texts, y).score(texts)      # default: the CPU, same draws
    assert s1.shape == (60,) and np.array_equal(s1, s2) and np.std(s1) > 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--device cuda"):
        CharCNN(device="cuda").fit(texts, y)


def test_whole_image_step_reads_no_device_value() -> None:
    """What scripts/gpu_check.py's CUDA-graph variant needs: the whole image training step (device batch
    with shift augmentation, forward with k-WTA and boosts, backward, clipping, AdamW) runs on the meta
    device, so it holds no read of a device value that a graph capture would refuse."""
    from sln.tasks.images import ImageTask
    cfg = get_config("sln-small", n_neurons=64, batch_size=100)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), rng.integers(0, 10, 300)
    model = SLN(cfg).to(META).train()
    task = ImageTask.for_sln(cfg, x, y, x[:10], y[:10])
    task.to(META)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(4):                      # over an epoch's end: a new permutation and shifts
        loss, _ = task.loss(model, task.get_batch(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert loss.device == META and all(p.device == META for p in model.parameters())

"""The time-series default recipe's pieces (issue 14): straight-through gradient for k-WTA losers, k
annealing, the last-state readout, patches for long series, training-only normalisation, and a tiny
end-to-end fit of the default `sln-ts-small` recipe."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sln.cell import LiquidCell, annealed_k, straight_through
from sln.config import get_config
from sln.model import SLN
from sln.sequence_tasks import SeriesTask, prepare_ts, ts_spec
from sln.timeseries import (
    DATASETS,
    TSData,
    TSSplits,
    code_inputs,
    level_code,
    make_splits,
    patch_factor,
    patch_series,
    patch_splits,
    series_scale,
)
from sln.train import RunOptions, fit


def _cell(st: float) -> LiquidCell:
    torch.manual_seed(0)
    return LiquidCell(3, 32, 2, st_grad=st)


def test_straight_through_keeps_forward_and_feeds_losers() -> None:
    x = torch.randn(4, 3)
    outs, grads = {}, {}
    for st in (0.0, 0.5):
        cell = _cell(st).train()
        s0 = cell.init_state(4)
        h0 = torch.rand(4, 32, requires_grad=True)            # a nonzero previous state, so h depends on it
        y, (h, _), mask = cell.step(x, (h0, s0[1]), 1.0)
        w = torch.randn(4, 32)
        (y * w).sum().backward()
        outs[st], grads[st] = (y.detach(), mask), h0.grad.clone()
    assert torch.equal(outs[0.0][0], outs[0.5][0])                    # forward bit-identical
    assert torch.equal(outs[0.0][1], outs[0.5][1])                    # same winners
    assert (outs[0.5][0] != 0).sum(1).eq(2).all()                     # still k nonzeros per row
    mask = outs[0.0][1]
    alpha_dependent = grads[0.0][~mask]
    assert alpha_dependent.abs().max() == 0                           # without ST: losers get no gradient via y
    assert grads[0.5][~mask].abs().min() > 0                          # with ST: every loser does
    # winners' gradient is the same either way; the losers' is g times the winners' rule (dy/dh = g)
    assert torch.allclose(grads[0.0][mask], grads[0.5][mask])
    h = torch.rand(2, 5, requires_grad=True)
    m = torch.tensor([[True, False, False, True, False]] * 2)
    st = straight_through(h, m, 0.25)
    assert torch.equal(st, torch.zeros_like(st))
    st.sum().backward()
    assert torch.equal(h.grad, torch.where(m, 0.0, 0.25).expand(2, 5))


def test_straight_through_is_off_in_eval_mode() -> None:
    cell = _cell(1.0).eval()
    h0 = torch.rand(2, 32, requires_grad=True)
    y, _, mask = cell.step(torch.randn(2, 3), (h0, torch.zeros(2, 32)), 1.0)
    y.sum().backward()
    assert h0.grad[~mask].abs().max() == 0


def test_k_annealing_schedule_values() -> None:
    assert annealed_k(0.0, 256, 7, 0.3) == 256                         # dense at the start
    assert annealed_k(0.15, 256, 7, 0.3) == round((256 * 7) ** 0.5)    # geometric midpoint: 42
    assert annealed_k(0.3, 256, 7, 0.3) == 7 and annealed_k(0.9, 256, 7, 0.3) == 7
    assert annealed_k(0.5, 256, 7, 0.0) == 7                           # off
    ks = [annealed_k(p / 100, 256, 7, 0.3) for p in range(101)]
    assert all(a >= b for a, b in zip(ks, ks[1:], strict=False)) and min(ks) == 7 and max(ks) == 256


def test_annealed_k_is_used_in_training_only() -> None:
    model = SLN(get_config("sln-ts-small", input_size=2, n_classes=3, k_anneal=0.5))
    model.anneal(0.0)
    cell = model.cells[0]
    n = cell.n_neurons
    h = torch.rand(3, n)
    model.train()
    assert cell.select(h).sum(1).eq(n).all()
    model.eval()
    assert cell.select(h).sum(1).eq(cell.k).all()                      # inference: always k (<= 3 %)
    model.anneal(0.6)
    model.train()
    assert cell.select(h).sum(1).eq(cell.k).all()


def test_fit_passes_training_progress_to_the_task() -> None:
    seen: list[float] = []

    class Probe:
        steps_per_epoch, eval_each_epoch = 4, False

        def get_batch(self, step: int) -> torch.Tensor:
            return torch.ones(2, 1)

        def before_step(self, model: torch.nn.Module, progress: float) -> None:
            seen.append(progress)

        def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
            return model(batch).pow(2).mean(), {}

        def evaluate(self, model: torch.nn.Module) -> dict:
            return {}

    fit(torch.nn.Linear(1, 1), Probe(), ts_spec(1e-2, 0.0, 2, 4), RunOptions(out=None, progress=False, threads=1))
    assert seen == [i / 8 for i in range(8)]


class _Counted:
    """A 2-step-per-epoch task that records after which step each evaluation ran."""
    steps_per_epoch, eval_each_epoch = 2, True

    def __init__(self) -> None:
        self.steps = 0
        self.evaluated: list[int] = []

    def get_batch(self, step: int) -> torch.Tensor:
        self.steps = step + 1
        return torch.ones(2, 1)

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return sum(p.pow(2).sum() for p in model.parameters()), {}

    def evaluate(self, model: torch.nn.Module) -> dict:
        self.evaluated.append(self.steps)
        return {"accuracy": 0.0}


@pytest.mark.parametrize("epochs, points, want", [
    (500, 25, list(range(20, 501, 20))),          # ArrowHead's 500 epochs: every 20th epoch, the last included
    (60, 25, list(range(3, 61, 3))),               # ceil(60 / 25) = 3
    (61, 25, list(range(3, 61, 3)) + [61]),        # the last epoch is evaluated although 61 % 3 != 0
    (20, 25, list(range(1, 21))),                  # an image run (<= 25 epochs): every epoch, as before
    (7, 0, list(range(1, 8))),                     # eval_points 0: every epoch
])
def test_long_runs_evaluate_at_most_eval_points_times(epochs: int, points: int, want: list[int]) -> None:
    """The held-out evaluation of an epoch run is bounded (TrainSpec.eval_points); history, the final figure
    and the last epoch's entry follow it."""
    from sln.tasks.loop import TrainSpec
    task = _Counted()
    res = fit(torch.nn.Linear(1, 1), task, TrainSpec(lr=1e-3, epochs=epochs, eval_points=points),
              RunOptions(out=None, progress=False, threads=1))
    assert [s // 2 for s in task.evaluated] == want                    # evaluated after these epochs
    assert [h["epoch"] for h in res.history] == want
    assert res.steps == 2 * epochs and len(res.epoch_seconds) == epochs   # every epoch trained and timed


def test_stop_after_epoch_is_evaluated_and_checkpointed_between_strides(tmp_path: Path) -> None:
    """--stop-after-epoch on an epoch the stride skips still evaluates, saves and records it, so a resume
    continues from it."""
    from sln.checkpoint import read_checkpoint
    from sln.tasks.loop import TrainSpec
    task = _Counted()
    spec = TrainSpec(lr=1e-3, epochs=100, eval_points=25)            # stride 4
    model = SLN(get_config("sln-ts-small", input_size=1, n_classes=2, n_neurons=16))   # a checkpointable model
    res = fit(model, task, spec, RunOptions(out=tmp_path, progress=False, threads=1, stop_after_epoch=6))
    assert [h["epoch"] for h in res.history] == [4, 6] and res.steps == 12
    meta, _ = read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert json.loads(meta["train"])["step"] == 12


def test_last_state_readout_ignores_padding() -> None:
    torch.manual_seed(0)
    model = SLN(get_config("sln-ts-small", input_size=2, n_classes=3, readout="mean_last")).eval()
    x = torch.randn(2, 9, 2)
    short = model(x[:1, :5], None, torch.tensor([5]))
    padded = x.clone()
    padded[0, 5:] = 7.0                                                # garbage after the valid steps
    both = model(padded, None, torch.tensor([5, 9]))
    assert torch.allclose(both[0], short[0], atol=1e-6)
    mean_only = SLN(get_config("sln-ts-small", input_size=2, n_classes=3, readout="mean")).eval()
    mean_only.load_state_dict({k: v for k, v in model.state_dict().items() if "readout_last" not in k})
    assert not torch.allclose(mean_only(x, None, None), model(x, None, None))   # the last state is read
    stream = model.stream(2)
    for t in range(9):
        stream.step(x[:, t])
    assert torch.allclose(stream.logits(), model(x, None, None), atol=1e-5)   # streaming = whole sequence


def test_patches_for_long_series() -> None:
    assert patch_factor(150, 200) == 1 and patch_factor(1460, 200) == 8 and patch_factor(1460, 0) == 1
    x = torch.arange(2 * 7 * 2, dtype=torch.float32).reshape(2, 7, 2)
    xp, lp = patch_series(x, torch.tensor([7, 4]), 3)
    assert xp.shape == (2, 3, 6) and lp.tolist() == [3, 2]
    assert xp[0, 0].tolist() == x[0, :3].reshape(-1).tolist()          # samples oldest first, channels interleaved
    assert xp[0, 2].tolist() == x[0, 6].tolist() + [0.0] * 4           # last patch zero-padded
    n = 4
    data = TSSplits(torch.randn(n, 450, 1), torch.tensor([450, 300, 100, 450]), torch.zeros(n, dtype=torch.long),
                    torch.randn(n, 500, 1), torch.tensor([500, 10, 450, 1]), torch.zeros(n, dtype=torch.long),
                    ["a"], np.zeros(1), np.ones(1))
    pd, s = patch_splits(data, 200)
    assert s == 3 and pd.x_train.shape == (n, 150, 3) and pd.len_test.tolist() == [167, 4, 150, 1]
    cfg, _, s2 = prepare_ts(get_config("sln-ts-small").replace(max_series_steps=200), data)
    assert s2 == 3 and cfg.input_size == 3 + 2                         # + the series' mean and log-scale


def test_level_code_keeps_the_value_through_layernorm() -> None:
    v = torch.tensor([[[-3.0], [-1.0], [0.0], [0.5], [2.0]]])               # (1, 5, 1)
    code = level_code(v, 8)
    assert code.shape == (1, 5, 8) and torch.equal(level_code(v, 0), v)
    assert (code[0, 1:] >= code[0, :-1]).all() and (code[0, 4] - code[0, 0]).min() > 0.1   # monotone thermometer
    assert torch.allclose(code[0, 2], torch.sigmoid(-torch.linspace(-2.5, 2.5, 8) / (5 / 7)))
    # why: LayerNorm(w v) is the same for every v > 0, LayerNorm(W code(v)) is not
    ln = torch.nn.LayerNorm(16, elementwise_affine=False)
    w, W = torch.randn(16, 1), torch.randn(16, 8)
    assert torch.allclose(ln(v[0, 3] * w[:, 0]), ln(v[0, 4] * w[:, 0]), atol=1e-3)
    assert not torch.allclose(ln(W @ code[0, 3]), ln(W @ code[0, 4]), atol=1e-2)
    xs, ls = code_inputs(torch.randn(2, 6, 2), torch.tensor([6, 3]), 2, 4)
    assert xs.shape == (2, 3, 16) and ls.tolist() == [3, 2]


def test_normalisation_statistics_come_from_training_only() -> None:
    rng = np.random.default_rng(0)
    tr = TSData([rng.normal(5.0, 2.0, (2, 30)) for _ in range(6)], np.zeros(6, np.int64), ["a"])
    te1 = TSData([rng.normal(0.0, 1.0, (2, 30)) for _ in range(3)], np.zeros(3, np.int64), ["a"])
    te2 = TSData([rng.normal(-50.0, 9.0, (2, 30)) for _ in range(3)], np.zeros(3, np.int64), ["a"])
    a, b = make_splits(tr, te1, "t"), make_splits(tr, te2, "t")
    allv = np.concatenate(tr.series, axis=1)
    assert np.allclose(a.mean, allv.mean(1), atol=1e-5) and np.allclose(a.std, allv.std(1), atol=1e-5)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std) and torch.equal(a.x_train, b.x_train)
    z = (te2.series[0].T - a.mean) / a.std
    assert torch.allclose(b.x_test[0], torch.from_numpy(z.astype(np.float32)), atol=1e-5)


def test_series_scale_keeps_shape_and_amplitude_apart() -> None:
    """series_norm "series": every series z-scored over its valid steps; its mean and log-scale as inputs."""
    t = torch.linspace(0, 6, 12)
    base = torch.sin(t)
    x = torch.zeros(3, 12, 1)
    x[0, :, 0] = 0.001 * base + 5.0                   # PLAID-like: a tiny signal on an offset
    x[1, :, 0] = 100.0 * base                         # the same shape, 10^5 times larger
    x[2, :8, 0] = base[:8]                            # a shorter series, padded with 0
    lens = torch.tensor([12, 12, 8])
    z, sc = series_scale(x, lens)
    zb = (base - base.mean()) / base.std(unbiased=False)
    assert torch.allclose(z[0, :, 0], zb, atol=1e-3) and torch.allclose(z[1, :, 0], zb, atol=1e-5)   # same shape
    b8 = base[:8]
    assert torch.allclose(z[2, :8, 0], (b8 - b8.mean()) / b8.std(unbiased=False), atol=1e-5)
    assert torch.equal(z[2, 8:], torch.zeros(4, 1))                                  # padding stays 0
    assert torch.allclose(sc[:, 0], torch.tensor([5.0 + 0.001 * base.mean().item(), 100 * base.mean().item(),
                                                b8.mean().item()]), atol=1e-4)                  # offset channel
    s0 = base.std(unbiased=False).item()
    sd = torch.tensor([0.001 * s0, 100.0 * s0, b8.std(unbiased=False).item()])
    assert torch.allclose(sc[:, 1], torch.log(sd + 1e-3) / 3, atol=1e-4)             # log-scale channel
    flat, fs = series_scale(torch.full((1, 5, 2), 3.0), torch.tensor([5]))
    assert torch.equal(flat, torch.zeros(1, 5, 2)) and torch.isfinite(fs).all()       # constant: 0, not NaN
    xs, ls = code_inputs(x, lens, 4, 0, "series")                                     # z -> patches -> + scale
    assert xs.shape == (3, 3, 4 + 2) and ls.tolist() == [3, 3, 2]
    assert torch.equal(xs[:, 1, 4:], sc) and torch.equal(xs[0, 0, :4], z[0, :4, 0])
    assert torch.equal(code_inputs(x, lens, 4, 0)[0], patch_series(x, lens, 4)[0])   # "global": unchanged
    assert get_config("sln-ts-small").series_norm == "series"
    try:
        get_config("sln-ts-small", series_norm="per-series")
        raise AssertionError("an unknown series_norm was accepted")
    except ValueError as e:
        assert "series_norm" in str(e)


def test_min_steps_raises_the_default_epochs_of_small_sets_only() -> None:
    """min_steps: a set of 36 series (3 batches of 16) trains min_steps / 3 epochs, a large one its epochs;
    epochs given explicitly are kept."""
    def splits(n: int) -> TSSplits:
        return TSSplits(torch.randn(n, 20, 1), torch.full((n,), 20), torch.arange(n) % 2, torch.randn(2, 20, 1),
                        torch.full((2,), 20), torch.zeros(2, dtype=torch.long), ["a", "b"], np.zeros(1), np.ones(1))
    named = get_config("sln-ts-small")
    assert named.min_steps > named.epochs * 3                               # the rule matters for 36 series
    assert prepare_ts(named, splits(36))[0].epochs == -(-named.min_steps // 3)
    assert prepare_ts(named, splits(16 * named.min_steps))[0].epochs == named.epochs
    assert prepare_ts(get_config("sln-ts-small", epochs=7), splits(36))[0].epochs == 7
    assert prepare_ts(get_config("sln-ts-small", min_steps=0), splits(36))[0].epochs == named.epochs


def test_default_recipe_fits_a_tiny_synthetic_set() -> None:
    """sln-ts-small as named (only the epochs shortened): 3 classes of noisy shapes, near-zero training loss."""
    g = torch.Generator().manual_seed(0)
    n, T = 24, 40
    y = torch.arange(n) % 3
    t = torch.linspace(0, 1, T)
    shapes = torch.stack([torch.sin(2 * torch.pi * 2 * t), torch.sign(torch.sin(2 * torch.pi * 3 * t)), 2 * t - 1])
    x = (shapes[y] + 0.2 * torch.randn(n, T, generator=g))[..., None]
    lens = torch.full((n,), T)
    data = TSSplits(x, lens, y, x.clone(), lens.clone(), y.clone(), ["a", "b", "c"], np.zeros(1), np.ones(1))
    cfg, data, _ = prepare_ts(get_config("sln-ts-small", epochs=20), data)
    torch.manual_seed(0)
    model = SLN(cfg)
    task = SeriesTask(data, cfg.batch_size, 0, cfg.train_drop, eval_each_epoch=False)
    fit(model, task, ts_spec(cfg.lr, cfg.weight_decay, cfg.epochs, task.steps_per_epoch),
        RunOptions(out=None, progress=False, threads=1))
    model.eval()
    with torch.no_grad():
        logits, act = model(data.x_train, None, data.len_train, return_activity=True)
    loss = F.cross_entropy(logits, data.y_train).item()
    print(f"tiny synthetic: train loss {loss:.4f}")
    assert loss < 0.05, loss
    assert (logits.argmax(1) == data.y_train).all()
    assert act.mean[0].item() <= 0.03                                   # <= 3 % active at inference
    # homeostasis is off in the recipe (boost_beta 0, docs/SEQUENCES.md "Homeostasis off"): training never
    # moved the boost, so inference ranks the raw liquid states
    assert cfg.boost_beta == 0.0 and torch.equal(model.cells[0].boost, torch.ones(cfg.n_neurons))


def test_patched_checkpoint_evaluates_like_training(tmp_path) -> None:  # noqa: ANN001 (pytest's Path)
    """A run whose series were cut into patches stores the factor; `sln evaluate`'s path applies it."""
    from sln.sequence_tasks import evaluate_checkpoint, train_timeseries
    from sln.series_files import DataFiles

    rng = np.random.default_rng(0)

    def write(path, n: int) -> None:  # noqa: ANN001
        rows = []
        for i in range(n):
            T = int(rng.integers(20, 31))
            v = np.sin(np.arange(T) / (2.0 + 2 * (i % 2))) + 0.1 * rng.normal(size=T)
            rows.append(",".join(["ab"[i % 2]] + [f"{x:.4f}" for x in v]))
        path.write_text("\n".join(rows) + "\n")

    tr, te = tmp_path / "toy_TRAIN.csv", tmp_path / "toy_TEST.csv"
    write(tr, 12)
    write(te, 10)
    cfg = get_config("sln-ts-small", epochs=2, n_neurons=32, active_frac=0.0625, batch_size=4, max_series_steps=8)
    m = train_timeseries(cfg, RunOptions(dataset=str(tr), out=tmp_path / "run", progress=False, threads=1),
                         DataFiles(test=te))
    assert m["samples_per_step"] == 4 and m["config"]["input_size"] == 4 + 2  # 30 samples -> 8 steps of 4, + scale
    ev = evaluate_checkpoint(tmp_path / "run" / "checkpoint.safetensors", te, progress=False)
    assert ev["accuracy"] == m["test_accuracy"]


def test_ts_sln_summary_merge_and_table(tmp_path) -> None:  # noqa: ANN001
    """benchmark.py --task ts-sln: mean / sd over seeds, two halves merged, the table beside the baselines."""
    import json

    from sln.bench.ts_sln import markdown, merge, summarise

    irr = {"drop50": {"with_dt": 0.8, "without_dt": 0.6}}
    runs = [{"accuracy": a, "train_loss": 0.1, "active_fraction": 0.0293, "irregular": irr} for a in (0.9, 0.8)]
    s = summarise(runs)
    assert abs(s["accuracy"]["mean"] - 0.85) < 1e-12 and abs(s["accuracy"]["sd"] - 0.05) < 1e-12
    assert s["irregular"]["drop50"]["with_dt"]["mean"] == 0.8 and s["n"] == 2
    base = [{"set": "GunPoint", "majority": 0.4933, "euclidean": 0.9133, "dtw": 0.9067, "minirocket": 0.9978}]
    a = {"sets": [{"set": "GunPoint", "name": "gunpoint", "runs": runs, "summary": s}], "baselines": base}
    b = {"sets": [{"set": "PLAID", "name": "plaid", "runs": []}], "baselines": base,
         "transformer": {"gunpoint": {"irregular": {"drop50": {"with_dt": 0.7, "without_dt": 0.5}}}}}
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    doc = merge([pa, pb])
    assert [x["name"] for x in doc["sets"]] == ["gunpoint", "plaid"] and "gunpoint" in doc["transformer"]
    assert [x["name"] for x in merge([pb, pa])["sets"]] == ["gunpoint", "plaid"]   # DATASETS order, not the files'
    assert list(DATASETS).index("gunpoint") < list(DATASETS).index("plaid")
    md = markdown(doc)
    assert "| GunPoint | 85.00 ± 5.00 | 2 | 0.100 | 49.33 | 91.33 | 90.67 | 99.78 |" in md
    assert "| PLAID | not run | 0 |" in md
    assert "| GunPoint | 50 % | 80.00 ± 0.00 | 60.00 ± 0.00 | 70.00 | 50.00 |" in md
    # one set's seeds in two files (seed 0 from one grid, seeds 1-2 from another): one row, summary recomputed
    r = [{**runs[0], "seed": 0}], [{**runs[1], "seed": 2}, {**runs[0], "accuracy": 0.7, "seed": 1}]
    for path, rr in zip((pa, pb), r):
        path.write_text(json.dumps({"sets": [{"set": "GunPoint", "name": "gunpoint", "runs": rr,
                                              "summary": summarise(rr)}], "baselines": base}))
    doc = merge([pa, pb])
    assert len(doc["sets"]) == 1 and [x["seed"] for x in doc["sets"][0]["runs"]] == [0, 1, 2]
    assert abs(doc["sets"][0]["summary"]["accuracy"]["mean"] - 0.8) < 1e-12 and doc["sets"][0]["summary"]["n"] == 3
    with pytest.raises(ValueError, match="gunpoint seed 0"):
        merge([pa, pa])
    # train.py runs (--ts-train-cli) carry their wall time: the table gets a column for the 15-minute target
    doc["sets"][0]["runs"][0].update(wall_seconds=612.4, command="python train.py ...")
    doc["sets"][0]["runs"][2].update(wall_seconds=845.0, command="python train.py ...")
    assert "| GunPoint | 80.00 ± 8.16 | 3 | 0.100 | 49.33 | 91.33 | 90.67 | 99.78 | 612–845 |" in markdown(doc)


def test_budget_runs_evaluate_by_training_time() -> None:
    """A 0.6-s budget of tiny epochs (hundreds of them) with eval_points 3 evaluates about every 0.2 s of
    training, not after each epoch, and once more at the end."""
    from sln.tasks.loop import TrainSpec
    task = _Counted()
    res = fit(torch.nn.Linear(1, 1), task, TrainSpec(lr=1e-3, epochs=10**6, time_budget_s=0.6, eval_points=3),
              RunOptions(out=None, progress=False, threads=1))
    assert len(res.epoch_seconds) > 20, len(res.epoch_seconds)       # many epochs trained ...
    assert 2 <= len(task.evaluated) <= 5, task.evaluated             # ... few evaluated (<= 3 + the last)
    assert len(res.history) == len(task.evaluated) - (0 if res.history[-1]["epoch"] * 2 == res.steps else 1)


def test_eval_points_option_overrides_the_spec() -> None:
    """train.py --eval-points N (RunOptions.eval_points) wins over TrainSpec.eval_points: 0 = every epoch."""
    from sln.tasks.loop import TrainSpec
    for points, want in ((0, list(range(1, 61))), (6, list(range(10, 61, 10)))):
        task = _Counted()
        fit(torch.nn.Linear(1, 1), task, TrainSpec(lr=1e-3, epochs=60),
            RunOptions(out=None, progress=False, threads=1, eval_points=points))
        assert [s // 2 for s in task.evaluated] == want

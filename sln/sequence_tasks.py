"""Time-series classification (UCR/UEA): the task and the trainer (the transformer baseline: sln/ts_transformer.py).

Trainer of the UCR/UEA datasets (basicmotions, japanesevowels, gunpoint, italypowerdemand) for
`python train.py --dataset NAME` (looked up in sln.train_cli.TRAINERS); configs sln-ts-small and
sln-ts-dense live in sln/config.py. The model is `sln.model.SLN`: its forward(x, dt, lengths)
averages the top layer's output over each series' valid steps.

Training goes through the one loop (`sln.train.fit`): deterministic per-epoch batches, the
warm-up + cosine `lr_at` (warm-up over 5 % of the steps), a checkpoint each epoch (`--resume`
continues bit-identically), metrics.json. After training, the test set is evaluated regularly
sampled and with 30 % / 50 % of the steps dropped at random (`sln.timeseries.drop_steps`), once
passing the true elapsed dt to the liquid cells and once passing dt = 1 (the model is not told
steps are missing). Each drop rate is averaged over DROP_DRAWS fixed random draws, the same
draws for every model (`python -m sln.ts_transformer transformer ...` evaluates the transformer
baseline on them, trained by the same loop on the same batches).

User files (`python train.py --dataset TRAIN.ts|.txt|.tsv|.csv --test TEST_FILE`, formats in
sln/series_files.py) train through the same trainer; the checkpoint stores the training split's
per-channel mean/std and class names, so `sln evaluate --checkpoint CK --test FILE`
(`evaluate_checkpoint`) normalises a test file exactly as the training run did.

Padding. Variable-length sets are padded to the longest series; computing those steps is waste
(the readout masks them). Batches are therefore bucketed by length (`SeriesTask`, `evaluate_ts`):
an epoch's batches are its shuffled series sorted by length (ties in shuffled order), cut into
batches, the batch order shuffled; each batch is cut to its own longest series. On equal-length
data this is a no-op (the same batches, bit for bit). `padding_steps` counts what it saves.

seconds_per_epoch (metrics.json, also the transformer baseline's result): the mean wall time of
the completed epochs' training steps (batches, forward, backward, optimizer), evaluation and
checkpoints excluded -- `sln.train.classify_metrics`' measure, the one used everywhere.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import load_checkpoint, read_checkpoint
from .config import SLNConfig, get_config
from .device import is_main, model_device, to_device
from .fetch import DataError
from .model import SLN
from .series_files import DataFiles, file_record, is_series_file, read_series_file, run_label
from .tasks.classify import describe, evaluate_classifier
from .tasks.loop import bar_kwargs
from .timeseries import (
    TSSplits,
    check_channels,
    code_inputs,
    drop_plan,
    drop_steps,
    gather_steps,
    load_ts_dataset,
    make_splits,
    pad,
    patch_splits,
)
from .train import RunOptions, TrainSpec, classify_metrics, fit, resolve_threads, resume_config, write_metrics

CKPT = "checkpoint.safetensors"
DROP_RATES = (0.3, 0.5)
DROP_DRAWS = 5          # random draws of dropped steps per rate, averaged


# --- the task ---------------------------------------------------------------------------------

class SeriesTask:
    """Shuffled batches of padded series; with train_drop > 0 each batch drops a random share in
    [0, train_drop) of its steps (irregular-sampling augmentation, true dt / times passed).

    Epoch e draws its permutation, drop shares and dropped steps from one generator seeded with
    (seed, e), so epoch e is reproducible on its own (resume). The SLN reads (x, dt, lengths),
    the transformer (x, times, lengths).

    Device: the loop's `to` puts the training series and labels on the training device once. Each
    epoch's plan (batch indices, dropped steps and their dt, lengths, each batch's longest series) is
    drawn on the CPU -- the same draws as before, so resumed runs are unchanged -- and copied there once
    per epoch; a step only indexes the device tensors (no copy, no host read of a device value).
    """

    def __init__(self, data: TSSplits, batch_size: int, seed: int, train_drop: float, transformer: bool = False,
                 eval_each_epoch: bool = True, bucket: bool = True, progress: bool = False) -> None:
        self.data, self.batch_size, self.seed, self.train_drop = data, batch_size, seed, train_drop
        self.transformer, self.eval_each_epoch, self.progress = transformer, eval_each_epoch, progress
        n = len(data.x_train)
        self.steps_per_epoch = math.ceil(n / batch_size)
        self.regular_t = torch.arange(data.x_train.shape[1])[None].expand(n, -1)       # (n, T) step indices
        # equal lengths: nothing to save, and the batches stay exactly the unbucketed ones
        self.bucket = bucket and bool((data.len_train != data.len_train[0]).any())
        self._epoch, self._steps = -1, []
        self._x, self._y, self._dev = data.x_train, data.y_train, torch.device("cpu")

    def to(self, dev: torch.device) -> None:
        """The training series and labels on the training device (the loop calls this)."""
        self._x, self._y, self._dev, self._epoch = self.data.x_train.to(dev), self.data.y_train.to(dev), dev, -1

    def epoch_batches(self, epoch: int) -> tuple[list[torch.Tensor], torch.Generator]:
        """The index batches of epoch e and its generator (after the permutation was drawn), a pure
        function of (seed, e): the shuffled series, with bucketing stably sorted by length and the
        batch order shuffled by a second generator (so the first one's stream -- the dropped steps --
        is the same as without bucketing)."""
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        perm = torch.randperm(len(self.data.x_train), generator=g)
        if self.bucket:
            perm = perm[torch.sort(self.data.len_train[perm], stable=True).indices]
        batches = list(perm.split(self.batch_size))
        if self.bucket:
            order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(
                self.seed * 100003 + epoch + (1 << 40)))
            batches = [batches[int(i)] for i in order]
        return batches, g

    def get_batch(self, step: int) -> tuple[torch.Tensor, ...]:
        """-> x (B, T_b, D), dt None or (B, T_b), lengths (B,), times (B, T_b), labels (B,);
        T_b = the batch's longest series (padding beyond it is never computed)."""
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._steps, self._epoch = self._plan(epoch), epoch
        idx, times, dt, lengths = self._steps[b]
        x = self._x[idx, :times.shape[1]] if dt is None else gather_steps(self._x[idx], times, lengths)
        return x, dt, lengths, times, self._y[idx]

    def _plan(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """Epoch e's batches as (indices, times, dt or None, lengths) on the training device, drawn on the
        CPU in the order drop_steps would draw them (permutation, then per batch its drop share and steps)."""
        batches, g = self.epoch_batches(epoch)
        d, plan = self.data, []
        for idx in batches:
            lengths = d.len_train[idx]
            dt = None
            if self.train_drop > 0:
                times, dt, lengths = drop_plan(lengths, float(torch.rand(1, generator=g)) * self.train_drop, g)
            else:
                times = self.regular_t[idx, :int(lengths.max())]
            plan.append(tuple(None if t is None else t.to(self._dev, non_blocking=True)   # type: ignore[misc]
                              for t in (idx, times, dt, lengths)))
        return plan

    def before_step(self, model: nn.Module, progress: float) -> None:
        """k annealing (SLNConfig.k_anneal): the cells' training k for this share of training done."""
        anneal = getattr(model, "anneal", None)
        if anneal is not None:
            anneal(progress)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, dt, lengths, times, y = batch
        logits = model(x, times, lengths) if self.transformer else model(x, dt, lengths)
        return F.cross_entropy(logits, y), {"acc": (logits.detach().argmax(1) == y).float().mean()}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        d = self.data
        if self.transformer:
            return {"accuracy": transformer_accuracy(model, d.x_test, None, d.len_test, d.y_test)}
        return evaluate_ts(model, d.x_test, d.len_test, d.y_test, progress=self.progress)

    def describe(self, ev: dict[str, Any]) -> str:
        return f"test acc {100 * ev['accuracy']:.2f}%" if self.transformer else describe(ev)


def length_batches(lengths: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """Evaluation batches of indices in order of length (stable: equal lengths keep the data order)."""
    return list(torch.sort(lengths, stable=True).indices.split(batch))


def evaluate_ts(model: SLN, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor,
                dt: torch.Tensor | None = None, batch: int = 64, progress: bool = False,
                desc: str = "test") -> dict[str, Any]:
    """Accuracy and activity of an SLN on padded series x (n, T, D) with lengths (n,), labels (n,).
    Batches go by length, each cut to its longest series (no computation on the rest of the padding)."""
    def batches():  # noqa: ANN202 (a generator of EvalBatch)
        for idx in tqdm(length_batches(lengths, batch), desc=desc, leave=False, **bar_kwargs(progress)):
            T_b = int(lengths[idx].max())
            yield x[idx, :T_b], None if dt is None else dt[idx, :T_b], lengths[idx], y[idx]
    return evaluate_classifier(model, batches())


def padding_steps(batches: list[tuple[torch.Tensor, int]]) -> dict[str, int]:
    """[(lengths (B,), T computed)] -> steps computed (sum B * T) and needed (sum of lengths)."""
    return {"computed": sum(len(ln) * int(t) for ln, t in batches), "needed": sum(int(ln.sum()) for ln, _ in batches)}


def epoch_padding(task: SeriesTask, epoch: int = 0) -> dict[str, int]:
    """Sample-steps one regular (undropped) training epoch computes vs needs, with the task's bucketing."""
    lens = task.data.len_train
    return padding_steps([(lens[idx], int(lens[idx].max())) for idx in task.epoch_batches(epoch)[0]])


def dropped_views(data: TSSplits, drop: float) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The DROP_DRAWS fixed irregular views of the test set for this drop rate (same for every model)."""
    out = []
    for d in range(DROP_DRAWS):
        g = torch.Generator().manual_seed(10_000 + int(round(drop * 100)) * 100 + d)
        out.append(drop_steps(data.x_test, data.len_test, drop, g))
    return out


def irregular_eval(accuracy: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None], float],
                   data: TSSplits, progress: bool = False) -> dict[str, Any]:
    """Accuracy on the dropped-step test views, told the true timing and not told.

    accuracy(x, dt, lengths, times): dt (B, T) true elapsed steps or None (= 1); times (B, T) the
    kept steps' original indices or None (re-indexed 0..T'-1). The SLN reads dt, the transformer times.
    progress: one bar over the len(DROP_RATES) * DROP_DRAWS * 2 evaluations, in test series.
    """
    res: dict[str, Any] = {}
    n = len(data.x_test)
    bar = tqdm(total=len(DROP_RATES) * DROP_DRAWS * 2 * n, unit="series", desc="dropped-step eval",
               **bar_kwargs(progress))
    for drop in DROP_RATES:
        with_t, without = [], []
        for xd, dtd, ld, times in dropped_views(data, drop):
            with_t.append(accuracy(xd, dtd, ld, times))
            bar.update(n)
            without.append(accuracy(xd, None, ld, None))
            bar.update(n)
        res[f"drop{int(drop * 100)}"] = {"with_dt": float(np.mean(with_t)), "without_dt": float(np.mean(without)),
                                         "with_dt_draws": with_t, "without_dt_draws": without}
    bar.close()
    return res


def irregular_eval_sln(model: SLN, data: TSSplits, progress: bool = False) -> dict[str, Any]:
    """Accuracy on the dropped-step test views: with the true dt and with dt = 1."""
    return irregular_eval(lambda x, dt, lengths, _t: evaluate_ts(model, x, lengths, data.y_test, dt=dt)["accuracy"],
                          data, progress)


def _fit_cfg(cfg: SLNConfig, data: TSSplits) -> SLNConfig:
    """Set input_size / n_classes from the data (the ts configs are dataset-agnostic)."""
    D, C = data.x_train.shape[2], len(data.class_names)
    if (cfg.input_size, cfg.n_classes) != (D, C):
        cfg = cfg.replace(input_size=D, n_classes=C)
    return cfg


def limit_data(data: TSSplits, limit_train: int | None, limit_test: int | None) -> TSSplits:
    """The first n training / test series (tests, smoke runs)."""
    if limit_train:
        data.x_train, data.len_train, data.y_train = (t[:limit_train] for t in (data.x_train, data.len_train,
                                                                                 data.y_train))
    if limit_test:
        data.x_test, data.len_test, data.y_test = (t[:limit_test] for t in (data.x_test, data.len_test, data.y_test))
    return data


def ts_spec(lr: float, weight_decay: float, epochs: int, steps_per_epoch: int, time_budget_s: float = 0.0
            ) -> TrainSpec:
    """Time series (SLN and transformer): warm-up over the first 5 % of the steps (at least one)."""
    return TrainSpec(lr=lr, weight_decay=weight_decay, epochs=epochs, time_budget_s=time_budget_s,
                     warmup_steps=max(1, steps_per_epoch * epochs // 20))


def load_series_files(train: str | Path, files: DataFiles) -> tuple[TSSplits, dict[str, Any]]:
    """User files -> (normalised splits, {"train"/"test": {path, size, sha256}}); checksums checked if given."""
    if files.test is None:
        raise ValueError(f"--dataset {train} is a user file: pass its test split too, --test PATH_TEST"
                         f"{Path(train).suffix}")
    records = {"train": file_record(train, files.train_sha256), "test": file_record(files.test, files.test_sha256)}
    tr = read_series_file(train)
    te = read_series_file(files.test, class_names=tr.class_names)
    return make_splits(tr, te, f"{train} / {files.test}"), records


def series_state(data: TSSplits, patch: int = 1) -> dict[str, Any]:
    """What evaluation needs from training (stored in the checkpoint): classes, normalisation, patch factor."""
    return {"class_names": list(data.class_names), "mean": [float(v) for v in data.mean],
            "std": [float(v) for v in data.std], "n_channels": len(data.mean), "patch": patch}


def prepare_ts(cfg: SLNConfig, data: TSSplits) -> tuple[SLNConfig, TSSplits, int]:
    """The recipe's data side: per-series scaling (cfg.series_norm), patches for long series
    (cfg.max_series_steps) and the level code of the values (cfg.input_levels), then input_size / n_classes
    and, with cfg.min_steps, the epochs
    from the data -> (config, splits, patch factor)."""
    data, patch = patch_splits(data, cfg.max_series_steps, cfg.input_levels, cfg.series_norm)
    cfg = _fit_cfg(cfg, data)
    spe = math.ceil(len(data.x_train) / cfg.batch_size)
    if cfg.min_steps > cfg.epochs * spe and cfg.epochs == _named_epochs(cfg):
        cfg = cfg.replace(epochs=math.ceil(cfg.min_steps / spe))   # enough optimizer steps on a small set
    return cfg, data, patch


def _named_epochs(cfg: SLNConfig) -> int | None:
    """The epochs of the named config cfg came from (None: not a named config). cfg.min_steps raises only
    those: epochs given explicitly (`--epochs`, get_config(..., epochs=...)) are taken as given."""
    try:
        return get_config(cfg.name).epochs
    except KeyError:
        return None


def _check_resume_files(opts: RunOptions, records: dict[str, Any]) -> None:
    """--resume must continue on the same training file (same SHA-256) as the checkpoint's run."""
    if not opts.resume or opts.out is None or not (Path(opts.out) / CKPT).is_file():
        return
    meta, _ = read_checkpoint(Path(opts.out) / CKPT)
    old = json.loads(meta["train"]).get("files", {}).get("train")
    if old is not None and old["sha256"] != records["train"]["sha256"]:
        raise DataError(f"--resume: {records['train']['path']} is not the file the checkpoint was trained on "
                        f"({old['path']}, sha256 {old['sha256'][:16]}...); start a new run (another --out)")


def train_timeseries(cfg: SLNConfig, opts: RunOptions, files: DataFiles | None = None) -> dict[str, Any]:
    """`python train.py --dataset basicmotions|gunpoint|japanesevowels|italypowerdemand --model sln-ts-small`,
    or `--dataset TRAIN_FILE --test TEST_FILE` (files: the user files, see sln/series_files.py)."""
    if cfg.task != "classify":
        raise ValueError(f"--model {cfg.name} is a {cfg.task!r} model; time series need a classifier "
                         "(e.g. --model sln-ts-small)")
    out = Path(opts.out or Path("runs") / f"{run_label(opts.dataset)}-{cfg.name}")
    opts = dataclasses.replace(opts, out=out)
    records: dict[str, Any] = {}
    if is_series_file(opts.dataset):
        data, records = load_series_files(opts.dataset, files or DataFiles())
        _check_resume_files(opts, records)
    else:
        data = load_ts_dataset(opts.dataset, opts.data_dir)
    data = limit_data(data, opts.limit_train, opts.limit_test)
    cfg, coded, patch = prepare_ts(cfg, data)
    saved = resume_config(cfg, opts)   # --resume codes the data with the checkpoint's recipe (e.g. series_norm)
    if saved.to_dict() != cfg.to_dict():
        again, coded, patch = prepare_ts(saved, data)
        if again.input_size != saved.input_size:
            raise ValueError(f"--resume: the checkpoint's model reads {saved.input_size} inputs per step, this data "
                             f"coded its way {again.input_size}; resume on its data or start a new run (another --out)")
    cfg, data = saved, coded
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    task = SeriesTask(data, cfg.batch_size, cfg.seed, cfg.train_drop, progress=opts.progress)
    out.mkdir(parents=True, exist_ok=True)
    if is_main():                                     # under torchrun only rank 0 writes
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    n = len(data.x_train)
    padding = epoch_padding(task)
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k} ({100 * cfg.k / cfg.n_neurons:.1f}% active), "
          f"{model.num_params():,} params, {opts.dataset}: {n} train / {len(data.x_test)} test, "
          f"D={cfg.input_size}, T<={data.x_train.shape[1]}, {len(data.class_names)} classes, "
          f"{resolve_threads(opts.threads)} threads, {patch} sample(s) per step; steps computed/needed per epoch "
          f"{padding['computed']}/{padding['needed']}")
    spec = ts_spec(cfg.lr, cfg.weight_decay, cfg.epochs, task.steps_per_epoch, cfg.time_budget_s)
    state = {"dataset": opts.dataset, "series": series_state(data, patch), **({"files": records} if records else {})}
    res = fit(model, task, spec, opts, state)
    irregular = irregular_eval_sln(model, data, opts.progress)
    for k, v in irregular.items():
        print(f"  {k}: with dt {100 * v['with_dt']:.2f}%   without dt {100 * v['without_dt']:.2f}%")
    metrics = {**classify_metrics(cfg, model, res, opts.dataset), "train_series": n,
               "test_series": len(data.x_test), "irregular": irregular, "drop_draws": DROP_DRAWS,
               "samples_per_step": patch,
               "steps_per_epoch_computed": padding["computed"], "steps_per_epoch_needed": padding["needed"],
               **({"files": records} if records else {}), "history": res.history, "config": cfg.to_dict()}
    write_metrics(out, metrics)
    return metrics


def evaluate_checkpoint(checkpoint: str | Path, test: str | Path, test_sha256: str | None = None,
                        dropped: bool = False, progress: bool = True) -> dict[str, Any]:
    """`sln evaluate`: a time-series checkpoint on a test file, normalised with the checkpoint's stored
    training statistics; the test file's labels and channels must match the training data's."""
    model, state = load_checkpoint(checkpoint)
    st = state.get("series")
    if not isinstance(model, SLN) or model.cfg.task != "classify" or st is None:
        raise ValueError(f"{checkpoint} is not a time-series classifier checkpoint with stored normalisation "
                         "(trained before it was stored, or another kind of model); retrain it with train.py")
    record = file_record(test, test_sha256)
    te = read_series_file(test, class_names=st["class_names"])
    check_channels(te, int(st["n_channels"]), str(test))
    mean, std = np.asarray(st["mean"], dtype=np.float32), np.asarray(st["std"], dtype=np.float32)
    x, lengths = code_inputs(*pad(te.series, mean, std), int(st.get("patch", 1)), model.cfg.input_levels,
                             model.cfg.series_norm)
    y = torch.from_numpy(te.labels)
    ev = evaluate_ts(model, x, lengths, y, progress=progress)
    res: dict[str, Any] = {"checkpoint": str(checkpoint), "test": record, "test_series": len(y),
                           "accuracy": ev["accuracy"], "active_fraction": ev["active_fraction"],
                           "class_names": st["class_names"], "trained_on": state.get("dataset")}
    if dropped:
        data = TSSplits(x[:0], lengths[:0], y[:0], x, lengths, y, st["class_names"], mean, std)
        res["irregular"] = irregular_eval_sln(model, data, progress)
    return res


# --- the transformer baseline's evaluation (its model and trainer: sln/ts_transformer.py) ---

@torch.no_grad()
def transformer_accuracy(model: nn.Module, x: torch.Tensor, times: torch.Tensor | None, lengths: torch.Tensor,
                         y: torch.Tensor) -> float:
    """times None: the regular step indices 0..T-1."""
    model.eval()
    if times is None:
        times = torch.arange(x.shape[1])[None].expand(len(x), -1)
    x, times, lengths, y = to_device((x, times, lengths, y), model_device(model))
    return (model(x, times, lengths).argmax(1) == y).float().mean().item()

"""Time-series classification (UCR/UEA): the task, the trainer and the transformer baseline.

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
draws for every model (`python -m sln.sequence_tasks transformer ...` evaluates the transformer
baseline on them, trained by the same loop on the same batches).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import SLNConfig
from .model import SLN
from .tasks.classify import describe, evaluate_classifier
from .timeseries import DATASETS, TSSplits, drop_steps, load_ts_dataset
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
    """

    def __init__(self, data: TSSplits, batch_size: int, seed: int, train_drop: float, transformer: bool = False,
                 eval_each_epoch: bool = True) -> None:
        self.data, self.batch_size, self.seed, self.train_drop = data, batch_size, seed, train_drop
        self.transformer, self.eval_each_epoch = transformer, eval_each_epoch
        n = len(data.x_train)
        self.steps_per_epoch = math.ceil(n / batch_size)
        self.regular_t = torch.arange(data.x_train.shape[1])[None].expand(n, -1)       # (n, T) step indices
        self._epoch, self._perm, self._gen = -1, torch.empty(0, dtype=torch.long), torch.Generator()

    def get_batch(self, step: int) -> tuple[torch.Tensor, ...]:
        """-> x (B, T, D), dt None or (B, T), lengths (B,), times (B, T), labels (B,)."""
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            self._perm = torch.randperm(len(self.data.x_train), generator=self._gen)
            self._epoch = epoch
        g, d = self._gen, self.data
        idx = self._perm[b * self.batch_size:(b + 1) * self.batch_size]
        x, dt, lengths, times = d.x_train[idx], None, d.len_train[idx], self.regular_t[idx]
        if self.train_drop > 0:
            x, dt, lengths, times = drop_steps(x, lengths, float(torch.rand(1, generator=g)) * self.train_drop, g)
        return x, dt, lengths, times, d.y_train[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, dt, lengths, times, y = batch
        logits = model(x, times, lengths) if self.transformer else model(x, dt, lengths)
        return F.cross_entropy(logits, y), {"acc": (logits.detach().argmax(1) == y).float().mean()}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        d = self.data
        if self.transformer:
            return {"accuracy": transformer_accuracy(model, d.x_test, None, d.len_test, d.y_test)}
        return evaluate_ts(model, d.x_test, d.len_test, d.y_test)

    def describe(self, ev: dict[str, Any]) -> str:
        return f"test acc {100 * ev['accuracy']:.2f}%" if self.transformer else describe(ev)


def evaluate_ts(model: SLN, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor,
                dt: torch.Tensor | None = None, batch: int = 256) -> dict[str, Any]:
    """Accuracy and activity of an SLN on padded series x (n, T, D) with lengths (n,), labels (n,)."""
    return evaluate_classifier(model, ((x[s:s + batch], None if dt is None else dt[s:s + batch],
                                        lengths[s:s + batch], y[s:s + batch]) for s in range(0, len(x), batch)))


def dropped_views(data: TSSplits, drop: float) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The DROP_DRAWS fixed irregular views of the test set for this drop rate (same for every model)."""
    out = []
    for d in range(DROP_DRAWS):
        g = torch.Generator().manual_seed(10_000 + int(round(drop * 100)) * 100 + d)
        out.append(drop_steps(data.x_test, data.len_test, drop, g))
    return out


def irregular_eval(accuracy: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None], float],
                   data: TSSplits) -> dict[str, Any]:
    """Accuracy on the dropped-step test views, told the true timing and not told.

    accuracy(x, dt, lengths, times): dt (B, T) true elapsed steps or None (= 1); times (B, T) the
    kept steps' original indices or None (re-indexed 0..T'-1). The SLN reads dt, the transformer times.
    """
    res: dict[str, Any] = {}
    for drop in DROP_RATES:
        with_t, without = [], []
        for xd, dtd, ld, times in dropped_views(data, drop):
            with_t.append(accuracy(xd, dtd, ld, times))
            without.append(accuracy(xd, None, ld, None))
        res[f"drop{int(drop * 100)}"] = {"with_dt": float(np.mean(with_t)), "without_dt": float(np.mean(without)),
                                         "with_dt_draws": with_t, "without_dt_draws": without}
    return res


def irregular_eval_sln(model: SLN, data: TSSplits) -> dict[str, Any]:
    """Accuracy on the dropped-step test views: with the true dt and with dt = 1."""
    return irregular_eval(lambda x, dt, lengths, _t: evaluate_ts(model, x, lengths, data.y_test, dt=dt)["accuracy"],
                          data)


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


def train_timeseries(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset basicmotions|gunpoint|japanesevowels|italypowerdemand --model sln-ts-small`."""
    out = Path(opts.out or Path("runs") / f"{opts.dataset}-{cfg.name}")
    opts = dataclasses.replace(opts, out=out)
    data = limit_data(load_ts_dataset(opts.dataset, opts.data_dir), opts.limit_train, opts.limit_test)
    cfg = resume_config(_fit_cfg(cfg, data), opts)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    task = SeriesTask(data, cfg.batch_size, cfg.seed, cfg.train_drop)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    n = len(data.x_train)
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k} ({100 * cfg.k / cfg.n_neurons:.1f}% active), "
          f"{model.num_params():,} params, {opts.dataset}: {n} train / {len(data.x_test)} test, "
          f"D={cfg.input_size}, T<={data.x_train.shape[1]}, {len(data.class_names)} classes, "
          f"{resolve_threads(opts.threads)} threads")
    spec = ts_spec(cfg.lr, cfg.weight_decay, cfg.epochs, task.steps_per_epoch, cfg.time_budget_s)
    res = fit(model, task, spec, opts, {"dataset": opts.dataset})
    irregular = irregular_eval_sln(model, data)
    for k, v in irregular.items():
        print(f"  {k}: with dt {100 * v['with_dt']:.2f}%   without dt {100 * v['without_dt']:.2f}%")
    metrics = {**classify_metrics(cfg, model, res, opts.dataset), "train_series": n,
               "test_series": len(data.x_test), "irregular": irregular, "drop_draws": DROP_DRAWS,
               "history": res.history, "config": cfg.to_dict()}
    write_metrics(out, metrics)
    return metrics


# --- transformer baseline -----------------------------------------------------------------

def time_encoding(times: torch.Tensor, d: int, max_period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal encoding of real-valued times (B, T) -> (B, T, d): the baseline sees true timing."""
    half = d // 2
    freq = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)   # (half,)
    ang = times.float()[..., None] * freq                                                        # (B, T, half)
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


class TSTransformer(nn.Module):
    """Small transformer encoder classifier: linear embed + time encoding, mean pool over valid steps."""

    def __init__(self, d_in: int, n_classes: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Linear(d_in, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor, times: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), times (B, T) original step indices, lengths (B,) -> logits (B, C)."""
        T = x.shape[1]
        pad = torch.arange(T)[None, :] >= lengths[:, None]                     # (B, T) True = padding
        h = self.embed(x) + time_encoding(times, self.d_model)
        h = self.norm(self.encoder(h, src_key_padding_mask=pad))
        h = h.masked_fill(pad[..., None], 0.0).sum(1) / lengths[:, None].float()
        return self.head(h)


@torch.no_grad()
def transformer_accuracy(model: nn.Module, x: torch.Tensor, times: torch.Tensor | None, lengths: torch.Tensor,
                         y: torch.Tensor) -> float:
    """times None: the regular step indices 0..T-1."""
    model.eval()
    if times is None:
        times = torch.arange(x.shape[1])[None].expand(len(x), -1)
    return (model(x, times, lengths).argmax(1) == y).float().mean().item()


def train_transformer_baseline(dataset: str, epochs: int = 60, lr: float = 1e-3, batch_size: int = 16,
                               seed: int = 0, data_dir: Path | None = None, d_model: int = 64,
                               train_drop: float = 0.6, progress: bool = True, threads: int | None = None,
                               limit_train: int | None = None, limit_test: int | None = None) -> dict[str, Any]:
    """Train on the same (thinned) batches as SLN, evaluate regular and on the same dropped-step views.
    threads None: keep torch's current thread count (the command line passes --threads)."""
    data = limit_data(load_ts_dataset(dataset, data_dir), limit_train, limit_test)
    torch.manual_seed(seed)
    model = TSTransformer(data.x_train.shape[2], len(data.class_names), d_model=d_model)
    task = SeriesTask(data, batch_size, seed, train_drop, transformer=True, eval_each_epoch=False)
    res = fit(model, task, ts_spec(lr, 0.01, epochs, task.steps_per_epoch),
              RunOptions(dataset=dataset, out=None, progress=progress, threads=threads or torch.get_num_threads()))
    params = sum(p.numel() for p in model.parameters())
    # the kept steps' true times (the transformer's analogue of dt) vs re-indexed 0..T'-1
    irregular = irregular_eval(lambda x, _dt, lengths, times: transformer_accuracy(model, x, times, lengths,
                                                                                    data.y_test), data)
    return {"dataset": dataset, "model": "transformer", "params": params, "train_drop": train_drop,
            "epochs": epochs, "train_seconds": res.train_seconds, "threads": res.threads,
            "test_accuracy": res.final["accuracy"], "irregular": irregular}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.sequence_tasks",
                                description="Time-series baselines (the SLN itself trains with train.py).")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transformer", help="train/evaluate the transformer baseline incl. dropped steps")
    t.add_argument("--dataset", default="basicmotions", choices=sorted(DATASETS))
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--d-model", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train-drop", type=float, default=0.6, help="as SLNConfig.train_drop (0 = regular only)")
    t.add_argument("--json", type=Path, default=None, help="write the results here")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: $SLN_THREADS, else all cores)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    n = sub.add_parser("nn1", help="1-NN Euclidean test accuracy (the archives' straw-man baseline)")
    n.add_argument("--dataset", default="basicmotions", choices=sorted(DATASETS))
    a = p.parse_args(argv)
    if a.cmd == "nn1":
        from .timeseries import nn1_euclidean_accuracy
        print(f"{a.dataset}: 1-NN Euclidean test accuracy {100 * nn1_euclidean_accuracy(a.dataset):.2f} %")
        return 0
    res = train_transformer_baseline(a.dataset, a.epochs, a.lr, seed=a.seed, d_model=a.d_model,
                                     train_drop=a.train_drop, progress=not a.no_progress,
                                     threads=resolve_threads(a.threads))
    print(json.dumps({k: v for k, v in res.items()}, indent=2))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

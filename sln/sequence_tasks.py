"""Sequence tasks for `python train.py`: UCR/UEA time series and the Shakespeare character LM.

Trainer of the UCR/UEA datasets (basicmotions, japanesevowels, gunpoint, italypowerdemand) for
`python train.py --dataset NAME` (looked up in sln.train_cli.TRAINERS); configs sln-ts-small and
sln-ts-dense live in sln/config.py.

Time-series training mirrors sln/train.py: deterministic per-epoch shuffles, warm-up+cosine
`lr_at`, a safetensors checkpoint each epoch (`--resume` continues), metrics.json. After
training, the test set is evaluated regularly sampled and with 30 % / 50 % of the steps
dropped at random (`sln.timeseries.drop_steps`), once passing the true elapsed dt to the
liquid cells and once passing dt = 1 (the model is not told steps are missing). Each drop
rate is averaged over DROP_DRAWS fixed random draws, the same draws for every model
(`python -m sln.sequence_tasks transformer ...` evaluates the transformer baseline on them).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import save_checkpoint
from .config import SLNConfig
from .model import SLN
from .timeseries import DATASETS, TSSplits, drop_steps, load_ts_dataset
from .train import RunOptions, lr_at, restore

CKPT = "checkpoint.safetensors"
DROP_RATES = (0.3, 0.5)
DROP_DRAWS = 5          # random draws of dropped steps per rate, averaged


# --- SLN over padded sequences ----------------------------------------------------------------

def seq_forward(model: SLN, x: torch.Tensor, dt: torch.Tensor | float | None = None,
                lengths: torch.Tensor | None = None, return_activity: bool = False):
    """SLN.forward with variable lengths: x (B, T, D), dt None/float/(B, T), lengths (B,) -> logits (B, C).

    The readout averages the top layer's sparse output over each series' valid steps only
    (for equal lengths this is exactly SLN.forward). Boost duty cycles count valid steps only.
    """
    B, T, _ = x.shape
    N = model.cfg.n_neurons
    lengths = torch.full((B,), T, dtype=torch.long) if lengths is None else lengths
    valid = torch.arange(T)[None, :] < lengths[:, None]              # (B, T)
    state = model.init_state(B)
    acc = torch.zeros(B, N)
    wins = [torch.zeros(N) for _ in model.cells]
    act_sum = [0.0 for _ in model.cells]
    fired = [torch.zeros(N, dtype=torch.bool) for _ in model.cells]
    for t in range(T):
        dt_t = 1.0 if dt is None else (dt[:, t] if isinstance(dt, torch.Tensor) else dt)
        y, state, masks = model.step(x[:, t], state, dt_t)
        v = valid[:, t, None]                                       # (B, 1)
        acc = acc + y * v
        for i, (m, s) in enumerate(zip(masks, state, strict=True)):
            wins[i] += (m & v).float().sum(0)
            nz = (s[1].detach() != 0) & v
            act_sum[i] += nz.float().sum().item() / N
            fired[i] |= nz.any(0)
    n_valid = valid.sum()
    if model.training:
        for cell, w in zip(model.cells, wins, strict=True):
            cell.update_boost(w / n_valid)
    logits = model.readout(acc / lengths[:, None].float())
    if return_activity:
        return logits, [a / n_valid.item() for a in act_sum], fired
    return logits


@torch.no_grad()
def evaluate_ts(model: SLN, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor,
                dt: torch.Tensor | None = None, batch: int = 256) -> dict[str, Any]:
    model.eval()
    correct, act, fired = 0, [0.0] * model.cfg.n_layers, None
    for s in range(0, len(x), batch):
        d = None if dt is None else dt[s:s + batch]
        logits, a, f = seq_forward(model, x[s:s + batch], d, lengths[s:s + batch], return_activity=True)
        correct += (logits.argmax(1) == y[s:s + batch]).sum().item()
        act = [p + q * len(logits) for p, q in zip(act, a, strict=True)]
        fired = f if fired is None else [p | q for p, q in zip(fired, f, strict=True)]
    return {"accuracy": correct / len(x), "active_fraction": [a / len(x) for a in act],
            "dead_fraction": [1.0 - f.float().mean().item() for f in fired]}


def dropped_views(data: TSSplits, drop: float) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The DROP_DRAWS fixed irregular views of the test set for this drop rate (same for every model)."""
    out = []
    for d in range(DROP_DRAWS):
        g = torch.Generator().manual_seed(10_000 + int(round(drop * 100)) * 100 + d)
        out.append(drop_steps(data.x_test, data.len_test, drop, g))
    return out


def irregular_eval_sln(model: SLN, data: TSSplits) -> dict[str, Any]:
    """Accuracy on the dropped-step test views: with the true dt and with dt = 1."""
    res: dict[str, Any] = {}
    for drop in DROP_RATES:
        with_dt, without = [], []
        for xd, dtd, ld, _ in dropped_views(data, drop):
            with_dt.append(evaluate_ts(model, xd, ld, data.y_test, dt=dtd)["accuracy"])
            without.append(evaluate_ts(model, xd, ld, data.y_test, dt=None)["accuracy"])
        res[f"drop{int(drop * 100)}"] = {"with_dt": float(np.mean(with_dt)), "without_dt": float(np.mean(without)),
                                         "with_dt_draws": with_dt, "without_dt_draws": without}
    return res


def _fit_cfg(cfg: SLNConfig, data: TSSplits) -> SLNConfig:
    """Set input_size / n_classes from the data (the ts configs are dataset-agnostic)."""
    D, C = data.x_train.shape[2], len(data.class_names)
    if (cfg.input_size, cfg.n_classes) != (D, C):
        cfg = cfg.replace(input_size=D, n_classes=C)
    return cfg


def train_timeseries(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", os.cpu_count() or 1)))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_ts_dataset(opts.dataset, opts.data_dir)
    if opts.limit_train:
        data.x_train, data.len_train, data.y_train = (t[: opts.limit_train] for t in
                                                      (data.x_train, data.len_train, data.y_train))
    if opts.limit_test:
        data.x_test, data.len_test, data.y_test = (t[: opts.limit_test] for t in
                                                   (data.x_test, data.len_test, data.y_test))
    cfg = _fit_cfg(cfg, data)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, total // 20)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt = out / CKPT
    if opts.resume:
        model, opt, start_epoch, history = restore(ckpt, cfg)
        cfg = model.cfg
        total = steps_per_epoch * cfg.epochs
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k} ({100 * cfg.k / cfg.n_neurons:.1f}% active), "
          f"{model.num_params():,} params, {opts.dataset}: {n} train / {len(data.x_test)} test, "
          f"D={cfg.input_size}, T<={data.x_train.shape[1]}, {len(data.class_names)} classes")
    bar = tqdm(range(start_epoch, cfg.epochs), desc="epochs", disable=not opts.progress)
    for epoch in bar:
        model.train()
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        perm = torch.randperm(n, generator=g)
        t0 = time.time()
        losses = []
        for b in range(steps_per_epoch):
            step = epoch * steps_per_epoch + b
            for grp in opt.param_groups:
                grp["lr"] = lr_at(step, total, cfg.lr, warmup)
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, dt, lengths = data.x_train[idx], None, data.len_train[idx]
            if cfg.train_drop > 0:   # irregular-sampling augmentation, true dt passed
                x, dt, lengths, _ = drop_steps(x, lengths, float(torch.rand(1, generator=g)) * cfg.train_drop, g)
            logits = seq_forward(model, x, dt, lengths)
            loss = F.cross_entropy(logits, data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        secs = time.time() - t0
        ev = evaluate_ts(model, data.x_test, data.len_test, data.y_test)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": secs, **ev})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", test_acc=f"{ev['accuracy']:.3f}",
                        active=f"{100 * ev['active_fraction'][-1]:.1f}%")
        save_checkpoint(ckpt, model, opt, {"epoch": epoch + 1, "history": history, "dataset": opts.dataset})
    last = history[-1]
    irregular = irregular_eval_sln(model, data)
    print(f"test accuracy {100 * last['accuracy']:.2f}%  active/step "
          + " ".join(f"L{i}={100 * a:.2f}%" for i, a in enumerate(last["active_fraction"])))
    for k, v in irregular.items():
        print(f"  {k}: with dt {100 * v['with_dt']:.2f}%   without dt {100 * v['without_dt']:.2f}%")
    metrics = {
        "dataset": opts.dataset, "model": cfg.name, "epochs": cfg.epochs,
        "test_accuracy": last["accuracy"], "active_fraction": last["active_fraction"],
        "dead_fraction": last["dead_fraction"], "params": model.num_params(), "k": cfg.k,
        "n_neurons": cfg.n_neurons, "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "seed": cfg.seed, "threads": torch.get_num_threads(), "train_series": n,
        "test_series": len(data.x_test), "irregular": irregular, "drop_draws": DROP_DRAWS,
        "history": history, "config": cfg.to_dict(),
    }
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
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


def train_transformer_baseline(dataset: str, epochs: int = 60, lr: float = 1e-3, batch_size: int = 16,
                               seed: int = 0, data_dir: Path | None = None, d_model: int = 64,
                               train_drop: float = 0.6, progress: bool = True) -> dict[str, Any]:
    """Train on regular sequences, evaluate regular and on the same dropped-step views as SLN."""
    data = load_ts_dataset(dataset, data_dir)
    torch.manual_seed(seed)
    model = TSTransformer(data.x_train.shape[2], len(data.class_names), d_model=d_model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    n = len(data.x_train)
    spe = math.ceil(n / batch_size)
    total = spe * epochs
    regular_t = torch.arange(data.x_train.shape[1])[None].expand(n, -1)
    t0 = time.time()
    for epoch in tqdm(range(epochs), desc="transformer", disable=not progress):
        model.train()
        g = torch.Generator().manual_seed(seed * 100003 + epoch)
        perm = torch.randperm(n, generator=g)
        for b in range(spe):
            for grp in opt.param_groups:
                grp["lr"] = lr_at(epoch * spe + b, total, lr, max(1, total // 20))
            idx = perm[b * batch_size:(b + 1) * batch_size]
            x, times, lengths = data.x_train[idx], regular_t[idx], data.len_train[idx]
            if train_drop > 0:       # the same augmentation as SLN's, with the true times
                x, _, lengths, times = drop_steps(x, lengths, float(torch.rand(1, generator=g)) * train_drop, g)
            loss = F.cross_entropy(model(x, times, lengths), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    secs = time.time() - t0
    model.eval()

    @torch.no_grad()
    def acc(x: torch.Tensor, times: torch.Tensor, lengths: torch.Tensor) -> float:
        return (model(x, times, lengths).argmax(1) == data.y_test).float().mean().item()

    params = sum(p.numel() for p in model.parameters())
    res: dict[str, Any] = {"dataset": dataset, "model": "transformer", "params": params, "train_drop": train_drop,
                           "epochs": epochs, "train_seconds": secs,
                           "test_accuracy": acc(data.x_test, torch.arange(data.x_test.shape[1])[None].expand(
                               len(data.x_test), -1), data.len_test), "irregular": {}}
    for drop in DROP_RATES:
        # true times of the kept steps (the transformer's analogue of dt) vs re-indexed 0..T'-1
        with_t = [acc(xd, times, ld) for xd, _, ld, times in dropped_views(data, drop)]
        no_t = [acc(xd, torch.arange(xd.shape[1])[None].expand(len(xd), -1), ld)
                for xd, _, ld, _ in dropped_views(data, drop)]
        res["irregular"][f"drop{int(drop * 100)}"] = {"with_dt": float(np.mean(with_t)),
                                                      "without_dt": float(np.mean(no_t)),
                                                      "with_dt_draws": with_t, "without_dt_draws": no_t}
    return res


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
    n = sub.add_parser("nn1", help="1-NN Euclidean test accuracy (the archives' straw-man baseline)")
    n.add_argument("--dataset", default="basicmotions", choices=sorted(DATASETS))
    a = p.parse_args(argv)
    if a.cmd == "nn1":
        from .timeseries import nn1_euclidean_accuracy
        print(f"{a.dataset}: 1-NN Euclidean test accuracy {100 * nn1_euclidean_accuracy(a.dataset):.2f} %")
        return 0
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", os.cpu_count() or 1)))
    res = train_transformer_baseline(a.dataset, a.epochs, a.lr, seed=a.seed, d_model=a.d_model,
                                     train_drop=a.train_drop)
    print(json.dumps({k: v for k, v in res.items()}, indent=2))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

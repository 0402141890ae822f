"""The time-series transformer baseline: a small encoder classifier that sees each kept sample's true
time, trained by the one loop on the SLN's own thinned batches (`sln.sequence_tasks.SeriesTask`) and
evaluated on the same dropped-step test views (`irregular_eval`).

    python -m sln.ts_transformer transformer --dataset basicmotions --json runs/basicmotions-transformer.json
    python -m sln.ts_transformer nn1 --dataset gunpoint       # 1-NN Euclidean, the archives' straw man

seconds_per_epoch is the loop's measure (`sln.train.classify_metrics`), the same as the SLN's.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .config import SERIES_NORMS
from .device import add_device_argument
from .sequence_tasks import SeriesTask, irregular_eval, limit_data, transformer_accuracy, ts_spec
from .timeseries import DATASETS, load_ts_dataset, patch_splits
from .train import RunOptions, fit, resolve_threads


def time_encoding(times: torch.Tensor, d: int, max_period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal encoding of real-valued times (B, T) -> (B, T, d): the baseline sees true timing."""
    half = d // 2
    freq = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=times.device) / half)
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
        pad = torch.arange(T, device=x.device)[None, :] >= lengths[:, None]    # (B, T) True = padding
        h = self.embed(x) + time_encoding(times, self.d_model)
        h = self.norm(self.encoder(h, src_key_padding_mask=pad))
        h = h.masked_fill(pad[..., None], 0.0).sum(1) / lengths[:, None].float()
        return self.head(h)



def train_transformer_baseline(dataset: str, epochs: int = 60, lr: float = 1e-3, batch_size: int = 16,
                               seed: int = 0, data_dir: Path | None = None, d_model: int = 64,
                               train_drop: float = 0.6, progress: bool = True, threads: int | None = None,
                               limit_train: int | None = None, limit_test: int | None = None,
                               device: str = "auto", series_norm: str = "global") -> dict[str, Any]:
    """Train on the same (thinned) batches as SLN, evaluate regular and on the same dropped-step views.
    threads None: keep torch's current thread count (--threads). series_norm "series": the SLN recipe's
    per-series scaling (sln.timeseries.code_inputs), without its patches: one token per sample."""
    data = limit_data(load_ts_dataset(dataset, data_dir), limit_train, limit_test)
    data, _ = patch_splits(data, 0, 0, series_norm)
    torch.manual_seed(seed)
    model = TSTransformer(data.x_train.shape[2], len(data.class_names), d_model=d_model)
    task = SeriesTask(data, batch_size, seed, train_drop, transformer=True, eval_each_epoch=False)
    res = fit(model, task, ts_spec(lr, 0.01, epochs, task.steps_per_epoch),
              RunOptions(dataset=dataset, out=None, progress=progress, threads=threads or torch.get_num_threads(),
                         device=device))
    params = sum(p.numel() for p in model.parameters())
    # the kept steps' true times (the transformer's analogue of dt) vs re-indexed 0..T'-1
    irregular = irregular_eval(lambda x, _dt, lengths, times: transformer_accuracy(model, x, times, lengths,
                                                                                    data.y_test), data, progress)
    secs = res.epoch_seconds          # the same measure as classify_metrics' seconds_per_epoch
    return {"dataset": dataset, "model": "transformer", "params": params, "train_drop": train_drop,
            "series_norm": series_norm,
            "epochs": epochs, "train_seconds": res.train_seconds, "threads": res.threads,
            "seconds_per_epoch": float(np.mean(secs)) if secs else 0.0,
            "test_accuracy": res.final["accuracy"], "irregular": irregular}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.ts_transformer",
                                description="Time-series baselines (the SLN itself trains with train.py).")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transformer", help="train/evaluate the transformer baseline incl. dropped steps")
    t.add_argument("--dataset", default="basicmotions", choices=sorted(DATASETS))
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--d-model", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train-drop", type=float, default=0.6, help="as SLNConfig.train_drop (0 = regular only)")
    t.add_argument("--series-norm", choices=SERIES_NORMS, default="global",
                   help="input scaling: global (per channel) or series (as the sln-ts-small recipe)")
    t.add_argument("--json", type=Path, default=None, help="write the results here")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: $SLN_THREADS, else all cores)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_argument(t)
    n = sub.add_parser("nn1", help="1-NN Euclidean test accuracy (the archives' straw-man baseline)")
    n.add_argument("--dataset", default="basicmotions", choices=sorted(DATASETS))
    a = p.parse_args(argv)
    if a.cmd == "nn1":
        from .timeseries import nn1_euclidean_accuracy
        print(f"{a.dataset}: 1-NN Euclidean test accuracy {100 * nn1_euclidean_accuracy(a.dataset):.2f} %")
        return 0
    res = train_transformer_baseline(a.dataset, a.epochs, a.lr, seed=a.seed, d_model=a.d_model,
                                     train_drop=a.train_drop, progress=not a.no_progress,
                                     threads=resolve_threads(a.threads), device=a.device,
                                     series_norm=a.series_norm)
    print(json.dumps({k: v for k, v in res.items()}, indent=2))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

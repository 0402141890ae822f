r"""Training of the time-series streams benchmark's models (sln.bench.ts_streams): the SLN and the causal
TS transformers on one UCR set, each for a wall-clock budget at 1 thread, into <out>/<name>/.

    python -m sln.bench.ts_streams_train --dataset gunpoint --out runs/ts-streams --sln-budget 300 \
        --sln-neurons 512 --gpt-sizes 4x1 8x1 16x1 16x2 32x2 64x2 --gpt-budget 60

SLN: the time-series default recipe (sln-ts-small, docs/SEQUENCES.md) with the changes the integer
stream needs: readout "mean" (the recipe's "mean_last" also reads the last liquid state, which the
integer model and the C runtime do not have), max_series_steps 0 (no patches: one cell step per
event, as the transformer), series_norm "global" (a per-series z-score
reads the whole series before its first event) and min_steps 0 (the run is time-budgeted).
Transformers: sln.bench.ts_gpt.TSGPT (d_model x layers), trained by the
same loop (sln.train.fit) on the same regular batches (train_drop 0), AdamW, cosine schedule.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..config import get_config
from ..model import SLN
from ..sequence_tasks import SeriesTask, prepare_ts, series_state, ts_spec
from ..tasks.loop import RunOptions, fit
from ..timeseries import load_ts_dataset
from .ts_gpt import TSGPT, TSGPTConfig, gpt_name

# a stream has no whole series to scale by: the global (training-split) z-score only, where the config has the choice;
# boost_beta 1: bench/ts_streams.* were measured with homeostasis on (the recipe's value then); the recipe turned
# it off on 2026-12-03 for the offline sets, the streams were not re-measured without it
SLN_OVERRIDES: dict[str, Any] = {"readout": "mean", "max_series_steps": 0, "series_norm": "global", "min_steps": 0,
                                 "boost_beta": 1.0}


def train_sln(dataset: str, out: Path, budget_s: float, seed: int = 0, threads: int = 1,
              **overrides: Any) -> dict[str, Any]:
    """The recipe's SLN (+ SLN_OVERRIDES, + overrides) for budget_s seconds -> its record (checkpoint in out)."""
    cfg = get_config("sln-ts-small", seed=seed, time_budget_s=float(budget_s), **{**SLN_OVERRIDES, **overrides})
    cfg, data, patch = prepare_ts(cfg, load_ts_dataset(dataset))
    torch.manual_seed(seed)
    model = SLN(cfg)
    task = SeriesTask(data, cfg.batch_size, seed, cfg.train_drop, eval_each_epoch=False)
    spec = ts_spec(cfg.lr, cfg.weight_decay, cfg.epochs, task.steps_per_epoch, cfg.time_budget_s)
    out.mkdir(parents=True, exist_ok=True)
    res = fit(model, task, spec, RunOptions(dataset=dataset, out=out, progress=False, threads=threads, device="cpu"),
              {"dataset": dataset, "series": series_state(data, patch)})
    rec = {"name": f"sln-N{cfg.n_neurons}-k{cfg.k}", "accuracy": res.final["accuracy"],
           "train_seconds": res.train_seconds, "epochs": res.steps / task.steps_per_epoch, "threads": threads}
    (out / "result.json").write_text(json.dumps(rec, indent=2))
    return rec


def train_gpt(dataset: str, out: Path, budget_s: float, d_model: int, layers: int, heads: int = 4, seed: int = 0,
              threads: int = 1, lr: float = 3e-3) -> dict[str, Any]:
    """A TSGPT (d_model x layers) for budget_s seconds on the regular series -> its record (checkpoint in out)."""
    data = load_ts_dataset(dataset)
    cfg = TSGPTConfig(d_in=data.x_train.shape[2], n_classes=len(data.class_names), d_model=d_model,
                      n_layers=layers, n_heads=heads, lr=lr, seed=seed, name=gpt_name(d_model, layers, heads))
    torch.manual_seed(seed)
    model = TSGPT(cfg)
    task = SeriesTask(data, 16, seed, 0.0, transformer=True, eval_each_epoch=False)
    out.mkdir(parents=True, exist_ok=True)
    res = fit(model, task, ts_spec(lr, 0.01, 10_000, task.steps_per_epoch, float(budget_s)),
              RunOptions(dataset=dataset, out=out, progress=False, threads=threads, device="cpu"),
              {"dataset": dataset, "series": series_state(data, 1)})
    rec = {"name": cfg.name, "params": model.num_params(), "accuracy": res.final["accuracy"],
           "train_seconds": res.train_seconds, "epochs": res.steps / task.steps_per_epoch, "threads": threads}
    (out / "result.json").write_text(json.dumps(rec, indent=2))
    return rec


def parse_size(s: str) -> tuple[int, int, int]:
    """'32x2' -> (d_model 32, layers 2, heads 4); '8x1x1' -> 1 head."""
    try:
        v = [int(t) for t in s.lower().split("x")]
        d, L, H = (*v, 4) if len(v) == 2 else v
    except ValueError:
        raise argparse.ArgumentTypeError(f"a transformer size is DxL or DxLxH (d_model x layers [x heads, default "
                                         f"4]), e.g. 32x2; got {s!r}") from None
    if H < 1 or d < H or d % H or (d // H) % 1 or L < 1:
        raise argparse.ArgumentTypeError(f"{s}: d_model must be a positive multiple of the heads, layers >= 1")
    return d, L, H



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.bench.ts_streams_train", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="gunpoint")
    p.add_argument("--out", type=Path, default=Path("runs/ts-streams"))
    p.add_argument("--sln-budget", type=float, default=300.0, help="SLN training seconds (0: skip the SLN)")
    p.add_argument("--sln-neurons", type=int, nargs="+", default=[512],
                   help="SLN population sizes (the recipe's 512; k = 3 %% of N), one run each into <out>/sln-NN")
    p.add_argument("--gpt-sizes", type=parse_size, nargs="*",
                   default=[(4, 1, 4), (8, 1, 4), (8, 1, 1), (16, 1, 4), (16, 2, 4), (32, 2, 4), (64, 2, 4)],
                   help="transformer sizes DxL (4 heads) or DxLxH")
    p.add_argument("--gpt-budget", type=float, default=60.0, help="training seconds per transformer")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    t0 = time.time()
    for N in a.sln_neurons if a.sln_budget > 0 else []:
        r = train_sln(a.dataset, a.out / f"sln-N{N}", a.sln_budget, a.seed, a.threads, n_neurons=N)
        print(f"{r['name']}: test accuracy {100 * r['accuracy']:.2f} % ({r['epochs']:.0f} epochs, "
              f"{r['train_seconds']:.0f} s)", flush=True)
    for d, L, H in a.gpt_sizes:
        r = train_gpt(a.dataset, a.out / gpt_name(d, L, H)[3:], a.gpt_budget, d, L, H, seed=a.seed,
                      threads=a.threads)
        print(f"{r['name']} ({r['params']:,} params): test accuracy {100 * r['accuracy']:.2f} % "
              f"({r['epochs']:.0f} epochs, {r['train_seconds']:.0f} s)", flush=True)
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the image benchmark must train before it can measure, announced with a time estimate first.

`benchmark.py --compare-energy --model sln-base` has to run on a fresh machine, so a model without a
checkpoint (the SLNs in runs/, the ViT/CfC baselines in the cache) is trained by the benchmark. That can
take an hour on 2 cores, so before any of it starts the run prints which models it will train, how many
optimizer steps, at how many threads, and an *estimate* of the time from timing a few real training steps
of each (the first step is not timed: it allocates). On a terminal it then asks; `--yes` skips the
question, `--no-train` refuses the work instead (exit 2) and prints the commands that make the checkpoints.

Threads for this training: --train-threads, else $SLN_THREADS, else $OMP_NUM_THREADS, else 1 (on a shared
2-core machine 1 thread trained the ViT ~10x faster than 2). Timing is always at 1 thread (the protocol).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn as nn

from ..baselines import CFC_SIZES, VIT_SIZES, CfCClassifier, ViT, cached_info, ncps_available
from ..cnn import CNN, CNN_SIZES
from ..config import get_config
from ..model import SLN
from ..tasks.images import ImageTask
from ..tasks.loop import resolve_threads

PROBE_STEPS = 3   # timed training steps per model (after one untimed); ~1-10 s in all


@dataclass
class TrainJob:
    """One model the benchmark will train: name, what it is, its optimizer steps, a probe to time a step."""
    name: str
    what: str                                  # e.g. "SLN on mnist, 10 epochs of 60,000 images"
    steps: int
    probe: Callable[[], tuple[nn.Module, Any]]   # -> (fresh model, task) to time PROBE_STEPS steps on
    command: str = ""                          # how to make the checkpoint yourself (SLNs)
    seconds_per_step: float | None = None

    @property
    def estimate_s(self) -> float | None:
        return None if self.seconds_per_step is None else self.seconds_per_step * self.steps


def train_threads(requested: int | None) -> int:
    """--train-threads, else $SLN_THREADS, else $OMP_NUM_THREADS, else 1."""
    return resolve_threads(requested, default=1)


def time_steps(model: nn.Module, task: Any, threads: int, n: int = PROBE_STEPS) -> float:
    """Median seconds of one training step (task.loss + backward + AdamW) of a throwaway model."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    times = []
    try:
        for i in range(n + 1):
            t0 = time.perf_counter()
            loss, _ = task.loss(model, task.get_batch(i))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return statistics.median(times)


def _minutes(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def announce(jobs: list[TrainJob], threads: int, *, no_train: bool, yes: bool,
             stream: TextIO | None = None, ask: Callable[[str], str] | None = None) -> bool:
    """Print the plan (timing each job's probe) -> True to go on, False to stop (exit 2 by the caller)."""
    out = stream or sys.stdout
    if not jobs:
        return True
    if no_train:
        print(f"--no-train: {len(jobs)} model(s) have no checkpoint and would be trained first:", file=out)
        for j in jobs:
            print(f"  {j.name}: {j.what}" + (f"\n    make it with: {j.command}" if j.command else ""), file=out)
        return False
    print(f"before measuring, this run trains {len(jobs)} model(s) that have no checkpoint, at {threads} "
          f"thread(s) (--train-threads, $SLN_THREADS or $OMP_NUM_THREADS); timing {PROBE_STEPS} steps of "
          "each for an estimate:", file=out)
    total = 0.0
    for j in jobs:
        model, task = j.probe()
        j.seconds_per_step = time_steps(model, task, threads)
        total += j.estimate_s or 0.0
        print(f"  {j.name}: {j.what}, {j.steps:,} steps x {j.seconds_per_step * 1e3:.0f} ms "
              f"= ~{_minutes(j.estimate_s or 0.0)} (estimate)", file=out)
    print(f"  total: ~{_minutes(total)} of training (estimate; evaluation and timing come on top). "
          "--no-train lists the commands instead; train the SLNs yourself into runs/ to reuse them.", file=out)
    interactive = ask is not None or (sys.stdin is not None and sys.stdin.isatty())
    if yes or not interactive:
        return True
    reply = (ask or input)("train them now? [y/N] ").strip().lower()
    return reply in ("y", "yes")


def epoch_steps(n_images: int, batch_size: int, epochs: int) -> int:
    return math.ceil(n_images / batch_size) * epochs


# --- what the image benchmark would train --------------------------------------------------------
def sln_where(name: str, args: argparse.Namespace, epochs: int) -> tuple[Path | None, Path, dict[str, Any]]:
    """-> (checkpoint found in runs/ or the cache, else None; the cache folder; the config overrides)."""
    run_dir = args.runs_dir / f"{args.dataset}-{name}"
    overrides: dict[str, Any] = {"epochs": epochs}
    if args.quick:
        overrides.update(n_neurons=64, active_frac=0.0625 if "dense" not in name else 1.0)
    cache = args.cache_dir / (f"{args.dataset}-{name}-e{epochs}" + ("-quick" if args.quick else ""))
    for d in ([] if args.quick else [run_dir]) + [cache]:
        if (d / "checkpoint.safetensors").is_file() and (d / "metrics.json").is_file():
            return d, cache, overrides
    return None, cache, overrides


def build_plan(args: argparse.Namespace, jobs: list[tuple[str, str, bool]], epochs: int, cfc_input: int,
          data: tuple[np.ndarray, ...]) -> list[TrainJob]:
    """The models this run would train (no checkpoint, no cache entry), each with a probe to time a step."""
    xtr, ytr, xte, yte = data
    n = len(xtr)
    plan: list[TrainJob] = []
    for name, _fam, must in jobs:
        found, cache, overrides = sln_where(name, args, epochs)
        if found is None and must:
            cfg = get_config(name, **overrides)
            plan.append(TrainJob(name, f"SLN on {args.dataset}, {_epochs(epochs)} of {n:,} images",
                                 epoch_steps(n, cfg.batch_size, epochs),
                                 lambda c=cfg: (SLN(c), ImageTask.for_sln(c, xtr, ytr, xte, yte)),
                                 f"python train.py --dataset {args.dataset} --model {name} --epochs {epochs} "
                                 f"--out {args.runs_dir / f'{args.dataset}-{name}'}"))
    for vs in [v for v in args.vit_sizes.split(",") if v in VIT_SIZES]:
        vc = VIT_SIZES[vs]
        if cached_info(args.cache_dir / f"{args.dataset}-{vs}-e{epochs}-n{n}", "vit", asdict(vc), epochs, n) is None:
            plan.append(TrainJob(vs, f"ViT baseline, {_epochs(epochs)} of {n:,} images",
                                 epoch_steps(n, vc.batch_size, epochs), lambda c=vc: _probe_baseline(ViT(c), c, data)))
    for ns in [c for c in args.cnn_sizes.split(",") if c in CNN_SIZES]:
        nc = CNN_SIZES[ns]
        if cached_info(args.cache_dir / f"{args.dataset}-{ns}-e{epochs}-n{n}", "cnn", asdict(nc), epochs, n) is None:
            plan.append(TrainJob(ns, f"CNN baseline (LeNet-class), {_epochs(epochs)} of {n:,} images",
                                 epoch_steps(n, nc.batch_size, epochs), lambda c=nc: _probe_baseline(CNN(c), c, data)))
    if not args.no_cfc and args.cfc_sizes and ncps_available():
        for cs in [c for c in args.cfc_sizes.split(",") if c in CFC_SIZES]:
            cc = dataclasses.replace(CFC_SIZES[cs], input_size=cfc_input)
            if cached_info(args.cache_dir / f"{args.dataset}-{cs}-e{epochs}-n{n}", "cfc", asdict(cc), epochs,
                           n) is None:
                plan.append(TrainJob(cs, f"ncps CfC baseline, {_epochs(epochs)} of {n:,} images",
                                     epoch_steps(n, cc.batch_size, epochs),
                                     lambda c=cc: _probe_baseline(CfCClassifier(c), c, data)))
    return plan


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _probe_baseline(model: Any, cfg: Any, data: tuple[np.ndarray, ...]) -> tuple[Any, ImageTask]:
    to_input = model.patches if hasattr(model, "patches") else model.to_input
    return model, ImageTask(*data, cfg.batch_size, cfg.seed, to_input, eval_each_epoch=False)

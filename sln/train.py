"""Training: the one loop (sln/tasks/loop.py, re-exported here) and the image trainer (MNIST, Fashion-MNIST).

Every trainer builds a model and a task and calls `fit` (see sln/tasks/loop.py for the task
interface): images here, time series in sln/sequence_tasks.py (their transformer baseline in
sln/ts_transformer.py), the character LM and its GPT baseline in sln/lm.py, the benchmark's ViT/CfC
baselines in sln/baselines.py. The image run is deterministic given the seed: the batches of epoch e come
from a generator seeded with (seed, e) and the learning rate is a pure function of the step
(`lr_at`), so `--resume` from the checkpoint of epoch e continues exactly as an uninterrupted
run would.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import SLNConfig
from .data import load_split
from .device import is_main
from .model import SLN
from .tasks.images import ImageTask
from .tasks.loop import (
    CKPT,
    FitResult,
    RunOptions,
    Task,
    TrainSpec,
    fit,
    lr_at,
    resolve_threads,
    resume_config,
    write_metrics,
)

__all__ = ["CKPT", "FitResult", "RunOptions", "Task", "TrainSpec", "classify_metrics", "fit", "lr_at",
           "resolve_threads", "resume_config", "train", "write_metrics"]


# --- the image trainer -------------------------------------------------------------------------

def classify_metrics(cfg: SLNConfig, model: SLN, res: FitResult, dataset: str) -> dict[str, Any]:
    """metrics.json keys shared by the image and time-series trainers."""
    # every completed epoch of this run (the history holds only the evaluated ones, see TrainSpec.eval_points)
    secs = res.epoch_seconds or [h["seconds"] for h in res.history]
    return {"dataset": dataset, "model": cfg.name, "epochs": cfg.epochs,
            "test_accuracy": res.final["accuracy"], "active_fraction": res.final["active_fraction"],
            "dead_fraction": res.final["dead_fraction"], "params": model.num_params(), "k": cfg.k,
            "n_neurons": cfg.n_neurons, "seconds_per_epoch": float(np.mean(secs)) if secs else 0.0,
            "steps": res.steps, "train_seconds": res.train_seconds, "seed": cfg.seed, "threads": res.threads}


def train(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset mnist|fashion-mnist`: train, evaluate each epoch, write metrics.json."""
    if opts.out is None:
        opts = dataclasses.replace(opts, out=Path("runs/default"))
    out = Path(opts.out)
    xtr, ytr = load_split(opts.dataset, "train", opts.data_dir, opts.limit_train)
    xte, yte = load_split(opts.dataset, "test", opts.data_dir, opts.limit_test)
    if cfg.n_classes != int(ytr.max()) + 1 and opts.limit_train is None:
        raise ValueError(f"config has n_classes={cfg.n_classes} but {opts.dataset} has {int(ytr.max()) + 1}")
    cfg = resume_config(cfg, opts)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    task = ImageTask.for_sln(cfg, xtr, ytr, xte, yte, progress=opts.progress)
    out.mkdir(parents=True, exist_ok=True)
    if is_main():                                     # under torchrun only rank 0 writes
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers} layer(s), k={cfg.k} "
          f"({100 * cfg.k / cfg.n_neurons:.2f}% active), {model.num_params():,} params, "
          f"{opts.dataset} {len(xtr)} train / {len(xte)} test, {resolve_threads(opts.threads)} threads")
    res = fit(model, task, TrainSpec.from_config(cfg), opts, {"dataset": opts.dataset})
    metrics = {**classify_metrics(cfg, model, res, opts.dataset), "train_images": len(xtr),
               "test_images": len(xte), "history": res.history, "config": cfg.to_dict()}
    write_metrics(out, metrics)
    return metrics

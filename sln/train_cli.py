"""Command line of `python train.py` / `sln train`: every SLNConfig field is a flag.

`--dataset` is looked up in TRAINERS (dataset -> "module:function"); the task module is imported
only when its dataset is asked for, and nothing registers itself on import.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import SLNConfig, get_config, list_models
from .timeseries import DATASETS as TS_DATASETS

IMAGE_DATASETS = ("mnist", "fashion-mnist")

# dataset -> "module:function" of its trainer(cfg, RunOptions) -> metrics dict
TRAINERS: dict[str, str] = {
    **{d: "sln.train:train" for d in IMAGE_DATASETS},
    **{d: "sln.sequence_tasks:train_timeseries" for d in TS_DATASETS},
    "shakespeare": "sln.lm:train_shakespeare",
}


def get_trainer(dataset: str) -> Callable[[SLNConfig, Any], dict[str, Any]]:
    if dataset not in TRAINERS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(TRAINERS)}")
    module, fn = TRAINERS[dataset].split(":")
    return getattr(importlib.import_module(module), fn)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        if "unrecognized arguments" in message:
            message += ("\nvalid flags: " + " ".join(sorted(
                s for a in self._actions for s in a.option_strings if s.startswith("--"))))
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="train.py", description="Train a Sparse Liquid Network.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="mnist", help="dataset: " + ", ".join(TRAINERS))
    p.add_argument("--model", default="sln-small", help="registered model: " + ", ".join(list_models()))
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<dataset>-<model>)")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset cache (default $SLN_DATA or ~/.cache/sln)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training examples")
    p.add_argument("--limit-test", type=int, default=None, help="use only the first N test examples")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $SLN_THREADS, else all cores)")
    g = p.add_argument_group("model/training config overrides (default: the named model's value)")
    hints = typing.get_type_hints(SLNConfig)
    for f in dataclasses.fields(SLNConfig):
        if f.name == "name":
            continue
        g.add_argument("--" + f.name.replace("_", "-"), dest="cfg_" + f.name, type=hints[f.name],
                       default=None, metavar=hints[f.name].__name__.upper())
    return p


def main(argv: list[str] | None = None) -> int:
    from .train import RunOptions

    args = build_parser().parse_args(argv)
    if args.dataset not in TRAINERS:
        print(f"unknown dataset {args.dataset!r}; known: {', '.join(TRAINERS)}", file=sys.stderr)
        return 2
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    try:
        cfg = get_config(args.model, **overrides)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"{args.dataset}-{args.model}"
    opts = RunOptions(dataset=args.dataset, out=out, data_dir=args.data_dir, resume=args.resume,
                      limit_train=args.limit_train, limit_test=args.limit_test, progress=not args.no_progress,
                      threads=args.threads)
    metrics = get_trainer(args.dataset)(cfg, opts)
    summary = {k: metrics[k] for k in ("dataset", "model", "epochs", "test_accuracy", "active_fraction",
                                       "dead_fraction", "params", "seconds_per_epoch") if k in metrics}
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}/metrics.json and {out}/checkpoint.safetensors")
    return 0


def list_main(argv: list[str] | None = None) -> int:
    from .model import SLN
    print(f"{'model':<18}{'N':>6}{'layers':>8}{'k':>5}{'active':>9}{'params':>11}")
    for name in list_models():
        cfg = get_config(name)
        print(f"{name:<18}{cfg.n_neurons:>6}{cfg.n_layers:>8}{cfg.k:>5}"
              f"{100 * cfg.k / cfg.n_neurons:>8.2f}%{SLN(cfg).num_params():>11,}")
    return 0

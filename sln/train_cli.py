"""Command line of `python train.py` / `sln train`: every SLNConfig field is a flag.

`--dataset` is looked up in TRAINERS (dataset -> "module:function"); the task module is imported
only when its dataset is asked for, and nothing registers itself on import. User files have two
entries of their own (`trainer_key`): a time-series file (.ts/.txt/.tsv/.csv, with --test) and
`text:PATH` (character LM, optional --val); their trainers take the files as a third argument.
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
from .device import add_device_argument, is_main, resolve_device, shutdown_distributed
from .series_files import DataFiles, is_series_file, is_text_dataset, run_label
from .timeseries import DATASETS as TS_DATASETS

IMAGE_DATASETS = ("mnist", "fashion-mnist")
SERIES_FILE, TEXT_FILE = "TRAIN.ts|.txt|.tsv|.csv (with --test TEST_FILE)", "text:PATH (optional --val text:PATH2)"
# user files: the model used when --model is not given
FILE_MODELS = {SERIES_FILE: "sln-ts-small", TEXT_FILE: "sln-lm-small"}
# --model when it is not given: the dataset's own named model, else sln-small
DEFAULT_MODELS = {**FILE_MODELS, "shakespeare": "sln-lm-small", "domains": "sln-domains-small",
                  "urls": "sln-domains-small", "urls-hostname": "sln-domains-small", "packets": "sln-ids-small"}

# dataset -> "module:function" of its trainer(cfg, RunOptions) -> metrics dict
TRAINERS: dict[str, str] = {
    **{d: "sln.train:train" for d in IMAGE_DATASETS},
    **{d: "sln.sequence_tasks:train_timeseries" for d in TS_DATASETS},
    "shakespeare": "sln.lm:train_shakespeare",
    SERIES_FILE: "sln.sequence_tasks:train_timeseries",
    TEXT_FILE: "sln.lm:train_text",
    **{d: "sln.security.detect:train_detector" for d in ("domains", "urls", "urls-hostname")},
    "packets": "sln.security.ids:train_packets",   # a lab capture (--data-dir DIR, default tests/fixtures/ids)
}


def trainer_key(dataset: str) -> str:
    """The TRAINERS entry of a --dataset value: itself, or one of the two user-file entries."""
    if is_text_dataset(dataset):
        return TEXT_FILE
    return SERIES_FILE if is_series_file(dataset) else dataset


def get_trainer(dataset: str) -> Callable[..., dict[str, Any]]:
    key = trainer_key(dataset)
    if key not in TRAINERS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(TRAINERS)}")
    module, fn = TRAINERS[key].split(":")
    return getattr(importlib.import_module(module), fn)


def _positive(text: str) -> int:
    """A count >= 1 (a negative --limit-train would silently slice from the end)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


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
    p.add_argument("--model", default=None, help="registered model (default sln-small; user files: sln-ts-small, "
                   "text and shakespeare: sln-lm-small, domains/urls: sln-domains-small): " + ", ".join(list_models()))
    p.add_argument("--test", type=Path, default=None, help="time-series test file for a user --dataset file")
    p.add_argument("--val", default=None, help="text:PATH validation text for --dataset text:PATH "
                   "(not given: the last 10 %% of the training file validates)")
    for split in ("train", "test", "val"):
        p.add_argument(f"--{split}-sha256", default=None, metavar="HEX",
                       help=f"optional: refuse the {split} file unless its SHA-256 is this")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<dataset>-<model>)")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset cache (default $SLN_DATA or ~/.cache/sln)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--limit-train", type=_positive, default=None, help="use only the first N training examples")
    p.add_argument("--limit-test", type=_positive, default=None, help="use only the first N test examples")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $SLN_THREADS, else all cores)")
    p.add_argument("--eval-points", type=int, default=None, metavar="N",
                   help="evaluate the test split about N times per run and after the last epoch (default 25; runs "
                        "of <= N epochs: every epoch; 0: after every epoch)")
    add_device_argument(p)
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
    key = trainer_key(args.dataset)
    if key not in TRAINERS:
        print(f"unknown dataset {args.dataset!r}; known: {', '.join(TRAINERS)}", file=sys.stderr)
        return 2
    files = _data_files(args, key)
    args.model = args.model or DEFAULT_MODELS.get(key, "sln-small")
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    try:
        cfg = get_config(args.model, **overrides)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"{run_label(args.dataset)}-{args.model}"
    opts = RunOptions(dataset=args.dataset, out=out, data_dir=args.data_dir, resume=args.resume,
                      limit_train=args.limit_train, limit_test=args.limit_test, progress=not args.no_progress,
                      threads=args.threads, device=args.device, eval_points=args.eval_points)
    resolve_device(args.device)                 # a --device cuda without a GPU fails before any data is read
    trainer = get_trainer(args.dataset)
    try:
        metrics = trainer(cfg, opts, files) if key in FILE_MODELS else trainer(cfg, opts)
        main = is_main()                        # under torchrun only rank 0 reports
    finally:
        shutdown_distributed()                  # under torchrun: leave the process group
    if not main:
        return 0
    summary = {k: metrics[k] for k in ("dataset", "model", "epochs", "test_accuracy", "active_fraction",
                                       "dead_fraction", "params", "seconds_per_epoch") if k in metrics}
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}/metrics.json and {out}/checkpoint.safetensors")
    return 0


def _data_files(args: argparse.Namespace, key: str) -> DataFiles:
    """--test / --val / --*-sha256 -> DataFiles; ValueError (exit 2) where they do not apply."""
    if args.test is not None and key != SERIES_FILE:
        raise ValueError("--test is for a user time-series file: --dataset TRAIN.ts|.txt|.tsv|.csv --test TEST_FILE")
    if args.val is not None and key != TEXT_FILE:
        raise ValueError("--val is for the character LM on your text: --dataset text:PATH --val text:PATH2")
    if (args.train_sha256 or args.test_sha256 or args.val_sha256) and key not in FILE_MODELS:
        raise ValueError(f"--train/test/val-sha256 check user files; {args.dataset!r} is a named dataset "
                         "(its checksums are pinned)")
    val = args.val
    if val is not None:
        val = Path(val[len("text:"):] if is_text_dataset(val) else val)
    return DataFiles(test=args.test, val=val, train_sha256=args.train_sha256, test_sha256=args.test_sha256,
                     val_sha256=args.val_sha256)


def list_main(argv: list[str] | None = None) -> int:
    from .model import SLN
    names = list_models()
    w = max(len(n) for n in names) + 2          # the name column fits the longest registered name
    print(f"{'model':<{w}}{'N':>6}{'layers':>8}{'k':>5}{'active':>9}{'params':>11}")
    for name in names:
        cfg = get_config(name)
        print(f"{name:<{w}}{cfg.n_neurons:>6}{cfg.n_layers:>8}{cfg.k:>5}"
              f"{100 * cfg.k / cfg.n_neurons:>8.2f}%{SLN(cfg).num_params():>11,}")
    return 0

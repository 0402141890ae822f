"""`sln evaluate --checkpoint CK --test FILE [--dropped] [--json OUT]`: a time-series checkpoint on a test file.

The test file is read by the training loaders (.ts, UCR .txt/.tsv, .csv: sln/series_files.py) and
normalised with the per-channel mean/std stored in the checkpoint by its training run; a file with
labels the model was not trained on, or another number of channels, is refused (exit code 3).
`--dropped` adds the accuracies with 30 % / 50 % of the steps dropped (with and without the true
dt; 20 more passes over the test set, with a progress bar).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .train import resolve_threads


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sln evaluate", description="Accuracy of a time-series checkpoint on a test file.")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.safetensors of a time-series run")
    p.add_argument("--test", type=Path, required=True, help="test file: .ts, .txt, .tsv or .csv")
    p.add_argument("--test-sha256", default=None, metavar="HEX", help="optional: refuse the file unless it has this")
    p.add_argument("--dropped", action="store_true", help="also evaluate with 30 %% / 50 %% of the steps dropped")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $SLN_THREADS, else all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    torch.set_num_threads(resolve_threads(a.threads))
    from .sequence_tasks import evaluate_checkpoint
    res = evaluate_checkpoint(a.checkpoint, a.test, a.test_sha256, dropped=a.dropped, progress=not a.no_progress)
    print(f"{a.test}: {res['test_series']} series, accuracy {100 * res['accuracy']:.2f}%  "
          f"(active/step {100 * res['active_fraction'][-1]:.2f}%, sha256 {res['test']['sha256'][:16]}...)")
    for k, v in res.get("irregular", {}).items():
        print(f"  {k}: with dt {100 * v['with_dt']:.2f}%   without dt {100 * v['without_dt']:.2f}%")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2))
    return 0

"""Accuracy and event-engine cost of trained MNIST checkpoints (docs/SPARSITY.md's tables).

    .venv/bin/python scripts/sparsity_report.py RUN_DIR [RUN_DIR ...] [--thresholds 0,32,64] [--json OUT]

For each run folder's checkpoint.safetensors: MNIST test accuracy, input events per image, weight
reads per inference (nonzeros of the W_in columns of the events and of the W_rec columns of the
previous winners) and nonzero liquid weights, under the model's own input coding; each extra
--thresholds value re-evaluates with that pixel threshold applied at inference only (no retraining).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sln.checkpoint import load_checkpoint
from sln.data import load_split
from sln.prune import image_sparsity
from sln.tasks.images import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sparsity_report.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders holding checkpoint.safetensors")
    p.add_argument("--thresholds", default="", help="comma-separated inference-time pixel thresholds (uint8)")
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    xte, yte = load_split("mnist", "test")
    rows = []
    for run in a.runs:
        model, _ = load_checkpoint(run / "checkpoint.safetensors")
        base = model.cfg
        for thr in [None] + [int(t) for t in a.thresholds.split(",") if t]:
            model.cfg = base if thr is None else base.replace(input_threshold=thr)
            ev = evaluate(model, xte, yte)
            row = {"run": str(run), "model": base.name, "input_pool": base.input_pool,
                   "input_threshold": model.cfg.input_threshold, "retrained_threshold": thr is None,
                   "accuracy": ev["accuracy"], **image_sparsity(model, xte)}
            rows.append(row)
            print(f"{run.name:<22} pool {row['input_pool']} thr {row['input_threshold']:>3}"
                  f"{'' if thr is None else ' (inference only)':<18} acc {100 * row['accuracy']:.2f}%  "
                  f"events {row['events']:.1f}  reads {row['weight_reads']:,.0f}  "
                  f"nonzero {row['nonzero']:,} / {row['dense']:,}")
        model.cfg = base
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

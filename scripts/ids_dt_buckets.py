"""How much a packet detector loses when dt is rounded to a few buckets (the int8 gate-table question).

    python scripts/ids_dt_buckets.py CHECKPOINT [--buckets 4 8 16] [--data-dir tests/fixtures/ids]

The int8 runtime bakes dt = 1 into its gate table; one table per dt bucket would run irregular packets.
This scores the capture with the float block scorer (sln.security.fastpath) once with the exact dt and
once per bucket count B with dt replaced by its bucket's centre: B - 1 log-spaced buckets between the
0.1 % and 99.9 % quantiles of the benign training packets' nonzero dt (centre: the geometric mean of the
edges), plus dt = 0 kept exact. Prints the unsupervised split's per-packet ROC-AUC / EER for each (JSON).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sln.security.fastpath import BlockScorer
from sln.security.ids import load_ids
from sln.security.ids_data import ids_report, load_capture, unsupervised_split


def bucketize(dt: np.ndarray, lo: float, hi: float, b: int) -> np.ndarray:
    """dt > 0 -> the geometric centre of its log bucket among b - 1 between lo and hi (clipped); 0 stays 0."""
    edges = np.geomspace(lo, hi, b)                      # b - 1 buckets
    centres = np.sqrt(edges[:-1] * edges[1:])
    i = np.clip(np.searchsorted(edges, dt, side="right") - 1, 0, b - 2)
    return np.where(dt > 0, centres[i], 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--buckets", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--data-dir", default="tests/fixtures/ids")
    a = ap.parse_args()
    cap = load_capture(a.data_dir)
    split = unsupervised_split(cap)
    model, spec = load_ids(a.checkpoint)
    x, dt = cap.ev.x, cap.ev.dt.astype(np.float64)
    tr = dt[split.train & (cap.y == 0) & (dt > 0)]
    lo, hi = float(np.quantile(tr, 0.001)), float(np.quantile(tr, 0.999))
    out: dict = {"checkpoint": str(a.checkpoint), "dt_range_s": [lo, hi]}
    for name, d in [("exact", dt)] + [(f"B={b}", bucketize(dt, lo, hi, b)) for b in a.buckets]:
        s = BlockScorer(model, spec).scores(x, d)
        p = ids_report(cap, split, s, spec.threshold)["per_packet"]
        out[name] = {k: round(float(p[k]), 4) for k in ("roc_auc", "eer", "tpr@1e-3", "tpr@thr", "fpr@thr")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

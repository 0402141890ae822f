"""`benchmark.py --task ts-baselines`: the trusted baselines on every classification set of the sktime
1.2.0 wheel (sln/timeseries.py DATASETS), one table with accuracies, wall times and sizes.

Methods (sln/ts_baselines.py): majority class, 1-NN Euclidean, 1-NN DTW (full window), MiniRocket
(seeds 0..n-1, mean and sd). DTW is skipped, and says so, where its n_test x n_train x T^2 cells exceed
--dtw-max-cells (PLAID's 5e11 take hours on 2 cores). Writes JSON (and Markdown with --markdown).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from .. import ts_baselines as tb
from ..timeseries import DATASETS, ensure_ts, read_ts
from .measure import cpu_name

METHODS = ("majority", "euclidean", "dtw", "minirocket")


def add_ts_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--sets", default=",".join(DATASETS), help="comma-separated sets (default: all)")
    g.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    g.add_argument("--seeds", type=int, default=3, help="MiniRocket seeds (mean +- sd)")
    g.add_argument("--dtw-max-cells", type=float, default=3e10, help="skip DTW above this many cell updates "
                   "(the C version does ~1e9 per second on one core)")


def run_set(name: str, methods: list[str], seeds: int, dtw_max: float, data_dir: Path | None = None
            ) -> dict[str, Any]:
    paths = ensure_ts(name, data_dir)
    tr = read_ts(paths["TRAIN"])
    te = read_ts(paths["TEST"], class_names=tr.class_names)
    row: dict[str, Any] = {"set": DATASETS[name][0], **tb.describe(tr, te)}
    for m in methods:
        t0 = time.perf_counter()
        if m == "majority":
            row[m] = tb.majority_accuracy(tr, te)
        elif m == "euclidean":
            row[m] = tb.euclidean_accuracy(tr, te)
        elif m == "dtw":
            cells = tb.dtw_cells(tr, te)
            row["dtw_cells"] = cells
            if cells > dtw_max:
                row[m], row["dtw_note"] = None, f"not computed: {cells:.2g} cells > --dtw-max-cells {dtw_max:.2g}"
                continue
            row[m] = tb.dtw_accuracy(tr, te)
        elif m == "minirocket":
            accs = [tb.minirocket_accuracy(tr, te, seed=s) for s in range(seeds)]
            row[m], row["minirocket_sd"] = statistics.mean(accs), statistics.pstdev(accs) if len(accs) > 1 else 0.0
            row["minirocket_seeds"] = accs
        else:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
        row[f"{m}_seconds"] = time.perf_counter() - t0
        print(f"  {row['set']}: {m} {100 * row[m]:.2f} %  ({row[f'{m}_seconds']:.1f} s)", flush=True)
    return row


def markdown(doc: dict[str, Any]) -> str:
    head = "| set | train / test | channels | length | classes | majority | 1-NN ED | 1-NN DTW | MiniRocket |"
    lines = [head, "|" + "---|" * 9]
    def pct(r: dict[str, Any], k: str) -> str:
        return "—" if r.get(k) is None else f"{100 * r[k]:.2f}"

    for r in doc["rows"]:
        mr = pct(r, "minirocket") + (f" ± {100 * r['minirocket_sd']:.2f}" if r.get("minirocket") is not None
                                     and len(r.get("minirocket_seeds", [])) > 1 else "")
        length = str(r["length_min"]) if r["length_min"] == r["length_max"] else f"{r['length_min']}–{r['length_max']}"
        lines.append(f"| {r['set']} | {r['train']} / {r['test']} | {r['channels']} | {length} | {r['classes']} | "
                     f"{pct(r, 'majority')} | {pct(r, 'euclidean')} | {pct(r, 'dtw')} | {mr} |")
    notes = [f"- {r['set']}: DTW {r['dtw_note']}" for r in doc["rows"] if r.get("dtw_note")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def run_ts_baselines(args: argparse.Namespace) -> int:
    sets = [s for s in args.sets.split(",") if s]
    bad = [s for s in sets if s not in DATASETS]
    if bad:
        raise ValueError(f"unknown set {bad[0]!r}; known: {', '.join(DATASETS)}")
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    for s in sets:
        print(f"{s}:", flush=True)
        rows.append(run_set(s, methods, args.seeds, args.dtw_max_cells))
    doc = {"task": "ts-baselines", "date": _dt.date.today().isoformat(), "methods": methods,
           "machine": {"cpu": cpu_name(), "cores": os.cpu_count() or 1, "python": platform.python_version()},
           "rows": rows}
    out = args.json or Path("bench") / "ts_baselines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    md = markdown(doc)
    print(md)
    if args.markdown:
        args.markdown.write_text(md)
    print(f"wrote {out}")
    return 0

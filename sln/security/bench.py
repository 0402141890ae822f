"""Benchmark of the baselines on the grouped (and temporal) splits: `python -m sln.security.bench`.

    python -m sln.security.bench --task domains            # the documented full run
    python -m sln.security.bench --task urls               # full URLs plus the hostname-only view
    python -m sln.security.bench --task domains --quick    # a small subsample, ~1 minute

Protocol: fit on train; the alert threshold is calibrated at FPR 1e-3 on the *benign validation*
scores (what a detector would store); test metrics are ROC-AUC, PR-AUC, oracle TPR at FPR 1e-3 and
1e-4, and the realised TPR/FPR at the stored threshold. The temporal set (new eth-phishing-detect
1.2.0 entries, groups unseen in training) is scored with the test benign samples. Throughput is the
whole test set scored in one call from raw strings (features included); latency is the median of
single-string calls. Writes JSON (default $SLN_DATA/security/results/<task>[-quick].json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..device import add_device_argument
from . import metrics
from .baselines import Blocklist, CharCNN, LexicalGBT, TfidfLogReg
from .domains import Sample, Splits, build_splits, load_lists, subsample, temporal_eval
from .sources import security_dir

CAL_FPR = 1e-3


def _xy(samples: list[Sample]) -> tuple[list[str], np.ndarray]:
    return [s.text for s in samples], np.array([s.label for s in samples], dtype=np.int64)


def _latency_us(model, texts: list[str], n: int = 200) -> float:
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        model.score([t])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def evaluate(model, s: Splits) -> dict:
    """Fit, calibrate, evaluate one baseline on one Splits -> a results row."""
    xtr, ytr = _xy(s.train)
    t0 = time.perf_counter()
    model.fit(xtr, ytr)
    fit_s = time.perf_counter() - t0
    xva, yva = _xy(s.val)
    thr = metrics.calibrate_threshold(model.score([x for x, y in zip(xva, yva) if y == 0]), CAL_FPR)
    xte, yte = _xy(s.test)
    model.score(xte[:64])                      # warm-up (thread pools, allocator) before timing
    t0 = time.perf_counter()
    ste = model.score(xte)
    rate = len(xte) / (time.perf_counter() - t0)
    row = {"model": model.name, "fit_s": round(fit_s, 2), "threshold": thr,
           "test": metrics.report(yte, ste, thr), "val_roc_auc": metrics.roc_auc(yva, model.score(xva)),
           "per_s": rate, "latency_us": _latency_us(model, xte), "bytes": model.nbytes()}
    if s.temporal:
        xtm, ytm = _xy(temporal_eval(s))
        row["temporal"] = metrics.report(ytm, model.score(xtm), thr)
    return row


def _models(task: str, psl, quick: bool, device: str = "cpu") -> list:
    # 48 characters cover 99% of the hosts; URLs keep their first 96 (host first); 3 epochs fit 2 cores
    cnn = CharCNN(max_len=48 if task == "domains" else 96, tail=task == "domains", epochs=1 if quick else 3,
                  device=device)
    return [Blocklist(), TfidfLogReg(), LexicalGBT(psl), cnn]


def _shrink(s: Splits, seed: int) -> Splits:
    return Splits(s.task, subsample(s.train, 4000, 1000, seed), subsample(s.val, 2000, 500, seed),
                  subsample(s.test, 2000, 500, seed), s.temporal, s.source, s.info)


def run(task: str, quick: bool = False, seed: int = 0, data_dir: Path | None = None, device: str = "cpu") -> dict:
    """device: where the char-CNN trains (default the CPU, where every baseline is fitted, timed and scored)."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    lists = load_lists(data_dir)
    views = [False, True] if task == "urls" else [False]
    out = {"task": task, "quick": quick, "seed": seed, "calibration_fpr": CAL_FPR,
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
           "views": []}
    for hostname_only in views:
        s = build_splits(lists, task, seed, hostname_only=hostname_only)
        if quick:
            s = _shrink(s, seed)
        view = {"hostname_only": hostname_only, "info": s.info,
                "sizes": {k: [len(v), sum(x.label for x in v)] for k, v in s.parts().items()}, "rows": []}
        for m in _models(task, lists.psl, quick, device):
            row = evaluate(m, s)
            view["rows"].append(row)
            print(format_row(row), flush=True)
        out["views"].append(view)
    return out


def format_row(r: dict) -> str:
    t = r["test"]
    line = (f"{r['model']:<20} test ROC-AUC {t['roc_auc']:.4f}  PR-AUC {t['pr_auc']:.4f}  "
            f"TPR@1e-3 {t['tpr@1e-3']:.3f}  TPR@1e-4 {t['tpr@1e-4']:.3f}  "
            f"@thr TPR {t['tpr@thr']:.3f} FPR {t['fpr@thr']:.4f}  ")
    if "temporal" in r:
        line += f"temporal ROC-AUC {r['temporal']['roc_auc']:.4f} TPR@thr {r['temporal']['tpr@thr']:.3f}  "
    return line + f"{r['per_s']:,.0f}/s  {r['latency_us']:.0f} us  {r['bytes']:,} B  fit {r['fit_s']}s"


def markdown(res: dict) -> str:
    """The results as Markdown tables (for docs/SECURITY_APPS.md)."""
    lines = []
    for v in res["views"]:
        lines.append(f"\n{res['task']}{' (hostname-only view)' if v['hostname_only'] else ''}: "
                     f"sizes [n, malicious] {v['sizes']}\n")
        lines.append("| model | ROC-AUC | PR-AUC | TPR@1e-3 | TPR@1e-4 | TPR / FPR at stored thr | temporal ROC-AUC "
                     "| temporal TPR at thr | domains/s | batch-1 latency | bytes |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in v["rows"]:
            t, tm = r["test"], r.get("temporal")
            temp = f"{tm['roc_auc']:.4f} | {tm['tpr@thr']:.3f}" if tm else "- | -"
            lines.append(f"| {r['model']} | {t['roc_auc']:.4f} | {t['pr_auc']:.4f} | {t['tpr@1e-3']:.3f} | "
                         f"{t['tpr@1e-4']:.3f} | {t['tpr@thr']:.3f} / {t['fpr@thr']:.4f} | {temp} | "
                         f"{r['per_s']:,.0f} | {r['latency_us']:.0f} us | {r['bytes']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.security.bench", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=["domains", "urls"], default="domains")
    p.add_argument("--quick", action="store_true", help="subsample (4000+1000 train, 2000+500 val/test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    add_device_argument(p)
    p.set_defaults(device="cpu")     # the char-CNN's fit seconds are compared with the CPU baselines'
    a = p.parse_args(argv)
    res = run(a.task, a.quick, a.seed, device=a.device)
    out = a.out or security_dir() / "results" / f"{a.task}{'-quick' if a.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(markdown(res))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

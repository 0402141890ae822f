"""Score check on a large capture (issue 11, the full capture): metrics of `sln detect-net` output, and KitNET.

    python scripts/ids_full_eval.py --capture DIR --records alerts.jsonl [--records more.jsonl] [--kitnet] \
        [--json out.json]

The capture is read once through the C featurizer (`fastpath.read_events_fast`, bit-identical to the
Python reader and ~30x faster, so a 2 M-packet capture takes seconds, not minutes). Each `--records` file
is the full JSON Lines output of `sln detect-net --pcap DIR/capture.pcap` (one record per packet, not
--alerts-only): its scores are checked to be one per packet with the capture's timestamps, then reported
with `ids_data.ids_report` on the unsupervised split (test = every packet after the benign prefix), at
the threshold stored in the checkpoint. `--kitnet`: KitNET (m = 10, 1 pass, seed 0) fitted on the benign
training prefix, every packet scored, threshold calibrated at FPR 1e-3 on the benign validation packets
(as in ids_bench), same report; fit and score seconds included.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sln.security import ids_data as D
from sln.security.fastpath import read_events_fast
from sln.security.kitnet import KitNET
from sln.security.metrics import calibrate_threshold

CAL_FPR = 1e-3


def load_fast(d: Path) -> D.Capture:
    """D.load_capture with the C featurizer."""
    return D.load_capture(d, reader=read_events_fast)


def read_records(path: Path, cap: D.Capture) -> tuple[np.ndarray, float]:
    """Scores (N,) and the threshold of a detect-net JSON Lines file, checked against the capture."""
    ts, s, thr = [], [], set()
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            ts.append(r["ts"])
            s.append(r["score"])
            thr.add(r["threshold"])
    if len(s) != len(cap.y):
        raise SystemExit(f"{path}: {len(s)} records for {len(cap.y)} packets (use the full output, not --alerts-only)")
    if np.max(np.abs(np.asarray(ts) - cap.ev.ts)) > 1e-5 or len(thr) != 1:
        raise SystemExit(f"{path}: records do not line up with the capture's packets")
    return np.asarray(s, np.float64), float(thr.pop())


def window_fpr(cap: D.Capture, sp: D.Split, s: np.ndarray, thr: float) -> dict[str, Any]:
    """FPR at the threshold of the benign test packets inside any attack window of the manifest (widened by
    1 s before and 5 s after, as `attack_outside_window`) and of those in the benign-only gaps."""
    win = json.loads((Path(cap.path) / "manifest.json").read_text())["windows_s"].values()
    t = cap.t_rel
    inside = np.zeros(len(t), bool)
    for a, b in win:
        inside |= (t >= a - 1.0) & (t <= b + 5.0)
    out = {}
    for name, m in (("in_windows", inside), ("in_gaps", ~inside)):
        b = sp.test & (cap.y == 0) & m
        out[name] = {"benign": int(b.sum()), "fpr@thr": float((s[b] > thr).mean()) if b.any() else None}
    return out


def slim(rep: dict[str, Any]) -> dict[str, Any]:
    keep = ("roc_auc", "tpr@1e-3", "eer", "tpr@thr", "fpr@thr")
    return {"per_packet": {k: rep["per_packet"].get(k) for k in keep},
            "per_flow": {k: rep["per_flow"].get(k) for k in keep},
            "per_type_roc_auc": {k: v["roc_auc"] for k, v in rep["per_type"].items()},
            "per_type_delay_s": {k: v["delay"]["seconds"] for k, v in rep["per_type"].items()},
            "threshold": rep["threshold"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--capture", type=Path, required=True)
    p.add_argument("--records", type=Path, action="append", default=[])
    p.add_argument("--kitnet", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    cap = load_fast(a.capture)
    sp = D.unsupervised_split(cap)
    te = sp.test
    res: dict[str, Any] = {
        "capture": str(a.capture), "sha256": cap.sha256, "packets": len(cap.y),
        "flows": int(len(np.unique(cap.ev.flow_id))), "read_s": round(time.perf_counter() - t0, 1),
        "train_packets": int(sp.train.sum()), "val_packets": int(sp.val.sum()),
        "test_packets": int(te.sum()), "test_benign": int((te & (cap.y == 0)).sum()),
        "test_attack": int((te & (cap.y == 1)).sum()),
        "types": {k: int(v) for k, v in zip(*np.unique(cap.kind, return_counts=True))}, "models": {}}
    print(json.dumps({k: v for k, v in res.items() if k != "models"}), flush=True)
    for path in a.records:
        s, thr = read_records(path, cap)
        res["models"][str(path)] = slim(D.ids_report(cap, sp, s, thr)) | {"benign_fpr": window_fpr(cap, sp, s, thr)}
        print(path, json.dumps(res["models"][str(path)]), flush=True)
    if a.kitnet:
        t1 = time.perf_counter()
        kn = KitNET(epochs=1, seed=0).fit(cap.ev.x[sp.train])
        fit_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        s = kn.score(cap.ev.x)
        score_s = time.perf_counter() - t1
        thr = calibrate_threshold(s[sp.val & (cap.y == 0)], CAL_FPR)
        res["models"][kn.name] = slim(D.ids_report(cap, sp, s, thr)) | {"benign_fpr": window_fpr(cap, sp, s, thr),
            "fit_s": round(fit_s, 1), "score_s": round(score_s, 1),
            "score_packets_per_s": round(len(s) / score_s), "params": kn.num_params()}
        print(kn.name, json.dumps(res["models"][kn.name]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

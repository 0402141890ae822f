"""Per-flow view of a capture and the simplest trusted baselines (Isolation Forest, gradient-boosted trees).

    python -m sln.security.flows --capture tests/fixtures/ids [--json results.json]

Splits, the same for every method, so later detectors can be compared on them:
  * benign train  = packets / flows that start in the capture's benign-only warm-up prefix
    (manifest ``config.warmup`` seconds after ``t0_unix``; the last 20% of it is held out as benign
    *validation* for calibrating a threshold at FPR 1e-3);
  * test          = everything that starts after the prefix (benign + all attack types);
  * supervised    = leave-one-attack-type-out: trained on benign train + the other attack types,
    tested on the post-prefix benign + the held-out type only.
scikit-learn is imported lazily; the flow features themselves need only numpy.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import calibrate_threshold, report
from .packets import FEATURE_NAMES, EventBatch, load_labels, read_events

_COL = {n: i for i, n in enumerate(FEATURE_NAMES)}
FLOW_FEATURE_NAMES = [
    "log_pkts", "log_bytes", "log_duration", "len_mean", "len_std", "len_min", "len_max",
    "log_gap_mean", "log_gap_std", "frac_from_initiator", "frac_bytes_from_initiator",
    "frac_syn", "frac_fin", "frac_rst", "frac_psh", "frac_ack", "proto_tcp", "proto_udp", "proto_icmp",
    "srv_port_wellknown", "srv_port_registered", "srv_port_ephemeral", "ttl_mean",
]


def _sklearn():  # noqa: ANN202 - returns the module
    try:
        import sklearn.ensemble as ens
    except ImportError as e:
        raise ImportError("the flow baselines need scikit-learn: pip install scikit-learn") from e
    return ens


@dataclass
class Flows:
    """Per-flow rows (F flows): ids [F], X [F, len(FLOW_FEATURE_NAMES)] float32, start ts [F]."""
    ids: np.ndarray
    X: np.ndarray
    start: np.ndarray
    n_packets: np.ndarray


def flow_features(ev: EventBatch) -> Flows:
    """Aggregate the events of each flow id (a bidirectional 5-tuple until idle expiry)."""
    order = np.lexsort((ev.ts, ev.flow_id))  # by flow, then time: shape [N]
    fid, ts = ev.flow_id[order], ev.ts[order]
    x, ln = ev.x[order], ev.length[order].astype(np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(fid)) + 1]  # first row of each flow
    n = np.diff(np.r_[starts, len(fid)]).astype(np.float64)

    def s(v: np.ndarray) -> np.ndarray:
        return np.add.reduceat(v, starts)

    gap = np.diff(ts, prepend=ts[0])
    gap[starts] = 0.0  # no gap before a flow's first packet
    ngap = np.maximum(n - 1, 1)
    gap_mean = s(gap) / ngap
    gap_std = np.sqrt(np.maximum(s(gap * gap) / ngap - gap_mean ** 2, 0))
    len_mean = s(ln) / n
    init = x[:, _COL["from_initiator"]].astype(np.float64)
    dport = ev.dport[order][starts]
    cols = [
        np.log1p(n), np.log1p(s(ln)), np.log1p(np.maximum.reduceat(ts, starts) - ts[starts]),
        len_mean, np.sqrt(np.maximum(s(ln * ln) / n - len_mean ** 2, 0)),
        np.minimum.reduceat(ln, starts), np.maximum.reduceat(ln, starts),
        np.log1p(gap_mean), np.log1p(gap_std), s(init) / n, s(init * ln) / np.maximum(s(ln), 1),
    ]
    cols += [s(x[:, _COL[f"tcp_{k}"]].astype(np.float64)) / n for k in ("syn", "fin", "rst", "psh", "ack")]
    cols += [x[starts, _COL[f"proto_{k}"]] for k in ("tcp", "udp", "icmp")]
    cols += [(dport < 1024), (dport >= 1024) & (dport < 49152), dport >= 49152]  # initiator's destination port
    cols += [s(x[:, _COL["ttl"]].astype(np.float64)) / n]
    X = np.stack([np.asarray(c, np.float64) for c in cols], 1).astype(np.float32)
    return Flows(ids=fid[starts], X=X, start=ts[starts], n_packets=n.astype(np.int64))


def flow_labels(ev: EventBatch, typ_per_event: np.ndarray, flows: Flows) -> np.ndarray:
    """Attack type per flow: the most frequent non-benign type among its packets, else 'benign'."""
    out = np.full(len(flows.ids), "benign", dtype=object)
    pos = {int(f): i for i, f in enumerate(flows.ids.tolist())}
    counts: dict[int, dict[str, int]] = {}
    for f, t in zip(ev.flow_id.tolist(), typ_per_event.tolist()):
        if t not in ("benign", "other"):
            d = counts.setdefault(pos[f], {})
            d[t] = d.get(t, 0) + 1
    for i, d in counts.items():
        out[i] = max(d.items(), key=lambda kv: kv[1])[0]
    return out.astype(str)


def _metrics(y: np.ndarray, s: np.ndarray, val_benign: np.ndarray) -> dict:
    thr = calibrate_threshold(val_benign, 1e-3)
    r = report(y, s, threshold=thr)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}


def evaluate(capture_dir: str | Path, seed: int = 0, max_train: int = 20000) -> dict:
    """All baseline numbers for one capture directory (capture.pcap, labels.csv, manifest.json)."""
    ens = _sklearn()
    d = Path(capture_dir)
    man = json.loads((d / "manifest.json").read_text())
    t_read = time.perf_counter()
    ev = read_events(d / man["pcap"])
    t_read = time.perf_counter() - t_read
    lab, typ = load_labels(d / man["labels"])
    y, kinds = lab[ev.index].astype(np.int64), typ[ev.index]
    t_split = man["t0_unix"] + man["config"]["warmup"]
    t_val = man["t0_unix"] + 0.8 * man["config"]["warmup"]
    rng = np.random.default_rng(seed)
    out: dict = {"capture": str(d), "packets": len(ev), "reader_s": round(t_read, 2), "per_packet": {},
                 "per_flow": {}, "split": {"train_prefix_s": man["config"]["warmup"], "val_last": 0.2}}
    fl = flow_features(ev)
    ftype = flow_labels(ev, kinds, fl)
    fy = (ftype != "benign").astype(np.int64)
    views = {"per_packet": (ev.x, ev.ts, y, kinds), "per_flow": (fl.X, fl.start, fy, ftype)}
    out["flows"] = len(fl.ids)
    for view, (X, t, yy, kk) in views.items():
        tr, va, te = t < t_val, (t >= t_val) & (t < t_split), t >= t_split
        if yy[tr | va].any():
            raise ValueError(f"{view}: attack traffic inside the benign prefix; the capture is mislabelled")
        idx = np.flatnonzero(tr)
        if len(idx) > max_train:
            idx = np.sort(rng.choice(idx, max_train, replace=False))
        iso = ens.IsolationForest(n_estimators=200, random_state=seed).fit(X[idx])
        score = -iso.score_samples(X)  # higher = more anomalous
        r = _metrics(yy[te], score[te], score[va])
        out[view]["isolation_forest"] = {"all_attacks": r, "n_train": len(idx)}
        loao = {}
        for held in sorted(set(kk[te].tolist()) - {"benign"}):
            trn = np.flatnonzero((tr & (yy == 0)) | ((yy == 1) & (kk != held)))
            tst = te & ((yy == 0) | (kk == held))
            gbt = ens.HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(X[trn], yy[trn])
            p = gbt.predict_proba(X)[:, 1]
            loao[held] = _metrics(yy[tst], p[tst], p[va])
            loao[held]["iso_forest_roc_auc"] = round(
                _metrics(yy[tst], score[tst], score[va])["roc_auc"], 4)
        out[view]["gbt_leave_one_type_out"] = loao
    return out


def _table(res: dict) -> str:
    lines = [f"capture {res['capture']}: {res['packets']} packets, {res['flows']} flows (reader {res['reader_s']} s)",
             f"{'view':<11} {'method':<22} {'held out':<16} {'ROC-AUC':>8} {'TPR@1e-3':>9} {'TPR@thr':>8} "
             f"{'FPR@thr':>8} {'n_pos':>7} {'n_neg':>7}"]
    for view in ("per_packet", "per_flow"):
        r = res[view]["isolation_forest"]["all_attacks"]
        rows = [("isolation_forest", "(all, unsup.)", r)]
        rows += [("gbt (LOAO)", k, v) for k, v in res[view]["gbt_leave_one_type_out"].items()]
        rows += [("isolation_forest", k, {"roc_auc": v["iso_forest_roc_auc"]})
                 for k, v in res[view]["gbt_leave_one_type_out"].items()]
        for m, k, v in rows:
            cells = [v.get(c, float("nan")) for c in ("roc_auc", "tpr@1e-3", "tpr@thr", "fpr@thr")]
            lines.append(f"{view:<11} {m:<22} {k:<16} " + " ".join(f"{c:>8.4f}" if c == c else f"{'-':>8}"
                                                                       for c in cells)
                         + f" {v.get('n_pos', ''):>7} {v.get('n_neg', ''):>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Isolation Forest / GBT baselines on a lab capture")
    ap.add_argument("--capture", type=Path, default=Path("tests/fixtures/ids"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res = evaluate(args.capture, seed=args.seed)
    print(_table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

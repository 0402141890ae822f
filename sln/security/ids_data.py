"""A labelled capture as arrays, the splits every IDS method shares, feature scaling, IDS metrics.

    cap = load_capture("tests/fixtures/ids")          # events + labels + manifest, one read
    sp = unsupervised_split(cap)                      # masks over the packets (N,)
    sp = loao_split(cap, "flood_syn")                 # leave one attack type out

Splits (every mask is over the capture's packets in stream order; the same for SLN, GRU, KitNET,
Isolation Forest and GBT, so their rows compare):
  * benign prefix = the capture's benign-only warm-up (manifest `config.warmup` s after t0);
    train = its first 80 %, val = its last 20 % (benign only: thresholds are calibrated there);
  * unsupervised test = every packet after the prefix (benign + all six attack types);
  * leave-one-type-out (LOAO) for supervised models: each attack type owns a *region*, the time span
    from its first to its last attack packet (+/- REGION_MARGIN_S), benign packets interleaved in it
    included. Train = benign train + the regions of the five other types (attack and interleaved
    benign packets, labelled); test = every post-prefix packet outside those five regions (the
    benign gaps, and the held-out type's region with its interleaved benign traffic). No test packet
    is ever trained on, and training windows are contiguous pieces of the real stream, so the
    inter-arrival times a sequence model sees in training are the real ones.
The stateful models score the whole capture as one stream (their state runs through every packet);
a split only selects which scores are counted.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import at_threshold, report
from .packets import FEATURE_NAMES, N_FEATURES, EventBatch, load_labels, read_events

VAL_SHARE = 0.2          # last 20 % of the benign prefix: benign validation (threshold calibration)
REGION_MARGIN_S = 0.2    # an attack type's region: first..last attack packet, widened by this
CLIP = 10.0              # scaled features are clipped to +-CLIP (a few rare features would otherwise dominate)
SCALE_FLOOR = 1e-3
# dt enters the cell in milliseconds: the initial time constants (lambda log-uniform in [0.1, 2] per unit,
# sln/cell.py) then span 0.5-10 ms, around the benign mean inter-arrival of the link (2.5 ms on the small
# capture; median 27 us: bursts); in seconds every step would be dt ~ 0 and the state would not move.
DT_SCALE = 1000.0


@dataclass
class IdsSpec:
    """What a checkpoint needs to score raw packets (train_state["ids"])."""
    mode: str
    scale: list[float]
    threshold: float
    target_fpr: float
    dt_scale: float = DT_SCALE
    clip: float = CLIP
    features: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    held_out: str | None = None
    capture_sha256: str = ""
    resid_weight: list[float] | None = None     # reconstruction: per-feature residual weights (sln.security.ids)
    # the model state a packet is scored with (sln.security.keyed): "link" (one state through the whole link, the
    # Part 2 default) or "pair" (one state per host pair); `threshold` is calibrated for `state`, and
    # state_thresholds holds the thresholds calibrated for each state ({"link": t, "pair": t}) where known
    state: str = "link"
    state_thresholds: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Capture:
    """A capture read once: events (N packets), labels y (N,) 1 = attack, kind (N,) attack type."""
    ev: EventBatch
    y: np.ndarray
    kind: np.ndarray
    t0: float
    warmup: float
    path: str
    sha256: str

    @property
    def t_rel(self) -> np.ndarray:
        return self.ev.ts - self.t0

    def types(self) -> list[str]:
        return sorted(set(self.kind[self.y == 1].tolist()))


@dataclass
class Split:
    """Boolean masks (N,) over the packets; `held_out` is None for the unsupervised split."""
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    held_out: str | None = None

    def segments(self) -> list[tuple[int, int]]:
        """The train mask as contiguous [a, b) index runs (training windows never cross a gap)."""
        return runs(self.train)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.r_[False, np.asarray(mask, bool), False].astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def load_capture(capture_dir: str | Path, reader: Callable[[Path], EventBatch] = read_events) -> Capture:
    """capture.pcap + labels + manifest of a `make_capture.sh` output directory, or a bare pcap file: then
    every packet is taken as benign and the whole capture is the "benign prefix" (train on its first 80 %,
    calibrate on the rest: a site's own known-clean traffic, docs/SECURITY_APPS.md). `reader` turns the pcap
    into events: the Python featurizer, or `fastpath.read_events_fast` (the C one, bit-identical features)."""
    d = Path(capture_dir)
    if d.is_file():
        ev = reader(d)
        if len(ev) == 0:
            raise ValueError(f"{d}: no IPv4 packets")
        span = float(ev.ts.max() - ev.ts.min())
        return Capture(ev, np.zeros(len(ev), np.int64), np.full(len(ev), "benign"), float(ev.ts.min()),
                       span + 1e-6, str(d), sha256_file(d))
    mpath = d / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"no manifest.json in {d}: give a directory written by scripts/make_capture.sh "
                                "(e.g. tests/fixtures/ids) or a pcap file of benign traffic")
    man = json.loads(mpath.read_text())
    ev = reader(d / man["pcap"])
    lab, typ = load_labels(d / man["labels"])
    if len(ev) == 0 or int(ev.index.max()) >= len(lab):
        raise ValueError(f"{d}: the labels do not cover the pcap's records (re-make the capture)")
    return Capture(ev, lab[ev.index].astype(np.int64), typ[ev.index], float(man["t0_unix"]),
                   float(man["config"]["warmup"]), str(d), sha256_file(d / man["pcap"]))


def _prefix(cap: Capture) -> tuple[np.ndarray, np.ndarray]:
    t = cap.t_rel
    tr, va = t < (1 - VAL_SHARE) * cap.warmup, (t >= (1 - VAL_SHARE) * cap.warmup) & (t < cap.warmup)
    if cap.y[tr | va].any():
        raise ValueError(f"{cap.path}: attack packets inside the benign prefix; the capture is mislabelled")
    if not tr.any() or not va.any():
        raise ValueError(f"{cap.path}: the benign prefix has no packets to train or validate on")
    return tr, va


def unsupervised_split(cap: Capture) -> Split:
    tr, va = _prefix(cap)
    return Split(tr, va, cap.t_rel >= cap.warmup)


def regions(cap: Capture) -> dict[str, np.ndarray]:
    """Attack type -> mask of its region (first..last attack packet +- margin); regions must not overlap."""
    t, out = cap.t_rel, {}
    for k in cap.types():
        tk = t[(cap.kind == k) & (cap.y == 1)]
        # never reaching back into the benign prefix (the first attack may start right after it)
        out[k] = (t >= max(tk.min() - REGION_MARGIN_S, cap.warmup)) & (t <= tk.max() + REGION_MARGIN_S)
    names = list(out)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (out[a] & out[b]).any():
                raise ValueError(f"{cap.path}: the regions of {a} and {b} overlap; leave-one-type-out needs "
                                 "attack windows separated by benign gaps")
    return out


def loao_split(cap: Capture, held_out: str) -> Split:
    tr, va = _prefix(cap)
    reg = regions(cap)
    if held_out not in reg:
        raise ValueError(f"unknown attack type {held_out!r}; this capture has {', '.join(reg)}")
    others = np.zeros(len(cap.y), bool)
    for k, m in reg.items():
        if k != held_out:
            others |= m
    test = (cap.t_rel >= cap.warmup) & ~others
    return Split(tr | others, va, test, held_out)


# --------------------------------------------------------------------------- scaling
def fit_scale(x: np.ndarray) -> np.ndarray:
    """Per-feature divisor (D,): the 99.9th percentile of |x| on benign training packets (floor 1e-3).
    No mean shift: a zero feature (an absent flag, an unused protocol) stays exactly zero, so it is no
    input event for the event-driven step."""
    s = np.quantile(np.abs(x.astype(np.float64)), 0.999, axis=0)
    return np.maximum(s, SCALE_FLOOR).astype(np.float32)


def apply_scale(x: np.ndarray, scale: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """(N, D) or (D,) features -> scaled and clipped float32 (the model's input and reconstruction target)."""
    return np.clip(np.asarray(x, np.float32) / scale, -clip, clip)


# --------------------------------------------------------------------------- metrics
def eer(y: np.ndarray, s: np.ndarray) -> float:
    """Equal error rate: the FPR (= FNR) where the two cross on the ROC curve of these scores."""
    y, s = np.asarray(y).astype(np.int64), np.asarray(s, np.float64)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tpr = np.r_[0.0, np.cumsum(ys)[last] / n_pos]
    fpr = np.r_[0.0, ((last + 1) - np.cumsum(ys)[last]) / n_neg]
    fnr = 1 - tpr
    i = int(np.flatnonzero(fpr >= fnr)[0])           # first point past the crossing
    if i == 0:
        return 0.0
    # linear interpolation between points i-1 and i of (fpr - fnr), which changes sign there
    a0, a1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    w = a0 / (a0 - a1) if a1 != a0 else 0.0
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def detection_delay(cap: Capture, scores: np.ndarray, threshold: float, kind: str) -> dict[str, float | int | None]:
    """Seconds (and attack packets) from an attack type's first packet to its first alerted packet
    (score > threshold); None when no packet of that type is alerted."""
    idx = np.flatnonzero((cap.kind == kind) & (cap.y == 1))
    if len(idx) == 0:
        return {"seconds": None, "packets": None}
    hit = np.flatnonzero(scores[idx] > threshold)
    if len(hit) == 0:
        return {"seconds": None, "packets": None}
    return {"seconds": float(cap.ev.ts[idx[hit[0]]] - cap.ev.ts[idx[0]]), "packets": int(hit[0])}


def flow_view(cap: Capture, scores: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-flow (label, score) over the flows whose first packet is in `mask`: score = the max packet
    score of the flow (an alert on any of its packets flags the flow), label = 1 if any packet is an
    attack packet."""
    fid = cap.ev.flow_id
    uniq, inv = np.unique(fid, return_inverse=True)
    first = np.full(len(uniq), len(fid), np.int64)
    np.minimum.at(first, inv, np.arange(len(fid)))
    fs = np.full(len(uniq), -np.inf)
    np.maximum.at(fs, inv, np.asarray(scores, np.float64))
    fy = np.zeros(len(uniq), np.int64)
    np.maximum.at(fy, inv, cap.y)
    keep = mask[first]
    return fy[keep], fs[keep]


def ids_report(cap: Capture, split: Split, scores: np.ndarray, threshold: float) -> dict:
    """Every metric of one model on one split: per packet (ROC-AUC, PR-AUC, oracle TPR@1e-3, TPR/FPR at the
    stored threshold, EER), per flow (same), detection delay per attack type in the test set, and per-type
    ROC-AUC (each type against all benign test packets)."""
    s = np.asarray(scores, np.float64)
    te = split.test & ((cap.y == 0) | (split.held_out is None) | (cap.kind == split.held_out))
    y = cap.y[te]
    pk = report(y, s[te], threshold) | {"eer": eer(y, s[te])}
    fy, fs = flow_view(cap, s, te)
    fl = report(fy, fs, threshold) | {"eer": eer(fy, fs)}
    kinds = [split.held_out] if split.held_out else cap.types()
    neg = te & (cap.y == 0)
    per_type = {k: {"roc_auc": report(np.r_[np.zeros(int(neg.sum())), np.ones(int(((cap.kind == k) & te).sum()))],
                                      np.r_[s[neg], s[(cap.kind == k) & te]])["roc_auc"],
                    "tpr@thr": at_threshold(np.ones(int(((cap.kind == k) & te).sum())), s[(cap.kind == k) & te],
                                            threshold)["tpr"],
                    "delay": detection_delay(cap, s, threshold, k)} for k in kinds}
    return {"per_packet": pk, "per_flow": fl, "per_type": per_type, "threshold": threshold}


def check_features(x: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise ValueError(f"features must be (N, {N_FEATURES}), got {x.shape}")

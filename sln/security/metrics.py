"""Detection metrics for a tiny base rate: ROC-AUC, PR-AUC, TPR at FPR 1e-3 / 1e-4, a stored threshold.

Conventions (shapes: y (N,) in {0, 1}, s (N,) float scores, higher = more malicious):
  * an alert is `score > threshold` (strict), so a threshold at the k-th largest benign score lets
    exactly the benign scores above it through;
  * ROC-AUC is the Mann-Whitney probability P(s_pos > s_neg) + 0.5 P(s_pos == s_neg) (ties count half);
  * PR-AUC is average precision, sum over thresholds of (R_k - R_{k-1}) P_k (no interpolation, as in
    scikit-learn's average_precision_score);
  * TPR at FPR f is the best TPR among thresholds whose FPR on these negatives is <= f; with N
    negatives the finest FPR step is 1/N, so the number of negatives is reported with it;
  * `calibrate_threshold` picks the threshold on benign *validation* scores; the detector stores it,
    and `at_threshold` reports the TPR/FPR it really gives on test data.
"""
from __future__ import annotations

import math

import numpy as np


def _check(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y).astype(np.int64).ravel(), np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y, s


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (nan when one class is absent)."""
    y, s = _check(y, s)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = s[order]
    # average ranks over ties: each run of equal scores gets the mean of its 1-based positions
    starts = np.r_[0, np.flatnonzero(np.diff(ss)) + 1]
    ends = np.r_[starts[1:], len(ss)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + 1 + b) / 2.0
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, thresholds) at each distinct score, descending: alerts are scores >= threshold."""
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]   # last index of each run of equal scores
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    return tp, fp, ss[last]


def pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision (nan without positives)."""
    y, s = _check(y, s)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    tp, fp, _ = _curve(y, s)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """Best TPR with FPR <= fpr on these samples (an oracle threshold: an upper bound of what a stored
    threshold gives; nan when a class is absent)."""
    y, s = _check(y, s)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    tp, fp, _ = _curve(y, s)
    ok = fp / n_neg <= fpr
    return float(tp[ok].max() / n_pos) if ok.any() else 0.0


def calibrate_threshold(benign_scores: np.ndarray, fpr: float) -> float:
    """The threshold t for `score > t` alerts that lets at most floor(fpr * N) of these N benign scores
    through: the (k+1)-th largest benign score, k = floor(fpr * N). Ties can only lower the count."""
    b = np.sort(np.asarray(benign_scores, dtype=np.float64).ravel())[::-1]
    if len(b) == 0:
        raise ValueError("no benign scores to calibrate on")
    k = int(math.floor(fpr * len(b) + 1e-9))
    return float(b[min(k, len(b) - 1)])


def at_threshold(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Realised TPR, FPR and counts of `score > threshold` alerts."""
    y, s = _check(y, s)
    alert = s > threshold
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    tp, fp = int((alert & (y == 1)).sum()), int((alert & (y == 0)).sum())
    return {"tpr": tp / n_pos if n_pos else math.nan, "fpr": fp / n_neg if n_neg else math.nan,
            "tp": tp, "fp": fp, "n_pos": n_pos, "n_neg": n_neg}


def report(y: np.ndarray, s: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """All metrics for one evaluation set (and the realised rates at a stored threshold, if given)."""
    y, s = _check(y, s)
    out = {"roc_auc": roc_auc(y, s), "pr_auc": pr_auc(y, s), "tpr@1e-3": tpr_at_fpr(y, s, 1e-3),
           "tpr@1e-4": tpr_at_fpr(y, s, 1e-4), "n_pos": int(y.sum()), "n_neg": int((1 - y).sum())}
    if threshold is not None:
        r = at_threshold(y, s, threshold)
        out.update({"tpr@thr": r["tpr"], "fpr@thr": r["fpr"]})
    return out

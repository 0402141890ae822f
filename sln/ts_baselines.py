"""Time-series classification baselines people already trust, written here from their papers.

- majority class: the floor every method must clear;
- 1-NN Euclidean (squared distance over all channels, zero-padded to a common length), as
  `sln.timeseries.nn1_euclidean_accuracy`;
- 1-NN DTW with a full warping window (Sakoe & Chiba 1978; the UCR archive's reference
  "DTW_F"): dependent multivariate DTW, squared Euclidean cost between the channel vectors of two
  steps, each series at its own length;
- MiniRocket (Dempster, Schmidt & Webb, "MINIROCKET: A Very Fast (Almost) Deterministic Transform
  for Time Series Classification", KDD 2021): the 84 length-9 kernels with weights in {-1, 2}
  (three 2s), dilations spread exponentially up to the series length, zero padding on alternate
  dilations, each kernel's biases from low-discrepancy quantiles of its output on a randomly drawn
  training series, proportion-of-positive-values (PPV) features, and a ridge classifier with
  cross-validated regularisation on standardised features (scikit-learn). Multivariate: each
  kernel sums its output over a random subset of the channels.

All operate on the raw series of a parsed `.ts` file (`TSData`: a list of (D, T_i) float32 arrays,
NaN = missing, replaced by 0 as the SLN's padding is). Nothing here is tuned per dataset.

DTW cost: n_test * n_train * T^2 cell updates (5e11 for PLAID). It runs in C
(runtime/baselines/dtw.c, compiled into the cache on first use); the numpy version (the 2T
anti-diagonals of the cost matrix, each vectorised over a block of pairs) is the reference the C one is
tested against, and the fallback where no C compiler exists.
"""
from __future__ import annotations

import ctypes
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from .cbuild import build_shared, compiler
from .timeseries import TSData

KERNEL_LEN = 9
# the 84 kernels: positions of the three weights 2 among 9 (the other six weigh -1)
COMBOS = np.array(list(itertools.combinations(range(KERNEL_LEN), 3)), dtype=np.int64)   # (84, 3)
N_FEATURES = 9_996              # the paper's default: 84 kernels x 119 features
MAX_DILATIONS = 32              # per kernel
PHI = (math.sqrt(5.0) + 1.0) / 2.0


def _series(d: TSData) -> list[np.ndarray]:
    """(D, T_i) float64 with missing values as 0."""
    return [np.nan_to_num(s.astype(np.float64)) for s in d.series]


def majority_accuracy(tr: TSData, te: TSData) -> float:
    return float((te.labels == np.bincount(tr.labels).argmax()).mean())


def euclidean_accuracy(tr: TSData, te: TSData) -> float:
    T = int(max(tr.lengths.max(), te.lengths.max()))

    def flat(d: TSData) -> np.ndarray:
        out = np.zeros((len(d.series), d.n_dims, T))
        for i, s in enumerate(_series(d)):
            out[i, :, : s.shape[1]] = s
        return out.reshape(len(d.series), -1)

    a, b = flat(tr), flat(te)
    d2 = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None, :]
    return float((tr.labels[d2.argmin(1)] == te.labels).mean())


# --- DTW ----------------------------------------------------------------------------------------------
# in a checkout: runtime/baselines/dtw.c; in an installed wheel: sln/runtime/baselines/dtw.c
_HERE = Path(__file__).resolve().parent
DTW_SRC = next((p for p in (_HERE / "runtime" / "baselines" / "dtw.c", _HERE.parent / "runtime" / "baselines" / "dtw.c")
                if p.is_file()), _HERE.parent / "runtime" / "baselines" / "dtw.c")


def _dtw_lib() -> ctypes.CDLL | None:
    """runtime/baselines/dtw.c compiled into $SLN_CACHE (keyed by its source), or None without a compiler."""
    if not DTW_SRC.is_file() or compiler() is None:
        return None
    so = build_shared("dtw", [DTW_SRC], ["-O2", "-shared", "-fPIC", "-std=c99"])
    lib = ctypes.CDLL(str(so))
    lib.sln_dtw_all.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_uint32] + [ctypes.c_void_p] * 3 + \
        [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p]
    return lib


def _packed(xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(D, T_i) series -> step-major float64 concatenation, offsets (in steps), lengths."""
    lens = np.array([x.shape[1] for x in xs], dtype=np.uint32)
    offs = np.concatenate([[0], np.cumsum(lens[:-1], dtype=np.uint64)]).astype(np.uint64)
    return np.ascontiguousarray(np.concatenate([x.T for x in xs]), dtype=np.float64), offs, lens


def dtw_distances(queries: list[np.ndarray], refs: list[np.ndarray], block: int = 4096,
                  backend: str = "auto") -> np.ndarray:
    """Full-window DTW distances (n_q, n_r) between (D, T_i) series; each cell's cost is the squared
    Euclidean distance of the two steps' channel vectors, the result the sum along the best path.
    backend: "c" (runtime/baselines/dtw.c), "numpy", or "auto" (C when a compiler exists)."""
    lib = _dtw_lib() if backend in ("auto", "c") else None
    if backend == "c" and lib is None:
        raise RuntimeError("the C DTW needs a C compiler (apt-get install gcc, or set CC)")
    if lib is not None:
        (qa, qo, ql), (ra, ro, rl) = _packed(queries), _packed(refs)
        out = np.empty((len(queries), len(refs)))
        row = np.empty(2 * (int(rl.max()) + 1))
        st = lib.sln_dtw_all(qa.ctypes.data, qo.ctypes.data, ql.ctypes.data, len(queries), ra.ctypes.data,
                             ro.ctypes.data, rl.ctypes.data, len(refs), queries[0].shape[0], row.ctypes.data,
                             out.ctypes.data)
        if st != 0:
            raise RuntimeError(f"sln_dtw_all returned status {st}")
        return out
    nq, nr = len(queries), len(refs)
    D = queries[0].shape[0]
    Tq, Tr = max(q.shape[1] for q in queries), max(r.shape[1] for r in refs)
    Q = np.zeros((nq, Tq, D))
    R = np.zeros((nr, Tr, D))
    for i, q in enumerate(queries):
        Q[i, : q.shape[1]] = q.T
    for j, r in enumerate(refs):
        R[j, : r.shape[1]] = r.T
    lq = np.array([q.shape[1] for q in queries])
    lr = np.array([r.shape[1] for r in refs])
    out = np.empty((nq, nr))
    pairs = np.array([(i, j) for i in range(nq) for j in range(nr)], dtype=np.int64)
    for s in range(0, len(pairs), block):
        pi, pj = pairs[s:s + block, 0], pairs[s:s + block, 1]
        out[pi, pj] = _dtw_block(Q[pi], R[pj], lq[pi], lr[pj])
    return out


def _dtw_block(A: np.ndarray, B: np.ndarray, la: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """P pairs: A (P, Ta, D), B (P, Tb, D), true lengths la, lb (P,) -> DTW distance (P,).

    Cell (i, j) lies on anti-diagonal k = i + j. prev2/prev1 hold diagonals k-2 / k-1 indexed by i.
    Padded steps lie beyond a pair's end cell (la-1, lb-1), which no path to that cell visits."""
    P, Ta, _ = A.shape
    Tb = B.shape[1]
    inf = np.inf
    # three rotating diagonal buffers; entries a diagonal does not cover are never read (masks below)
    buf = [np.full((P, Ta), inf) for _ in range(3)]
    res = np.full(P, inf)
    end_k = la + lb - 2
    rows = np.arange(Ta)
    for k in range(Ta + Tb - 1):
        prev2, prev1, cur = buf[(k - 2) % 3], buf[(k - 1) % 3], buf[k % 3]
        i = rows[max(0, k - Tb + 1): min(Ta - 1, k) + 1]
        j = k - i
        diff = A[:, i, :] - B[:, j, :]                       # (P, L, D)
        cost = np.einsum("pld,pld->pl", diff, diff)
        if k == 0:
            cur[:, 0] = cost[:, 0]
        else:
            im1 = np.maximum(i - 1, 0)
            up = np.where(j >= 1, prev1[:, i], inf)          # (i, j-1) on diagonal k-1
            left = np.where(i >= 1, prev1[:, im1], inf)      # (i-1, j) on diagonal k-1
            diag = np.where((i >= 1) & (j >= 1), prev2[:, im1], inf)   # (i-1, j-1) on diagonal k-2
            cur[:, i] = cost + np.minimum(np.minimum(up, left), diag)
        hit = end_k == k
        if hit.any():
            res[hit] = cur[hit, la[hit] - 1]
    return res


def dtw_cells(tr: TSData, te: TSData) -> float:
    """Cell updates a full-window 1-NN DTW evaluation costs (the padded block computation)."""
    return float(len(te.series) * len(tr.series) * te.lengths.max() * tr.lengths.max())


def dtw_accuracy(tr: TSData, te: TSData, backend: str = "auto") -> float:
    d = dtw_distances(_series(te), _series(tr), backend=backend)
    return float((tr.labels[d.argmin(1)] == te.labels).mean())


# --- MiniRocket -----------------------------------------------------------------------------------------
def _dilations(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Dilations spread exponentially in [1, (length-1)/8] and how many features each gets (sum 119)."""
    per_kernel = N_FEATURES // len(COMBOS)
    n_dil = min(per_kernel, MAX_DILATIONS)
    top = math.log2(max(1.0, (length - 1) / (KERNEL_LEN - 1)))
    dil, counts = np.unique(np.floor(np.logspace(0, top, n_dil, base=2)).astype(np.int64), return_counts=True)
    feats = (counts * per_kernel / n_dil).astype(np.int64)
    feats[: per_kernel - feats.sum()] += 1                  # hand out the remainder, smallest dilations first
    return dil, feats


def _conv(x: np.ndarray, d: int, pad: bool) -> np.ndarray:
    """x (C, T) -> the 84 kernels' outputs per channel (C, 84, T') at dilation d; with padding T' = T
    (zeros outside), else only the positions where the kernel fits (T' = T - 8d, at least 1)."""
    C, T = x.shape
    h = (KERNEL_LEN // 2) * d
    xp = np.pad(x, ((0, 0), (h, h)))
    taps = np.stack([xp[:, t * d: t * d + T] for t in range(KERNEL_LEN)], axis=1)    # (C, 9, T)
    # weights -1 everywhere and +2 at three taps: -sum(all taps) + 3 * sum(the three taps)
    out = -taps.sum(1, keepdims=True) + 3.0 * taps[:, COMBOS].sum(2)                 # (C, 84, T)
    if not pad and T > 2 * h:
        out = out[:, :, h: T - h]
    return out


class MiniRocket:
    """fit(tr) -> transform(series) -> (n, 9,996) PPV features; classify with a cross-validated ridge."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, tr: TSData) -> MiniRocket:
        rng = np.random.default_rng(self.seed)
        xs = _series(tr)
        self.n_dims = xs[0].shape[0]
        self.dil, self.feats = _dilations(int(tr.lengths.min()))
        n_q = int(self.feats.sum()) * len(COMBOS)
        quant = (np.arange(1, n_q + 1) * PHI) % 1.0           # low-discrepancy quantiles, as in the paper
        self.bias: list[np.ndarray] = []                      # per dilation: (84, n_features of it)
        self.channels: list[np.ndarray] = []                  # per dilation: (84, D) 0/1 channel choice
        q0 = 0
        for di, (d, nf) in enumerate(zip(self.dil, self.feats)):
            chans = np.zeros((len(COMBOS), self.n_dims))
            for k in range(len(COMBOS)):                      # multivariate: a random channel subset
                m = int(2 ** rng.uniform(0, math.log2(self.n_dims + 1))) if self.n_dims > 1 else 1
                chans[k, rng.choice(self.n_dims, size=max(1, min(m, self.n_dims)), replace=False)] = 1.0
            self.channels.append(chans)
            q = quant[q0:q0 + len(COMBOS) * nf].reshape(len(COMBOS), nf)
            q0 += len(COMBOS) * nf
            # each kernel's biases: quantiles of its output on a training series drawn for that kernel
            pick = rng.integers(len(xs), size=len(COMBOS))
            b = np.empty((len(COMBOS), nf))
            for e in np.unique(pick):
                c = np.einsum("kc,ckt->kt", chans, _conv(xs[e], int(d), pad=(di % 2 == 0)))   # (84, T')
                for k in np.flatnonzero(pick == e):
                    b[k] = np.quantile(c[k], q[k])
            self.bias.append(b)
        return self

    def transform(self, series: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(series), int(self.feats.sum()) * len(COMBOS)), dtype=np.float32)
        for n, x in enumerate(series):
            cols = []
            for di, d in enumerate(self.dil):
                c = np.einsum("kc,ckt->kt", self.channels[di], _conv(x, int(d), pad=(di % 2 == 0)))
                # PPV: share of positions where the output exceeds each bias -> (84, n_features of d)
                cols.append((c[:, None, :] > self.bias[di][:, :, None]).mean(2))
            out[n] = np.concatenate(cols, axis=1).ravel()
        return out


def minirocket_accuracy(tr: TSData, te: TSData, seed: int = 0) -> float:
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mr = MiniRocket(seed).fit(tr)
    clf = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    clf.fit(mr.transform(_series(tr)), tr.labels)
    return float((clf.predict(mr.transform(_series(te))) == te.labels).mean())


def describe(tr: TSData, te: TSData) -> dict[str, Any]:
    return {"train": len(tr.series), "test": len(te.series), "channels": tr.n_dims,
            "classes": len(tr.class_names), "length_min": int(min(tr.lengths.min(), te.lengths.min())),
            "length_max": int(max(tr.lengths.max(), te.lengths.max()))}

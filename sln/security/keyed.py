"""Per-host-pair liquid state for the packet detectors ("thresholds under load", docs/SECURITY_IDS.md part 5).

The deployed scoring of Part 2 runs one liquid state through the whole link: during a flood, every benign
packet is scored in the context of the flood's packets (their inputs and their microsecond gaps drove the
state), and its score rises. Measured on the full capture (docs/SECURITY_IDS.md part 5): driving the state
with the benign packets only brings the benign in-window false positives back to the quiet level, the
features alone do not. So here a packet is scored with the state of its *host pair* (the unordered
{src, dst} addresses): the state of that pair's own earlier packets, with dt = the time since the pair's
previous packet. A flood's packets then only move the flood pair's state.

Bounded on an endless stream: the states live in a table with the featurizer's semantics
(`packets.BoundedTable`: LRU order, a hard cap, idle expiry on lookup and a sweep every ttl/16): defaults
PAIR_CAP = 16,384 pairs (the featurizer's channel cap) and PAIR_TTL = 120 s (its host / channel expiry);
a new or expired pair starts from a zeroed state stepped with dt = the expiry (PAIR_TTL): the state settles
on the packet's own input, as for a pair last seen that long ago (with dt = 0 the zeroed state made every
first packet of a pair alert: 61 of 61 on the small capture). Memory = cap x the model's state bytes.

    sc = KeyedBlockScorer(model, spec)                  # C (runtime/sln_ids.c ids_score_keyed), a block per call
    s = sc.scores(blk.x, blk.ts, blk.meta)
    ks = KeyedStepScorer(model, spec, backend="c")      # Python, one packet at a time (c-step / torch)
    s = ks.score(xs, ts, src, dst)

Both give the same scores (tests/test_security_keyed.py). `pair_scores` scores a whole capture (arrays) for
calibration. `train.py --dataset packets` stores the thresholds (state_thresholds {"link", "pair", "src"}, each at
FPR 1e-3 on the benign validation packets); `python -m sln.security.keyed_cli calibrate --model CKPT --capture DIR
--out CKPT2` adds them to a checkpoint trained before. `sln detect-net --state auto` (the default) scores
with the pair state when the checkpoint holds its threshold, else with the link state (older checkpoints).
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..model import SLN
from .fastpath import BlockScorer, FastNetDetector, load_library
from .ids_data import IdsSpec
from .ids_stream import NetDetector, StepScorer
from .packets import BoundedTable

PAIR_CAP, PAIR_TTL = 16384, 120.0
STATES = ("link", "pair", "src")      # "src": one state per source host (the same table, keyed by src alone)
_KS_READY = False


def _lib() -> ctypes.CDLL:
    global _KS_READY
    lib = load_library()
    if not _KS_READY:
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.ids_ks_new.argtypes = [ctypes.c_uint32, ctypes.c_double, sz]
        lib.ids_ks_new.restype = vp
        lib.ids_ks_free.argtypes = [vp]
        lib.ids_ks_free.restype = None
        lib.ids_ks_sizes.argtypes = [vp, vp]
        lib.ids_ks_sizes.restype = None
        lib.ids_score_keyed.argtypes = [vp, vp, ctypes.c_int, vp, vp, vp, ctypes.c_uint32, vp, ctypes.c_float,
                                        ctypes.c_double, vp, vp, vp, ctypes.c_int, vp, vp]
        lib.ids_score_keyed.restype = ctypes.c_int
        _KS_READY = True
    return lib


def pair_key(src: int, dst: int) -> tuple[int, int]:
    return (src, dst) if src < dst else (dst, src)


def _key_fn(key: str):  # noqa: ANN202
    if key not in ("pair", "src"):
        raise ValueError(f"key must be 'pair' or 'src', got {key!r}")
    return pair_key if key == "pair" else (lambda src, dst: (src, 0))


class KeyedBlockScorer:
    """BlockScorer with one state per host pair (runtime/sln_ids.c ids_score_keyed), a block per C call."""

    keyed = True      # fastpath.FastNetDetector: scores(x, ts, meta)

    def __init__(self, model: SLN, spec: IdsSpec, cap: int = PAIR_CAP, ttl: float = PAIR_TTL,
                 key: str = "pair") -> None:
        _key_fn(key)
        self.by_src = int(key == "src")
        self.base = BlockScorer(model, spec)          # the loaded model, scaling, readout and residual weights
        self._lib = _lib()
        if not 1 <= cap <= 1 << 22:
            raise ValueError("the pair-state cap must be in 1..2**22")
        self._p = self._lib.ids_ks_new(int(cap), float(ttl), self.base.state.nbytes)
        if not self._p:
            raise MemoryError(f"ids_ks_new: cannot allocate {cap} model states")
        self.cap, self.ttl = int(cap), float(ttl)
        self.counts: np.ndarray | None = None

    def __del__(self) -> None:
        p, self._p = getattr(self, "_p", None), None
        if p:
            self._lib.ids_ks_free(p)

    def reset(self) -> None:
        """Forget every pair (a fresh table of the same cap and expiry)."""
        self._lib.ids_ks_free(self._p)
        self._p = self._lib.ids_ks_new(self.cap, self.ttl, self.base.state.nbytes)
        if not self._p:
            raise MemoryError("ids_ks_new: cannot allocate the pair states")

    def table(self) -> dict[str, int]:
        out = np.zeros(4, np.uint64)
        self._lib.ids_ks_sizes(self._p, out.ctypes.data)
        return dict(zip(("len", "evicted", "expired", "created"), (int(v) for v in out), strict=True))

    def scores(self, x: np.ndarray, ts: np.ndarray, meta: np.ndarray) -> np.ndarray:
        """x (n, D) raw features, ts (n,) seconds, meta (n, 8) int64 (fastpath.Block.meta: columns 2, 3 =
        src, dst) -> (n,) scores; the pair states carry over to the next call."""
        b = self.base
        x = np.ascontiguousarray(x, np.float32)
        ts = np.ascontiguousarray(ts, np.float64)
        meta = np.ascontiguousarray(meta, np.int64)
        if len(x) != len(ts) or meta.shape != (len(x), 8):
            raise ValueError("x, ts and meta must describe the same packets (meta: n x 8)")
        out = np.empty(len(x), np.float64)
        rc = self._lib.ids_score_keyed(b._model.ctypes.data, self._p, self.by_src, x.ctypes.data, ts.ctypes.data,
                                       meta.ctypes.data,
                                       len(x), b.inv_scale.ctypes.data, b.clip, b.dt_scale, b.w_out.ctypes.data,
                                       b.b_out.ctypes.data, None if b.weight is None else b.weight.ctypes.data,
                                       int(b.recon), out.ctypes.data,
                                       None if self.counts is None else self.counts.ctypes.data)
        if rc:
            raise ValueError(f"ids_score_keyed: {self._lib.sln_status_name(rc).decode()}")
        return out


class KeyedStepScorer:
    """ids_stream.StepScorer with one state per host pair, one packet per call (the c-step / torch paths):
    the same table rule as KeyedBlockScorer (packets.BoundedTable = runtime/sln_ids.c's tab)."""

    def __init__(self, model: SLN, mode: str, backend: str = "auto", weight: list[float] | None = None,
                 cap: int = PAIR_CAP, ttl: float = PAIR_TTL, key: str = "pair") -> None:
        self.key = _key_fn(key)
        if not 1 <= cap <= 1 << 22:
            raise ValueError("the pair-state cap must be in 1..2**22")
        self.inner = StepScorer(model, mode, backend, weight)
        self.backend = self.inner.backend
        self.table = BoundedTable(cap, ttl)
        self.created = 0

    def _fresh(self) -> Any:
        self.inner.reset()
        self.created += 1
        return self.inner.estate if self.inner.engine is not None else self.inner.stream

    def score(self, xs: np.ndarray, dtc_scale: float, ts: float, src: int, dst: int) -> float:
        """xs (D,) scaled features; dtc_scale = the spec's dt_scale (cell units per second) -> the score."""
        key = self.key(src, dst)
        v = self.table.get(key, ts)
        if v is None:
            v = [ts, self._fresh()]
            self.table.put(key, v)
            dt = self.table.ttl          # a new pair: as if last seen an expiry ago (runtime/sln_ids.c)
        else:
            dt = ts - v[0] if ts > v[0] else 0.0
        v[0] = ts
        if self.inner.engine is not None:
            self.inner.estate = v[1]
        else:
            self.inner.stream = v[1]
        return self.inner.score(xs, dt * dtc_scale)


def pair_scores(model: SLN, spec: IdsSpec, x: np.ndarray, ts: np.ndarray, src: np.ndarray, dst: np.ndarray,
                cap: int = PAIR_CAP, ttl: float = PAIR_TTL, block: int = 1 << 16, key: str = "pair") -> np.ndarray:
    """A whole capture's packets (raw features x (N, D), ts, src, dst in stream order) -> pair-state scores
    (key "src": per-source-host states)."""
    sc = KeyedBlockScorer(model, spec, cap, ttl, key)
    meta = np.zeros((len(x), 8), np.int64)
    meta[:, 2], meta[:, 3] = src, dst
    out = [sc.scores(x[i:i + block], ts[i:i + block], meta[i:i + block]) for i in range(0, len(x), block)]
    return np.concatenate(out) if out else np.zeros(0)


def default_state(spec: IdsSpec) -> str:
    """`sln detect-net --state auto`: the pair state when the checkpoint holds a threshold calibrated for it
    (every checkpoint train.py writes since part 5), else the state its threshold was calibrated for (link for
    the checkpoints before part 5: their behaviour is unchanged)."""
    return "pair" if "pair" in (spec.state_thresholds or {}) else spec.state


def threshold_for(spec: IdsSpec, state: str, override: float | None = None) -> float:
    """The alert threshold for scoring with `state` ("link" / "pair"): --threshold, else the one calibrated for
    that state and stored in the checkpoint; ValueError (with what to do) when there is none."""
    if state not in STATES:
        raise ValueError(f"--state must be one of {', '.join(STATES)}")
    if override is not None:
        return float(override)
    t = (spec.state_thresholds or {}).get(state)
    if t is None and state == spec.state:
        t = spec.threshold
    if t is None:
        raise ValueError(f"this checkpoint has no threshold calibrated for --state {state} (it was calibrated for "
                         f"--state {spec.state}); calibrate one with `python -m sln.security.keyed_cli calibrate "
                         f"--model CKPT --capture DIR --out NEW_CKPT`, or give --threshold")
    return float(t)


def make_detector(model: SLN, spec: IdsSpec, threshold: float, state: str, fast: bool, backend: str = "auto",
                  block: int = 4096) -> FastNetDetector | NetDetector:
    """sln detect-net's detector scoring with `state` ("link", "pair" or "src"): the C block path (fast) or the
    per-packet one (backend "c" = the C step, "torch")."""
    if state not in STATES:
        raise ValueError(f"--state must be one of {', '.join(STATES)}")
    if fast:
        sc = None if state == "link" else KeyedBlockScorer(model, spec, key=state)
        return FastNetDetector(model, spec, threshold, block=block, scorer=sc)
    ks = None if state == "link" else KeyedStepScorer(model, spec.mode, backend, spec.resid_weight, key=state)
    return NetDetector(model, spec, threshold, backend=backend, keyed=ks)

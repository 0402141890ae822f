r"""The integer event model (model_kind 3): int8 SLN inference over irregular events (numpy only, ground floor).

The unsupervised packet detector (sln/security/ids.py, task "events": one packet's features per step,
irregular dt, a reconstruction readout at every step, score = weighted reconstruction RMSE) as integers.
`events_step` IS the integer step of this kind; runtime/sln.c `sln_events_step` implements exactly these
operations (tests/test_intspec_events.py demands the same readout, score and bucket, bit for bit).
The liquid layers are intspec's (`intspec.q_step`'s arithmetic) with one change: the gate table.

    input        x_q = round(x * 2^XF) int16 (|x_q| < 2^15) of the scaled, clipped features x (real
                 units; the detector's own input), XF = x_frac; input events = the nonzero x_q; the
                 real value of one input unit (2^-XF) is folded into M_in
    dt buckets   dt_us = elapsed time in integer microseconds (uint32); bucket b = the number of
                 the EVENT_BUCKETS - 1 edges e_j <= dt_us (edges strictly ascending, e_0 = 1: bucket 0
                 holds exactly dt = 0); every layer has one gate table per bucket, tabulated as
                 intspec.alpha_lut at the bucket's centre dt (0 for bucket 0: alpha = 1 - 2^-15;
                 the geometric mean of its two edges for the others; the last bucket is open-ended and
                 dt below e_1 shares bucket 1: clipped, as scripts/ids_dt_buckets.py measured)
    step         intspec's layer step with alpha = LUT_b(v) (the selected table)
    readout      out_c = sat32(rq(sum_i w_out_q[c,i] y_i, M_out_c) + b_c) over the k winners (Q16,
                 intspec.readout of the top layer's y, as the LM)
    residual     r_c = out_c - x_q,c 2^(16 - XF) (Q16); e_c = sat(rq(r_c, M_r,c), +-E_MAX) (Q EF),
                 M_r,c = w_c 2^(EF - 16) with w_c the detector's residual weight; E_MAX = 2^20 - 1
    score        S = sum_c e_c^2 (uint64: < 2^46 for C <= 128); the real score is sqrt(S / C) 2^-EF,
                 the float detector's weighted RMSE (a threshold compares S, a monotone map of it)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fmt
from . import intspec as Q

BUCKETS = fmt.EVENT_BUCKETS
E_MAX = (1 << 20) - 1
MAX_INPUT = 128                       # runtime/sln.h SLN_EVENT_MAX_INPUT: the step's event list lives on the stack
X_SAT = (1 << 15) - 1
DT_US_MAX = (1 << 32) - 1


@dataclass
class QEvents:
    """An integer event model: intspec's layers and readout + the event fields."""
    qm: Q.QModel
    gate_luts: np.ndarray        # int64 (n_layers, BUCKETS, LUT_SIZE + 1) Q15
    dt_edges: np.ndarray         # int64 (BUCKETS - 1,) microseconds, strictly ascending, [0] = 1
    resid_mult: np.ndarray       # int64 (C,)
    resid_shift: np.ndarray      # int64 (C,)
    x_frac: int                  # XF
    e_frac: int                  # EF

    def fields(self) -> dict[str, object]:
        return {"gate_luts": self.gate_luts, "dt_edges": self.dt_edges, "resid_mult": self.resid_mult,
                "resid_shift": self.resid_shift, "x_frac": self.x_frac, "e_frac": self.e_frac}


def to_bytes(qe: QEvents) -> bytes:
    check(qe)
    return fmt.events_to_bytes(qe.qm, qe.fields())


def from_bytes(data: bytes) -> QEvents:
    qm, ev = fmt.events_from_bytes(data)
    qe = QEvents(qm=qm, **ev)                # type: ignore[arg-type]
    check(qe)
    return qe


def check(qe: QEvents) -> None:
    """The limits the C loader enforces (ValueError otherwise)."""
    qm = qe.qm
    if qm.n_steps != 1 or qm.n_classes != qm.input_size or qm.input_size > MAX_INPUT:
        raise ValueError(f"an event model reconstructs its own <= {MAX_INPUT} inputs one step at a time "
                         f"(got input_size {qm.input_size}, n_classes {qm.n_classes}, n_steps {qm.n_steps})")
    e = np.asarray(qe.dt_edges, np.int64)
    if e.shape != (BUCKETS - 1,) or e[0] < 1 or (np.diff(e) < 1).any() or e[-1] >= 2 ** 31:
        raise ValueError(f"dt_edges must be {BUCKETS - 1} strictly ascending microsecond values >= 1")
    if qe.gate_luts.shape != (qm.n_layers, BUCKETS, Q.LUT_SIZE + 1):
        raise ValueError("gate_luts must be (n_layers, BUCKETS, LUT_SIZE + 1)")
    if not (0 <= qe.x_frac <= 16 and 0 <= qe.e_frac <= 16):
        raise ValueError("x_frac and e_frac must be in 0..16")


def bucket_edges(lo_s: float, hi_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges (microseconds) and centres (seconds) of BUCKETS buckets: bucket 0 is dt = 0, buckets
    1..BUCKETS-1 are log-spaced between lo_s and hi_s (clipped at both ends)."""
    if not 0 < lo_s < hi_s:
        raise ValueError("need 0 < lo_s < hi_s")
    g = np.geomspace(lo_s, hi_s, BUCKETS)                   # BUCKETS points: BUCKETS - 1 log buckets
    inner = np.round(g[1:-1] * 1e6).astype(np.int64)
    edges = np.concatenate([[1], inner])
    for i in range(1, len(edges)):                          # strictly ascending after rounding
        edges[i] = max(edges[i], edges[i - 1] + 1)
    centres = np.concatenate([[0.0], np.sqrt(g[:-1] * g[1:])])
    return edges, centres


def dt_to_us(dt_s: np.ndarray) -> np.ndarray:
    """Elapsed seconds (float) -> integer microseconds (uint32 range), rounded half up."""
    us = np.floor(np.asarray(dt_s, np.float64) * 1e6 + 0.5)
    return np.clip(np.nan_to_num(us, nan=0.0), 0, DT_US_MAX).astype(np.int64)


def bucket_of(dt_edges: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
    """Bucket of each integer dt: the number of edges <= dt_us."""
    return np.searchsorted(np.asarray(dt_edges, np.int64), np.asarray(dt_us, np.int64), side="right")


def quantize_x(x: np.ndarray, x_frac: int) -> np.ndarray:
    """Scaled features (float) -> int16 input events x_q = round(x 2^XF), saturated to +-(2^15 - 1)."""
    q = np.round(np.asarray(x, np.float64) * 2.0 ** x_frac)
    return np.clip(q, -X_SAT, X_SAT).astype(np.int64)


def events_step(qe: QEvents, state: Q.QState, x_q: np.ndarray, dt_us: int, counter: Q.IntCounts | None = None
                ) -> tuple[np.ndarray, int, int]:
    """One event (batch 1): x_q (D,) int, dt_us int -> (out (C,) int64 Q16, S = sum e^2, bucket).
    With `counter`, adds intspec's counts of the step and the readout, plus the bucket search (one
    compare and one int32 edge read per edge passed, + 1) and the residual (per output: subtract, shift,
    requantise (1 mul + 2 adds), saturate (2 compares), square and sum (1 mul + 1 add), the int16 input
    and two int32 parameters read) in the readout term."""
    qm = qe.qm
    x = np.asarray(x_q, np.int64).reshape(1, -1)
    if x.shape[1] != qm.input_size or (np.abs(x) > X_SAT).any():
        raise ValueError(f"x_q must hold {qm.input_size} values with |x| < 2^15")
    if not 0 <= int(dt_us) <= DT_US_MAX:
        raise ValueError("dt_us must be a uint32")
    b = int(bucket_of(qe.dt_edges, np.array([dt_us]))[0])
    luts = [L.alpha_lut for L in qm.layers]
    try:
        for li, L in enumerate(qm.layers):
            L.alpha_lut = qe.gate_luts[li, b]
        y = Q.q_step(qm, state, x, counter)
    finally:
        for L, lut in zip(qm.layers, luts, strict=True):
            L.alpha_lut = lut
    out = Q.readout(qm, y, counter)[0]
    r = out - (x[0] << (16 - qe.x_frac))
    e = np.clip(Q.requant(r, qe.resid_mult, qe.resid_shift), -E_MAX, E_MAX)
    if counter is not None:
        ro, C, nb = counter.terms["readout"], qm.n_classes, min(b + 1, BUCKETS - 1)
        ro["cmps32"] += nb + 2 * C
        ro["param_bytes"] += 4 * nb + 8 * C
        ro["adds32"] += 5 * C
        ro["muls32"] += 2 * C
        ro["act_bytes"] += 2 * C
    return out, int((e * e).sum()), b


def run_stream(qe: QEvents, x_q: np.ndarray, dt_us: np.ndarray, counter: Q.IntCounts | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A whole stream (T events, the state carried from zero) -> out (T, C), S (T,), bucket (T,)."""
    st = Q.init_state(qe.qm, 1)
    T = len(x_q)
    out = np.zeros((T, qe.qm.n_classes), np.int64)
    S, B = np.zeros(T, np.int64), np.zeros(T, np.int64)
    for t in range(T):
        out[t], S[t], B[t] = events_step(qe, st, x_q[t], int(dt_us[t]), counter)
    return out, S, B


def real_score(qe: QEvents, S: np.ndarray) -> np.ndarray:
    """S -> the weighted reconstruction RMSE in real units: sqrt(S / C) 2^-EF."""
    return np.sqrt(np.asarray(S, np.float64) / qe.qm.n_classes) / 2.0 ** qe.e_frac

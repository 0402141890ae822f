r"""The integer model: the one specification of int8 SLN inference (numpy only, ground floor).

`q_step` below IS the integer step. The exporter's reference (`reference_forward`), the
int8 accuracy path (sln/quant.py `compare`), the character LM's reference (`lm_step`) and
the benchmark's operation counting (`counter=`) all call it; the C runtime (runtime/sln.c)
implements exactly these integer operations and the tests demand the same winners and
logits, bit for bit. Nothing here uses floating point except the exact-integer trick noted
in `matmul_exact`.

Number formats (per layer l; F = a_frac, H = h_frac are calibrated powers of two):

    input x      layer 0: classifier: raw pixel p in 0..255 (real x = p/255); character LM:
                 the one-hot character (x_q = 1 at its id, real x = 1), so W_in_q x_q is one
                 column of W_in_q (one input event of value 1); layer l>0: y of layer l-1 (Q H)
    weights      int8, per output channel i: w_real = s_i * w_q, s_i = max_j |w_ij| / 127
    accumulators int32: acc_in = W_in_q x_q (only nonzero inputs), acc_rec = W_rec_q y_q (only winners)
    a            Q F int32: a = rq(acc_in, M_in) + rq(acc_rec, M_rec) + bias_q, saturated to +-2^23
                 rq(acc, m, sh) = floor((acc*m + 2^(sh-1)) / 2^sh), m in [2^22, 2^23): M = m 2^-sh
    LayerNorm    mean = round_div(sum u, N); d = u - mean; var = floor(sum d^2 / N)
                 std = isqrt(var + eps_q) (Q F); inv = floor(2^36 / std); n = rsr(d*inv, 24) (Q12)
                 c = clamp(rsr(gamma_q*n + beta_q, 24 - H), 0, 32767)    gamma Q12, beta Q24, c Q H
    gate         alpha = LUT(v) in Q15: alpha(v) = exp(-(softplus(v) + lambda_min) * dt), dt = 1,
                 tabulated at v = -16 + i/8 (i = 0..256), linear interpolation, v clamped to [-16, 16)
    state        h = (alpha*h + (32768 - alpha)*c + 16384) >> 15        (int16, Q H, h >= 0)
    winners      score = boost_q * h (boost_q = round(65535 boost / max boost)); top-k by score,
                 ties to the lowest index (a stable sort), exactly as the float cell
    readout      one function for both model kinds, over an accumulator acc (int32, N):
                 logit_c = rq(sum_i w_out_q[c,i] acc_i, M_out_c) + b_c (Q16)
                 classifier: acc = sum_t y_t of the top layer, 1/T folded into M_out;
                 character LM: acc = y_t of the current step (only the k winners are nonzero)

rsr(x, s) = floor((x + 2^(s-1)) / 2^s) is a rounding right shift; round_div likewise
(floor((2x + n) / (2n))). All limits that keep int32 accumulators from overflowing
(k <= 255, input_size <= 4096, n_neurons <= 4096, n_steps <= 256) are checked by both the
exporter and the C loader.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --- fixed constants of the integer model (format versions 1 and 2) --------------------------
MULT_BITS = 23                # requantisation multipliers m in [2^22, 2^23)
A_SAT = 1 << 23               # |a| saturation (Q F)
NORM_FRAC = 12                # LayerNorm output n in Q12
GAMMA_FRAC = 12               # LayerNorm gamma in Q12 (beta in Q24 = NORM_FRAC + GAMMA_FRAC)
INV_BITS = 36                 # inv = 2^36 / std
ALPHA_ONE = 1 << 15           # alpha in Q15
LUT_LO = -16                  # gate LUT covers v in [-16, 16) (real units)
LUT_STEP_LOG2 = 3             # 8 LUT intervals per unit of v
LUT_SIZE = 256                # intervals; the table holds LUT_SIZE + 1 points
BOOST_MAX = 65535
H_MAX = 32767                 # int16 state
LOGIT_FRAC = 16
MAX_K, MAX_INPUT, MAX_NEURONS, MAX_STEPS, MAX_LAYERS, MAX_CLASSES = 255, 4096, 4096, 256, 4, 1024


@dataclass
class QLayer:
    """One quantised liquid population. Weight matrices are stored transposed (input-major)
    so that the runtime reads one contiguous column per input event / winner."""
    a_frac: int                  # F: a, v, u in Q F
    h_frac: int                  # H: c, h, y in Q H
    eps_q: int                   # LayerNorm eps in Q 2F
    w_in: np.ndarray             # int8 (D, 2N)
    in_mult: np.ndarray          # int32 (2N,)
    in_shift: np.ndarray         # int32 (2N,)
    w_rec: np.ndarray            # int8 (N, 2N)
    rec_mult: np.ndarray         # int32 (2N,)
    rec_shift: np.ndarray        # int32 (2N,)
    bias: np.ndarray             # int32 (2N,) Q F
    ln_gamma: np.ndarray         # int32 (N,) Q12
    ln_beta: np.ndarray          # int32 (N,) Q24
    boost: np.ndarray            # int32 (N,) 0..65535
    alpha_lut: np.ndarray        # int32 (LUT_SIZE + 1,) Q15
    # how the runtime stores W_in / W_rec: {"w_in": "dense" | "sparse", ...}; a missing name means
    # "the smaller of the two" (`matrix_storage`). Set from the file by sln.fmt.from_bytes.
    storage: dict[str, str] = field(default_factory=dict)


@dataclass
class QModel:
    input_size: int
    n_classes: int
    n_neurons: int
    n_layers: int
    k: int
    n_steps: int                 # classifier: steps per sample; character LM: 1
    layers: list[QLayer]
    w_out: np.ndarray            # int8 (N, C)
    out_mult: np.ndarray         # int32 (C,)
    out_shift: np.ndarray        # int32 (C,)
    out_bias: np.ndarray         # int32 (C,) Q16
    report: dict[str, Any] = field(default_factory=dict)


# --- integer helpers (mirrored one to one in runtime/sln.c) ----------------------------------
def rsr(x: np.ndarray, s: int | np.ndarray) -> np.ndarray:
    """Rounding arithmetic right shift floor((x + 2^(s-1)) / 2^s) on int64 (s >= 1)."""
    s = np.asarray(s, dtype=np.int64)
    return (x + (np.int64(1) << (s - 1))) >> s


def requant(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return rsr(acc.astype(np.int64) * mult.astype(np.int64), shift.astype(np.int64))


def quantize_multiplier(M: float) -> tuple[int, int]:
    """Real M >= 0 -> (m, sh) with M ~= m 2^-sh, m in [2^22, 2^23), 1 <= sh <= 62 (m=0 for M~0)."""
    if not math.isfinite(M) or M < 0:
        raise ValueError(f"multiplier {M} must be finite and >= 0")
    if M < 2.0 ** -38:
        return 0, 1
    e = math.floor(math.log2(M))
    sh = MULT_BITS - 1 - e
    m = int(round(M * 2.0 ** sh))
    if m >= 1 << MULT_BITS:
        m //= 2
        sh -= 1
    if not 1 <= sh <= 62:
        raise ValueError(f"multiplier {M} is out of the representable range (shift {sh})")
    return m, sh


def alpha_lut(lambda_min: float, dt: float = 1.0) -> np.ndarray:
    """Gate table: alpha(v) = exp(-(softplus(v) + lambda_min) dt) in Q15 at v = LUT_LO + i/8."""
    v = LUT_LO + np.arange(LUT_SIZE + 1, dtype=np.float64) / (1 << LUT_STEP_LOG2)
    sp = np.logaddexp(0.0, v)  # softplus, stable
    a = np.exp(-(sp + lambda_min) * dt)
    return np.clip(np.round(a * ALPHA_ONE), 0, ALPHA_ONE - 1).astype(np.int64)


def lut_gate(v: np.ndarray, lut: np.ndarray, F: int) -> np.ndarray:
    """v (Q F int64) -> alpha (Q15) by linear interpolation in the table (requires F >= 3)."""
    s = F - LUT_STEP_LOG2
    lo = np.int64(LUT_LO) << F
    off = np.clip(v, lo, (np.int64(-LUT_LO) << F) - 1) - lo
    i = off >> s
    fr = off & ((np.int64(1) << s) - 1)
    l0, l1 = lut[i], lut[i + 1]
    return l0 + (((l1 - l0) * fr) >> s)


def round_div(x: np.ndarray, n: int) -> np.ndarray:
    return (2 * x + n) // (2 * n)   # numpy // on int64 is floor division, as the C helper


def isqrt(x: np.ndarray) -> np.ndarray:
    return np.array([math.isqrt(int(t)) for t in x.ravel()], dtype=np.int64).reshape(x.shape)


def matmul_exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """int64 (B, D) @ int8 (D, M) -> int64, exactly. float64 BLAS is exact here because every
    product and partial sum is an integer below 2^53 (|x| < 2^15, |w| <= 128, D <= 4096)."""
    return (x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)


def topk_stable(score: np.ndarray, k: int) -> np.ndarray:
    """(B, N) -> (B, k) winner indices, highest score first, ties to the lowest index."""
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


# --- column-sparse storage of W_in / W_rec (sln.fmt writes it, runtime/sln.c reads it) --------
# A matrix W (D, R) held input-major is read one column W[j, :] (R = 2N outputs) per event j.
# Stored column-sparse it keeps, per column, only its nonzero entries as (delta, value) pairs in
# ascending row order; the runtime walks r = 0; for each entry: r += delta; acc[r] += value * x.
# delta is a uint8: the first entry's row (0..255), then the distance to the previous entry
# (1..255); a longer gap is bridged by padding entries (delta 255, value 0), executed like any
# other entry. ptr (D + 1, int32): column j's entries are ptr[j] .. ptr[j+1] - 1.
# Why uint8 deltas: 1 index byte per nonzero (2 bytes an entry with the int8 value) against 2 for
# uint16 row numbers, and against a bitmap's R/8 bytes per column (1.25 B per nonzero at 10 %
# density, 2.5 B at 5 %); padding needs a gap > 255 rows, rare above ~1 % density; the walk is one
# add per entry, with no decode table or bit scan on a microcontroller.
SPARSE_DELTA_MAX = 255
STORAGES = ("dense", "sparse")
SPARSE_MATRICES = ("w_in", "w_rec")


def _sparse_gaps(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nonzeros of w (D, R) in column-major walk order -> (column j, row p, gap to the previous
    entry or to row 0, padding entries needed before it), each (nnz,)."""
    j, p = np.nonzero(w)
    gap = p.astype(np.int64)
    if p.size > 1:
        gap[1:] = np.where(j[1:] == j[:-1], p[1:] - p[:-1], p[1:])
    return j, p, gap, np.maximum(gap - 1, 0) // SPARSE_DELTA_MAX


def column_entries(w: np.ndarray) -> np.ndarray:
    """(D,) int64: stored entries of each column of w (D, R) in the column-sparse layout
    (its nonzeros plus padding) = the weights the runtime reads for one event of that column."""
    j, _, _, pads = _sparse_gaps(w)
    return np.bincount(j, weights=1 + pads, minlength=w.shape[0]).astype(np.int64)


def sparse_encode(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w (D, R) -> column-sparse (ptr (D+1,) int64, delta (E,) int64 in 0..255, value (E,) w.dtype)."""
    j, p, gap, pads = _sparse_gaps(w)
    reps = 1 + pads
    owner = np.repeat(np.arange(p.size), reps)              # the nonzero each entry belongs to
    rank = np.arange(owner.size) - (np.cumsum(reps) - reps)[owner]
    last = rank == pads[owner]                               # the entry holding the value
    delta = np.where(last, gap[owner] - SPARSE_DELTA_MAX * pads[owner], SPARSE_DELTA_MAX)
    val = np.where(last, w[j, p][owner], np.zeros((), w.dtype)).astype(w.dtype)
    per_col = np.bincount(j, weights=reps, minlength=w.shape[0]).astype(np.int64)
    return np.concatenate([[0], np.cumsum(per_col)]).astype(np.int64), delta.astype(np.int64), val


def _a4(x: int) -> int:
    return (x + 3) & ~3


def storage_bytes(w: np.ndarray, elem: int, storage: str) -> int:
    """File bytes of matrix w (D, R) at `elem` bytes per value: dense = D R elem; sparse = ptr
    (4 (D + 1)) + deltas (E) + values (E elem), each 4-byte aligned, + two more 16-byte table
    entries (three tensors instead of one)."""
    if storage == "dense":
        return _a4(w.size * elem)
    E = int(column_entries(w).sum())
    return 4 * (w.shape[0] + 1) + _a4(E) + _a4(E * elem) + 32


def choose_storage(w: np.ndarray, elem: int = 1) -> str:
    """The exporter's rule: sparse exactly when it makes the file smaller (int8: below ~50 % density;
    float32: below ~80 %); ties stay dense."""
    return "sparse" if storage_bytes(w, elem, "sparse") < storage_bytes(w, elem, "dense") else "dense"


def matrix_storage(L: QLayer, name: str, elem: int = 1) -> str:
    """How layer L's matrix `name` (w_in / w_rec) is stored: L.storage[name], else the smaller."""
    s = L.storage.get(name) or choose_storage(getattr(L, name), elem)
    if s not in STORAGES:
        raise ValueError(f"storage of {name} must be one of {STORAGES}, got {s!r}")
    return s


# --- operation counting (the benchmark's int8 accounting) ------------------------------------
COUNT_TERMS = ("input", "recurrent", "elementwise", "readout")
COUNTERS = ("mac", "adds32", "muls32", "cmps32", "weight_bytes", "param_bytes", "act_bytes", "events", "dense_mac",
            "index_bytes")
ISQRT_ITERS = 16   # isqrt of a 32-bit value: 16 iterations of (2 adds + 1 compare)


@dataclass
class IntCounts:
    """What an event-driven integer runtime executes, summed over every sample and step.

    A MAC (int8 weight x integer activation, int32 accumulate) for each stored weight of the column
    of a nonzero input / nonzero winner of the previous step (2N per column when the matrix is
    dense; its column-sparse entries when sparse, see `column_entries`), 1 byte per int8 weight
    read; a sparse column also reads 1 index byte per entry and its two int32 column pointers (8
    bytes), counted in `index_bytes` (priced with the matrices); requantisation (acc * m, round,
    shift) as 1 int32 mul + 2 int32 adds per output (for every one of the 2N outputs, although the
    C runtime skips a zero accumulator); integer LayerNorm, LUT gate, state update, boost and top-k
    as the int32 adds / muls / compares listed in `q_step` (a shift, mask or clamp bound counts as
    an add / compare; a division as 1 mul + 1 add; isqrt as ISQRT_ITERS x (2 adds + 1 compare));
    int32 parameters (mults, shifts, bias, gamma, beta, boost, gate table entries) as 4 bytes per
    read. Bytes of the int8 weight matrices (W_in, W_rec, W_out columns/rows) go to `weight_bytes`,
    bytes of the int32 parameter vectors to `param_bytes` (priced at the memory level of their own
    size). `nz_out` counts nonzero neuron outputs (for the active fraction).
    """
    terms: dict[str, dict[str, float]] = field(
        default_factory=lambda: {t: dict.fromkeys(COUNTERS, 0.0) for t in COUNT_TERMS})
    nz_out: float = 0.0


# --- the integer step ------------------------------------------------------------------------
@dataclass
class QState:
    """Batched integer state: per layer h (B, N) int64 (Q H), y (B, N) = h on the winners, and
    the winners (B, k) of the last step in selection order (highest score first)."""
    h: list[np.ndarray]
    y: list[np.ndarray]
    win: list[np.ndarray]


def init_state(qm: QModel, batch: int = 1) -> QState:
    N, k = qm.n_neurons, qm.k
    return QState([np.zeros((batch, N), np.int64) for _ in qm.layers],
                  [np.zeros((batch, N), np.int64) for _ in qm.layers],
                  [np.zeros((batch, k), np.int64) for _ in qm.layers])


def q_step(qm: QModel, state: QState, x: np.ndarray, counter: IntCounts | None = None) -> np.ndarray:
    """One step of every layer on integer inputs x (B, input_size) (pixels, or one-hot ids).

    Updates `state` in place -> the top layer's output y (B, N). With `counter`, adds what an
    event-driven runtime executes (see IntCounts).
    """
    B = x.shape[0]
    N, k = qm.n_neurons, qm.k
    rows = np.arange(B)[:, None]
    inp = x.astype(np.int64)
    for li, L in enumerate(qm.layers):
        a = (requant(matmul_exact(inp, L.w_in), L.in_mult, L.in_shift)
             + requant(matmul_exact(state.y[li], L.w_rec), L.rec_mult, L.rec_shift) + L.bias)
        a = np.clip(a, -A_SAT, A_SAT)
        u, v = a[:, :N], a[:, N:]
        mean = round_div(u.sum(1, keepdims=True), N)
        d = u - mean
        var = (d * d).sum(1, keepdims=True) // N
        std = np.maximum(isqrt(var + L.eps_q), 1)
        inv = (np.int64(1) << INV_BITS) // std
        n = rsr(d * inv, INV_BITS - NORM_FRAC)
        c = np.clip(rsr(L.ln_gamma * n + L.ln_beta, NORM_FRAC + GAMMA_FRAC - L.h_frac), 0, H_MAX)
        alpha = lut_gate(v, L.alpha_lut, L.a_frac)
        h = (alpha * state.h[li] + (ALPHA_ONE - alpha) * c + (ALPHA_ONE >> 1)) >> 15
        win = topk_stable(L.boost * h, k)
        y = np.zeros_like(h)
        y[rows, win] = h[rows, win]
        if counter is not None:
            _count_layer(counter, li, L, inp, state.y[li], y, B, N, k)
        state.h[li], state.y[li], state.win[li] = h, y, win
        inp = y
    return inp


def _column_reads(L: QLayer, name: str, active: np.ndarray, N2: int) -> tuple[float, float]:
    """Weights read and index bytes of the columns of matrix `name` selected by active (B, D) bool:
    dense 2N per column; sparse its stored entries, 1 index byte each + two int32 pointers."""
    if matrix_storage(L, name) == "dense":
        return float(active.sum()) * N2, 0.0
    reads = float((active.astype(np.float64) @ column_entries(getattr(L, name)).astype(np.float64)).sum())
    return reads, reads + 8.0 * float(active.sum())


def _count_layer(cnt: IntCounts, li: int, L: QLayer, inp: np.ndarray, y_prev: np.ndarray, y: np.ndarray,
                 B: int, N: int, k: int) -> None:
    """Counts of one layer step (B samples): inp its input, y_prev / y its old / new output."""
    ci, cr, ce = (cnt.terms[t] for t in COUNT_TERMS[:3])
    N2 = 2 * N
    # input projection: one int8 column (2N weights, or its sparse entries) per nonzero input
    ev = float((inp != 0).sum())
    reads, idx = _column_reads(L, "w_in", inp != 0, N2)
    ci["events"] += ev
    ci["mac"] += reads
    ci["dense_mac"] += B * inp.shape[1] * N2
    ci["weight_bytes"] += reads                             # int8 weights
    ci["index_bytes"] += idx
    ci["param_bytes"] += B * N2 * 8                         # in_mult/in_shift
    ci["act_bytes"] += B * inp.shape[1] if li == 0 else ev * 4   # pixel scan / (idx, val) events
    ci["muls32"] += B * N2
    ci["adds32"] += B * N2 * 2                              # requant: round + shift
    # recurrent projection: one column per nonzero winner of the previous step
    m_b = (y_prev != 0).sum(1)
    m = float(m_b.sum())
    busy = float((m_b > 0).sum())                           # samples whose recurrent sum is not empty
    reads, idx = _column_reads(L, "w_rec", y_prev != 0, N2)
    cr["events"] += m
    cr["mac"] += reads
    cr["dense_mac"] += B * N * N2
    cr["weight_bytes"] += reads
    cr["index_bytes"] += idx
    cr["param_bytes"] += busy * N2 * 8                      # rec_mult/rec_shift
    cr["act_bytes"] += m * 4
    cr["muls32"] += busy * N2
    cr["adds32"] += busy * N2 * 2
    # pre-activation: + rec, + bias, saturation; a written and read (int32)
    ce["adds32"] += B * N2 * 2
    ce["cmps32"] += B * N2 * 2
    ce["param_bytes"] += B * N2 * 4                         # bias
    ce["act_bytes"] += B * N2 * 4 * 2
    # integer LayerNorm
    ce["adds32"] += B * (N + 2 + N + N + 1 + 1 + 2 * ISQRT_ITERS + 1 + 2 * N + 3 * N)
    ce["muls32"] += B * (1 + N + 1 + 1 + N + N)
    ce["cmps32"] += B * (1 + ISQRT_ITERS + 2 * N)
    ce["param_bytes"] += B * N * 8                          # gamma, beta
    # gate: clamp, offset, index/fraction, two table reads, interpolation
    ce["cmps32"] += B * N * 2
    ce["adds32"] += B * N * (1 + 2 + 1 + 1 + 1)
    ce["muls32"] += B * N
    ce["param_bytes"] += B * N * 2 * 4                      # two gate-table entries
    # state update h = (alpha h + (1 - alpha) c + half) >> 15  (int16 state)
    ce["muls32"] += B * N * 2
    ce["adds32"] += B * N * 4
    ce["act_bytes"] += B * N * 2 * 2                        # h read, written (int16)
    # k-WTA on boost * h (compares: N + k log2 k + k, the engine's convention)
    ce["muls32"] += B * N
    ce["param_bytes"] += B * N * 4                          # boost
    ce["cmps32"] += B * (N + int(k * math.ceil(math.log2(max(k, 2)))) + k)
    nzl = float((y != 0).sum())
    cnt.nz_out += nzl
    ce["act_bytes"] += nzl * 4                              # events (idx, val) written


def readout(qm: QModel, acc: np.ndarray, counter: IntCounts | None = None) -> np.ndarray:
    """acc (B, N) int64 -> logits (B, C) int64 in Q16 (one readout for both model kinds)."""
    dot = matmul_exact(acc, qm.w_out)
    logits = np.clip(requant(dot, qm.out_mult, qm.out_shift) + qm.out_bias, -2 ** 31, 2 ** 31 - 1)
    if counter is not None:
        B, C = acc.shape[0], qm.n_classes
        ro = counter.terms["readout"]
        nf = float((acc != 0).sum())
        ro["mac"] += nf * C
        ro["dense_mac"] += B * qm.n_neurons * C
        ro["weight_bytes"] += nf * C                        # int8 rows of the neurons that fired
        ro["param_bytes"] += B * C * 12                     # out_mult, out_shift, out_bias
        ro["muls32"] += B * C
        ro["adds32"] += B * C * 3                           # requant round + shift, + bias
        ro["act_bytes"] += nf * 4 + B * C * 4
    return logits


def reference_forward(qm: QModel, pixels: np.ndarray, counter: IntCounts | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The integer classifier. pixels uint8 (B, n_steps*input_size) or (B, 28, 28).

    -> logits int64 (B, C) in Q16, winners int64 (B, n_layers, n_steps, k) in selection order.
    """
    B = pixels.shape[0]
    T, D = qm.n_steps, qm.input_size
    x = pixels.reshape(B, T, D).astype(np.int64)
    st = init_state(qm, B)
    racc = np.zeros((B, qm.n_neurons), np.int64)
    winners = np.zeros((B, qm.n_layers, T, qm.k), np.int64)
    for t in range(T):
        y = q_step(qm, st, x[:, t], counter)
        for li in range(qm.n_layers):
            winners[:, li, t] = st.win[li]
        racc += y
        if counter is not None:   # readout accumulator: events read, accumulator read + written
            ro = counter.terms["readout"]
            mt = float((y != 0).sum())
            ro["adds32"] += mt
            ro["act_bytes"] += mt * 4 + mt * 4 * 2
            ro["events"] += mt
    return readout(qm, racc, counter), winners


def check_limits(D: int, C: int, N: int, L: int, k: int, T: int) -> None:
    for name, val, hi in (("input_size", D, MAX_INPUT), ("n_classes", C, MAX_CLASSES),
                          ("n_neurons", N, MAX_NEURONS), ("n_layers", L, MAX_LAYERS), ("k", k, MAX_K),
                          ("n_steps", T, MAX_STEPS)):
        if not 1 <= val <= hi:
            raise ValueError(f"{name}={val} is outside what the int8 runtime supports (1..{hi})")
    if k > N:
        raise ValueError("k > n_neurons")

r"""Post-training int8 quantisation of an SLN and its pure-integer reference model.

`reference_forward` below IS the specification of the integer model: the C runtime
(runtime/sln.c) implements exactly these integer operations and the tests demand the same
winners and the same logits, bit for bit. Nothing in it uses floating point except the
exact-integer trick noted in `_matmul_exact`.

Number formats (per layer l; F = a_frac, H = h_frac are calibrated powers of two):

    input x      layer 0: raw pixel p in 0..255 (real x = p/255); layer l>0: y of layer l-1 (Q H_{l-1})
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
    readout      acc_i = sum_t y_i,t (int32); logit_c = rq(sum_i w_out_q[c,i] acc_i, M_out_c) + b_c (Q16)

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
import torch
import torch.nn.functional as F

from .model import SLN, images_to_sequence

# --- fixed constants of the integer model (format version 1) ---------------------------------
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


@dataclass
class QModel:
    input_size: int
    n_classes: int
    n_neurons: int
    n_layers: int
    k: int
    n_steps: int
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


def _lut_gate(v: np.ndarray, lut: np.ndarray, F: int) -> np.ndarray:
    """v (Q F int64) -> alpha (Q15) by linear interpolation in the table (requires F >= 3)."""
    s = F - LUT_STEP_LOG2
    lo = np.int64(LUT_LO) << F
    off = np.clip(v, lo, (np.int64(-LUT_LO) << F) - 1) - lo
    i = off >> s
    fr = off & ((np.int64(1) << s) - 1)
    l0, l1 = lut[i], lut[i + 1]
    return l0 + (((l1 - l0) * fr) >> s)


def _round_div(x: np.ndarray, n: int) -> np.ndarray:
    return (2 * x + n) // (2 * n)   # numpy // on int64 is floor division, as the C helper


def _isqrt(x: np.ndarray) -> np.ndarray:
    return np.array([math.isqrt(int(t)) for t in x.ravel()], dtype=np.int64).reshape(x.shape)


def _matmul_exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """int64 (B, D) @ int8 (D, M) -> int64, exactly. float64 BLAS is exact here because every
    product and partial sum is an integer below 2^53 (|x| < 2^15, |w| <= 128, D <= 4096)."""
    return (x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)


def topk_stable(score: np.ndarray, k: int) -> np.ndarray:
    """(B, N) -> (B, k) winner indices, highest score first, ties to the lowest index."""
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


def reference_forward(qm: QModel, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer model. pixels uint8 (B, n_steps*input_size) or (B, 28, 28).

    -> logits int64 (B, C) in Q16, winners int64 (B, n_layers, n_steps, k) in selection order.
    """
    B = pixels.shape[0]
    N, k, T, D = qm.n_neurons, qm.k, qm.n_steps, qm.input_size
    x = pixels.reshape(B, T, D).astype(np.int64)
    h = [np.zeros((B, N), np.int64) for _ in qm.layers]
    y = [np.zeros((B, N), np.int64) for _ in qm.layers]
    racc = np.zeros((B, N), np.int64)
    winners = np.zeros((B, qm.n_layers, T, k), np.int64)
    rows = np.arange(B)[:, None]
    for t in range(T):
        inp = x[:, t]
        for li, L in enumerate(qm.layers):
            F_ = L.a_frac
            a = (requant(_matmul_exact(inp, L.w_in), L.in_mult, L.in_shift)
                 + requant(_matmul_exact(y[li], L.w_rec), L.rec_mult, L.rec_shift) + L.bias)
            a = np.clip(a, -A_SAT, A_SAT)
            u, v = a[:, :N], a[:, N:]
            mean = _round_div(u.sum(1, keepdims=True), N)
            d = u - mean
            var = (d * d).sum(1, keepdims=True) // N
            std = np.maximum(_isqrt(var + L.eps_q), 1)
            inv = (np.int64(1) << INV_BITS) // std
            n = rsr(d * inv, INV_BITS - NORM_FRAC)
            c = np.clip(rsr(L.ln_gamma * n + L.ln_beta, NORM_FRAC + GAMMA_FRAC - L.h_frac), 0, H_MAX)
            alpha = _lut_gate(v, L.alpha_lut, F_)
            h[li] = (alpha * h[li] + (ALPHA_ONE - alpha) * c + (ALPHA_ONE >> 1)) >> 15
            win = topk_stable(L.boost * h[li], k)
            winners[:, li, t] = win
            y[li] = np.zeros_like(h[li])
            y[li][rows, win] = h[li][rows, win]
            inp = y[li]
        racc += y[-1]
    dot = _matmul_exact(racc, qm.w_out)
    logits = np.clip(requant(dot, qm.out_mult, qm.out_shift) + qm.out_bias, -2 ** 31, 2 ** 31 - 1)
    return logits, winners


# --- quantisation ------------------------------------------------------------------------------
def _per_channel(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """float (out, in) -> int8 (out, in), scales (out,) with w ~= s[:, None] * q."""
    w = w.detach().double().cpu().numpy()
    s = np.abs(w).max(1) / 127.0
    s[s == 0] = 1.0
    q = np.clip(np.round(w / s[:, None]), -127, 127).astype(np.int8)
    return q, s


def _mults(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ms = [quantize_multiplier(float(M)) for M in scales]
    return (np.array([m for m, _ in ms], np.int64), np.array([s for _, s in ms], np.int64))


@torch.no_grad()
def calibrate(model: SLN, images: np.ndarray, batch: int = 500) -> list[dict[str, float]]:
    """Run the float model on (training) images; per layer max |a| and max c."""
    cfg = model.cfg
    stats = [{"a_max": 0.0, "c_max": 0.0} for _ in model.cells]
    for s in range(0, len(images), batch):
        x = images_to_sequence(torch.from_numpy(images[s:s + batch].copy()), cfg.input_size)
        state = model.init_state(x.shape[0])
        for t in range(x.shape[1]):
            inp = x[:, t]
            new = []
            for li, (cell, (hh, yy)) in enumerate(zip(model.cells, state, strict=True)):
                a = cell.w_in(inp) + cell.w_rec(yy)
                record_range(stats[li], cell, a)
                hh = cell.update(a, hh, 1.0)          # the cell's step, reusing a
                inp = hh * cell.select(hh)
                new.append((hh, inp))
            state = new
    return stats


def record_range(stats: dict[str, float], cell: torch.nn.Module, a: torch.Tensor) -> None:
    """Widen one layer's calibration maxima with the pre-activation a (B, 2N): max |a|, max c."""
    c = F.relu(cell.ln(a[:, :cell.n_neurons]))
    stats["a_max"] = max(stats["a_max"], a.abs().max().item())
    stats["c_max"] = max(stats["c_max"], c.max().item())


def quantize(model: SLN, calib_images: np.ndarray) -> QModel:
    """Post-training quantisation; calib_images uint8 (n, 28, 28) from the training split."""
    cfg = model.cfg
    model.eval()
    N, k, D0 = cfg.n_neurons, cfg.k, cfg.input_size
    T = calib_images[0].size // D0
    _check_limits(D0, cfg.n_classes, N, cfg.n_layers, k, T)
    stats = calibrate(model, calib_images)
    layers, in_scale, report = [], 1.0 / 255.0, {"layers": []}
    for li, cell in enumerate(model.cells):
        # F: |a| of the calibration set lands near 2^21, leaving 4x headroom below saturation
        F_ = int(np.clip(math.floor(math.log2(2.0 ** 21 / max(stats[li]["a_max"], 1e-6))), 3, 20))
        H = int(np.clip(math.floor(math.log2(H_MAX / max(stats[li]["c_max"], 1e-6))), 0, 15))
        w_in_q, s_in = _per_channel(cell.w_in.weight)
        w_rec_q, s_rec = _per_channel(cell.w_rec.weight)
        in_mult, in_shift = _mults(s_in * in_scale * 2.0 ** F_)
        rec_mult, rec_shift = _mults(s_rec * 2.0 ** -H * 2.0 ** F_)
        bias = np.round(cell.w_in.bias.detach().double().numpy() * 2.0 ** F_)
        gamma = np.round(cell.ln.weight.detach().double().numpy() * 2.0 ** GAMMA_FRAC)
        beta = np.round(cell.ln.bias.detach().double().numpy() * 2.0 ** (NORM_FRAC + GAMMA_FRAC))
        boost = cell.boost.detach().double().numpy() if cell.boost_beta > 0 else np.ones(N)
        boost_q = np.round(boost / boost.max() * BOOST_MAX)
        L = QLayer(a_frac=F_, h_frac=H, eps_q=max(1, int(round(cell.ln_eps * 2.0 ** (2 * F_)))),
                   w_in=np.ascontiguousarray(w_in_q.T), in_mult=in_mult, in_shift=in_shift,
                   w_rec=np.ascontiguousarray(w_rec_q.T), rec_mult=rec_mult, rec_shift=rec_shift,
                   bias=_i32(bias), ln_gamma=_i32(gamma), ln_beta=_i32(beta),
                   boost=boost_q.astype(np.int64), alpha_lut=alpha_lut(cell.lambda_min))
        layers.append(L)
        report["layers"].append({
            "a_frac": F_, "h_frac": H, **stats[li],
            "w_in_rel_rms_error": _rel_err(cell.w_in.weight, w_in_q, s_in),
            "w_rec_rel_rms_error": _rel_err(cell.w_rec.weight, w_rec_q, s_rec)})
        in_scale = 2.0 ** -H
    w_out_q, s_out = _per_channel(model.readout.weight)
    out_mult, out_shift = _mults(s_out * in_scale / T * 2.0 ** LOGIT_FRAC)
    out_bias = _i32(np.round(model.readout.bias.detach().double().numpy() * 2.0 ** LOGIT_FRAC))
    report["w_out_rel_rms_error"] = _rel_err(model.readout.weight, w_out_q, s_out)
    report["calibration_images"] = int(len(calib_images))
    return QModel(input_size=D0, n_classes=cfg.n_classes, n_neurons=N, n_layers=cfg.n_layers, k=k,
                  n_steps=T, layers=layers, w_out=np.ascontiguousarray(w_out_q.T), out_mult=out_mult,
                  out_shift=out_shift, out_bias=out_bias, report=report)


def _i32(x: np.ndarray) -> np.ndarray:
    if np.abs(x).max(initial=0) >= 2 ** 31:
        raise ValueError("a quantised parameter does not fit int32")
    return x.astype(np.int64)


def _rel_err(w: torch.Tensor, q: np.ndarray, s: np.ndarray) -> float:
    w = w.detach().detach().double().numpy()
    e = w - q.astype(np.float64) * s[:, None]
    return float(np.sqrt((e ** 2).mean() / max((w ** 2).mean(), 1e-30)))


def _check_limits(D: int, C: int, N: int, L: int, k: int, T: int) -> None:
    for name, val, hi in (("input_size", D, MAX_INPUT), ("n_classes", C, MAX_CLASSES),
                          ("n_neurons", N, MAX_NEURONS), ("n_layers", L, MAX_LAYERS), ("k", k, MAX_K),
                          ("n_steps", T, MAX_STEPS)):
        if not 1 <= val <= hi:
            raise ValueError(f"{name}={val} is outside what the int8 runtime supports (1..{hi})")
    if k > N:
        raise ValueError("k > n_neurons")


# --- evaluation / error statistics -------------------------------------------------------------
@torch.no_grad()
def float_forward(model: SLN, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """-> float logits (B, C), winners (B, L, T, k) of the float model (same selection order)."""
    cfg = model.cfg
    logits, wins = [], []
    for s in range(0, len(images), batch):
        x = images_to_sequence(torch.from_numpy(images[s:s + batch].copy()), cfg.input_size)
        state = model.init_state(x.shape[0])
        acc = torch.zeros(x.shape[0], cfg.n_neurons)
        w_b = []
        for t in range(x.shape[1]):
            inp, new, w_t = x[:, t], [], []
            for cell, st in zip(model.cells, state, strict=True):
                inp, st, _ = cell.step(inp, st)
                score = st[0] * cell.boost if cell.boost_beta > 0 else st[0]
                w_t.append(torch.sort(score, dim=1, descending=True, stable=True).indices[:, :cfg.k])
                new.append(st)
            state = new
            acc += inp
            w_b.append(torch.stack(w_t, 1))
        logits.append(model.readout(acc / x.shape[1]).numpy())
        wins.append(torch.stack(w_b, 2).numpy())
    return np.concatenate(logits), np.concatenate(wins)


def compare(model: SLN, qm: QModel, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Float vs integer model on real images: accuracies and quantisation error statistics."""
    fl, fw = float_forward(model, images)
    il, iw = reference_forward(qm, images)
    il_real = il / 2.0 ** LOGIT_FRAC
    err = il_real - fl
    # winner-set overlap per (image, layer, step): |W_float & W_int| / k
    fs, is_ = np.sort(fw, -1), np.sort(iw, -1)
    overlap = np.mean([len(np.intersect1d(a, b, assume_unique=True)) / qm.k
                       for a, b in zip(fs.reshape(-1, qm.k), is_.reshape(-1, qm.k), strict=True)])
    return {
        "n_images": int(len(labels)),
        "float_accuracy": float((fl.argmax(1) == labels).mean()),
        "int8_accuracy": float((il.argmax(1) == labels).mean()),
        "prediction_agreement": float((fl.argmax(1) == il.argmax(1)).mean()),
        "winner_overlap": float(overlap),
        "logit_rms_error": float(np.sqrt((err ** 2).mean())),
        "logit_rms_float": float(np.sqrt((fl ** 2).mean())),
        "logit_max_abs_error": float(np.abs(err).max()),
    }

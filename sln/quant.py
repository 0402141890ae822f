r"""Post-training int8 quantisation of an SLN (classifier or character LM) into the integer model.

The integer model itself, its number formats and its one step are specified in sln/intspec.py;
this module only chooses the numbers: per layer the Q formats F (pre-activation) and H (state)
from calibration maxima, per-channel int8 weights, and the requantisation multipliers that
fold the input scale (pixels: 1/255; the LM's one-hot character: 1), the previous layer's
2^-H and, for the classifier, the 1/T of the mean readout.

Calibration runs the float model's own step (`SLN.step`, with `observe` reading each layer's
pre-activation), so there is no second copy of the step here.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import intspec as Q
from .model import SLN, images_to_sequence


# --- calibration ---------------------------------------------------------------------------------
def record_range(stats: dict[str, float], cell: torch.nn.Module, a: torch.Tensor) -> None:
    """Widen one layer's calibration maxima with the pre-activation a (B, 2N): max |a|, max c."""
    c = F.relu(cell.ln(a[:, :cell.n_neurons]))
    stats["a_max"] = max(stats["a_max"], a.abs().max().item())
    stats["c_max"] = max(stats["c_max"], c.max().item())


def _sequences(model: SLN, calib: np.ndarray | torch.Tensor, batch: int, streams: int):
    """Calibration inputs as (x (B, T, ...), carry_state): image batches, or the LM's text as
    `streams` contiguous streams stepped once through (the state carried, as in generation)."""
    if model.cfg.task == "lm":
        ids = torch.as_tensor(calib, dtype=torch.long)
        L = len(ids) // streams
        yield ids[: streams * L].view(streams, L)
        return
    for s in range(0, len(calib), batch):
        yield images_to_sequence(torch.from_numpy(np.asarray(calib[s:s + batch]).copy()), model.cfg.input_size)


@torch.no_grad()
def calibrate(model: SLN, calib: np.ndarray | torch.Tensor, batch: int = 500, streams: int = 8
              ) -> list[dict[str, float]]:
    """Run the float model on calibration data (training images uint8 (n, 28, 28), or LM token
    ids (L,)); per layer max |a| and max c."""
    model.eval()
    stats = [{"a_max": 0.0, "c_max": 0.0} for _ in model.cells]

    def observe(li: int, a: torch.Tensor) -> None:
        record_range(stats[li], model.cells[li], a)
    for x in _sequences(model, calib, batch, streams):
        state = model.init_state(x.shape[0])
        for t in range(x.shape[1]):
            _, state, _ = model.step(x[:, t], state, 1.0, observe=observe)
    return stats


@torch.no_grad()
def calibrate_tokens(model: SLN, ids: np.ndarray, lengths: np.ndarray) -> list[dict[str, float]]:
    """Calibration of a token classifier on token sequences ids (n, T) with lengths (n,): the float
    step on valid steps only (samples grouped by length, so padding never widens a range)."""
    model.eval()
    stats = [{"a_max": 0.0, "c_max": 0.0} for _ in model.cells]

    def observe(li: int, a: torch.Tensor) -> None:
        record_range(stats[li], model.cells[li], a)
    ids_t, lengths = torch.as_tensor(np.asarray(ids), dtype=torch.long), np.asarray(lengths)
    for L in np.unique(lengths):
        x = ids_t[torch.from_numpy(np.nonzero(lengths == L)[0])]
        state = model.init_state(x.shape[0])
        for t in range(int(L)):
            _, state, _ = model.step(x[:, t], state, 1.0, observe=observe)
    return stats


# --- quantisation --------------------------------------------------------------------------------
def _per_channel(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """float (out, in) -> int8 (out, in), scales (out,) with w ~= s[:, None] * q."""
    w = w.detach().double().cpu().numpy()
    s = np.abs(w).max(1) / 127.0
    s[s == 0] = 1.0
    q = np.clip(np.round(w / s[:, None]), -127, 127).astype(np.int8)
    return q, s


def _mults(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ms = [Q.quantize_multiplier(float(M)) for M in scales]
    return (np.array([m for m, _ in ms], np.int64), np.array([s for _, s in ms], np.int64))


def _i32(x: np.ndarray) -> np.ndarray:
    if np.abs(x).max(initial=0) >= 2 ** 31:
        raise ValueError("a quantised parameter does not fit int32")
    return x.astype(np.int64)


def _rel_err(w: torch.Tensor, q: np.ndarray, s: np.ndarray) -> float:
    w = w.detach().double().cpu().numpy()
    e = w - q.astype(np.float64) * s[:, None]
    return float(np.sqrt((e ** 2).mean() / max((w ** 2).mean(), 1e-30)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def quantize_layers(model: SLN, stats: list[dict[str, float]], in_scale: float
                    ) -> tuple[list[Q.QLayer], dict[str, Any], float]:
    """The liquid layers of an integer model from calibration ranges (per layer a_max, c_max) ->
    (layers, report {"layers": [...]}, real value of one unit of the top layer's output: the readout's
    input scale). in_scale: real value of one input unit of layer 0. Shared by every model kind."""
    layers, report = [], {"layers": []}
    N = model.cfg.n_neurons
    for cell, st in zip(model.cells, stats, strict=True):
        # F: |a| of the calibration set lands near 2^21, leaving 4x headroom below saturation
        F_ = int(np.clip(math.floor(math.log2(2.0 ** 21 / max(st["a_max"], 1e-6))), 3, 20))
        H = int(np.clip(math.floor(math.log2(Q.H_MAX / max(st["c_max"], 1e-6))), 0, 15))
        w_in_q, s_in = _per_channel(cell.w_in.weight)
        w_rec_q, s_rec = _per_channel(cell.w_rec.weight)
        in_mult, in_shift = _mults(s_in * in_scale * 2.0 ** F_)
        rec_mult, rec_shift = _mults(s_rec * 2.0 ** -H * 2.0 ** F_)
        boost = _np(cell.boost) if cell.boost_beta > 0 else np.ones(N)
        layers.append(Q.QLayer(
            a_frac=F_, h_frac=H, eps_q=max(1, int(round(cell.ln_eps * 2.0 ** (2 * F_)))),
            w_in=np.ascontiguousarray(w_in_q.T), in_mult=in_mult, in_shift=in_shift,
            w_rec=np.ascontiguousarray(w_rec_q.T), rec_mult=rec_mult, rec_shift=rec_shift,
            bias=_i32(np.round(_np(cell.w_in.bias) * 2.0 ** F_)),
            ln_gamma=_i32(np.round(_np(cell.ln.weight) * 2.0 ** Q.GAMMA_FRAC)),
            ln_beta=_i32(np.round(_np(cell.ln.bias) * 2.0 ** (Q.NORM_FRAC + Q.GAMMA_FRAC))),
            boost=np.round(boost / boost.max() * Q.BOOST_MAX).astype(np.int64),
            alpha_lut=Q.alpha_lut(cell.lambda_min)))
        report["layers"].append({
            "a_frac": F_, "h_frac": H, **st,
            "w_in_rel_rms_error": _rel_err(cell.w_in.weight, w_in_q, s_in),
            "w_rec_rel_rms_error": _rel_err(cell.w_rec.weight, w_rec_q, s_rec)})
        in_scale = 2.0 ** -H
    return layers, report, in_scale


def quantize(model: SLN, calib: np.ndarray | torch.Tensor, token_lengths: np.ndarray | None = None) -> Q.QModel:
    """Post-training quantisation of any SLN. calib: training images uint8 (n, 28, 28) for a
    classifier (n_steps = pixels / input_size), or training-text token ids (L,) for an LM (n_steps 1),
    or, with token_lengths (n,), token sequences (n, T) of a token classifier (n_steps = T, the most
    tokens; no 1/T in M_out: intspec_seq.token_readout divides by each sequence's length)."""
    cfg = model.cfg
    model.eval()
    lm = cfg.task == "lm"
    tokens = token_lengths is not None
    if getattr(cfg, "readout", "mean") != "mean":
        raise ValueError(f"readout {cfg.readout!r} (last-state readout) is not in the integer model / C runtime; "
                         "only readout 'mean' models can be exported")
    if not lm and not tokens and (cfg.input_pool != 1 or cfg.input_threshold != 0):
        # the integer model and the C runtime read raw pixel rows; a coded input would be read wrong
        raise ValueError(f"{cfg.name}: int8 export of a model with input coding (input_pool={cfg.input_pool}, "
                         f"input_threshold={cfg.input_threshold}) is not supported yet; use the float model and "
                         "engine, or train without input coding")
    N, k, D0 = cfg.n_neurons, cfg.k, cfg.input_size
    T = 1 if lm else int(np.asarray(calib[0]).size // (1 if tokens else D0))
    Q.check_limits(D0, cfg.n_classes, N, cfg.n_layers, k, T)
    stats = calibrate_tokens(model, np.asarray(calib), token_lengths) if tokens else calibrate(model, calib)
    in_scale = 1.0 if lm or tokens else 1.0 / 255.0   # real value of one input unit of layer 0
    layers, report, in_scale = quantize_layers(model, stats, in_scale)
    w_out_q, s_out = _per_channel(model.readout.weight)
    # the classifier's readout is the mean over T steps: 1/T folded into the multiplier
    out_mult, out_shift = _mults(s_out * in_scale / (1 if tokens else T) * 2.0 ** Q.LOGIT_FRAC)
    report["w_out_rel_rms_error"] = _rel_err(model.readout.weight, w_out_q, s_out)
    report["calibration_chars" if lm else "calibration_sequences" if tokens else "calibration_images"] = int(len(calib))
    return Q.QModel(input_size=D0, n_classes=cfg.n_classes, n_neurons=N, n_layers=cfg.n_layers, k=k,
                    n_steps=T, layers=layers, w_out=np.ascontiguousarray(w_out_q.T), out_mult=out_mult,
                    out_shift=out_shift, out_bias=_i32(np.round(_np(model.readout.bias) * 2.0 ** Q.LOGIT_FRAC)),
                    report=report)


# --- float vs integer ----------------------------------------------------------------------------
@torch.no_grad()
def float_forward(model: SLN, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """-> float logits (B, C), winner sets (B, L, T, k) (ascending index) of the float classifier."""
    model.eval()
    logits, wins = [], []
    for x in _sequences(model, images, batch, 1):
        state = model.init_state(x.shape[0])
        acc, w_b = 0, []
        for t in range(x.shape[1]):
            y, state, masks = model.step(x[:, t], state, 1.0)
            acc = acc + y
            # k True per row: the winner set, ascending (compare() compares sets)
            w_b.append(torch.stack([m.nonzero()[:, 1].view(x.shape[0], -1) for m in masks], 1))
        logits.append(model.readout(acc / x.shape[1]).numpy())
        wins.append(torch.stack(w_b, 2).numpy())
    return np.concatenate(logits), np.concatenate(wins)


def compare(model: SLN, qm: Q.QModel, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Float vs integer classifier on real images: accuracies and quantisation error statistics."""
    fl, fw = float_forward(model, images)
    il, iw = Q.reference_forward(qm, images)
    err = il / 2.0 ** Q.LOGIT_FRAC - fl
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

r"""int8 character LM for the C runtime / Cortex-M4: quantisation, integer reference, sampler.

The LM file is an ordinary `.sln` file (sln/export.py) with header `model_kind` = 1
(`char_lm`), `n_steps` = 1, `input_size` = `n_classes` = vocabulary size; the tensors are the
classifier's (liquid layers + readout), so the C loader, its bounds checks and the per-layer
integer step are shared. Only the number formats of two places differ from sln/quant.py:

    input        layer 0: the one-hot character, x_q = 1 at the character's id (real x = 1), so
                 W_in_q x_q is column `id` of W_in_q (a gather: one input event of value 1);
                 in_mult/in_shift quantise s_i * 2^F (input scale 1 instead of 1/255)
    readout      per step, from the <= k winners of the top layer only:
                 logit_c = rq(sum_{i in winners} w_out_q[i, c] * y_i, M_out_c) + b_c    (Q16)
                 M_out_c = s_c * 2^-H * 2^16 (no division by a step count)

Everything else (a, LayerNorm, gate LUT with dt = 1, state update, k-WTA with boost and
lowest-index ties) is `sln.quant`'s specification, state carried from step to step.

Deterministic integer sampler (`sample`, mirrored by runtime/sln_lm.c `sln_lm_sample`):

    rng          xorshift32: x ^= x << 13; x ^= x >> 17; x ^= x << 5 (mod 2^32); seed 0 -> 2463534242
    temp_q8 = 0  greedy: argmax, ties to the lowest id (the RNG is not advanced)
    otherwise    candidates = the top_k largest logits (top_k 0 or > V: all), ties to the lowest id
                 m = max logit; z_j = floor((l_j - m) * 256 / temp_q8)            (Q16, <= 0)
                 t_j = floor(z_j * LOG2E_Q16 / 2^16)     (base-2 exponent, Q16, <= 0)
                 u = -t_j; n = u >> 16; f = u & 0xFFFF; i = f >> 12; r = f & 0xFFF
                 p = E[i] - ((E[i] - E[i+1]) * r >> 12),  E[i] = round(2^16 * 2^(-i/16)), i = 0..16
                 w_j = p >> n (0 when n >= 31)               (weight ~ 2^16 exp(z_j / 2^16))
                 S = sum w_j (>= 2^16: the maximum has w = 2^16); R = (rng() * S) >> 32 (64-bit)
                 the token is the first candidate (in candidate order) whose running sum exceeds R
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
import torch

from . import quant
from .export import MODEL_KINDS, c_array_header, from_bytes, to_bytes, to_c_array
from .lm import SLNLM, Vocab
from .quant import (
    A_SAT,
    ALPHA_ONE,
    BOOST_MAX,
    GAMMA_FRAC,
    H_MAX,
    INV_BITS,
    LOGIT_FRAC,
    NORM_FRAC,
    QLayer,
    QModel,
)

LOG2E_Q16 = 94548                                   # round(log2(e) * 2^16)
EXP2_LUT = tuple(int(round(65536 * 2.0 ** (-i / 16))) for i in range(17))   # 2^(-i/16) in Q16
SEED_ZERO = 2463534242                              # xorshift32 state used for seed 0
KIND = MODEL_KINDS["char_lm"]


# --- quantisation ------------------------------------------------------------------------------
@torch.no_grad()
def calibrate_lm(model: SLNLM, ids: torch.Tensor, streams: int = 8) -> list[dict[str, float]]:
    """Run the float LM over (training) text ids; per layer max |a| and max c."""
    model.eval()
    L = len(ids) // streams
    x = ids[: streams * L].view(streams, L)
    stats = [{"a_max": 0.0, "c_max": 0.0} for _ in model.cells]
    state = model.init_state(streams)
    for t in range(L):
        inp = None
        new = []
        for li, (cell, (h, y)) in enumerate(zip(model.cells, state, strict=True)):
            if li == 0:
                a = cell.w_in.weight.t()[x[:, t]] + cell.w_in.bias + cell.w_rec(y)
            else:
                a = cell.w_in(inp) + cell.w_rec(y)
            quant.record_range(stats[li], cell, a)
            h = cell.update(a, h, 1.0)
            inp = h * cell.select(h)
            new.append((h, inp))
        state = new
    return stats


def quantize_lm(model: SLNLM, calib_ids: torch.Tensor) -> QModel:
    """Post-training int8 quantisation of an SLNLM (calibrated on training text ids)."""
    cfg = model.cfg
    model.eval()
    N, k, V = cfg.n_neurons, cfg.k, cfg.input_size
    quant._check_limits(V, cfg.n_classes, N, cfg.n_layers, k, 1)
    stats = calibrate_lm(model, calib_ids)
    layers, in_scale, report = [], 1.0, {"layers": []}
    for li, cell in enumerate(model.cells):
        F_ = int(np.clip(math.floor(math.log2(2.0 ** 21 / max(stats[li]["a_max"], 1e-6))), 3, 20))
        H = int(np.clip(math.floor(math.log2(H_MAX / max(stats[li]["c_max"], 1e-6))), 0, 15))
        w_in_q, s_in = quant._per_channel(cell.w_in.weight)
        w_rec_q, s_rec = quant._per_channel(cell.w_rec.weight)
        in_mult, in_shift = quant._mults(s_in * in_scale * 2.0 ** F_)
        rec_mult, rec_shift = quant._mults(s_rec * 2.0 ** -H * 2.0 ** F_)
        bias = np.round(cell.w_in.bias.detach().double().numpy() * 2.0 ** F_)
        gamma = np.round(cell.ln.weight.detach().double().numpy() * 2.0 ** GAMMA_FRAC)
        beta = np.round(cell.ln.bias.detach().double().numpy() * 2.0 ** (NORM_FRAC + GAMMA_FRAC))
        boost = cell.boost.detach().double().numpy() if cell.boost_beta > 0 else np.ones(N)
        boost_q = np.round(boost / boost.max() * BOOST_MAX)
        layers.append(QLayer(
            a_frac=F_, h_frac=H, eps_q=max(1, int(round(cell.ln_eps * 2.0 ** (2 * F_)))),
            w_in=np.ascontiguousarray(w_in_q.T), in_mult=in_mult, in_shift=in_shift,
            w_rec=np.ascontiguousarray(w_rec_q.T), rec_mult=rec_mult, rec_shift=rec_shift,
            bias=quant._i32(bias), ln_gamma=quant._i32(gamma), ln_beta=quant._i32(beta),
            boost=boost_q.astype(np.int64), alpha_lut=quant.alpha_lut(cell.lambda_min)))
        report["layers"].append({"a_frac": F_, "h_frac": H, **stats[li],
                                 "w_in_rel_rms_error": quant._rel_err(cell.w_in.weight, w_in_q, s_in),
                                 "w_rec_rel_rms_error": quant._rel_err(cell.w_rec.weight, w_rec_q, s_rec)})
        in_scale = 2.0 ** -H
    w_out_q, s_out = quant._per_channel(model.readout.weight)
    out_mult, out_shift = quant._mults(s_out * in_scale * 2.0 ** LOGIT_FRAC)
    out_bias = quant._i32(np.round(model.readout.bias.detach().double().numpy() * 2.0 ** LOGIT_FRAC))
    report["w_out_rel_rms_error"] = quant._rel_err(model.readout.weight, w_out_q, s_out)
    report["calibration_chars"] = int(len(calib_ids))
    return QModel(input_size=V, n_classes=cfg.n_classes, n_neurons=N, n_layers=cfg.n_layers, k=k, n_steps=1,
                  layers=layers, w_out=np.ascontiguousarray(w_out_q.T), out_mult=out_mult, out_shift=out_shift,
                  out_bias=out_bias, report=report)


# --- the integer reference of one generation step -----------------------------------------------
@dataclass
class LMState:
    h: list[np.ndarray]           # per layer int64 (N,), Q H
    win: list[np.ndarray]         # per layer winner ids (k,) of the last step, selection order
    y: list[np.ndarray]           # per layer int64 (N,): h on the winners, 0 elsewhere


def init_state(qm: QModel) -> LMState:
    N = qm.n_neurons
    return LMState([np.zeros(N, np.int64) for _ in qm.layers], [np.zeros(0, np.int64) for _ in qm.layers],
                   [np.zeros(N, np.int64) for _ in qm.layers])


def reference_step(qm: QModel, token: int, st: LMState) -> np.ndarray:
    """The integer LM: feed one character id, update st in place -> logits int64 (V,), Q16."""
    N, k = qm.n_neurons, qm.k
    inp = None
    for li, L in enumerate(qm.layers):
        if li == 0:   # one-hot input: the input accumulator is column `token` of W_in (x_q = 1)
            acc_in = L.w_in[token].astype(np.int64)
        else:
            acc_in = quant._matmul_exact(inp[None], L.w_in)[0]
        acc_rec = quant._matmul_exact(st.y[li][None], L.w_rec)[0]
        a = quant.requant(acc_in, L.in_mult, L.in_shift) + quant.requant(acc_rec, L.rec_mult, L.rec_shift) + L.bias
        a = np.clip(a, -A_SAT, A_SAT)
        u, v = a[:N], a[N:]
        mean = quant._round_div(u.sum(), N)
        d = u - mean
        var = int((d * d).sum()) // N
        std = max(math.isqrt(var + L.eps_q), 1)
        inv = (1 << INV_BITS) // std
        n = quant.rsr(d * inv, INV_BITS - NORM_FRAC)
        c = np.clip(quant.rsr(L.ln_gamma * n + L.ln_beta, NORM_FRAC + GAMMA_FRAC - L.h_frac), 0, H_MAX)
        alpha = quant._lut_gate(v, L.alpha_lut, L.a_frac)
        h = (alpha * st.h[li] + (ALPHA_ONE - alpha) * c + (ALPHA_ONE >> 1)) >> 15
        win = quant.topk_stable((L.boost * h)[None], k)[0]
        y = np.zeros(N, np.int64)
        y[win] = h[win]
        st.h[li], st.win[li], st.y[li] = h, win, y
        inp = y
    top = st.win[-1]
    dot = st.y[-1][top] @ qm.w_out[top].astype(np.int64)          # only the k winners' rows
    return np.clip(quant.requant(dot, qm.out_mult, qm.out_shift) + qm.out_bias, -2 ** 31, 2 ** 31 - 1)


# --- the integer sampler -------------------------------------------------------------------------
def xorshift32(x: int) -> int:
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def exp_weight(z: int) -> int:
    """z (Q16, <= 0) -> ~2^16 exp(z / 2^16), as specified in the module docstring."""
    t = (z * LOG2E_Q16) >> 16          # floor, z <= 0
    u = -t
    n, f = u >> 16, u & 0xFFFF
    if n >= 31:
        return 0
    i, r = f >> 12, f & 0xFFF
    p = EXP2_LUT[i] - (((EXP2_LUT[i] - EXP2_LUT[i + 1]) * r) >> 12)
    return p >> n


class Sampler:
    def __init__(self, seed: int) -> None:
        self.state = (seed & 0xFFFFFFFF) or SEED_ZERO

    def next(self) -> int:
        self.state = xorshift32(self.state)
        return self.state

    def sample(self, logits: np.ndarray, temp_q8: int, top_k: int) -> int:
        lg = [int(v) for v in logits]
        V = len(lg)
        order = sorted(range(V), key=lambda j: (-lg[j], j))        # ties to the lowest id
        if temp_q8 <= 0:
            return order[0]
        cand = order[: top_k if 0 < top_k < V else V]
        m = lg[cand[0]]
        w = [exp_weight(((lg[j] - m) * 256) // temp_q8) for j in cand]
        r = (self.next() * sum(w)) >> 32
        run = 0
        for j, wj in zip(cand, w, strict=True):
            run += wj
            if run > r:
                return j
        raise AssertionError("unreachable: the running sum ends at S > R")


def generate_ids(qm: QModel, prompt_ids: list[int], n_tokens: int, seed: int, temp_q8: int, top_k: int) -> list[int]:
    """Feed the prompt, then sample n_tokens ids (each fed back) -> the generated ids."""
    if not prompt_ids:
        raise ValueError("the prompt must hold at least one character")
    st, smp = init_state(qm), Sampler(seed)
    logits = None
    for t in prompt_ids:
        logits = reference_step(qm, int(t), st)
    out = []
    for i in range(n_tokens):
        assert logits is not None
        nxt = smp.sample(logits, temp_q8, top_k)
        out.append(nxt)
        if i + 1 < n_tokens:
            logits = reference_step(qm, nxt, st)
    return out


# --- export ------------------------------------------------------------------------------------
def lm_to_bytes(qm: QModel) -> bytes:
    return to_bytes(qm, KIND)


def lm_from_bytes(data: bytes) -> QModel:
    if int.from_bytes(data[48:52], "little") != KIND:
        raise ValueError("not a character-LM .sln file (model_kind != 1)")
    return from_bytes(data)


def lm_state_bytes(qm: QModel) -> int:
    """Bytes of the caller-owned LM state (mirror of sln_lm_state_size in runtime/sln_lm.c)."""
    N, k = qm.n_neurons, qm.k

    def a4(x: int) -> int:
        return (x + 3) & ~3
    return qm.n_layers * (a4(2 * N) + 2 * a4(2 * k) + 4) + 16 * N


def vocab_c_source(vocab: Vocab) -> str:
    esc = "".join(f"\\x{ord(c):02x}" for c in vocab.chars)
    return (f"/* generated by sln.quant_lm: the LM's vocabulary, id -> character */\n"
            f'const char sln_lm_vocab[{len(vocab.chars) + 1}] = "{esc}";\n')


def export_lm(model: SLNLM, vocab: Vocab, calib_ids: torch.Tensor, out) -> dict:
    """Write model.sln, sln_model_data.[ch] (+ the vocabulary) into the folder `out`."""
    from pathlib import Path
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    qm = quantize_lm(model, calib_ids)
    data = lm_to_bytes(qm)
    (out / "model.sln").write_bytes(data)
    (out / "sln_model_data.c").write_text(to_c_array(data) + "\n" + vocab_c_source(vocab))
    decl = f"extern const char sln_lm_vocab[{len(vocab.chars) + 1}];\n\n#endif"
    hdr = c_array_header(qm, lm_state_bytes(qm)).replace("#endif", decl)
    (out / "sln_model_data.h").write_text(hdr)
    (out / "vocab.txt").write_text(vocab.chars)
    return {"model_bytes": len(data), "state_bytes": lm_state_bytes(qm), "quantiser": qm.report}


def main(argv: list[str] | None = None) -> int:
    """python -m sln.quant_lm --checkpoint CK --out DIR [--prompt ROMEO: --tokens 200 --seed 1 ...]:
    export an SLN LM checkpoint for the C runtime and print the integer reference's generation
    (the ids to pass to sln_lm_cli / firmware_lm, and the text)."""
    from .lm import load_lm, prepare
    p = argparse.ArgumentParser(prog="python -m sln.quant_lm")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--calib-chars", type=int, default=20000, help="training characters for calibration")
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--temp-q8", type=int, default=205, help="temperature * 256 (0 = greedy)")
    p.add_argument("--top-k", type=int, default=10)
    a = p.parse_args(argv)
    model, vocab, _ = load_lm(a.checkpoint)
    if not isinstance(model, SLNLM):
        print("only SLN LM checkpoints can be exported", file=sys.stderr)
        return 1
    _, tr, _ = prepare()
    r = export_lm(model, vocab, tr[: a.calib_chars], a.out)
    qm = lm_from_bytes(open(f"{a.out}/model.sln", "rb").read())
    pid = vocab.encode(a.prompt).tolist()
    ids = generate_ids(qm, pid, a.tokens, a.seed, a.temp_q8, a.top_k)
    print(json.dumps(r, indent=1))
    print("args", a.tokens, a.seed, a.temp_q8, a.top_k, *pid)
    print("tokens", *ids)
    print("text", a.prompt + vocab.decode(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())

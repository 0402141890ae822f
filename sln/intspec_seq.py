r"""The integer model over token sequences: the character LM (`lm_step`, `generate_ids`) and the token
classifier (`token_forward`, model_kind 2: the domain detector). Both feed one input event of value 1
per token through the one integer step, `sln.intspec.q_step`; the C runtime mirrors them
(runtime/sln.c `sln_lm_step`, `sln_sample`, `sln_classify_tokens`) bit for bit.

Deterministic integer sampler of the character LM (`Sampler`, mirrored by the C runtime's
`sln_sample`):

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

import numpy as np

from .intspec import IntCounts, QModel, QState, init_state, matmul_exact, q_step, readout, requant, round_div

LOG2E_Q16 = 94548                                   # round(log2(e) * 2^16)
EXP2_LUT = tuple(int(round(65536 * 2.0 ** (-i / 16))) for i in range(17))   # 2^(-i/16) in Q16
SEED_ZERO = 2463534242                              # xorshift32 state used for seed 0


def lm_step(qm: QModel, token: int, state: QState) -> np.ndarray:
    """The integer character LM: feed one character id (batch 1), update state -> logits (V,), Q16."""
    if not 0 <= token < qm.input_size:
        raise ValueError(f"token {token} is outside the vocabulary (0..{qm.input_size - 1})")
    x = np.zeros((1, qm.input_size), np.int64)
    x[0, token] = 1
    return readout(qm, q_step(qm, state, x))[0]


def token_readout(qm: QModel, acc: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Token classifier readout: acc (B, N) = sum of the top layer's y over each sample's L valid
    steps -> logit_c = sat(round_div(rq(sum_i w_out_q[c,i] acc_i, M_out_c), L) + b_c) (Q16). M_out holds
    no 1/T (the file's n_steps is only the most tokens a sequence may hold): the mean is this division."""
    dot = matmul_exact(acc, qm.w_out)
    s = round_div(requant(dot, qm.out_mult, qm.out_shift), lengths.astype(np.int64)[:, None])
    return np.clip(s + qm.out_bias, -2 ** 31, 2 ** 31 - 1)


def token_forward(qm: QModel, ids: np.ndarray, lengths: np.ndarray, counter: IntCounts | None = None
                  ) -> np.ndarray:
    """The integer token classifier (model_kind 2: the domain detector): ids (B, T) int token ids
    (< input_size; one input event of value 1 per step, as the LM's), lengths (B,) valid steps
    (1..n_steps; steps past a sample's length are not run) -> logits int64 (B, C) in Q16.
    With `counter`, counts only the valid steps (what runtime/sln.c sln_classify_tokens executes)."""
    ids = np.asarray(ids, np.int64).reshape(len(ids), -1)
    lengths = np.asarray(lengths, np.int64)
    B = len(ids)
    if lengths.shape != (B,) or (lengths < 1).any() or (lengths > min(qm.n_steps, ids.shape[1])).any():
        raise ValueError(f"every length must be in 1..{qm.n_steps} (and <= the ids' width)")
    valid = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    if ((ids < 0) | (ids >= qm.input_size))[valid].any():
        raise ValueError(f"a token id is outside the vocabulary (0..{qm.input_size - 1})")
    st = init_state(qm, B)
    racc = np.zeros((B, qm.n_neurons), np.int64)
    for t in range(int(lengths.max(initial=0))):
        rows = np.nonzero(lengths > t)[0]
        sub = QState([h[rows] for h in st.h], [y[rows] for y in st.y], [w[rows] for w in st.win])
        x = np.zeros((len(rows), qm.input_size), np.int64)
        x[np.arange(len(rows)), ids[rows, t]] = 1
        y = q_step(qm, sub, x, counter)
        for li in range(qm.n_layers):
            st.h[li][rows], st.y[li][rows], st.win[li][rows] = sub.h[li], sub.y[li], sub.win[li]
        racc[rows] += y
        if counter is not None:   # readout accumulator, as reference_forward
            ro, mt = counter.terms["readout"], float((y != 0).sum())
            ro["adds32"] += mt
            ro["act_bytes"] += mt * 4 + mt * 4 * 2
            ro["events"] += mt
    if counter is not None:       # the readout's counts, + one division (1 mul + 1 add) per logit
        readout(qm, racc, counter)
        counter.terms["readout"]["muls32"] += B * qm.n_classes
        counter.terms["readout"]["adds32"] += B * qm.n_classes
    return token_readout(qm, racc, lengths)


# --- the integer sampler (the module docstring specifies it) ---------------------------------------
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
    st, smp = init_state(qm, 1), Sampler(seed)
    logits = None
    for t in prompt_ids:
        logits = lm_step(qm, int(t), st)
    out = []
    for i in range(n_tokens):
        assert logits is not None
        nxt = smp.sample(logits, temp_q8, top_k)
        out.append(nxt)
        if i + 1 < n_tokens:
            logits = lm_step(qm, nxt, st)
    return out

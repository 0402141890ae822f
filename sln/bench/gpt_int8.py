r"""What an int8 GPT with a KV cache executes per generated token (issue 9 §3, the streams benchmark).

The counting mirrors the image benchmark's int8 ViT (`sln.bench.int8.ViTInt8Counter`, an
integer-only I-BERT-style int8 transformer) so that both transformer baselines are charged the
same way: `counted_step` runs ONE decode step of the project's GPTLM (sln/gpt.py) at batch 1
through the counter's primitives (linear, matmul, layer_norm, softmax, gelu, add, scale), with
the KV cache holding the c - 1 earlier positions, so the token attends to c positions:

  * every Linear (QKV, projection, MLP in/out, the tied head): its MACs (dense; `effective_macs`
    the NeuroBench count of nonzero inputs, used for the energy as for the ViT), int8 weights read
    once per token (1 byte each), the output requantised (1 int32 multiply + 2 int32 adds per
    output element) and its per-output-channel multiplier and shift read (4 + 4 bytes a channel);
  * the two attention matmuls (q K^T, p V): their MACs (c d each per layer), one
    multiplier/shift pair each, the outputs requantised; the cached K and V they read (int8,
    c d bytes each per layer) go to the separate `kv_read`, and the new k and v (2 d bytes per
    layer) written into the cache to `kv_written`: the KV cache is a data set of its own
    (2 c d bytes per layer at context c) and is priced at the memory level of its own size;
  * LayerNorm, softmax, GELU and the residual adds work on int32 intermediates (4 bytes in and
    out), their adds / multiplies / compares as int32 ops, a nonlinear op (1/sqrt, exp, erf,
    sin/cos) as the profile's polynomial; LayerNorm gains (the GPT has no LayerNorm shift) are
    4-byte vectors;
  * the token's embedding row (d int8 bytes of the tied embedding matrix) and its fixed
    sinusoidal position (d sin/cos evaluations, one scale and one add).
  * the final softmax / sampling over the vocabulary is the same for both models and is left out.

`gpt_int8_formula` is the same count in closed form (tested equal to `counted_step`), linear in
the context c through the attention, the softmax and the KV cache. Accuracy is not simulated at
activation level: `int8_weight_copy` quantises the weights (per output channel, symmetric) and
the benchmark reports that model's bits per character, labelled as weight-only int8.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn as nn

from ..gpt import GPTLM, POS_SCALE, sinusoidal
from .int8 import ViTInt8Counter


class GPTInt8Counter(ViTInt8Counter):
    """ViTInt8Counter plus the KV cache's bytes, kept apart from the other activations.
    peak_nokv: the largest in+out of one op without the cached K / V operand (the working set)."""

    def __init__(self) -> None:
        super().__init__()
        self.kv_read = 0.0
        self.kv_written = 0.0
        self.peak_nokv = 0.0
        self._kv_operand = 0.0

    def _io8(self, nin: float, nout: float) -> None:
        super()._io8(nin, nout)
        self.peak_nokv = max(self.peak_nokv, float(nin + nout - self._kv_operand))

    def layer_norm(self, x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        y = super().layer_norm(x, ln)
        if ln.bias is None:                       # OpCounter charges gain + shift; the GPT has no shift
            self.param_bytes -= 4 * x.shape[-1]
        return y

    def kv_matmul(self, a: torch.Tensor, kv: torch.Tensor, term: str) -> torch.Tensor:
        """a @ kv where kv is read from the KV cache: its bytes go to kv_read, not act8_read."""
        self._kv_operand = float(kv.numel())
        y = self.matmul(a, kv, term)
        self._kv_operand = 0.0
        self.act8_read -= kv.numel()
        self.kv_read += kv.numel()
        return y


def _head(model: GPTLM) -> nn.Linear:
    lin = nn.Linear(model.cfg.d_model, model.cfg.vocab_size, bias=False)
    lin.weight = model.tok.weight                 # tied output embedding
    return lin


@torch.no_grad()
def counted_step(model: GPTLM, token: int, caches: list[tuple[torch.Tensor, torch.Tensor]] | None, pos: int,
                 c: GPTInt8Counter) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """One batch-1 decode step of GPTLM (the same arithmetic as GPTLM.forward on one position) through
    the counter: token id, caches (per layer (k, v) (1, H, pos, d/H)) of positions 0..pos-1
    -> logits (V,), new caches."""
    d = model.cfg.d_model
    x = model.tok.weight[token].view(1, 1, d)
    c.weight_bytes += 4 * d                       # the embedding row (OpCounter's fp32 unit: /4 at int8)
    pe = sinusoidal(1, d, pos).view(1, 1, d)
    c.nonlin += d                                 # d sin / cos evaluations
    c.muls += d                                   # position x frequency
    x = c.add(x, c.scale(pe, POS_SCALE))
    x, new = counted_blocks(model.blocks, x, caches, c)
    logits = c.linear(c.layer_norm(x, model.ln_f), _head(model), "head")
    return logits.view(-1), new


@torch.no_grad()
def counted_blocks(blocks: nn.ModuleList, x: torch.Tensor, caches: list[tuple[torch.Tensor, torch.Tensor]] | None,
                   c: GPTInt8Counter) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The decoder blocks (sln.gpt.Block) of one batch-1 position x (1, 1, d) through the counter, the
    KV caches of the earlier positions -> x, new caches. Shared by the LM GPT and the time-series
    transformer (sln.bench.ts_gpt)."""
    d = x.shape[-1]
    new = []
    for i, blk in enumerate(blocks):
        H = blk.heads
        dh = d // H
        qkv = c.linear(c.layer_norm(x, blk.ln1), blk.qkv, "attention.qkv")      # (1, 1, 3d)
        c.act8_written -= 2 * d                   # the new k and v are written into the KV cache
        c.kv_written += 2 * d
        q, k, v = (z.view(1, 1, H, dh).transpose(1, 2) for z in qkv.split(d, dim=2))   # (1, H, 1, dh)
        if caches is not None:
            k, v = torch.cat([caches[i][0], k], 2), torch.cat([caches[i][1], v], 2)
        q = c.scale(q, 1.0 / math.sqrt(dh))
        att = c.softmax(c.kv_matmul(q, k.transpose(-1, -2), "attention.scores"))      # (1, H, 1, c)
        o = c.kv_matmul(att, v, "attention.values").transpose(1, 2).reshape(1, 1, d)
        x = c.add(x, c.linear(o, blk.proj, "attention.proj"))
        h = c.gelu(c.linear(c.layer_norm(x, blk.ln2), blk.fc, "mlp"))
        x = c.add(x, c.linear(h, blk.out, "mlp"))
        new.append((k, v))
    return x, new


def gpt_int8_formula(d: int, layers: int, heads: int, vocab: int, c: int) -> dict[str, float]:
    """The counts of `counted_step` in closed form, per token at context c (the token attends to c
    positions): dense MACs, int32 adds / muls / compares and nonlinear ops before pricing, int8
    weight bytes, vector bytes (LayerNorm gains + per-channel multipliers/shifts), requantised
    outputs, activation bytes (int8 operands, int32 intermediates) and KV-cache bytes (read + written)."""
    L, H, V = layers, heads, vocab
    per = {"macs": 12 * d * d + 2 * c * d, "adds": 16 * d + 2 + 2 * H * c, "muls": 19 * d + 4 + H * c,
           "cmps": H * c, "nonlin": 2 + H * (c + 1) + 4 * d, "weight_bytes": 12 * d * d,
           "param_bytes": 2 * 4 * d + (72 * d + 16), "requant": 10 * d + H * c, "act_bytes": 90 * d + 10 * H * c,
           "kv_bytes": 2 * c * d + 2 * d}
    out = {k: float(v) * L for k, v in per.items()}
    # embedding row, position (sin/cos, scale, add), final LayerNorm, tied head
    out["macs"] += V * d
    out["weight_bytes"] += d + V * d
    out["adds"] += d + 5 * d + 1
    out["muls"] += d + d + 3 * d + 2
    out["nonlin"] += d + 1
    out["param_bytes"] += 4 * d + 8 * V
    out["requant"] += V
    out["act_bytes"] += 2 * d + 12 * d + 8 * d + d + V
    return out


def counter_totals(cnt: GPTInt8Counter) -> dict[str, float]:
    """The counter's totals in `gpt_int8_formula`'s keys (the int8 units)."""
    return {"macs": cnt.macs, "adds": cnt.adds, "muls": cnt.muls, "cmps": cnt.cmps, "nonlin": cnt.nonlin,
            "weight_bytes": cnt.weight_bytes / 4.0, "param_bytes": cnt.param_bytes + cnt.scale_bytes,
            "requant": cnt.requant_outputs, "act_bytes": cnt.act8_read + cnt.act8_written,
            "kv_bytes": cnt.kv_read + cnt.kv_written}


def gpt_int8_ops(model: GPTLM, cnt: GPTInt8Counter, c: int, nonlin_muls: int, nonlin_adds: int
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """-> (ops for `sln.bench.lm_streams.price_token`, footprints) of one counted token at context c.
    ops: estimate_pj's int8 keys + kv_bytes; MACs = effective MACs (as the ViT int8 rows);
    requantisation 1 mul + 2 adds, each nonlinear op nonlin_muls muls + nonlin_adds adds, at int32.
    Footprints: int8 matrices (all 2-D parameters: the tied embedding and every Linear), vectors
    (LayerNorm gains at 4 bytes + the per-channel multipliers/shifts), the activation working set
    (largest op without the KV operand) and the KV cache (2 c d int8 bytes per layer)."""
    t = counter_totals(cnt)
    rq = t["requant"]
    ops = {"macs": cnt.effective_macs, "adds32": t["adds"] + nonlin_adds * t["nonlin"] + 2 * rq,
           "muls32": t["muls"] + nonlin_muls * t["nonlin"] + rq, "cmps32": t["cmps"],
           "weight_bytes": t["weight_bytes"], "param_bytes": t["param_bytes"], "act_bytes": t["act_bytes"],
           "kv_bytes": t["kv_bytes"]}
    n_mat = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    n_vec = sum(p.numel() for p in model.parameters() if p.dim() == 1)
    fp = {"matrix_bytes": float(n_mat), "param_bytes": 4.0 * n_vec + cnt.scale_bytes, "act_bytes": cnt.peak_nokv,
          "kv_bytes": float(model.cfg.n_layers * 2 * c * model.cfg.d_model)}
    return ops, fp


@torch.no_grad()
def count_token(model: GPTLM, ids: torch.Tensor, c: int) -> tuple[GPTInt8Counter, torch.Tensor]:
    """Prime the cache with the first c - 1 ids (uncounted forward), then count the step of id c - 1
    at position c - 1 -> (counter, logits (V,))."""
    model.eval()
    caches = None
    if c > 1:
        _, caches = model(ids[: c - 1].view(1, -1))
    cnt = GPTInt8Counter()
    logits, _ = counted_step(model, int(ids[c - 1]), caches, c - 1, cnt)
    return cnt, logits


@torch.no_grad()
def int8_weight_copy(model: GPTLM) -> GPTLM:
    """A copy of the GPT with every 2-D weight quantised to int8 per output channel (symmetric,
    max |w| / 127) and dequantised: weight-only int8, for its bits per character."""
    m = copy.deepcopy(model)
    for p in m.parameters():
        if p.dim() == 2:
            s = p.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
            p.copy_(torch.clamp(torch.round(p / s), -127, 127) * s)
    return m


def describe() -> dict[str, Any]:
    """The 'how' text of the GPT int8 rows."""
    return {"counts": "sln.bench.gpt_int8.counted_step: one batch-1 decode step of GPTLM through an int8 counter "
                      "(ViTInt8Counter's conventions: int8 weights once per token, requantisation of every matmul "
                      "output, per-channel multiplier/shift reads, int32 LayerNorm/softmax/GELU/residual "
                      "intermediates at 4 bytes); the KV cache read (2 c d bytes per layer) and written (2 d) "
                      "counted apart and priced at the level of its own size",
            "bpc": "float checkpoint; int8: weights quantised per output channel (weight-only int8, activations "
                   "in float: no activation-level int8 simulation of the GPT)"}

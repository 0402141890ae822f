r"""The transformer of the time-series streams benchmark (sln.bench.ts_streams): a causal GPT classifier
with a KV cache that reads a series one event (time step) at a time, counted as int8 like the LM's GPT.

`TSGPT` is the LM baseline's decoder (sln/gpt.py: the same pre-LayerNorm `Block`s, causal attention,
sinusoidal positions) with the token lookup replaced by a linear embedding of the D input values
(with bias) and the tied LM head by a class head on the running mean of the final LayerNorm's output
over the events seen so far: after event t the model's decision is head(mean_{s<=t} ln_f(h_s)), so
the whole-series forward (`forward`, used to train and to measure accuracy) and the event-by-event
stream with a KV cache (`step`) compute the same thing (tested).

Counting (`counted_event`): one batch-1 event through `sln.bench.gpt_int8.GPTInt8Counter`, the LM
GPT's counter (ViTInt8Counter's conventions: int8 weights once per event, every matmul output
requantised with its per-channel multiplier/shift, int32 LayerNorm/softmax/GELU/residual
intermediates at 4 bytes, the KV cache read and written apart), with the LM step's own block loop
(`gpt_int8.counted_blocks`): the embedding Linear (D d MACs + bias), the sinusoidal position (d
sin/cos, one scale, one add), the blocks at context c (the event attends to c positions), ln_f,
the running sum of ln_f's output (d int32 adds, the d-value accumulator read and written at 4
bytes) and the class head applied once per series, charged to each event as 1/T of it (`head_share`).
`ts_gpt_formula` is the same count in closed form (tested equal).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..gpt import GPTLM, Block, GPTConfig, sinusoidal
from .gpt_int8 import GPTInt8Counter, counted_blocks, gpt_int8_formula


@dataclass
class TSGPTConfig:
    d_in: int
    n_classes: int
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 4
    pos_scale: float = 1.0      # the inputs are z-normalised (rms ~1): positions at full scale
    lr: float = 3e-3
    seed: int = 0
    name: str = "ts-gpt"


class TSGPT(nn.Module):
    kind = "ts-gpt"

    def __init__(self, cfg: TSGPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.d_in, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def _embed(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        return self.embed(x) + self.cfg.pos_scale * sinusoidal(x.shape[1], self.cfg.d_model, offset, x.device)

    def forward(self, x: torch.Tensor, times: torch.Tensor | None = None, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x (B, T, D), lengths (B,) -> logits (B, C) after each series' last valid event (times unused:
        the stream is regular; positions are the event indices)."""
        B, T, _ = x.shape
        h = self._embed(x, 0)
        for blk in self.blocks:
            h, _ = blk(h)
        z = self.ln_f(h)
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        valid = torch.arange(T, device=x.device)[None, :] < lengths[:, None]
        pooled = (z * valid[..., None]).sum(1) / lengths[:, None].float()
        return self.head(pooled)

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, caches: list | None, pos: int) -> tuple[torch.Tensor, list]:
        """One event x_t (B, D) at position pos with the KV caches of positions < pos -> ln_f output (B, d),
        new caches (the running mean and the head are the caller's: `stream_logits`)."""
        h = self._embed(x_t[:, None], pos)
        new = []
        for i, blk in enumerate(self.blocks):
            h, c = blk(h, None if caches is None else caches[i])
            new.append(c)
        return self.ln_f(h)[:, 0], new

    @torch.no_grad()
    def stream_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Event by event with the KV cache: x (B, T, D) -> logits (B, C) after the T-th event."""
        caches, acc = None, 0.0
        for t in range(x.shape[1]):
            z, caches = self.step(x[:, t], caches, t)
            acc = acc + z
        return self.head(acc / x.shape[1])

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def gpt_name(d: int, L: int, H: int) -> str:
    """A transformer's name (its run folder without the 'ts-'): ts-gpt-d8-L1 (4 heads), ts-gpt-d8-L1-H1."""
    return f"ts-gpt-d{d}-L{L}" + ("" if H == 4 else f"-H{H}")


def build_tsgpt(cfg: dict[str, Any]) -> TSGPT:
    """Checkpoint builder (sln.checkpoint.load_checkpoint builders={"ts-gpt": build_tsgpt})."""
    return TSGPT(TSGPTConfig(**cfg))


@torch.no_grad()
def counted_event(model: TSGPT, x_t: torch.Tensor, caches: list | None, pos: int, series_len: int,
                  c: GPTInt8Counter) -> tuple[torch.Tensor, list]:
    """One batch-1 event x_t (D,) at position pos (caches of positions < pos) through the int8 counter,
    plus 1/series_len of the class head (applied once per series) -> ln_f output (d,), new caches."""
    cfg = model.cfg
    d = cfg.d_model
    x = c.linear(x_t.view(1, 1, -1), model.embed, "embed")
    pe = sinusoidal(1, d, pos).view(1, 1, d)
    c.nonlin += d                                 # d sin / cos evaluations
    c.muls += d                                   # position x frequency
    x = c.add(x, c.scale(pe, cfg.pos_scale))
    x, new = counted_blocks(model.blocks, x, caches, c)
    z = c.layer_norm(x, model.ln_f)
    c.adds += d                                   # running sum of ln_f's output (int32 accumulator)
    c.act8_read += 2 * 4 * d                      # accumulator and z read (4-byte), the sum written
    c.act8_written += 4 * d
    head_share(model, c, 1.0 / series_len)
    return z.view(-1), new


def head_share(model: TSGPT, c: GPTInt8Counter, share: float) -> None:
    """Add `share` of the once-per-series decision: the mean (d multiplies by 1/T), the class head
    (C d MACs, C int8 rows, bias, per-channel multiplier/shift, requantised outputs)."""
    d, C = model.cfg.d_model, model.cfg.n_classes
    sub = GPTInt8Counter()
    pooled = sub.scale(torch.zeros(1, 1, d), 1.0)
    sub.linear(pooled, model.head, "head")
    for k in ("macs", "effective_macs", "adds", "muls", "cmps", "nonlin", "weight_bytes", "param_bytes",
              "scale_bytes", "requant_outputs", "act8_read", "act8_written"):
        setattr(c, k, getattr(c, k) + share * getattr(sub, k))
    c.effective_macs += share * (C * d - sub.effective_macs)     # the pooled mean is not sparse: dense MACs


def ts_gpt_formula(d: int, layers: int, heads: int, d_in: int, n_classes: int, c: int, series_len: int
                   ) -> dict[str, float]:
    """The counts of `counted_event` in closed form at context c (gpt_int8_formula's block terms, which
    `counted_blocks` shares with the LM GPT, + this model's embedding, running mean and head share)."""
    out = gpt_int8_formula(d, layers, heads, 1, c)
    V = 1                                          # remove the LM's own embedding row / head / final LayerNorm
    out["macs"] -= V * d
    out["weight_bytes"] -= d + V * d
    out["param_bytes"] -= 8 * V
    out["requant"] -= V
    out["act_bytes"] -= d + V
    # embedding Linear (D -> d, bias): D d MACs, D d int8 weights, d bias (4 B), d requantised outputs
    out["macs"] += d_in * d
    out["weight_bytes"] += d_in * d
    out["param_bytes"] += 4 * d + 8 * d
    out["requant"] += d
    out["act_bytes"] += d_in + d
    out["adds"] += d                               # running sum of ln_f's output
    out["act_bytes"] += 12 * d
    s, C = 1.0 / series_len, n_classes
    out["muls"] += s * d                           # the mean (scale)
    out["act_bytes"] += s * (2 * d + d + C)        # the mean's scale in/out + the head's in / out (int8)
    out["macs"] += s * C * d
    out["weight_bytes"] += s * C * d
    out["param_bytes"] += s * (4 * C + 8 * C)
    out["requant"] += s * C
    return out


@torch.no_grad()
def prime_caches(model: TSGPT, x: torch.Tensor) -> list | None:
    """The KV caches after the events x (t, D) at positions 0..t-1, from one causal forward (None when t = 0)."""
    if x.shape[0] == 0:
        return None
    h = model._embed(x[None], 0)
    caches = []
    for blk in model.blocks:
        h, kv = blk(h)
        caches.append(kv)
    return caches


@torch.no_grad()
def count_event(model: TSGPT, x: torch.Tensor, c: int, series_len: int) -> GPTInt8Counter:
    """Prime the cache with the first c - 1 events of x (T, D) (uncounted; x is repeated when c > T),
    then count event c - 1 at position c - 1."""
    model.eval()
    xs = x[torch.arange(c) % x.shape[0]]
    caches = prime_caches(model, xs[: c - 1])
    cnt = GPTInt8Counter()
    counted_event(model, xs[c - 1], caches, c - 1, series_len, cnt)
    return cnt


@torch.no_grad()
def int8_weight_copy(model: TSGPT) -> TSGPT:
    """Every 2-D weight quantised per output channel (symmetric, max |w| / 127) and dequantised:
    weight-only int8 (gpt_int8.int8_weight_copy's rule), for its accuracy."""
    m = copy.deepcopy(model)
    for p in m.parameters():
        if p.dim() == 2:
            s = p.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
            p.copy_(torch.clamp(torch.round(p / s), -127, 127) * s)
    return m


def timing_twin(model: TSGPT) -> GPTLM:
    """A GPTLM doing the same float work per event as the TS model's step, for the C decode step
    (runtime/baselines/gpt_step.c): its 'vocabulary' is the C classes, tok = the class head's weights
    (the C step's embedding row read stands for the D-input embedding, d values either way; its tied
    head is the C x d class head), the same blocks and ln_f. Its outputs mean nothing; only its time."""
    cfg = model.cfg
    g = GPTLM(GPTConfig(vocab_size=cfg.n_classes, d_model=cfg.d_model, n_layers=cfg.n_layers,
                        n_heads=cfg.n_heads, ctx=4096))
    g.tok.weight.data.copy_(model.head.weight.data)
    for a, b in zip(g.blocks, model.blocks, strict=True):
        a.load_state_dict(b.state_dict())
    g.ln_f.load_state_dict(model.ln_f.state_dict())
    return g.eval()


def describe() -> dict[str, str]:
    return {"counts": "sln.bench.ts_gpt.counted_event: one batch-1 event of the causal TS transformer through "
                      "gpt_int8.GPTInt8Counter with the LM GPT's block loop (int8 weights once per event, "
                      "requantisation of every matmul output, per-channel multiplier/shift reads, int32 "
                      "LayerNorm/softmax/GELU/residual intermediates at 4 bytes); KV cache read (2 c d bytes per "
                      "layer) and written (2 d) apart, priced at the level of its own size; the class head once "
                      "per series (1/T of it per event)",
            "accuracy": "float checkpoint; int8: weights quantised per output channel (weight-only int8, "
                        "activations in float, as the LM GPT)"}


def _params_formula(d: int, L: int, d_in: int, C: int) -> int:
    return L * (12 * d * d + 2 * d) + d_in * d + d + d + C * d + C


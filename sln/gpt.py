r"""GPT baseline of the character LM: a nanoGPT-style decoder sized to an SLN's parameter count.

Pre-LayerNorm blocks, causal multi-head self-attention, 4x GELU MLP, tied input/output
embedding, no biases, with fixed sinusoidal positions (no parameters, so the parameter count
does not grow with the context), sized by `gpt_config_for_params` to the SLN's parameter
count, trained on random windows of `GPT_CTX` characters for the same wall-clock budget,
generating with a KV cache.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

GPT_CTX = 256     # GPT training context
POS_SCALE = 0.02  # amplitude of the sinusoidal positions relative to the token embeddings' init


# --- the GPT baseline -------------------------------------------------------------------------

@dataclass
class GPTConfig:
    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ctx: int = GPT_CTX
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    name: str = "gpt-baseline"


def sinusoidal(T: int, d: int, offset: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """Fixed positional encoding (T, d) for positions offset..offset+T-1, built on `device`."""
    pos = torch.arange(offset, offset + T, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32, device=device) / d)
    pe = torch.zeros(T, d, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.out = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, d); cache (k, v) each (B, H, t0, d/H) of earlier positions -> x, new cache."""
        B, T, d = x.shape
        H = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(B, T, H, d // H).transpose(1, 2) for z in (q, k, v))   # (B, H, T, d/H)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        # causal within the new positions; all cached positions are in the past
        a = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
        x = x + self.out(F.gelu(self.fc(self.ln2(x))))
        return x, (k, v)


class GPTLM(nn.Module):
    kind = "gpt"

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        nn.init.normal_(self.tok.weight, std=0.02)
        for n, p in self.named_parameters():
            if p.dim() == 2 and n != "tok.weight":
                nn.init.normal_(p, std=0.02 / (math.sqrt(2 * cfg.n_layers) if n.endswith(("proj.weight",
                                                                                           "out.weight")) else 1))

    def forward(self, idx: torch.Tensor, caches: list | None = None, offset: int = 0
                ) -> tuple[torch.Tensor, list]:
        """idx (B, T) -> logits (B, T, V), per-layer KV caches (pass them back to continue)."""
        # positions scaled to the embeddings' init scale (0.02): unscaled, the fixed encoding
        # (rms 0.7) drowned the token signal and the model stalled at the unigram level
        x = self.tok(idx) + POS_SCALE * sinusoidal(idx.shape[1], self.cfg.d_model, offset, idx.device)
        new = []
        for i, blk in enumerate(self.blocks):
            x, c = blk(x, None if caches is None else caches[i])
            new.append(c)
        return self.ln_f(x) @ self.tok.weight.t(), new      # tied output embedding

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def gpt_config_for_params(target: int, vocab: int, n_layers: int = 4, n_heads: int = 4) -> GPTConfig:
    """The GPTConfig whose parameter count is closest to `target` (d_model a multiple of 2*heads)."""
    best = None
    for d in range(2 * n_heads, 1024, 2 * n_heads):
        p = n_layers * (12 * d * d + 2 * d) + vocab * d + d
        if best is None or abs(p - target) < abs(best[1] - target):
            best = (d, p)
    assert best is not None
    return GPTConfig(vocab_size=vocab, d_model=best[0], n_layers=n_layers, n_heads=n_heads)



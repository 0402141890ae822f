"""The GPT baseline's decode step in C (runtime/baselines/gpt_step.c, float32, KV cache), for batch-1 latency.

`GPTStepC(model)` packs GPTLM's weights in the C step's order; `step(token, pos)` -> logits (V,);
`decode_latency_us(c, n)` primes the cache with c - 1 tokens (C steps) and times n greedy decode
steps in ONE C call (no Python in the timed loop) -> CPU microseconds per token, best of `repeats`
(the cache is primed from one PyTorch forward: the same K, V, `prime`).
Compiled with -O2 (scalar loops, no BLAS, no threads), as the SLN's runtime/sln_lm_cli is.
"""
from __future__ import annotations

import ctypes
import time
from pathlib import Path

import numpy as np
import torch

from ..cbuild import build_shared, compiler
from ..gpt import GPTLM

# in a checkout: runtime/baselines/gpt_step.c; in an installed wheel: sln/runtime/baselines/gpt_step.c
_HERE = Path(__file__).resolve()
SRC = next((p for p in (_HERE.parents[2] / "runtime" / "baselines" / "gpt_step.c",
                        _HERE.parents[1] / "runtime" / "baselines" / "gpt_step.c") if p.is_file()),
           _HERE.parents[2] / "runtime" / "baselines" / "gpt_step.c")


def gpt_c_lib() -> ctypes.CDLL | None:
    """gpt_step.c compiled into $SLN_CACHE/host (keyed by its source), or None without a compiler."""
    if not SRC.is_file() or compiler() is None:
        return None
    so = build_shared("gptstep", [SRC], ["-O2", "-shared", "-fPIC", "-std=c99"])
    lib = ctypes.CDLL(str(so))
    u32, vp = ctypes.c_uint32, ctypes.c_void_p
    lib.sln_gpt_step.argtypes = [vp, u32, u32, u32, u32, u32, vp, vp, u32, u32, vp, vp]
    lib.sln_gpt_decode.argtypes = [vp, u32, u32, u32, u32, u32, vp, vp, u32, u32, u32, vp, vp, vp]
    return lib


def pack_weights(model: GPTLM) -> np.ndarray:
    """GPTLM's parameters in gpt_step.c's order, float32."""
    parts = [model.tok.weight]
    for b in model.blocks:
        parts += [b.ln1.weight, b.qkv.weight, b.proj.weight, b.ln2.weight, b.fc.weight, b.out.weight]
    parts.append(model.ln_f.weight)
    return np.ascontiguousarray(np.concatenate([p.detach().float().reshape(-1).numpy() for p in parts]))


class GPTStepC:
    def __init__(self, model: GPTLM, max_ctx: int) -> None:
        lib = gpt_c_lib()
        if lib is None:
            raise RuntimeError("the C GPT step needs a C compiler (gcc, or set CC)")
        self.lib, self.cfg, self.max_ctx, self.model = lib, model.cfg, int(max_ctx), model.eval()
        self.w = pack_weights(model)
        d, L = model.cfg.d_model, model.cfg.n_layers
        self.k = np.zeros(L * self.max_ctx * d, np.float32)
        self.v = np.zeros_like(self.k)
        self.scratch = np.zeros(10 * d + self.max_ctx, np.float32)
        self.logits = np.zeros(model.cfg.vocab_size, np.float32)

    def _args(self) -> tuple:
        c = self.cfg
        return (self.w.ctypes.data, c.vocab_size, c.d_model, c.n_layers, c.n_heads, self.max_ctx,
                self.k.ctypes.data, self.v.ctypes.data)

    def step(self, token: int, pos: int) -> np.ndarray:
        st = self.lib.sln_gpt_step(*self._args(), pos, token, self.scratch.ctypes.data, self.logits.ctypes.data)
        if st != 0:
            raise ValueError(f"sln_gpt_step: bad argument (pos {pos}, token {token})")
        return self.logits.copy()

    def decode(self, token: int, pos: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.uint32)
        st = self.lib.sln_gpt_decode(*self._args(), pos, token, n, self.scratch.ctypes.data, self.logits.ctypes.data,
                                     out.ctypes.data)
        if st != 0:
            raise ValueError("sln_gpt_decode: bad argument")
        return out

    def decode_latency_us(self, ids: torch.Tensor, c: int, n: int, repeats: int = 3) -> float:
        """Prime with ids[:c-1], then time n greedy steps from position c - 1 (best of repeats), us/token."""
        if c - 1 + n > self.max_ctx:
            raise ValueError("max_ctx too small")
        self.prime(ids[: c - 1])
        best = float("inf")
        for _ in range(repeats):     # CPU time of this process, as runtime/sln_lm_cli's clock()
            t0 = time.process_time()
            self.decode(int(ids[c - 1]), c - 1, n)
            best = min(best, time.process_time() - t0)
        return 1e6 * best / n

    @torch.no_grad()
    def prime(self, ids: torch.Tensor) -> None:
        """Fill the cache for positions 0..len(ids)-1 from one PyTorch forward (the same K and V the
        C steps would write, to float rounding; tested)."""
        if len(ids) == 0:
            return
        _, caches = self.model(ids.view(1, -1))
        d, T = self.cfg.d_model, len(ids)
        for li, (k, v) in enumerate(caches):             # (1, H, T, dh) -> (T, d), heads side by side
            o = li * self.max_ctx * d
            self.k[o:o + T * d] = k[0].transpose(0, 1).reshape(-1).numpy()
            self.v[o:o + T * d] = v[0].transpose(0, 1).reshape(-1).numpy()

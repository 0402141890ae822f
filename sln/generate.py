"""`sln generate --checkpoint PATH --prompt "ROMEO:" --tokens 200 [--temperature T] [--top-k K] [--seed S]`.

Samples characters from a character-LM checkpoint (the SLN LM of `python train.py --dataset
shakespeare`, or the GPT baseline of `python -m sln.lm gpt`). The SLN streams: the prompt is fed
one character at a time through `step`, then each sampled character is fed back, so memory and
cost per token stay constant however long the text. The GPT uses a KV cache, attending to at
most its training context (older cache entries are dropped). Sampling uses a torch.Generator
seeded with --seed: the same checkpoint, prompt and flags give the same text.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn as nn

from .gpt import GPTLM
from .lm import load_lm
from .model import SLN
from .text import Vocab
from .train import resolve_threads


def _sample(logits: torch.Tensor, temperature: float, top_k: int, g: torch.Generator) -> torch.Tensor:
    """logits (1, V) -> next id (1,). temperature 0 = greedy; top_k 0 = no cut."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=g)[:, 0]


def generate_stream(model: nn.Module, vocab: Vocab, prompt: str, tokens: int, temperature: float = 1.0,
                    top_k: int = 0, seed: int = 0) -> Iterator[str]:
    """Yield `tokens` generated characters one at a time (without the prompt), as they are sampled."""
    if not prompt:
        raise ValueError("the prompt must hold at least one character")
    if tokens < 0 or temperature < 0 or top_k < 0:
        raise ValueError(f"--tokens, --temperature and --top-k must be >= 0 (got {tokens}, {temperature}, {top_k})")
    g = torch.Generator().manual_seed(seed)
    ids = vocab.encode(prompt)
    model.eval()
    if isinstance(model, SLN):
        stream = model.stream(1)                 # constant memory and cost per token, however long the text
        for i in ids:
            stream.step(i.view(1))
        for _ in range(tokens):
            cur = _sample(stream.logits(), temperature, top_k, g)
            yield vocab.decode(cur)
            stream.step(cur)
        return
    assert isinstance(model, GPTLM)
    ctx = model.cfg.ctx
    ids = ids[-ctx:]
    with torch.inference_mode():
        logits, caches = model(ids[None])
        pos = len(ids)
        for i in range(tokens):
            nxt = _sample(logits[:, -1], temperature, top_k, g)
            yield vocab.decode(nxt)
            if i + 1 == tokens:
                break
            caches = [(k[:, :, -(ctx - 1):], v[:, :, -(ctx - 1):]) for k, v in caches]   # sliding window
            logits, caches = model(nxt.view(1, 1), caches, offset=pos)
            pos += 1


def generate(model: nn.Module, vocab: Vocab, prompt: str, tokens: int, temperature: float = 1.0,
             top_k: int = 0, seed: int = 0) -> str:
    """-> the `tokens` generated characters (without the prompt)."""
    return "".join(generate_stream(model, vocab, prompt, tokens, temperature, top_k, seed))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sln generate", description="Sample text from a character-LM checkpoint.")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.safetensors of a character-LM run "
                   "(train.py --dataset shakespeare or --dataset text:PATH, or python -m sln.lm gpt)")
    p.add_argument("--prompt", default="ROMEO:", help="text to start from, in characters of the model's training "
                   "text (the default suits a Shakespeare model; pass your own for a text:PATH model)")
    p.add_argument("--tokens", type=int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely characters (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    # batch-1 decoding is a chain of tiny ops: one thread is fastest ($SLN_THREADS / $OMP_NUM_THREADS override)
    torch.set_num_threads(resolve_threads(None, default=1))
    # errors go to the one CLI error path (sln/cli.py run): one line, exit 2 (arguments) or 4 (checkpoint)
    model, vocab, _ = load_lm(a.checkpoint)
    chars = generate_stream(model, vocab, a.prompt, a.tokens, a.temperature, a.top_k, a.seed)
    t0 = time.time()
    print(a.prompt, end="", flush=True)
    for i, ch in enumerate(chars):            # stream the text as it is generated
        print(ch, end="", flush=i % 64 == 63)
    print(flush=True)
    secs = time.time() - t0
    print(f"\n[{a.tokens} characters in {secs:.2f} s, {a.tokens / max(secs, 1e-9):.0f} chars/s, batch 1, "
          f"{torch.get_num_threads()} threads]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

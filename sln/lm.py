r"""Character language model training and evaluation: the SLN char-LM and its GPT baseline.

SLN char-LM (`sln.model.SLN` with task "lm"):  char c_t -> liquid k-WTA cell(s) -> logits_t =
W_o y_t + b_o. The first cell's input is the one-hot character, so W_in x_t is one column of W_in
(a gather, no multiplies): the character is a single input event. Deeper cells read the sparse
output of the cell below. The readout reads only the k winners of the top cell. Training is
truncated backprop through time over `BPTT` steps on `batch_size` contiguous streams of the
training text, the state carried (detached) from one window to the next, so the model learns to
run indefinitely like it does when generating; validation streams the whole validation text the
same way. Cost per generated token does not depend on the context.

The GPT baseline (sln/gpt.py) trains on random windows of `GPT_CTX` characters for the same
wall-clock budget (`time_budget_s`). The corpus and its split: sln/text.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import SLNConfig
from .gpt import GPTLM, GPTConfig, gpt_config_for_params
from .model import SLN
from .text import Vocab, prepare
from .train import RunOptions

BPTT = 128        # SLN truncated-BPTT window
LN2 = math.log(2.0)


def is_sln(model: nn.Module) -> bool:
    return isinstance(model, SLN)


def save_lm(path: Path, model: nn.Module, vocab: Vocab, train_state: dict[str, Any] | None = None) -> None:
    save_checkpoint(path, model, None, {**(train_state or {}), "vocab": vocab.chars})


def load_lm(path: str | Path) -> tuple[nn.Module, Vocab, dict[str, Any]]:
    """-> (SLN LM or GPTLM in eval mode, vocab, training state)."""
    model, state = load_checkpoint(path, builders={"gpt": lambda cfg: GPTLM(GPTConfig(**cfg))})
    if "vocab" not in state:
        raise ValueError(f"{path} is not a character-LM checkpoint (no vocabulary); train one with "
                         "`python train.py --dataset shakespeare --model sln-lm-small --out DIR`")
    return model, Vocab(state["vocab"]), state


# --- evaluation -------------------------------------------------------------------------------

@torch.no_grad()
def eval_bpc(model: nn.Module, ids: torch.Tensor, streams: int = 32, progress: bool = False) -> dict[str, float]:
    """Validation bits per character on ids (L,).

    SLN: `streams` contiguous segments run in parallel with carried state (unbounded context).
    GPT: windows of ctx characters with stride ctx/2; each character is scored once, with at
    least ctx/2 characters of context (except the first window's).
    """
    model.eval()
    if is_sln(model):
        L = (len(ids) - 1) // streams
        x = ids[: streams * L].view(streams, L)
        y = ids[1: streams * L + 1].view(streams, L)
        state = model.init_state(streams)
        nll, act = 0.0, 0.0
        for s in tqdm(range(0, L, 256), desc="val", leave=False, disable=not progress):
            out = model.run(x[:, s:s + 256], state=state)
            state = out.state
            nll += F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y[:, s:s + 256].reshape(-1),
                                   reduction="sum").item()
            act += out.activity.wins[-1].sum().item()
        n = streams * L
        return {"bpc": nll / n / LN2, "chars": n, "active_fraction": act / n / model.cfg.n_neurons}
    ctx, half = model.cfg.ctx, model.cfg.ctx // 2
    starts = list(range(0, len(ids) - 1 - ctx, half)) or [0]
    nll, n = 0.0, 0
    for b in tqdm(range(0, len(starts), 32), desc="val", leave=False, disable=not progress):
        st = starts[b:b + 32]
        x = torch.stack([ids[s:s + ctx] for s in st])
        y = torch.stack([ids[s + 1:s + ctx + 1] for s in st])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(len(st), ctx)
        for j, s in enumerate(st):
            lo = 0 if s == 0 else half
            nll += loss[j, lo:].sum().item()
            n += ctx - lo
    return {"bpc": nll / n / LN2, "chars": n}


# --- training (shared by both models) ---------------------------------------------------------

def _lr(frac: float, base: float, warm: float = 0.02) -> float:
    """Warm-up then cosine decay to 10 %, as a function of the fraction of the budget spent."""
    if frac < warm:
        return base * (frac + 1e-3) / warm
    return base * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm)))))


def init_unigram_bias(model: SLN, train_ids: torch.Tensor) -> None:
    """Readout bias = log unigram frequencies: the untrained model starts at the unigram entropy
    (~4.4 bits/char) instead of log2(V) (6.4), so the short budgets go into context, not letter counts."""
    counts = torch.bincount(train_ids, minlength=model.cfg.n_classes).float() + 1.0
    with torch.no_grad():
        model.readout.bias.copy_(torch.log(counts / counts.sum()))


def train_lm(model: nn.Module, vocab: Vocab, train_ids: torch.Tensor, val_ids: torch.Tensor, out: Path, *,
             lr: float, batch_size: int, seed: int, time_budget_s: float, max_steps: int | None = None,
             progress: bool = True, dataset: str = "shakespeare", bptt: int = BPTT) -> dict[str, Any]:
    """Train for `time_budget_s` seconds (or max_steps), checkpoint, evaluate, write metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    sln = is_sln(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0 if sln else 0.1,
                            betas=(0.9, 0.99))
    if sln:   # batch_size contiguous streams through the training text, BPTT windows, carried state
        L = (len(train_ids) - 1) // batch_size
        xs = train_ids[: batch_size * L].view(batch_size, L)
        ys = train_ids[1: batch_size * L + 1].view(batch_size, L)
        state = model.init_state(batch_size)
        pos = 0
    t0 = time.time()
    step, chars, run = 0, 0, None
    bar = tqdm(total=int(time_budget_s) if time_budget_s else max_steps, disable=not progress,
               desc=f"train {model.kind}", unit="s" if time_budget_s else "step")
    last_ckpt = t0
    while True:
        el = time.time() - t0
        if (time_budget_s and el >= time_budget_s) or (max_steps is not None and step >= max_steps):
            break
        frac = el / time_budget_s if time_budget_s else step / max(1, max_steps or 1)
        for grp in opt.param_groups:
            grp["lr"] = _lr(frac, lr)
        model.train()
        if sln:
            if pos + bptt > L:
                pos, state = 0, model.init_state(batch_size)
            x, y = xs[:, pos:pos + bptt], ys[:, pos:pos + bptt]
            pos += bptt
            state = [(h.detach(), yy.detach()) for h, yy in state]
            out = model.run(x, state=state)
            logits, state = out.logits, out.state
        else:
            ctx = model.cfg.ctx
            ix = torch.randint(0, len(train_ids) - ctx - 1, (batch_size,), generator=g)
            x = torch.stack([train_ids[i:i + ctx] for i in ix.tolist()])
            y = torch.stack([train_ids[i + 1:i + ctx + 1] for i in ix.tolist()])
            logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        chars += y.numel()
        run = loss.item() if run is None else 0.95 * run + 0.05 * loss.item()
        if time_budget_s:
            bar.n = min(int(time.time() - t0), int(time_budget_s))
            bar.refresh()
        else:
            bar.update(1)
        bar.set_postfix(bpc=f"{run / LN2:.3f}", steps=step)
        if time.time() - last_ckpt > 120:       # periodic checkpoint, atomic
            save_lm(out / "checkpoint.safetensors", model, vocab, {"steps": step, "chars": chars})
            last_ckpt = time.time()
    bar.close()
    train_s = time.time() - t0
    ev = eval_bpc(model, val_ids, progress=progress)
    save_lm(out / "checkpoint.safetensors", model, vocab, {"steps": step, "chars": chars, "train_seconds": train_s})
    metrics = {"dataset": dataset, "model": getattr(model.cfg, "name", model.kind), "kind": model.kind,
               "val_bpc": ev["bpc"], "val_chars": ev["chars"], "train_bpc_running": (run or 0) / LN2,
               "params": model.num_params(), "train_seconds": train_s, "steps": step, "train_chars": chars,
               "threads": torch.get_num_threads(), "seed": seed, "lr": lr, "batch_size": batch_size,
               "config": model.cfg.to_dict() if sln else asdict(model.cfg)}
    if sln:
        metrics.update({"active_fraction": [ev["active_fraction"]], "k": model.cfg.k, "n_neurons": model.cfg.n_neurons,
                        "epochs": model.cfg.epochs, "test_accuracy": None})
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
    return metrics


def train_shakespeare(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset shakespeare --model sln-lm-small` (budget: cfg.time_budget_s)."""
    if opts.resume:
        raise SystemExit("--resume is not supported for --dataset shakespeare (the run is time-budgeted)")
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", os.cpu_count() or 1)))
    vocab, tr, va = prepare(opts.data_dir)
    if opts.limit_train:
        tr = tr[: opts.limit_train]
    if opts.limit_test:
        va = va[: opts.limit_test]
    cfg = cfg.replace(input_size=len(vocab), n_classes=len(vocab))
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    init_unigram_bias(model, tr)
    budget = cfg.time_budget_s
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k} ({100 * cfg.k / cfg.n_neurons:.1f}% active), "
          f"{model.num_params():,} params; shakespeare {len(tr):,} train / {len(va):,} val chars, vocab {len(vocab)}; "
          + (f"budget {budget:.0f} s" if budget else f"{cfg.epochs} epoch(s)"))
    steps = None
    if not budget:
        steps = cfg.epochs * ((len(tr) - 1) // cfg.batch_size // BPTT)
    m = train_lm(model, vocab, tr, va, Path(opts.out), lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
                 time_budget_s=budget, max_steps=steps, progress=opts.progress)
    print(f"val bits/char {m['val_bpc']:.3f}  active/step {100 * m['active_fraction'][0]:.2f}%  "
          f"({m['steps']} steps, {m['train_seconds']:.0f} s)")
    return m


def main(argv: list[str] | None = None) -> int:
    """python -m sln.lm gpt --seconds 300: the GPT baseline sized to an SLN config's parameter count."""
    p = argparse.ArgumentParser(prog="python -m sln.lm")
    sub = p.add_subparsers(dest="cmd", required=True)
    gp = sub.add_parser("gpt", help="train the GPT baseline (same params as --match, same time budget)")
    gp.add_argument("--match", default="sln-lm-small", help="registered SLN LM whose parameter count to match")
    gp.add_argument("--seconds", type=float, default=300.0)
    gp.add_argument("--layers", type=int, default=4)
    gp.add_argument("--lr", type=float, default=3e-3)
    gp.add_argument("--batch-size", type=int, default=32)
    gp.add_argument("--seed", type=int, default=0)
    gp.add_argument("--out", type=Path, default=Path("runs/shakespeare-gpt-baseline"))
    gp.add_argument("--data-dir", type=Path, default=None)
    gp.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    from .config import get_config
    torch.set_num_threads(int(os.environ.get("SLN_THREADS", os.cpu_count() or 1)))
    vocab, tr, va = prepare(a.data_dir)
    scfg = get_config(a.match).replace(input_size=len(vocab), n_classes=len(vocab))
    target = SLN(scfg).num_params()
    gcfg = gpt_config_for_params(target, len(vocab), n_layers=a.layers)
    gcfg.lr, gcfg.batch_size, gcfg.seed = a.lr, a.batch_size, a.seed
    torch.manual_seed(a.seed)
    model = GPTLM(gcfg)
    print(f"GPT baseline d={gcfg.d_model} L={gcfg.n_layers} H={gcfg.n_heads} ctx={gcfg.ctx}: {model.num_params():,} "
          f"params (SLN {a.match}: {target:,}); budget {a.seconds:.0f} s")
    m = train_lm(model, vocab, tr, va, a.out, lr=a.lr, batch_size=a.batch_size, seed=a.seed,
                 time_budget_s=a.seconds, progress=not a.no_progress)
    print(json.dumps({k: m[k] for k in ("val_bpc", "params", "steps", "train_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training and evaluation of SLN image classifiers (MNIST, Fashion-MNIST).

Deterministic given the seed: the shuffle of epoch e uses its own generator seeded with
(seed, e) and the learning rate is a pure function of the step, so `--resume` from the
checkpoint of epoch e continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint
from .config import SLNConfig
from .data import load_split
from .model import SLN, images_to_sequence

CKPT = "checkpoint.safetensors"


@dataclass
class RunOptions:
    dataset: str = "mnist"
    out: Path = Path("runs/default")
    data_dir: Path | None = None
    resume: bool = False
    limit_train: int | None = None   # use the first n training images (tests, smoke runs)
    limit_test: int | None = None
    progress: bool = True
    stop_after_epoch: int | None = None  # end this run early (simulates an interruption; tests)
    threads: int | None = None           # torch intra-op threads (default: all cores)


def lr_at(step: int, total: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up (100 steps, at most a tenth of the run) then cosine decay to 0."""
    warmup = min(warmup, total // 10)
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image (B, H, W) by its own random (dy, dx) in [-s, s], zero-filled."""
    if max_shift <= 0:
        return images
    B, H, W = images.shape
    s = max_shift
    padded = torch.nn.functional.pad(images, (s, s, s, s))                 # (B, H+2s, W+2s)
    dy, dx = (torch.randint(0, 2 * s + 1, (2, B), generator=gen))
    rows = (dy[:, None] + torch.arange(H)[None])                            # (B, H)
    cols = (dx[:, None] + torch.arange(W)[None])                            # (B, W)
    out = padded.gather(1, rows[:, :, None].expand(B, H, W + 2 * s))        # (B, H, W+2s)
    return out.gather(2, cols[:, None, :].expand(B, H, W))                  # (B, H, W)


@torch.no_grad()
def evaluate(model: SLN, images: np.ndarray, labels: np.ndarray, batch_size: int = 500,
             progress: bool = False) -> dict[str, Any]:
    """Accuracy, mean active fraction per layer per step, dead fraction per layer."""
    model.eval()
    cfg = model.cfg
    correct, n = 0, 0
    active_sum = [0.0] * cfg.n_layers
    fired = [torch.zeros(cfg.n_neurons, dtype=torch.bool) for _ in range(cfg.n_layers)]
    it = range(0, len(images), batch_size)
    for s in tqdm(it, desc="eval", leave=False, disable=not progress):
        x = images_to_sequence(torch.from_numpy(images[s:s + batch_size].copy()), cfg.input_size)
        y = torch.from_numpy(labels[s:s + batch_size])
        logits, act = model(x, return_activity=True)
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
        for i in range(cfg.n_layers):
            active_sum[i] += act.active[i].mean().item() * len(y)
            fired[i] |= act.fired[i]
    return {"accuracy": correct / n,
            "active_fraction": [a / n for a in active_sum],
            "dead_fraction": [1.0 - f.float().mean().item() for f in fired]}


def restore(ckpt: Path, cfg: SLNConfig) -> tuple[SLN, torch.optim.Optimizer, int, list[dict[str, Any]]]:
    """--resume: model, AdamW with its moments, epochs done and history from a checkpoint.

    The checkpoint's config wins over the flags' (a resumed run must be the same run).
    """
    if not ckpt.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
    model, state = load_checkpoint(ckpt)
    if model.cfg.to_dict() != cfg.to_dict():
        print(f"note: resuming with the checkpoint's config ({ckpt}), not the flags'")
    opt = torch.optim.AdamW(model.parameters(), lr=model.cfg.lr, weight_decay=model.cfg.weight_decay)
    load_optimizer_state(ckpt, opt)
    print(f"resuming {ckpt} after epoch {state['epoch']}")
    return model, opt, state["epoch"], state["history"]


def train(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    torch.set_num_threads(opts.threads or os.cpu_count() or 1)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr = load_split(opts.dataset, "train", opts.data_dir, opts.limit_train)
    xte, yte = load_split(opts.dataset, "test", opts.data_dir, opts.limit_test)
    if cfg.n_classes != int(ytr.max()) + 1 and opts.limit_train is None:
        raise ValueError(f"config has n_classes={cfg.n_classes} but {opts.dataset} has {int(ytr.max()) + 1}")

    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(xtr) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt = out / CKPT
    if opts.resume:
        model, opt, start_epoch, history = restore(ckpt, cfg)
        cfg = model.cfg
        total = steps_per_epoch * cfg.epochs
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))

    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers} layer(s), k={cfg.k} "
          f"({100 * cfg.k / cfg.n_neurons:.2f}% active), {model.num_params():,} params, "
          f"{opts.dataset} {len(xtr)} train / {len(xte)} test, {torch.get_num_threads()} threads")
    xtr_t, ytr_t = torch.from_numpy(np.ascontiguousarray(xtr).copy()), torch.from_numpy(ytr)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        perm = torch.randperm(len(xtr), generator=g)
        t0 = time.time()
        run_loss = run_acc = run_act = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not opts.progress)
        for b in bar:
            step = epoch * steps_per_epoch + b
            for grp in opt.param_groups:
                grp["lr"] = lr_at(step, total, cfg.lr)
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = images_to_sequence(random_shift(xtr_t[idx], cfg.augment_shift, g), cfg.input_size)
            y = ytr_t[idx]
            logits, act = model(x, return_activity=True)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            a = 0.9 if b else 0.0
            run_loss = a * run_loss + (1 - a) * loss.item()
            run_acc = a * run_acc + (1 - a) * (logits.argmax(1) == y).float().mean().item()
            run_act = a * run_act + (1 - a) * act.active[-1].mean().item()
            bar.set_postfix(loss=f"{run_loss:.3f}", acc=f"{run_acc:.3f}", active=f"{100 * run_act:.2f}%")
        secs = time.time() - t0
        ev = evaluate(model, xte, yte, progress=opts.progress)
        history.append({"epoch": epoch + 1, "train_loss": run_loss, "seconds": secs, **ev})
        print(f"epoch {epoch + 1}: test acc {100 * ev['accuracy']:.2f}%  active/step "
              + " ".join(f"L{i}={100 * a:.2f}%" for i, a in enumerate(ev["active_fraction"]))
              + "  never fired " + " ".join(f"L{i}={100 * d:.1f}%" for i, d in enumerate(ev["dead_fraction"]))
              + f"  ({secs:.0f} s train)")
        save_checkpoint(ckpt, model, opt, {"epoch": epoch + 1, "history": history, "dataset": opts.dataset})
        if opts.stop_after_epoch is not None and epoch + 1 >= opts.stop_after_epoch:
            break

    last = history[-1] if history else evaluate(model, xte, yte)
    metrics = {
        "dataset": opts.dataset, "model": cfg.name, "epochs": cfg.epochs,
        "test_accuracy": last["accuracy"], "active_fraction": last["active_fraction"],
        "dead_fraction": last["dead_fraction"], "params": model.num_params(), "k": cfg.k,
        "n_neurons": cfg.n_neurons, "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "seed": cfg.seed, "threads": torch.get_num_threads(), "train_images": len(xtr),
        "test_images": len(xte), "history": history, "config": cfg.to_dict(),
    }
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
    return metrics

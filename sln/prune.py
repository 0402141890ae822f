"""Learned weight sparsity: gradual magnitude pruning of W_in and W_rec, and what it saves.

Method (Zhu & Gupta 2017, "To prune, or not to prune", arXiv:1710.01878), per matrix of every
liquid cell, with the knobs of SLNConfig (density_in, density_rec, prune_start, prune_end,
prune_every; their reasons are given there):

    p(s)  = clamp((s - s0) / (s1 - s0), 0, 1)      s0 = prune_start * S, s1 = prune_end * S, S = steps
    d(s)  = target + (1 - target) * (1 - p(s))^3   density after s optimizer steps
    mask  = the round(d * numel) largest |W| inside the previous mask, at s = s0, s0 + every, ..., s1

After every optimizer step the weights outside the mask are set to exactly +0.0 (the contract
with the exporter and the engine: a pruned weight is a zero, nothing else marks it). Both the
density and the update steps are pure functions of s, and the masks are buffers saved in the
checkpoint, so a resumed run prunes exactly as an uninterrupted one (tests/test_prune.py).

Why magnitude pruning rather than RigL or a fixed mask: in the issue's calibration a fixed random
10 % mask lost ~2 points against the learned one; RigL needs dense gradients every update and an
extra regrowth schedule, while GMP is one sort every `prune_every` steps on the one training loop.

Cost accounting (`weight_reads`): the event-driven engine reads, per step, the nonzero weights of
the W_in columns of nonzero inputs and of the W_rec columns of the previous winners, so
reads = sum over steps of (nonzeros of each event's input column + nonzeros of each winner's
recurrent column). The readout is counted apart (its columns of neurons that fired).
"""
from __future__ import annotations

from typing import Any

import torch

from .cell import LiquidCell
from .config import SLNConfig
from .model import SLN, encode_images


def density_at(step: int, total: int, target: float, start: float, end: float) -> float:
    """Density after `step` of `total` optimizer steps (cubic from 1.0 at start*total to target at
    end*total, then fixed). start == end: one-shot pruning at that step."""
    if target >= 1.0:
        return 1.0
    s0, s1 = round(start * total), round(end * total)
    if step < s0:
        return 1.0
    p = 1.0 if s1 <= s0 else min(1.0, (step - s0) / (s1 - s0))
    return target + (1.0 - target) * (1.0 - p) ** 3


def is_update_step(step: int, total: int, cfg: SLNConfig) -> bool:
    """Masks are recomputed at s0, s0 + every, ... and at s1 (so the target is met exactly)."""
    s0, s1 = round(cfg.prune_start * total), round(cfg.prune_end * total)
    return s0 <= step <= s1 and ((step - s0) % cfg.prune_every == 0 or step == s1)


def magnitude_mask(weight: torch.Tensor, keep: torch.Tensor, density: float) -> torch.Tensor:
    """The round(density * numel) largest |weight| among `keep` (bool, same shape) -> new bool mask,
    a subset of keep. Ties go to the lower flat index (stable sort), so the result is the same on
    every run and thread count."""
    n_keep = max(1, int(density * weight.numel() + 0.5))
    score = weight.detach().abs().masked_fill(~keep, -1.0).flatten()   # pruned entries rank last
    order = torch.sort(score, descending=True, stable=True).indices[:n_keep]
    mask = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[order] = True
    return mask.view_as(weight) & keep


class Pruner:
    """The schedule of one run: `pruner(model, step)` after each optimizer step (the training
    loop's after_step hook). `total` is the run's number of optimizer steps."""

    def __init__(self, cfg: SLNConfig, total: int) -> None:
        if total < 1:
            raise ValueError("the pruning schedule needs the run's step count (epochs x steps per epoch)")
        self.cfg, self.total = cfg, total

    def densities(self, step: int) -> tuple[float, float]:
        c = self.cfg
        return (density_at(step, self.total, c.density_in, c.prune_start, c.prune_end),
                density_at(step, self.total, c.density_rec, c.prune_start, c.prune_end))

    @torch.no_grad()
    def __call__(self, model: SLN, step: int) -> None:
        if is_update_step(step, self.total, self.cfg):
            d_in, d_rec = self.densities(step)
            for cell in model.cells:
                cell.mask_in.copy_(magnitude_mask(cell.w_in.weight, cell.mask_in, d_in))
                cell.mask_rec.copy_(magnitude_mask(cell.w_rec.weight, cell.mask_rec, d_rec))
        for cell in model.cells:
            cell.apply_masks()


def nonzero_weights(model: SLN) -> dict[str, int]:
    """Nonzero entries of the liquid matrices (W_in, W_rec of every layer) and their dense size."""
    nz_in = sum(int((c.w_in.weight != 0).sum()) for c in model.cells)
    nz_rec = sum(int((c.w_rec.weight != 0).sum()) for c in model.cells)
    dense = sum(c.w_in.weight.numel() + c.w_rec.weight.numel() for c in model.cells)
    return {"nonzero_in": nz_in, "nonzero_rec": nz_rec, "nonzero": nz_in + nz_rec, "dense": dense}


def _column_nonzeros(cell: LiquidCell) -> tuple[torch.Tensor, torch.Tensor]:
    """Nonzeros per column: W_in (D,), W_rec (N,) — what one event / one winner costs to read."""
    return (cell.w_in.weight != 0).sum(0).float(), (cell.w_rec.weight != 0).sum(0).float()


@torch.no_grad()
def weight_reads(model: SLN, x: torch.Tensor) -> dict[str, Any]:
    """Per-inference counts of what the event-driven engine reads, averaged over the sequences
    x (B, T, D) (already input-coded): input events, weight reads of W_in and W_rec (nonzeros of
    the touched columns), and readout reads (columns of neurons that fired, x n_classes)."""
    model.eval()
    B, T, dev = x.shape[0], x.shape[1], x.device
    cols = [_column_nonzeros(c) for c in model.cells]
    events = torch.zeros(B, device=dev)
    reads_in, reads_rec = torch.zeros(B, device=dev), torch.zeros(B, device=dev)
    state = model.init_state(B)
    fired = torch.zeros(B, model.cfg.n_neurons, dtype=torch.bool, device=dev)
    for t in range(T):
        prev = [s[1] for s in state]                       # each layer's winners of step t-1 (B, N)
        y, state, _ = model.step(x[:, t], state)
        inputs = [x[:, t]] + [s[1] for s in state[:-1]]    # layer l > 0 reads layer l-1's new output
        for (col_in, col_rec), inp, y_prev in zip(cols, inputs, prev, strict=True):
            reads_in += (inp != 0).float() @ col_in
            reads_rec += (y_prev != 0).float() @ col_rec
        events += (x[:, t] != 0).sum(1)
        fired |= y != 0
    reads_out = fired.sum(1).float() * model.cfg.n_classes
    return {"events": float(events.mean()), "reads_in": float(reads_in.mean()),
            "reads_rec": float(reads_rec.mean()), "reads": float((reads_in + reads_rec).mean()),
            "reads_readout": float(reads_out.mean()), "images": B}


@torch.no_grad()
def image_sparsity(model: SLN, images: Any, batch: int = 1000) -> dict[str, Any]:
    """What one image costs the event engine under the config's input coding, averaged over uint8
    images (n, H, W) (numpy or tensor): events, weight_reads (W_in + W_rec), readout_reads, and the
    nonzero liquid weights. The image task adds these to every evaluation (metrics.json history)."""
    dev = model.readout.weight.device
    n = len(images)
    tot = {"events": 0.0, "reads_in": 0.0, "reads_rec": 0.0, "reads": 0.0, "reads_readout": 0.0}
    for s in range(0, n, batch):
        chunk = images[s:s + batch]
        chunk = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(chunk.copy())   # numpy: read-only
        r = weight_reads(model, encode_images(chunk, model.cfg).to(dev))
        for k in tot:
            tot[k] += r[k] * r["images"]
    out = {("weight_" + k if k.startswith("reads") else k): v / max(1, n) for k, v in tot.items()}
    return {**out, **nonzero_weights(model)}

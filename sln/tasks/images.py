"""Image classification task (MNIST, Fashion-MNIST): shuffled batches, shift augmentation, evaluation.

Used by the SLN image trainer (sln.train.train) and by the benchmark's ViT / CfC baselines
(sln.baselines._train_or_reuse), which differ only in how uint8 images become model input.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..config import SLNConfig
from ..device import model_device
from ..model import SLN, encode_images
from ..prune import Pruner, image_sparsity
from .classify import EvalBatch, describe, evaluate_classifier
from .loop import bar_kwargs


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image (B, H, W) by its own random (dy, dx) in [-s, s], zero-filled."""
    if max_shift <= 0:
        return images
    return shift_images(images, torch.randint(0, 2 * max_shift + 1, (2, images.shape[0]), generator=gen), max_shift)


def shift_images(images: torch.Tensor, offsets: torch.Tensor, s: int) -> torch.Tensor:
    """images (B, H, W) translated by offsets (2, B) = (dy, dx) + s in [0, 2s], zero-filled; on the
    images' device (the offsets are drawn on the CPU generator so every device sees the same ones)."""
    B, H, W = images.shape
    dy, dx = offsets.to(images.device, non_blocking=True)
    padded = F.pad(images, (s, s, s, s))                                    # (B, H+2s, W+2s)
    rows = (dy[:, None] + torch.arange(H, device=images.device)[None])      # (B, H)
    cols = (dx[:, None] + torch.arange(W, device=images.device)[None])      # (B, W)
    out = padded.gather(1, rows[:, :, None].expand(B, H, W + 2 * s))        # (B, H, W+2s)
    return out.gather(2, cols[:, None, :].expand(B, H, W))                  # (B, H, W)


def _rows(a: np.ndarray | torch.Tensor, s: int, e: int) -> torch.Tensor:
    """Rows s:e as a tensor: a slice of a tensor (on its device), a copy of a numpy array."""
    return a[s:e] if isinstance(a, torch.Tensor) else torch.from_numpy(a[s:e].copy())


def _image_batches(model: SLN, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                   batch_size: int, progress: bool) -> Iterator[EvalBatch]:
    for s in tqdm(range(0, len(images), batch_size), desc="eval", leave=False, **bar_kwargs(progress)):
        yield encode_images(_rows(images, s, s + batch_size), model.cfg), None, None, _rows(labels, s, s + batch_size)


def evaluate(model: SLN, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, batch_size: int = 500,
             progress: bool = False) -> dict[str, Any]:
    """Accuracy, mean active fraction per layer per step, dead fraction per layer."""
    return evaluate_classifier(model, _image_batches(model, images, labels, batch_size, progress))


@torch.no_grad()
def accuracy(model: nn.Module, to_input: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray | torch.Tensor,
             labels: np.ndarray | torch.Tensor, batch: int = 1000) -> float:
    """Test accuracy of any image classifier whose forward maps to_input(uint8 (B, H, W)) -> logits (B, C),
    on the model's device (one host sync at the end)."""
    model.eval()
    dev = model_device(model)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    for s in range(0, len(images), batch):
        x = to_input(_rows(images, s, s + batch).to(dev, non_blocking=True))
        correct += (model(x).argmax(1) == _rows(labels, s, s + batch).to(dev, non_blocking=True)).sum()
    return int(correct) / len(images)


class ImageTask:
    """Epoch e: a permutation from a generator seeded with (seed, e); the same generator then draws
    the shifts of that epoch's batches in order, so epoch e is reproducible on its own (resume)."""

    def __init__(self, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, batch_size: int,
                 seed: int, to_input: Callable[[torch.Tensor], torch.Tensor], augment_shift: int = 0,
                 sln: bool = False, eval_each_epoch: bool = True, progress: bool = False) -> None:
        self.x, self.y = torch.from_numpy(np.ascontiguousarray(xtr).copy()), torch.from_numpy(ytr)  # uint8 (n, H, W)
        self.xte, self.yte = xte, yte
        self.batch_size, self.seed, self.to_input, self.shift = batch_size, seed, to_input, augment_shift
        self.sln, self.eval_each_epoch, self.progress = sln, eval_each_epoch, progress
        self.steps_per_epoch = math.ceil(len(xtr) / batch_size)
        self._epoch, self._perm, self._gen = -1, torch.empty(0, dtype=torch.long), torch.Generator()
        # the loop's optional hook; a sparse SLN's pruning schedule (set by for_sln)
        self.after_step: Callable[[nn.Module, int], None] | None = None

    @classmethod
    def for_sln(cls, cfg: SLNConfig, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                progress: bool = False) -> ImageTask:
        task = cls(xtr, ytr, xte, yte, cfg.batch_size, cfg.seed, lambda im: encode_images(im, cfg),
                   cfg.augment_shift, sln=True, progress=progress)
        if min(cfg.density_in, cfg.density_rec) < 1.0:
            if cfg.time_budget_s:
                raise ValueError("the pruning schedule is laid over the run's steps: train sparse models "
                                 "for --epochs, not a --time-budget-s")
            task.after_step = Pruner(cfg, task.steps_per_epoch * cfg.epochs)
        return task

    def get_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            perm = torch.randperm(len(self.x), generator=self._gen)
            if self.shift > 0:   # the epoch's shifts, batch by batch: the draws random_shift would make
                self._offsets = torch.cat([torch.randint(0, 2 * self.shift + 1, (2, len(c)), generator=self._gen)
                                           for c in perm.split(self.batch_size)], 1).to(self.x.device)
            self._perm, self._epoch = perm.to(self.x.device), epoch     # one copy per epoch, not per step
        sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
        images = self.x[self._perm[sl]]
        if self.shift > 0:
            images = shift_images(images, self._offsets[:, sl], self.shift)
        return self.to_input(images), self.y[self._perm[sl]]

    def to(self, dev: torch.device) -> None:
        """Keep the training and test sets on dev (the loop calls this): batches, augmentation and
        evaluation then never leave the device. MNIST's 60 000 images are 47 MB of uint8."""
        self.x, self.y = self.x.to(dev), self.y.to(dev)
        self.xte, self.yte = (_rows(a, 0, len(a)).to(dev) for a in (self.xte, self.yte))
        self._epoch = -1

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        if self.sln:
            logits, act = model(x, return_activity=True)
            extra = {"active": act.mean[-1].detach()}
        else:
            logits, extra = model(x), {}
        acc = (logits.detach().argmax(1) == y).float().mean()
        return F.cross_entropy(logits, y), {"acc": acc, **extra}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        if self.sln:   # accuracy and activity, plus what an image costs the event engine (sln/prune.py)
            return {**evaluate(model, self.xte, self.yte, progress=self.progress), **image_sparsity(model, self.xte)}
        return {"accuracy": accuracy(model, self.to_input, self.xte, self.yte)}

    def describe(self, ev: dict[str, Any]) -> str:
        return describe(ev) if self.sln else f"test acc {100 * ev['accuracy']:.2f}%"

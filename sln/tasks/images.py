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
from ..model import SLN, images_to_sequence
from .classify import EvalBatch, describe, evaluate_classifier


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image (B, H, W) by its own random (dy, dx) in [-s, s], zero-filled."""
    if max_shift <= 0:
        return images
    B, H, W = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))                                    # (B, H+2s, W+2s)
    dy, dx = (torch.randint(0, 2 * s + 1, (2, B), generator=gen))
    rows = (dy[:, None] + torch.arange(H)[None])                            # (B, H)
    cols = (dx[:, None] + torch.arange(W)[None])                            # (B, W)
    out = padded.gather(1, rows[:, :, None].expand(B, H, W + 2 * s))        # (B, H, W+2s)
    return out.gather(2, cols[:, None, :].expand(B, H, W))                  # (B, H, W)


def _image_batches(model: SLN, images: np.ndarray, labels: np.ndarray, batch_size: int,
                   progress: bool) -> Iterator[EvalBatch]:
    for s in tqdm(range(0, len(images), batch_size), desc="eval", leave=False, disable=not progress):
        x = images_to_sequence(torch.from_numpy(images[s:s + batch_size].copy()), model.cfg.input_size)
        yield x, None, None, torch.from_numpy(labels[s:s + batch_size])


def evaluate(model: SLN, images: np.ndarray, labels: np.ndarray, batch_size: int = 500,
             progress: bool = False) -> dict[str, Any]:
    """Accuracy, mean active fraction per layer per step, dead fraction per layer."""
    return evaluate_classifier(model, _image_batches(model, images, labels, batch_size, progress))


@torch.no_grad()
def accuracy(model: nn.Module, to_input: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray,
             labels: np.ndarray, batch: int = 1000) -> float:
    """Test accuracy of any image classifier whose forward maps to_input(uint8 (B, H, W)) -> logits (B, C)."""
    model.eval()
    correct = 0
    for s in range(0, len(images), batch):
        x = to_input(torch.from_numpy(images[s:s + batch].copy()))
        correct += int((model(x).argmax(1) == torch.from_numpy(labels[s:s + batch])).sum())
    return correct / len(images)


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

    @classmethod
    def for_sln(cls, cfg: SLNConfig, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                progress: bool = False) -> ImageTask:
        return cls(xtr, ytr, xte, yte, cfg.batch_size, cfg.seed, lambda im: images_to_sequence(im, cfg.input_size),
                   cfg.augment_shift, sln=True, progress=progress)

    def get_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            self._perm = torch.randperm(len(self.x), generator=self._gen)
            self._epoch = epoch
        idx = self._perm[b * self.batch_size:(b + 1) * self.batch_size]
        return self.to_input(random_shift(self.x[idx], self.shift, self._gen)), self.y[idx]

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
        if self.sln:
            return evaluate(model, self.xte, self.yte, progress=self.progress)
        return {"accuracy": accuracy(model, self.to_input, self.xte, self.yte)}

    def describe(self, ev: dict[str, Any]) -> str:
        return describe(ev) if self.sln else f"test acc {100 * ev['accuracy']:.2f}%"

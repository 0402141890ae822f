"""The small CNN baseline of the image benchmark: what an embedded user would pick for images (issue 9, §1).

LeNet-5-like (LeCun et al., Proc. IEEE 1998), adapted to 28x28 MNIST as is usual: conv 5x5 (padding 2)
c1 -> max-pool 2 -> ReLU -> conv 5x5 c2 -> max-pool 2 -> ReLU -> fc1 -> ReLU -> [fc2 -> ReLU] -> head.
Pooling comes before the ReLU: max-pool and ReLU commute (both monotonic), so the outputs are
those of conv -> ReLU -> pool while the ReLU runs on a quarter of the elements. Pixels enter as
pixel/255 (background exactly 0, the same input as the SLN and ViT): no mean/std normalisation,
which would turn the zero background nonzero and hide the zero-skipping granted to every model.

Trained exactly like the ViTs (sln.baselines._train_or_reuse, the one loop): AdamW, lr 1e-3,
weight decay 0.05, batch 128, lr_at warm-up + cosine, clipping 1.0, no augmentation, seed 0.

Counting (`CNN.forward(x, counter=CNNCounter())` at batch 1) uses the rules of sln.baselines.OpCounter:
  * conv: dense MACs = Cout x Hout x Wout x Cin x k x k (every tap, the padding taps too, as an
    im2col / direct kernel executes them); effective MACs (NeuroBench) = Cout x the taps whose
    input is nonzero (padding is zero: never effective);
  * weights: each kernel weight is read ONCE PER IMAGE (held while it is used at every output
    position, the ViT's rule for a weight used by all tokens); `weight_bytes_per_position` is the
    other extreme (every conv weight re-read at every output position, an output-stationary loop
    with no weight reuse), a separate sensitivity figure, not the estimate;
  * biases (and nothing else here) are parameter vectors, read once; activations: each op reads
    its input and writes its output once (4 bytes at fp32), peak = the largest in + out of one op;
  * ReLU: 1 compare per element; max-pool p x p: p*p - 1 compares per output element.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .baselines import OpCounter, _train_or_reuse


@dataclass
class CNNConfig:
    name: str = "lenet5"
    c1: int = 6          # channels of conv1 (5x5, padding k//2: 28x28 out)
    c2: int = 16         # channels of conv2 (5x5, no padding: 10x10 out)
    kernel: int = 5
    fc1: int = 120
    fc2: int = 84        # 0: no second hidden layer
    pool: int = 2
    image: int = 28
    n_classes: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    seed: int = 0

    def spatial(self) -> tuple[int, int, int, int]:
        """-> (conv1 out side, after pool 1, conv2 out side, after pool 2): 28, 14, 10, 5 for LeNet-5."""
        s1 = self.image                    # padding k//2 keeps the side (odd k)
        p1 = s1 // self.pool
        s2 = p1 - self.kernel + 1
        return s1, p1, s2, s2 // self.pool


CNN_SIZES: dict[str, CNNConfig] = {
    "lenet5": CNNConfig(name="lenet5"),                                   # 61,706 params, ~417 k MACs
    "lenet-xs": CNNConfig(name="lenet-xs", c1=4, c2=8, fc1=32, fc2=0),    # 7,674 params, ~165 k MACs
}


class CNNCounter(OpCounter):
    """OpCounter plus the CNN's ops (conv, ReLU, max-pool); the fields are OpCounter's, and
    weight_bytes_per_position (the no-reuse sensitivity of the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight_bytes_per_position = 0.0

    def conv2d(self, x: torch.Tensor, conv: nn.Conv2d, term: str) -> torch.Tensor:
        y = conv(x)                                                   # (1, Cout, Ho, Wo)
        cout, cin, kh, kw = conv.weight.shape
        pos = y.shape[-1] * y.shape[-2]
        m = float(y.numel() * cin * kh * kw)
        # nonzero taps per output position: the nonzero mask convolved with a ones kernel
        ones = torch.ones(1, cin, kh, kw, dtype=x.dtype)
        taps = F.conv2d((x != 0).to(x.dtype), ones, None, conv.stride, conv.padding)
        self.macs += m
        self.effective_macs += float(taps.sum()) * cout
        self.weight_bytes += 4 * conv.weight.numel()
        self.weight_bytes_per_position += 4 * conv.weight.numel() * pos
        self.param_bytes += 4 * (conv.bias.numel() if conv.bias is not None else 0)
        self._io(x.numel(), y.numel())
        self.by_term[term] = self.by_term.get(term, 0.0) + m
        return y

    def linear(self, x: torch.Tensor, lin: nn.Linear, term: str) -> torch.Tensor:
        self.weight_bytes_per_position += 4 * lin.weight.numel() * (x.numel() // lin.in_features)
        return super().linear(x, lin, term)

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(x)
        self.cmps += x.numel()
        self._io(x.numel(), y.numel())
        return y

    def max_pool(self, x: torch.Tensor, p: int) -> torch.Tensor:
        y = F.max_pool2d(x, p)
        self.cmps += y.numel() * (p * p - 1)
        self._io(x.numel(), y.numel())
        return y


class _Null:
    """Counter stand-in that only computes (training, timing)."""

    @staticmethod
    def conv2d(x: torch.Tensor, conv: nn.Conv2d, term: str) -> torch.Tensor:
        return conv(x)

    @staticmethod
    def linear(x: torch.Tensor, lin: nn.Linear, term: str) -> torch.Tensor:
        return lin(x)

    @staticmethod
    def relu(x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    @staticmethod
    def max_pool(x: torch.Tensor, p: int) -> torch.Tensor:
        return F.max_pool2d(x, p)


class CNN(nn.Module):
    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k = cfg.kernel
        side = cfg.spatial()[3]
        self.conv1 = nn.Conv2d(1, cfg.c1, k, padding=k // 2)
        self.conv2 = nn.Conv2d(cfg.c1, cfg.c2, k)
        self.fc1 = nn.Linear(cfg.c2 * side * side, cfg.fc1)
        self.fc2 = nn.Linear(cfg.fc1, cfg.fc2) if cfg.fc2 else None
        self.head = nn.Linear(cfg.fc2 or cfg.fc1, cfg.n_classes)

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1]."""
        return images.float().div(255.0).unsqueeze(1)

    def forward(self, x: torch.Tensor, counter: Any = None) -> torch.Tensor:
        """x (B, 1, 28, 28) -> logits (B, C)."""
        c = counter if counter is not None else _Null
        p = self.cfg.pool
        h = c.relu(c.max_pool(c.conv2d(x, self.conv1, "conv1"), p))   # (B, c1, 14, 14)
        h = c.relu(c.max_pool(c.conv2d(h, self.conv2, "conv2"), p))   # (B, c2, 5, 5)
        h = c.relu(c.linear(h.flatten(1), self.fc1, "fc"))             # (B, fc1); flatten is free
        if self.fc2 is not None:
            h = c.relu(c.linear(h, self.fc2, "fc"))
        return c.linear(h, self.head, "head")

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def count_cnn(model: CNN, image: torch.Tensor, counter: CNNCounter | None = None) -> CNNCounter:
    """Counts of one batch-1 inference on a real image (28, 28) uint8 (into `counter` if given)."""
    cnt = counter if counter is not None else CNNCounter()
    with torch.no_grad():
        model(model.to_input(image.reshape(1, *image.shape[-2:])), counter=cnt)
    return cnt


def train_cnn(cfg: CNNConfig, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, epochs: int,
              out: Path | None = None, progress: bool = True, device: str = "cpu") -> tuple[CNN, dict[str, Any]]:
    """Train (or reuse out/cnn.safetensors when its config, epochs and training-set size match) -> model, info
    (the ViT's recipe and loop: sln.baselines._train_or_reuse; device: where to train, returned on the CPU)."""
    torch.manual_seed(cfg.seed)
    model = CNN(cfg)
    return _train_or_reuse(model, model.to_input, asdict(cfg), cfg.name, "cnn", cfg.lr, cfg.weight_decay,
                           cfg.batch_size, cfg.seed, xtr, ytr, xte, yte, epochs, out, progress, device)

"""The Sparse Liquid Network: stacked liquid cells over a sequence plus a linear readout.

    x (B, T, D) --cell_1--> y^1 (B, T, N) --cell_2--> ... --> y^L (B, T, N)
    logits = W_o mean_t(y^L_t) + b_o                       (B, n_classes)

The readout reads the running sum of sparse outputs: each step adds <= k values, and the
final matmul needs only the columns of neurons that fired at least once.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .cell import LiquidCell, State
from .config import SLNConfig, get_config


@dataclass
class Activity:
    """What fired during a forward pass (for metrics; all tensors are detached)."""
    active: list[torch.Tensor]   # per layer: (T,) mean share of neurons with nonzero output per step
    fired: list[torch.Tensor]    # per layer: (N,) bool, neuron fired (nonzero) at least once in the batch


class SLN(nn.Module):
    def __init__(self, cfg: SLNConfig) -> None:
        super().__init__()
        if cfg.task != "classify":
            raise ValueError(f"SLN is the classifier; config task {cfg.task!r} needs create_model(name)")
        self.cfg = cfg
        sizes = [cfg.input_size] + [cfg.n_neurons] * cfg.n_layers
        self.cells = nn.ModuleList(
            LiquidCell(sizes[i], cfg.n_neurons, cfg.k, boost_beta=cfg.boost_beta,
                       duty_momentum=cfg.duty_momentum, lambda_min=cfg.lambda_min, ln_eps=cfg.ln_eps)
            for i in range(cfg.n_layers))
        self.readout = nn.Linear(cfg.n_neurons, cfg.n_classes)

    # --- streaming API ----------------------------------------------------
    def init_state(self, batch: int = 1) -> list[State]:
        dev = self.readout.weight.device
        return [c.init_state(batch, dev) for c in self.cells]

    def step(self, x_t: torch.Tensor, state: list[State], dt: torch.Tensor | float = 1.0
             ) -> tuple[torch.Tensor, list[State], list[torch.Tensor]]:
        """x_t (B, D) -> top-layer output y (B, N), new states, per-layer winner masks."""
        new, masks, inp = [], [], x_t
        for cell, s in zip(self.cells, state):
            inp, s, m = cell.step(inp, s, dt)
            new.append(s)
            masks.append(m)
        return inp, new, masks

    # --- whole sequence ---------------------------------------------------
    def forward(self, x: torch.Tensor, dt: torch.Tensor | float | None = None,
                return_activity: bool = False):
        """x (B, T, D); dt None (=1.0), a float, or (B, T) elapsed times -> logits (B, C)."""
        B, T, _ = x.shape
        state = self.init_state(B)
        acc = torch.zeros(B, self.cfg.n_neurons, device=x.device)
        wins = [torch.zeros(self.cfg.n_neurons, device=x.device) for _ in self.cells]
        active = [torch.zeros(T) for _ in self.cells]
        fired = [torch.zeros(self.cfg.n_neurons, dtype=torch.bool, device=x.device) for _ in self.cells]
        for t in range(T):
            dt_t = 1.0 if dt is None else (dt[:, t] if isinstance(dt, torch.Tensor) else dt)
            y, state, masks = self.step(x[:, t], state, dt_t)
            acc = acc + y
            for i, (m, s) in enumerate(zip(masks, state)):
                wins[i] += m.float().sum(0)
                nz = s[1].detach() != 0
                active[i][t] = nz.float().mean()
                fired[i] |= nz.any(0)
        if self.training:
            for cell, w in zip(self.cells, wins):
                cell.update_boost(w / (B * T))
        logits = self.readout(acc / T)
        if return_activity:
            return logits, Activity(active, fired)
        return logits

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model by name; unknown names fail listing the known ones.

    task "classify" -> SLN; task "lm" -> sln.lm.SLNLM (per-step next-character readout).
    """
    cfg = get_config(name, **overrides)
    if cfg.task == "lm":
        from .lm import SLNLM
        return SLNLM(cfg)
    return SLN(cfg)


def images_to_sequence(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """uint8 images (B, H, W) -> float (B, H*W/input_size, input_size) in [0, 1].

    Pixels are divided by 255 with no mean shift, so the background stays exactly zero and
    acts as "no event" for the event-driven engine.
    """
    B = images.shape[0]
    n = images[0].numel()
    if n % input_size:
        raise ValueError(f"input_size {input_size} must divide the image size {n}")
    return images.reshape(B, n // input_size, input_size).float().div_(255.0)

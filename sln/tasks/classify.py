"""Evaluation of an SLN classifier (images, time series): accuracy and what fired, in one place."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..model import SLN

# one evaluation batch: x (B, T, D), dt None / float / (B, T), lengths None / (B,), labels (B,)
EvalBatch = tuple[torch.Tensor, "torch.Tensor | float | None", "torch.Tensor | None", torch.Tensor]


@torch.no_grad()
def evaluate_classifier(model: SLN, batches: Iterable[EvalBatch]) -> dict[str, Any]:
    """-> accuracy; active_fraction[l]: share of layer l's neurons with a nonzero output per valid
    (sample, step); dead_fraction[l]: share that never fired on the whole set."""
    model.eval()
    correct, n = 0, 0
    active: list[float] = [0.0] * model.cfg.n_layers
    fired = [torch.zeros(model.cfg.n_neurons, dtype=torch.bool) for _ in range(model.cfg.n_layers)]
    for x, dt, lengths, y in batches:
        logits, act = model(x, dt, lengths, return_activity=True)
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
        for i in range(model.cfg.n_layers):
            active[i] += act.mean[i].item() * len(y)     # float64 sums, as before the split
            fired[i] |= act.fired[i].cpu()
    if n == 0:
        raise ValueError("empty evaluation set; check --limit-test")
    return {"accuracy": correct / n, "active_fraction": [a / n for a in active],
            "dead_fraction": [1.0 - f.float().mean().item() for f in fired]}


def describe(ev: dict[str, Any]) -> str:
    """One log line: test accuracy, active share per step and never-fired share per layer."""
    return (f"test acc {100 * ev['accuracy']:.2f}%  active/step "
            + " ".join(f"L{i}={100 * a:.2f}%" for i, a in enumerate(ev["active_fraction"]))
            + "  never fired " + " ".join(f"L{i}={100 * d:.1f}%" for i, d in enumerate(ev["dead_fraction"])))

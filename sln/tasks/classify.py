"""Evaluation of an SLN classifier (images, time series): accuracy and what fired, in one place."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..device import model_device, to_device
from ..model import SLN

# one evaluation batch: x (B, T, D), dt None / float / (B, T), lengths None / (B,), labels (B,)
EvalBatch = tuple[torch.Tensor, "torch.Tensor | float | None", "torch.Tensor | None", torch.Tensor]


@torch.no_grad()
def evaluate_classifier(model: SLN, batches: Iterable[EvalBatch]) -> dict[str, Any]:
    """-> accuracy; active_fraction[l]: share of layer l's neurons with a nonzero output per valid
    (sample, step); dead_fraction[l]: share that never fired on the whole set."""
    model.eval()
    dev = model_device(model)
    L = model.cfg.n_layers
    # sums stay on the model's device (float64, as the host sums were): one host sync at the end
    correct, n = torch.zeros((), dtype=torch.long, device=dev), 0
    active = torch.zeros(L, dtype=torch.float64, device=dev)
    fired = torch.zeros(L, model.cfg.n_neurons, dtype=torch.bool, device=dev)
    for x, dt, lengths, y in batches:
        x, dt, lengths, y = to_device((x, dt, lengths, y), dev)
        logits, act = model(x, dt, lengths, return_activity=True)
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
        active += torch.stack(act.mean).double() * len(y)
        fired |= torch.stack(act.fired)
    if n == 0:
        raise ValueError("empty evaluation set; check --limit-test")
    return {"accuracy": int(correct) / n, "active_fraction": (active / n).tolist(),
            "dead_fraction": (1.0 - fired.float().mean(1).double()).tolist()}


def describe(ev: dict[str, Any]) -> str:
    """One log line: test accuracy, active share per step and never-fired share per layer."""
    return (f"test acc {100 * ev['accuracy']:.2f}%  active/step "
            + " ".join(f"L{i}={100 * a:.2f}%" for i, a in enumerate(ev["active_fraction"]))
            + "  never fired " + " ".join(f"L{i}={100 * d:.1f}%" for i, d in enumerate(ev["dead_fraction"])))

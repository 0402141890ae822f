"""How much of the per-neuron work could follow activity? (issue 9, §2: "the dense per-neuron work")

    .venv/bin/python scripts/touched_share.py RUN_DIR [RUN_DIR ...] [--images 1000] [--json OUT]

For a trained one-layer MNIST classifier (run folder with checkpoint.safetensors) and the first --images
test images under the model's own input coding, each cell step's pre-activation a = W_in x + W_rec y_prev + b
(2N rows: the candidate half u and the rate half v) is split into the rows that receive at least one
event, i.e. a stored (nonzero) weight in a column of a nonzero input or of a previous winner, and the rows
left at their bias. A neuron i is "quiet" in a step when neither u_i nor v_i receives an event.

Why it matters: with a normalisation that did not couple all N neurons, a quiet neuron's candidate and
decay rate would be constants, so its state could be advanced lazily in closed form and the step's
per-neuron work (requantisation, normalisation, gate, update) would follow the touched neurons only. The
quiet share is the upper bound on what that model change could save of the per-neuron work; with today's
LayerNorm over all N it saves nothing (every candidate depends on every accumulator).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sln.checkpoint import load_checkpoint
from sln.data import load_split
from sln.model import SLN, encode_images


@torch.no_grad()
def touched_share(model: SLN, images: torch.Tensor) -> dict[str, object]:
    """uint8 images (n, H, W) -> per step t: the mean share of neurons touched by an event (u or v row) and
    of pre-activation rows touched, over the images; also the events and winners per step."""
    if len(model.cells) != 1 or model.cfg.task != "classify":
        raise ValueError("touched_share.py measures one-layer image classifiers")
    model.eval()
    cell = model.cells[0]
    N = cell.n_neurons
    nz_in = (cell.w_in.weight != 0).float()          # (2N, D): stored entries of each input column
    nz_rec = (cell.w_rec.weight != 0).float()        # (2N, N)
    x = encode_images(images, model.cfg)             # (n, T, D)
    n, T, _ = x.shape
    state = model.init_state(n)
    y_prev = torch.zeros(n, N)
    neurons, rows, events, winners = [], [], [], []
    for t in range(T):
        ev = (x[:, t] != 0).float()                  # (n, D) input events of this step
        hit = (ev @ nz_in.t() + (y_prev != 0).float() @ nz_rec.t()) > 0      # (n, 2N) rows with an event
        neurons.append((hit[:, :N] | hit[:, N:]).float().mean().item())
        rows.append(hit.float().mean().item())
        events.append(ev.sum(1).mean().item())
        winners.append((y_prev != 0).float().sum(1).mean().item())
        y, state, _ = model.step(x[:, t], state)
        y_prev = y
    return {"steps": T, "neurons_touched": neurons, "rows_touched": rows, "events": events,
            "previous_winners": winners, "neurons_touched_mean": sum(neurons) / T,
            "quiet_neuron_share_mean": 1.0 - sum(neurons) / T, "images": n,
            "density_in": float(nz_in.mean()), "density_rec": float(nz_rec.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="touched_share.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders holding checkpoint.safetensors")
    p.add_argument("--images", type=int, default=1000, help="first N MNIST test images (default 1000)")
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    xte, _ = load_split("mnist", "test", limit=a.images)
    rows = []
    for run in a.runs:
        model, _ = load_checkpoint(run / "checkpoint.safetensors")
        r = {"run": run.name, "model": model.cfg.name, **touched_share(model, torch.from_numpy(xte.copy()))}
        rows.append(r)
        per = "  ".join(f"t{t}: {100 * s:.1f}%" for t, s in enumerate(r["neurons_touched"]))
        print(f"{run.name}: density in {r['density_in']:.3f} rec {r['density_rec']:.3f}; neurons touched per step "
              f"{per}; quiet share (mean over steps) {100 * r['quiet_neuron_share_mean']:.2f}%")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

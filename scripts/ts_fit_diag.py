"""Does sln-ts-small fit a set's training split? One run per variant (config overrides), a fixed number of
epochs (no time budget, so the load of a shared machine does not change what is trained), seed 0, 1 thread.
Prints and appends one JSON line per variant: test accuracy, the regular training split's loss and accuracy
in eval mode, steps, training seconds (docs/SEQUENCES.md, "Why the long sets did not fit").

    python scripts/ts_fit_diag.py arrowhead 50 '{"before": {"series_norm": "global"}, "dense": \
        {"series_norm": "global", "active_frac": 1.0, "boost_beta": 0.0}}' runs/ts_fit_diag.jsonl
    python scripts/ts_fit_diag.py --grad arrowhead 50 '{}' runs/ts_fit_diag.jsonl   # + gradient flow
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sln.bench.ts_sln import train_split_fit  # noqa: E402
from sln.config import get_config  # noqa: E402
from sln.model import SLN  # noqa: E402
from sln.sequence_tasks import SeriesTask, prepare_ts, ts_spec  # noqa: E402
from sln.timeseries import TSSplits, load_ts_dataset  # noqa: E402
from sln.train import RunOptions, fit  # noqa: E402


def grad_flow(model: SLN, data: TSSplits) -> list[float]:
    """|dL/dx_t| over the first 32 training series (train mode) at t = 0, T/4, T/2, 3T/4, T-1."""
    model.train()
    x = data.x_train[:32].clone().requires_grad_(True)
    F.cross_entropy(model(x, None, data.len_train[:32]), data.y_train[:32]).backward()
    model.zero_grad()
    g = x.grad.norm(dim=(0, 2))
    T = len(g)
    return [float(g[int(T * f)]) for f in (0, 0.25, 0.5, 0.75)] + [float(g[-1])]


def run(ds: str, epochs: int, overrides: dict, grad: bool) -> dict:
    cfg, data, patch = prepare_ts(get_config("sln-ts-small", seed=0, epochs=epochs, **overrides), load_ts_dataset(ds))
    torch.manual_seed(0)
    model = SLN(cfg)
    rec: dict = {"grad_init": grad_flow(model, data)} if grad else {}
    task = SeriesTask(data, cfg.batch_size, 0, cfg.train_drop, eval_each_epoch=False)
    res = fit(model, task, ts_spec(cfg.lr, cfg.weight_decay, cfg.epochs, task.steps_per_epoch),
              RunOptions(dataset=ds, out=None, progress=False, threads=1, device="cpu"))
    if grad:
        rec["grad_trained"] = grad_flow(model, data)
    return {"test": res.final["accuracy"], "active": res.final["active_fraction"][0], "steps": res.steps,
            "train_s": res.train_seconds, "patch": patch, **train_split_fit(model, data), **rec}


def main(argv: list[str]) -> int:
    grad = "--grad" in argv
    argv = [a for a in argv if a != "--grad"]
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    ds, epochs, variants, out = argv[0], int(argv[1]), json.loads(argv[2]) or {"recipe": {}}, Path(argv[3])
    torch.set_num_threads(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, ov in variants.items():
        t0 = time.perf_counter()
        rec = {"set": ds, "variant": name, "overrides": ov, "epochs": epochs, **run(ds, epochs, ov, grad),
               "wall_s": time.perf_counter() - t0}
        print(json.dumps(rec), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

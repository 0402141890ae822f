"""`sln plot RUN_DIR`: the training curves of a run folder drawn to RUN_DIR/curves.png.

Reads RUN_DIR/curves.csv (written beside metrics.json by sln.train.write_metrics) or, for a run
written before curves.csv existed, the history list of RUN_DIR/metrics.json. One panel per curve
(epoch on x): train loss, test accuracy, active / dead share per layer, seconds per epoch. The
per-layer columns of one quantity (active_fraction_l0, _l1, ...) share a panel.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from .tasks.loop import curve_columns

__all__ = ["main", "read_curves"]


def read_curves(run: Path) -> dict[str, list[float]]:
    """column -> values (NaN where an epoch lacks it), from curves.csv or metrics.json's history."""
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder {run}")
    path = run / "curves.csv"
    if path.is_file():
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        cols = list(rows[0]) if rows else []
    else:
        mpath = run / "metrics.json"
        if not mpath.is_file():
            raise FileNotFoundError(f"{run} holds neither curves.csv nor metrics.json; "
                                    "give the --out folder of a training run")
        hist = json.loads(mpath.read_text()).get("history") or []
        cols = curve_columns(hist)
        rows = []
        for h in hist:
            flat = {}
            for k, v in h.items():
                flat.update({f"{k}_l{i}": x for i, x in enumerate(v)} if isinstance(v, list) else {k: v})
            rows.append(flat)
    if not rows:
        raise ValueError(f"{run} has no evaluated epoch to draw (the run ended before its first)")

    def num(v: object) -> float:
        return float("nan") if v in (None, "") else float(v)  # type: ignore[arg-type]

    return {c: [num(r.get(c)) for r in rows] for c in cols}


def _panels(cols: list[str]) -> dict[str, list[str]]:
    """panel title -> its columns: the per-layer columns k_l0, k_l1, ... of one k go together."""
    out: dict[str, list[str]] = {}
    for c in cols:
        if c == "epoch":
            continue
        base, _, layer = c.rpartition("_l")
        key = base if base and layer.isdigit() else c
        out.setdefault(key, []).append(c)
    return out


def plot(run: Path, dest: Path | None = None) -> Path:
    """Draw the curves of run to dest (default run/curves.png); returns the path written."""
    import matplotlib
    matplotlib.use("Agg")            # no display needed (a server, CI)
    import matplotlib.pyplot as plt

    curves = read_curves(run)
    panels = _panels(list(curves))
    epochs = curves["epoch"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6, 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, cols) in zip(axes[:, 0], panels.items()):
        for c in cols:
            ax.plot(epochs, curves[c], marker="o", label=c[len(title) + 1:] if c != title else None)
        ax.set_title(title.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
        if len(cols) > 1:
            ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("epoch")
    fig.suptitle(str(run), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (2.2 * len(panels))))   # room for the suptitle (0.4 in)
    dest = dest or run / "curves.png"
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sln plot", description="draw a run's training curves to RUN_DIR/curves.png")
    p.add_argument("run_dir", type=Path, help="the --out folder of a training run (holds curves.csv)")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default RUN_DIR/curves.png)")
    args = p.parse_args(argv)
    print(f"wrote {plot(args.run_dir, args.out)}")
    return 0

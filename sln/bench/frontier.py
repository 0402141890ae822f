"""Sparse-sparse SLNs against a benchmark JSON's int8 baselines, and the accuracy / energy frontier
(issue 9, docs/SPARSITY.md).

    python -m sln.bench.frontier --bench bench/mnist.json --run runs/sln-wide-s10 --run runs/sln-wide-mcu \\
        [--baseline-json runs/lenet5.json] --json bench/mnist_sparse.json --markdown bench/mnist_sparse.md \\
        --plot bench/mnist_frontier.png
    python -m sln.bench.frontier --replot bench/mnist_sparse.json --plot bench/mnist_frontier.png

* Each --run's checkpoint gets its int8 row from `sln.bench.int8.evaluate_sln_int8`, the function
  `benchmark.py --compare-energy` calls (quantised on the first 2000 training images, the integer model
  on the test images), priced with the bench JSON's energy profile.
* The bench JSON's int8 baseline rows (ViT; CNN rows where the JSON has them, or from --baseline-json:
  a `scripts/cnn_vs_published.py` output) are used as stored, after a check that today's code re-counts
  every ViT int8 row from its architecture and re-prices it to the stored energy (relative 1e-9):
  a changed accounting refuses to mix instead of comparing unlike figures.
* Equal-accuracy comparisons are `sln.bench.compare.compare` (the benchmark's two methods), against
  the ViTs and, separately, the CNNs; the plot puts every int8 row on one accuracy / energy axis.
--replot redraws the PNG from a JSON this module wrote (nothing is re-measured).
--merge PRIOR.json keeps a JSON this module wrote: its measured SLN rows (those not measured again
  now) and its baseline rows not in the bench JSON or --baseline-json (e.g. a CNN row whose source JSON
  is gone) are carried as stored; the comparisons are recomputed over all rows.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .compare import compare, headline_comparison

Row = dict[str, Any]
BASE_FAMILIES = ("vit", "cnn")
REL_TOL = 1e-9


def point_label(cfg: Any) -> str:
    """'N1024 k30 d.10/.02' (+ ' pool2', ' thr64', ' 2 steps' when a 28 x 28 image is not the default 4 cell
    steps; dense matrices: 'dense'): the frontier's axes of variation."""
    if cfg.density_in >= 1.0 and cfg.density_rec >= 1.0:
        dens = "dense"
    else:
        dens = f"d{cfg.density_in:.2f}/{cfg.density_rec:.2f}".replace("0.", ".")
    coding = (f" pool{cfg.input_pool}" if cfg.input_pool != 1 else "") + (
        f" thr{cfg.input_threshold}" if cfg.input_threshold else "")
    steps = (28 // cfg.input_pool) ** 2 / cfg.input_size
    coding += f" {steps:g} steps" if steps != 4 else ""
    return f"N{cfg.n_neurons} k{cfg.k} {dens}{coding}"


def _cfg_fields(cfg: Any) -> dict[str, Any]:
    return {"n_neurons": cfg.n_neurons, "k": cfg.k, "density_in": cfg.density_in, "density_rec": cfg.density_rec,
            "input_pool": cfg.input_pool, "input_threshold": cfg.input_threshold, "label": point_label(cfg)}


def check_baselines(doc: dict[str, Any], rel: float = REL_TOL) -> list[str]:
    """Re-count each ViT int8 row of a benchmark JSON from its architecture with today's code
    (sln.bench.sensitivity's recount, the stored effective MACs) and re-price it with the JSON's
    profile -> one 'name: stored -> recomputed uJ: ok' line per row; ValueError on a mismatch."""
    from . import sensitivity as S

    prof = doc["energy_profile"]["name"]
    v = S.Variant("as-stored", "the JSON's own profile, today's code", prof)
    ctx = S._context({**doc, "models": [r for r in doc["models"] if r["family"] == "vit"]})
    lines = []
    for r in doc.get("int8", {}).get("models", []):
        if r["family"] != "vit":
            continue
        got = S.reprice_row(r, "int8", v, ctx)["energy_uJ"]
        if abs(got - r["energy_uJ"]) > rel * abs(r["energy_uJ"]):
            raise ValueError(f"{r['name']}: the stored int8 energy {r['energy_uJ']:.6f} uJ is {got:.6f} uJ with "
                             "today's code: the accounting changed, re-run benchmark.py --compare-energy instead of "
                             "comparing against this JSON")
        lines.append(f"{r['name']}: {r['energy_uJ']:.6f} -> {got:.6f} uJ: ok")
    if not lines:
        raise ValueError("the bench JSON has no int8 ViT rows: run benchmark.py --compare-energy without --no-int8")
    return lines


def baseline_rows(doc: dict[str, Any], extra: list[dict[str, Any]]) -> list[Row]:
    """int8 ViT / CNN rows of the bench JSON, plus the int8 row of each extra JSON
    (cnn_vs_published.py's {"int8": row} or a benchmark JSON's int8 section)."""
    rows = [r for r in doc.get("int8", {}).get("models", []) if r["family"] in BASE_FAMILIES]
    for e in extra:
        more = e["int8"]["models"] if "models" in e.get("int8", {}) else [e["int8"]]
        rows += [r for r in more if r["family"] in BASE_FAMILIES and r["name"] not in {x["name"] for x in rows}]
    return rows


def published_sln_rows(doc: dict[str, Any]) -> list[Row]:
    """The bench JSON's int8 SLN rows, labelled from their registered configs."""
    from ..config import get_config

    out = []
    for r in doc.get("int8", {}).get("models", []):
        if r["family"] in ("sln", "sln-dense"):
            out.append({**r, "config": _cfg_fields(get_config(r["name"])), "origin": "bench JSON"})
    return out


def comparisons(slns: list[Row], bases: list[Row]) -> list[Row]:
    """compare() of every SLN row against each baseline family on its own (ratio = baseline / SLN)."""
    out = []
    for fam in BASE_FAMILIES:
        fam_rows = [b for b in bases if b["family"] == fam]
        for s in slns if fam_rows else []:
            out += [{**c, "baseline_family": fam} for c in compare(s, fam_rows)]
    return out


def headline(comps: list[Row], name: str, family: str) -> Row | None:
    """The comparison quoted for `name` against `family` (interpolated inside the range, else smallest-matching)."""
    return headline_comparison([c for c in comps if c["baseline_family"] == family], name)


def measure_runs(runs: list[Path], xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray, profile_name: str,
                 calib: int = 2000) -> list[Row]:
    """int8 row of each run folder's checkpoint by the benchmark's evaluate_sln_int8."""
    from ..checkpoint import load_checkpoint
    from ..energy import get_profile
    from .int8 import evaluate_sln_int8

    prof = get_profile(profile_name)
    rows = []
    for run in runs:
        model, state = load_checkpoint(run / "checkpoint.safetensors")
        model.eval()
        t0 = time.perf_counter()
        print(f"{run}: int8 row of {model.cfg.name} on {len(xte)} test images ...", flush=True)
        # the row is named by its run folder: one config trained for different epochs gives two points
        row = evaluate_sln_int8(run.name, "sln", model, xtr, xte, yte, prof, str(run), calib)
        row.update({"model": model.cfg.name, "epochs_trained": state.get("epoch"), "config": _cfg_fields(model.cfg),
                    "origin": f"measured here ({run.name})"})
        print(f"  int8 accuracy {100 * row['accuracy']:.2f} %, {row['energy_uJ']:.3f} uJ "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append(row)
    return rows


def _ratio(c: Row | None) -> str:
    if not c or c["energy_ratio"] is None:
        return "–"
    r = c["energy_ratio"]
    return f"{r:.3f} ({c['method']}, {c['baseline']})" + ("" if r >= 1 else f", SLN {1 / r:.1f}x higher")


def markdown(res: dict[str, Any]) -> str:
    """The int8 rows and their ViT / CNN ratios as one Markdown table."""
    lines = [f"int8 vs int8, profile `{res['energy_profile']}`; baselines from `{res['bench']}` "
             f"({res['bench_date']}); ratio = baseline / SLN (above 1: the SLN is cheaper).", "",
             "| model | point | int8 acc | est. energy (µJ) | weights / vectors / int32 ops (µJ) | vs ViT | vs CNN |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["sln"] + res["baselines"]:
        b = r.get("energy_breakdown_uJ", {})
        parts = " / ".join(f"{b[k]:.3f}" if k in b else "–" for k in ("weight_mem", "param_mem", "int32_ops"))
        lab = r.get("config", {}).get("label", r["family"]) + (f", {r['epochs_trained']} ep" if r.get("epochs_trained")
                                                                 else "")
        vit = _ratio(headline(res["comparisons"], r["name"], "vit")) if "config" in r else ""
        cnn = _ratio(headline(res["comparisons"], r["name"], "cnn")) if "config" in r else ""
        lines.append(f"| {r['name']} | {lab} | {100 * r['accuracy']:.2f}% (n={r['test_images']:,}) | "
                     f"{r['energy_uJ']:.3f} | {parts} | {vit} | {cnn} |")
    return "\n".join(lines) + "\n"


FRONTIER_STYLE = {"sln": ("tab:blue", "o"), "sln-sparse": ("tab:red", "s"), "vit": ("tab:green", "^"),
                  "cnn": ("tab:purple", "D")}


def plot_frontier(res: dict[str, Any], out_png: Path, target_acc: float | None = 0.985) -> None:
    """Accuracy against estimated int8 energy (log x): dense and sparse SLNs labelled by (N, k, density,
    coding), ViTs and CNNs on the same axes, each baseline family joined along its sizes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Row]] = {}
    for r in res["sln"] + res["baselines"]:
        cfg = r.get("config")
        fam = r["family"] if not cfg else ("sln" if cfg["label"].endswith("dense") else "sln-sparse")
        groups.setdefault(fam, []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.6), dpi=90)
    for fam, pts in groups.items():
        col, mk = FRONTIER_STYLE.get(fam, ("black", "x"))
        pts = sorted(pts, key=lambda r: r["energy_uJ"])
        ax.plot([r["energy_uJ"] for r in pts], [100 * r["accuracy"] for r in pts],
                mk + ("-" if fam in BASE_FAMILIES else ""), color=col,
                label={"sln": "SLN, dense weights", "sln-sparse": "SLN, learned sparse weights"}.get(fam, fam))
        for r in pts:
            text = r["name"] + (f"\n{r['config']['label']}" if r.get("config") else "")
            ax.annotate(text, (r["energy_uJ"], 100 * r["accuracy"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    if target_acc:
        ax.axhline(100 * target_acc, color="grey", ls=":", lw=1, label=f"{100 * target_acc:.1f} % target")
    ax.set_xscale("log")
    ax.set_xlabel(f"estimated energy per inference, int8 (µJ, {res['energy_profile']})")
    ax.set_ylabel("int8 test accuracy (%)")
    ax.set_title(f"{res['dataset']}: int8 accuracy vs estimated int8 energy", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)


def merge_prior(prior: dict[str, Any], measured: list[Row], bases: list[Row]) -> tuple[list[Row], list[Row]]:
    """Rows of a JSON this module wrote to keep: its measured SLN rows whose names are not in `measured`
    (they come first, in their stored order), and its baseline rows whose names are not in `bases`."""
    if "sln" not in prior or "baselines" not in prior:
        raise ValueError("--merge expects a JSON written by sln.bench.frontier (keys 'sln' and 'baselines')")
    now = {r["name"] for r in measured}
    keep = [r for r in prior["sln"] if str(r.get("origin", "")).startswith("measured here") and r["name"] not in now]
    have = {r["name"] for r in bases}
    return keep, [r for r in prior["baselines"] if r["name"] not in have]


def build(doc: dict[str, Any], bench_path: str, measured: list[Row], extra: list[dict[str, Any]],
          prior: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result document: checks, SLN rows (published + [prior measured] + measured), baseline rows
    ([+ prior ones]), comparisons."""
    checks = check_baselines(doc)
    bases = baseline_rows(doc, extra)
    kept: list[Row] = []
    if prior is not None:
        kept, more = merge_prior(prior, measured, bases)
        bases = bases + more
    slns = published_sln_rows(doc) + kept + measured
    return {"bench": bench_path, "bench_date": doc.get("date"), "bench_command": doc.get("command"),
            "dataset": doc["dataset"], "energy_profile": doc["energy_profile"]["name"], "baseline_checks": checks,
            "sln": slns, "baselines": bases, "comparisons": comparisons(slns, bases)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.bench.frontier", description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, default=Path("bench/mnist.json"), help="benchmark JSON (int8 baselines)")
    p.add_argument("--run", type=Path, action="append", default=[], help="run folder with checkpoint.safetensors")
    p.add_argument("--baseline-json", type=Path, action="append", default=[],
                   help="more int8 baseline rows (scripts/cnn_vs_published.py output)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--replot", type=Path, default=None, help="only redraw --plot from this module's JSON")
    p.add_argument("--merge", type=Path, default=None,
                   help="keep the measured SLN and extra baseline rows of this module's earlier JSON")
    p.add_argument("--int8-calib", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.replot:
        res = json.loads(a.replot.read_text())
    else:
        import torch

        from ..data import load_split

        torch.set_num_threads(a.threads)
        doc = json.loads(a.bench.read_text())
        extra = [json.loads(f.read_text()) for f in a.baseline_json]
        measured: list[Row] = []
        if a.run:
            xtr, _ = load_split(doc["dataset"], "train", limit=a.int8_calib)
            xte, yte = load_split(doc["dataset"], "test")
            measured = measure_runs(a.run, xtr, xte, yte, doc["energy_profile"]["name"], a.int8_calib)
        prior = json.loads(a.merge.read_text()) if a.merge else None
        res = build(doc, str(a.bench), measured, extra, prior)
        if a.merge:
            res["merged_from"] = {"json": str(a.merge), "command": prior.get("command"), "date": prior.get("date")}
        res.update({"command": "python -m sln.bench.frontier " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        for line in res["baseline_checks"]:
            print("baseline re-priced by today's code:", line)
    md = markdown(res)
    print(md)
    if a.json and not a.replot:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
    if a.markdown:
        a.markdown.write_text(md)
    if a.plot:
        plot_frontier(res, a.plot)
        print("wrote", a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

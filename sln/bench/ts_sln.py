"""`benchmark.py --task ts-sln`: the SLN's default time-series recipe (`sln-ts-small`) on every classification
set of the sktime 1.2.0 wheel, several seeds, a wall-clock training budget per run, beside the baselines
of `benchmark.py --task ts-baselines` (bench/ts_baselines.json).

Each run: the named config unchanged except seed and `time_budget_s` (the cosine learning rate and the k
annealing then follow the budget's clock), test accuracy after the last step, the training split's loss
and accuracy (regular sampling, eval mode: does the recipe fit?), the active share per step, and, where
the test set is small enough (--dropped-max-steps), the dropped-step accuracies with and without dt.
Results are written after every run (JSON; Markdown with --markdown), so a stopped grid keeps what finished.

`--ts-budget 0 --ts-train-cli` runs each cell as the user would: the `train.py --dataset SET --model MODEL --seed S
--threads T --no-progress` command itself in a subprocess (its default epochs, min_steps, per-epoch evaluation
and the dropped-step evaluation at the end), its wall time measured from outside (`wall_seconds`, what
issue 14's 15-minute target is about); the row is then read from its run folder (metrics.json + checkpoint).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint
from ..config import get_config
from ..model import SLN
from ..sequence_tasks import SeriesTask, irregular_eval_sln, prepare_ts, ts_spec
from ..timeseries import DATASETS, TSSplits, load_ts_dataset
from ..train import CKPT, RunOptions, fit
from ..ts_transformer import train_transformer_baseline
from .measure import cpu_name


def add_ts_sln_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--ts-model", default="sln-ts-small", help="named time-series config (default sln-ts-small)")
    g.add_argument("--ts-budget", type=float, default=90.0, help="training seconds per run (0: the config's epochs)")
    g.add_argument("--ts-seeds", default="0,1,2", help="comma-separated seeds")
    g.add_argument("--ts-sets", default=",".join(DATASETS), help="comma-separated sets (default: all nine)")
    g.add_argument("--dropped-max-steps", type=float, default=2e5,
                   help="dropped-step evaluation only where test series x steps <= this (20 test passes)")
    g.add_argument("--transformer-sets", default="", help="also train the transformer baseline (seed 0, 60 "
                   "epochs, the --ts-model's series_norm) on these sets and evaluate it on the same dropped steps")
    g.add_argument("--total-budget", type=float, default=0.0, help="start no new run after this many seconds")
    g.add_argument("--ts-train-cli", action="store_true", help="run each cell as the train.py command (with "
                   "--ts-budget 0: the default recipe as a user runs it), wall time measured outside")
    g.add_argument("--ts-runs-dir", type=Path, default=Path("runs/ts_train_cli"),
                   help="--ts-train-cli: where the runs' folders go (SET-sSEED)")
    g.add_argument("--baselines", type=Path, default=Path("bench/ts_baselines.json"))
    g.add_argument("--ts-merge", default="", help="comma-separated ts-sln JSON files (e.g. two halves of the grid "
                   "run side by side): merge their sets into --json / --markdown, train nothing")


@torch.no_grad()
def train_split_fit(model: SLN, data: TSSplits) -> dict[str, float]:
    """Cross-entropy and accuracy on the regular training split, eval mode (the inference k)."""
    model.eval()
    logits = model(data.x_train, None, data.len_train)
    return {"train_loss": float(F.cross_entropy(logits, data.y_train)),
            "train_accuracy": float((logits.argmax(1) == data.y_train).float().mean())}


def run_sln(name: str, model_name: str, seed: int, budget: float, dropped_max: float = 0.0,
            threads: int = 1, **overrides: Any) -> dict[str, Any]:
    """One training run of the named config (plus config overrides) on one set -> one row cell's figures."""
    t0 = time.perf_counter()
    cfg = get_config(model_name, seed=seed, **({"time_budget_s": budget} if budget > 0 else {}), **overrides)
    cfg, data, patch = prepare_ts(cfg, load_ts_dataset(name))
    torch.manual_seed(seed)
    model = SLN(cfg)
    task = SeriesTask(data, cfg.batch_size, seed, cfg.train_drop, eval_each_epoch=False)
    spec = ts_spec(cfg.lr, cfg.weight_decay, cfg.epochs, task.steps_per_epoch, cfg.time_budget_s)
    res = fit(model, task, spec, RunOptions(dataset=name, out=None, progress=False, threads=threads, device="cpu"))
    row: dict[str, Any] = {"seed": seed, "accuracy": res.final["accuracy"],
                           "active_fraction": res.final["active_fraction"][0], "k": cfg.k,
                           "n_neurons": cfg.n_neurons, "steps": res.steps, "epochs": res.steps / task.steps_per_epoch,
                           "train_seconds": res.train_seconds, "samples_per_step": patch,
                           "seconds_per_epoch": statistics.mean(res.epoch_seconds) if res.epoch_seconds else None,
                           **train_split_fit(model, data)}
    if dropped_max > 0 and len(data.x_test) * data.x_test.shape[1] <= dropped_max:
        row["irregular"] = {k: {"with_dt": v["with_dt"], "without_dt": v["without_dt"]}
                            for k, v in irregular_eval_sln(model, data).items()}
    row["wall_seconds"] = time.perf_counter() - t0
    return row


def run_train_cli(name: str, model_name: str, seed: int, out: Path, threads: int = 1) -> dict[str, Any]:
    """One cell as `python train.py --dataset NAME --model MODEL --seed SEED` (its defaults) -> the row run_sln
    writes, from the run folder; wall_seconds is the subprocess's whole life (data loading, training, every
    evaluation)."""
    cmd = [sys.executable, str(Path(__file__).resolve().parents[2] / "train.py"), "--dataset", name, "--model",
           model_name, "--seed", str(seed), "--threads", str(threads), "--no-progress", "--out", str(out)]
    print("$ " + " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"train.py failed on {name} seed {seed} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return {**row_from_run(out, name), "wall_seconds": wall,
            "command": " ".join(["python", "train.py"] + cmd[2:-2])}


def row_from_run(out: Path, name: str) -> dict[str, Any]:
    """A train.py time-series run folder (metrics.json + checkpoint) -> run_sln's row (without wall_seconds);
    the training-split fit is recomputed from the checkpoint on the whole named set's training split."""
    m = json.loads((out / "metrics.json").read_text())
    model, _ = load_checkpoint(out / CKPT)
    cfg, data, _ = prepare_ts(model.cfg, load_ts_dataset(name))        # the data exactly as the run coded it
    if cfg.input_size != model.cfg.input_size:
        raise RuntimeError(f"{out}: its checkpoint reads {model.cfg.input_size} inputs, the re-coded data gives "
                           f"{cfg.input_size}")
    return {"seed": m["seed"], "accuracy": m["test_accuracy"], "active_fraction": m["active_fraction"][0],
            "k": m["k"], "n_neurons": m["n_neurons"], "steps": m["steps"], "epochs": m["epochs"],
            "train_seconds": m["train_seconds"], "samples_per_step": m["samples_per_step"],
            "seconds_per_epoch": m["seconds_per_epoch"], "evaluations": len(m["history"]),
            **train_split_fit(model, data), "irregular": {k: {"with_dt": v["with_dt"], "without_dt": v["without_dt"]}
                                                         for k, v in m["irregular"].items()}}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """mean / population sd of accuracy (and of the dropped-step accuracies) over a set's runs."""
    def ms(v: list[float]) -> dict[str, float]:
        return {"mean": statistics.mean(v), "sd": statistics.pstdev(v) if len(v) > 1 else 0.0}

    out: dict[str, Any] = {"n": len(runs), "accuracy": ms([r["accuracy"] for r in runs]),
                           "train_loss": ms([r["train_loss"] for r in runs]),
                           "active_fraction_max": max(r["active_fraction"] for r in runs)}
    irr = [r["irregular"] for r in runs if "irregular" in r]
    if irr:
        out["irregular"] = {d: {w: ms([i[d][w] for i in irr]) for w in ("with_dt", "without_dt")} for d in irr[0]}
    return out


def _pm(s: dict[str, float] | None) -> str:
    return "—" if s is None else f"{100 * s['mean']:.2f} ± {100 * s['sd']:.2f}"


def markdown(doc: dict[str, Any]) -> str:
    base = {r["set"]: r for r in doc.get("baselines", [])}
    # runs of --ts-train-cli carry their measured wall time: a column for the 15-minute target
    walls = any("command" in r for s in doc["sets"] for r in s["runs"])
    lines = ["| set | SLN (mean ± sd) | runs | train loss | majority | 1-NN ED | 1-NN DTW | MiniRocket |"
             + (" train.py wall time, s (min–max) |" if walls else ""), "|" + "---|" * (9 if walls else 8)]
    def pct(b: dict[str, Any], k: str) -> str:
        return "—" if b.get(k) is None else f"{100 * b[k]:.2f}"

    for s in doc["sets"]:
        summ, b = s.get("summary"), base.get(s["set"], {})
        lines.append(f"| {s['set']} | {_pm(summ['accuracy']) if summ else 'not run'} | {summ['n'] if summ else 0} | "
                     f"{summ['train_loss']['mean']:.3f} | " if summ else f"| {s['set']} | not run | 0 | — | ")
        lines[-1] += f"{pct(b, 'majority')} | {pct(b, 'euclidean')} | {pct(b, 'dtw')} | {pct(b, 'minirocket')} |"
        if walls:
            w = [r["wall_seconds"] for r in s["runs"] if "command" in r]     # train.py runs only, not run_sln's
            lines[-1] += f" {min(w):.0f}–{max(w):.0f} |" if w else " — |"
    irr = [s for s in doc["sets"] if s.get("summary") and "irregular" in s["summary"]]
    if irr:
        lines += ["", "| set | drop | SLN with dt | SLN without dt | transformer, true times | "
                  "transformer, re-indexed |", "|" + "---|" * 6]
        for s in irr:
            tr = doc.get("transformer", {}).get(s["name"], {}).get("irregular", {})
            for d, v in s["summary"]["irregular"].items():
                t = tr.get(d, {})
                tt = f"{100 * t['with_dt']:.2f}" if t else "—"
                tn = f"{100 * t['without_dt']:.2f}" if t else "—"
                lines.append(f"| {s['set']} | {d[4:]} % | {_pm(v['with_dt'])} | {_pm(v['without_dt'])} | {tt} | {tn} |")
    return "\n".join(lines) + "\n"


def merge(paths: list[Path]) -> dict[str, Any]:
    """Several ts-sln result files -> one (the first file's header; the sets in the order of
    sln.timeseries.DATASETS, whichever file they came from, others after them in first-seen order). A set
    in several files (e.g. seed 0 in one, seeds 1-2 in another) gets all their runs, its summary recomputed;
    the same (set, seed) twice is refused."""
    docs = [json.loads(p.read_text()) for p in paths]
    sets: dict[str, dict[str, Any]] = {}
    for path, d in zip(paths, docs):
        for s in d["sets"]:
            if s["name"] not in sets:
                sets[s["name"]] = {**s, "runs": list(s["runs"])}
                continue
            have = {r.get("seed") for r in sets[s["name"]]["runs"]}
            twice = sorted(have & {r.get("seed") for r in s["runs"]} - {None})
            if twice:
                raise ValueError(f"--ts-merge: {s['name']} seed {twice[0]} is in {path} and in an earlier file; "
                                 "merge files with different seeds")
            sets[s["name"]]["runs"] += s["runs"]
    for s in sets.values():
        s["runs"].sort(key=lambda r: r.get("seed", 0))
        if s["runs"]:
            s["summary"] = summarise(s["runs"])
    order = {name: i for i, name in enumerate(DATASETS)}
    ordered = sorted(sets.values(), key=lambda s: order.get(s["name"], len(order)))   # stable: others keep theirs
    out = {**docs[0], "sets": ordered, "merged_from": [str(p) for p in paths],
           "transformer": {k: v for d in docs for k, v in d.get("transformer", {}).items()}}
    stops = [d["stopped"] for d in docs if d.get("stopped")]
    if stops:
        out["stopped"] = "; ".join(stops)
    return out


def run_ts_sln(args: argparse.Namespace) -> int:
    out = args.json or Path("bench") / "ts_sln.json"
    if args.ts_merge:
        doc = merge([Path(p) for p in args.ts_merge.split(",") if p])
        out.write_text(json.dumps(doc, indent=2))
        if args.markdown:
            args.markdown.write_text(markdown(doc))
        print(markdown(doc))
        return 0
    sets = [s for s in args.ts_sets.split(",") if s]
    bad = [s for s in sets if s not in DATASETS]
    if bad:
        raise ValueError(f"unknown set {bad[0]!r}; known: {', '.join(DATASETS)}")
    seeds = [int(s) for s in args.ts_seeds.split(",") if s]
    if args.ts_train_cli and args.ts_budget:
        raise ValueError("--ts-train-cli runs the train.py command with its default epochs: use it with --ts-budget 0")
    tsets = [s for s in args.transformer_sets.split(",") if s]
    threads = args.train_threads or 1
    torch.set_num_threads(threads)
    baselines = json.loads(args.baselines.read_text())["rows"] if args.baselines.is_file() else []
    doc: dict[str, Any] = {"task": "ts-sln", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="minutes"),
                           "model": args.ts_model, "config": get_config(args.ts_model).to_dict(),
                           "budget_s": args.ts_budget, "seeds": seeds, "threads": threads,
                           "machine": {"cpu": cpu_name(), "cores": os.cpu_count() or 1,
                                       "python": platform.python_version(), "torch": torch.__version__},
                           "sets": [{"set": DATASETS[s][0], "name": s, "runs": []} for s in sets],
                           "baselines": baselines}
    t_start = time.monotonic()

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2))
        if args.markdown:
            args.markdown.write_text(markdown(doc))

    # seed-major: after the first pass every set has one run, whatever stops the grid
    for seed in seeds:
        for entry in doc["sets"]:
            if args.total_budget and time.monotonic() - t_start > args.total_budget:
                doc["stopped"] = f"total budget {args.total_budget:.0f} s reached before seed {seed} of {entry['name']}"
                save()
                print(doc["stopped"], flush=True)
                return 0
            if args.ts_train_cli:
                args.ts_runs_dir.mkdir(parents=True, exist_ok=True)
                r = run_train_cli(entry["name"], args.ts_model, seed, args.ts_runs_dir / f"{entry['name']}-s{seed}",
                                  threads)
            else:
                r = run_sln(entry["name"], args.ts_model, seed, args.ts_budget, args.dropped_max_steps, threads)
            entry["runs"].append(r)
            entry["summary"] = summarise(entry["runs"])
            print(f"{entry['set']} seed {seed}: test {100 * r['accuracy']:.2f} %  train loss {r['train_loss']:.3f}"
                  f"  active {100 * r['active_fraction']:.2f} %  {r['epochs']:.1f} epochs in {r['train_seconds']:.0f} s"
                  f"  (wall {r['wall_seconds']:.0f} s)", flush=True)
            save()
    doc["transformer"] = {}
    for name in tsets:     # the dense baseline of the dropped-step comparison (seed 0, its 60 epochs)
        if args.total_budget and time.monotonic() - t_start > args.total_budget:
            doc["stopped"] = f"total budget {args.total_budget:.0f} s reached before the transformer on {name}"
            break
        # the same input scaling as the SLN's recipe (series_norm), one token per sample (no patches)
        t = train_transformer_baseline(name, progress=False, threads=threads, device="cpu",
                                       series_norm=get_config(args.ts_model).series_norm)
        res = {k: t[k] for k in ("test_accuracy", "params", "seconds_per_epoch", "train_seconds", "series_norm")}
        res["irregular"] = {d: {w: v[w] for w in ("with_dt", "without_dt")} for d, v in t["irregular"].items()}
        doc["transformer"][name] = res
        print(f"transformer {name}: test {100 * t['test_accuracy']:.2f} %  "
              + "  ".join(f"{d}: {100 * v['with_dt']:.2f} / {100 * v['without_dt']:.2f}" for d, v in
                          res["irregular"].items()), flush=True)
        save()
    print(markdown(doc))
    print(f"wrote {out}")
    return 0

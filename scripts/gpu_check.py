#!/usr/bin/env python3
"""The prepared GPU check of issue 13: one short run (at most --budget-s, default 470 s) on a CUDA machine.

What it measures, in this order (each case in its own subprocess with a time limit, so a slow compile or
a crash is recorded in the JSON and the rest still runs; cases that no longer fit the budget are
recorded as skipped):
  1. step time on CUDA, eager, for sln-small (N=512), sln-base (N=1024) and sln-2048 (sln-base's recipe
     at N=2048): --warmup steps, then --steps timed steps at batch 128 on real MNIST; seconds per epoch
     = seconds per step x 469 (the steps of one 60,000-image epoch) -- labelled "extrapolated";
  2. the same step on this machine's CPU with 2 threads (the project's reference machine has 2 cores)
     for --cpu-steps steps;
  3. one real epoch through the trainer (sln.train.train, full MNIST, evaluation on the test set) of
     sln-small on CUDA and on the CPU (2 threads), same seed: measured seconds per epoch and the test
     accuracies, "equal" when they differ by at most --acc-tol percentage points (float summation order
     differs between devices, so k-WTA ties and then the trajectories may part: seed-noise-sized);
  4. one real epoch of sln-base on CUDA through the trainer (the issue's target: >= 10x the 2-core CPU);
  5. the step captured whole in a CUDA graph (forward, backward, clipping, capturable AdamW; replayed),
     torch.compile (default mode) and torch.compile(mode="reduce-overhead") (its CUDA graphs), per model.
The reference CPU figures of the project's machine (docs/RESULTS.md, Timing: idle 2-core AMD EPYC, 2
threads, 2026-11-28) are copied into the JSON for the ratio; the same-machine CPU figures of (2) are the
other ratio. Nothing here is an estimate except the "extrapolated" per-epoch figures, which say so.

Run (a session whose task is lent a GPU; nothing can be fetched there, so MNIST travels with the tree):
    mkdir -p runs/gpu_data && cp -r ~/.cache/sln/mnist runs/gpu_data/        # here, once: 11 MB of .gz
    device run: command "PYTHONUNBUFFERED=1 PYTHONPATH=. python3 scripts/gpu_check.py --data-dir runs/gpu_data"
                carry ["runs/gpu_data"], timeout_s 560
It writes $OUT/gpu_check.json (else --out) and prints it. Without CUDA it stops at once with exit code 3,
one line on stderr and {"ok": false, "error": ...} in the JSON: nothing is measured. `--cpu-smoke` runs the
eager and trainer cases on the CPU with tiny sizes (a test of the script itself, not a measurement).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = math.ceil(60_000 / 128)
MODELS = ("sln-small", "sln-base", "sln-2048")
VARIANTS = ("graph", "compile", "compile-reduce-overhead")
# docs/RESULTS.md "Timing": full MNIST epoch, idle 2-core AMD EPYC, 2 threads, 2026-11-28 16:58 UTC
REFERENCE_CPU_S_PER_EPOCH = {"sln-small": 11.5, "sln-base": 30.7}
REFERENCE_NOTE = ("docs/RESULTS.md Timing table: `python train.py --dataset mnist --model M --epochs 1 --threads 2`, "
                  "idle 2-core AMD EPYC, 2026-11-28; no figure there for N=2048")


def model_config(name: str, **kw: Any) -> Any:
    from sln.config import get_config
    if name == "sln-2048":
        return get_config("sln-base", n_neurons=2048, **kw).replace(name="sln-2048")
    return get_config(name, **kw)


# --- the cases (run in a child process) -------------------------------------------------------------

def case_steps(model: str, variant: str, device: str, steps: int, warmup: int, threads: int,
               data_dir: str | None, limit: int | None) -> dict[str, Any]:
    """Time `steps` training steps (after `warmup`) of the image task at batch 128: eager, a whole-step CUDA
    graph, or torch.compile -> seconds per step, the per-epoch extrapolation, the last loss."""
    import torch

    from sln.data import load_split
    from sln.model import SLN
    from sln.tasks.images import ImageTask
    torch.set_num_threads(threads)
    dev = torch.device(device)
    cfg = model_config(model)
    xtr, ytr = load_split("mnist", "train", Path(data_dir) if data_dir else None, limit)
    xte, yte = load_split("mnist", "test", Path(data_dir) if data_dir else None, 100)
    torch.manual_seed(cfg.seed)
    net = SLN(cfg).to(dev).train()
    task = ImageTask.for_sln(cfg, xtr, ytr, xte, yte)
    task.to(dev)
    graph = variant == "graph"
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, capturable=graph)
    if steps + warmup >= task.steps_per_epoch:
        raise ValueError(f"--steps + --warmup must stay inside one epoch ({task.steps_per_epoch} steps)")

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if variant in ("eager", "graph"):
        loss_of = lambda x, y: task.loss(net, (x, y))[0]          # noqa: E731
    elif variant == "compile":
        loss_of = torch.compile(lambda x, y: task.loss(net, (x, y))[0])
    elif variant == "compile-reduce-overhead":
        loss_of = torch.compile(lambda x, y: task.loss(net, (x, y))[0], mode="reduce-overhead")
    else:
        raise ValueError(f"unknown variant {variant}")

    def body(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

    t0 = time.perf_counter()
    if graph:
        if dev.type != "cuda":
            raise ValueError("the CUDA-graph variant needs a CUDA device")
        sx, sy = (t.clone() for t in task.get_batch(0))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):                      # warm-up on a side stream, as torch's docs do
            for i in range(3):
                opt.zero_grad(set_to_none=True)
                x, y = task.get_batch(i)
                sx.copy_(x)
                sy.copy_(y)
                body(sx, sy)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(g):
            static_loss = body(sx, sy)

        def step(i: int) -> torch.Tensor:
            x, y = task.get_batch(i)                       # on the device: shift augmentation included
            sx.copy_(x)
            sy.copy_(y)
            g.replay()
            return static_loss
    else:
        def step(i: int) -> torch.Tensor:
            x, y = task.get_batch(i)
            opt.zero_grad(set_to_none=True)
            return body(x, y)
    for i in range(warmup):
        step(i)
    sync()
    t1 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(i)
    sync()
    per_step = (time.perf_counter() - t1) / steps
    return {"model": model, "variant": variant, "device": device, "threads": threads, "n_neurons": cfg.n_neurons,
            "k": cfg.k, "batch_size": cfg.batch_size, "warmup_steps": warmup, "timed_steps": steps,
            "warmup_seconds": round(t1 - t0, 3), "seconds_per_step": per_step,
            "seconds_per_epoch_extrapolated": per_step * STEPS_PER_EPOCH, "last_loss": float(loss)}


def case_epoch(model: str, device: str, threads: int, data_dir: str | None, limit: int | None,
               limit_test: int | None) -> dict[str, Any]:
    """One real epoch through the image trainer (sln.train.train): measured seconds per epoch, accuracy."""
    from sln.device import resolve_device
    from sln.train import RunOptions, train
    resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        m = train(model_config(model, epochs=1), RunOptions(dataset="mnist", out=Path(tmp), data_dir=Path(data_dir)
                  if data_dir else None, progress=False, threads=threads, device=device, limit_train=limit,
                  limit_test=limit_test))
    return {"model": model, "device": device, "threads": threads, "epochs": 1,
            "train_images": m["train_images"], "test_images": m["test_images"],
            "seconds_per_epoch": m["seconds_per_epoch"], "test_accuracy": m["test_accuracy"]}


def run_case(argv: list[str]) -> int:
    """Child: --case KIND:ARGS... -> one line 'RESULT <json>' on stdout."""
    spec = json.loads(argv[0])
    kind = spec.pop("kind")
    res = case_steps(**spec) if kind == "steps" else case_epoch(**spec)
    print("RESULT " + json.dumps({"kind": kind, **res}), flush=True)
    return 0


# --- the orchestration -------------------------------------------------------------------------------

def _child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(spec.get("threads", 1))}
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, __file__, "--case", json.dumps(spec)], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {**spec, "status": f"timed out after {timeout:.0f} s (not measured)"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        return {**spec, "status": f"failed (exit {p.returncode})", "stderr_tail": p.stderr[-1500:]}
    return {**json.loads(lines[-1][len("RESULT "):]), "status": "ok", "wall_s": round(time.monotonic() - t0, 1)}


def _environment() -> dict[str, Any]:
    import torch
    env: dict[str, Any] = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
                           "python": platform.python_version(), "machine": platform.machine(),
                           "cpu_count": os.cpu_count(),
                           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_count"] = torch.cuda.device_count()
    return env


def _ratios(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU / GPU seconds per epoch, per model and variant, against both CPU references."""
    ok = [c for c in cases if c.get("status") == "ok"]
    cpu_here = {c["model"]: c["seconds_per_epoch_extrapolated"] for c in ok
                if c.get("variant") == "eager" and c.get("device") == "cpu"}
    out: dict[str, Any] = {}
    for c in ok:
        if c.get("device") != "cuda":
            continue
        gpu = c.get("seconds_per_epoch_extrapolated", c.get("seconds_per_epoch"))
        key = f"{c['model']}/{c.get('variant', 'trainer-epoch')}"
        ref = REFERENCE_CPU_S_PER_EPOCH.get(c["model"])
        out[key] = {"gpu_s_per_epoch": gpu,
                    "speedup_vs_project_2core_cpu": None if ref is None else ref / gpu,
                    "speedup_vs_this_machine_cpu_2_threads": (cpu_here[c["model"]] / gpu
                                                             if c["model"] in cpu_here else None)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/gpu_check.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_check")))
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default $SLN_DATA or ~/.cache/sln)")
    p.add_argument("--budget-s", type=float, default=470.0, help="the whole check's wall-clock limit")
    p.add_argument("--steps", type=int, default=100, help="timed steps per case")
    p.add_argument("--warmup", type=int, default=15, help="untimed steps before (compiles, captures)")
    p.add_argument("--cpu-steps", type=int, default=8)
    p.add_argument("--acc-tol", type=float, default=0.5, help="percentage points: CPU vs CUDA accuracy 'equal'")
    p.add_argument("--cpu-smoke", action="store_true", help="test the script on the CPU (tiny, measures nothing)")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.case is not None:
        return run_case([a.case])
    import torch
    a.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"script": "scripts/gpu_check.py", "environment": _environment(),
                              "reference_cpu_s_per_epoch": REFERENCE_CPU_S_PER_EPOCH, "reference_note": REFERENCE_NOTE}
    if not a.cpu_smoke and not torch.cuda.is_available():
        why = (f"no CUDA device visible to torch {torch.__version__} (built with CUDA {torch.version.cuda}); "
               "this check measures GPU figures only, nothing was measured")
        report.update(ok=False, error=why)
        (a.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        print(f"gpu_check: {why}", file=sys.stderr)
        return 3
    gpu = "cpu" if a.cpu_smoke else "cuda"
    limit, limit_test = (600, 200) if a.cpu_smoke else (None, None)
    steps, warmup, cpu_steps = (2, 1, 2) if a.cpu_smoke else (a.steps, a.warmup, a.cpu_steps)
    models = ("sln-small",) if a.cpu_smoke else MODELS
    cpu_threads = 1 if a.cpu_smoke else 2        # the smoke test shares this project's 1-thread rule
    common = {"data_dir": a.data_dir, "limit": limit}
    plan: list[tuple[dict[str, Any], float]] = []          # (case, its own time cap in seconds)
    plan += [({"kind": "steps", "model": m, "variant": "eager", "device": gpu, "steps": steps, "warmup": warmup,
               "threads": 1, **common}, 90) for m in models]
    plan += [({"kind": "steps", "model": m, "variant": "eager", "device": "cpu", "steps": cpu_steps, "warmup": 1,
               "threads": cpu_threads, **common}, 60) for m in models]
    plan += [({"kind": "epoch", "model": "sln-small", "device": d, "threads": t, "limit_test": limit_test, **common},
              120) for d, t in ((gpu, 1), ("cpu", cpu_threads))]
    if not a.cpu_smoke:
        plan.append(({"kind": "epoch", "model": "sln-base", "device": "cuda", "threads": 1, "limit_test": None,
                      **common}, 90))
        plan += [({"kind": "steps", "model": m, "variant": v, "device": "cuda", "steps": steps, "warmup": warmup,
                   "threads": 1, **common}, 120) for v in VARIANTS for m in MODELS]
    deadline = time.monotonic() + a.budget_s
    cases = []
    for spec, cap in plan:
        left = deadline - time.monotonic() - 5
        if left < 20:
            cases.append({**spec, "status": "skipped: the check's time budget was spent (not measured)"})
            continue
        res = _child(spec, min(cap, left))
        cases.append(res)
        print(json.dumps({k: res.get(k) for k in ("kind", "model", "variant", "device", "status",
                                                   "seconds_per_step", "seconds_per_epoch", "test_accuracy")}),
              flush=True)
    acc = {c["device"]: c["test_accuracy"] for c in cases
           if c.get("kind") == "epoch" and c.get("model") == "sln-small" and c.get("status") == "ok"}
    if len(acc) == 2 or (a.cpu_smoke and "cpu" in acc):
        diff = 100 * abs(acc.get(gpu, acc["cpu"]) - acc["cpu"])
        report["accuracy_check"] = {"sln-small 1 epoch test accuracy": acc, "difference_pp": diff,
                                    "tolerance_pp": a.acc_tol, "equal": diff <= a.acc_tol}
    else:
        report["accuracy_check"] = {"status": "not measured (a trainer case failed or was skipped)"}
    report.update(ok=all(c.get("status") == "ok" for c in cases), cases=cases, speedups=_ratios(cases),
                  cpu_smoke=a.cpu_smoke)
    (a.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["speedups"], indent=2))
    print(json.dumps(report["accuracy_check"]))
    print(f"wrote {a.out / 'gpu_check.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The one training loop of the project (public face: sln.train, which re-exports it).

It sits on the tasks' floor (it imports only config and checkpoint) so that the benchmark's
baselines (sln/baselines.py, same floor) train through it without importing upwards.

Every trainer (images, time series and their transformer baseline, the character LM and its
GPT baseline, the benchmark's ViT/CfC/dense baselines) builds a model and a *task* and calls
`fit`. A task (nanoGPT style: one loop fed by a batch function) supplies

    steps_per_epoch: int             optimizer steps in one pass over its training data
    eval_each_epoch: bool            evaluate + checkpoint after epochs (else at the end): every epoch,
                                     or every ceil(epochs / eval_points)-th (and the last) on long runs
    get_batch(step) -> batch         the batch of global step `step` (epoch = step // steps_per_epoch)
    loss(model, batch) -> (loss, stats)   scalar loss to minimise, detached 0-d tensors to display
    evaluate(model) -> dict          held-out metrics (called in eval mode)
    describe(ev) -> str              one line for the log (optional)
    before_step(model, progress) -> None  called before each step with the share of training done
                                     (steps / total, or elapsed / budget; optional): k annealing
    after_step(model, step) -> None  called after each optimizer step, before any checkpoint of
                                     that step (optional; None = no hook): the weight-pruning
                                     schedule of sparse SLNs (sln/prune.py)

and `fit` runs AdamW with gradient clipping, stops after `epochs`, `max_steps` or a wall-clock
`time_budget_s` (training time only: evaluation and checkpoints do not count), writes an atomic
checkpoint (model, Adam moments, history) and resumes from it.

Determinism: a task draws the batches of epoch e from its own generator seeded with
(seed, e) and the learning rate is a pure function of progress (`lr_at`), so `--resume` from
the checkpoint of epoch e continues exactly as an uninterrupted run would (epoch runs; a
time-budgeted run resumes with the time it had left, which is not bit-reproducible anyway).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn
from tqdm import tqdm

from ..checkpoint import load_checkpoint, load_optimizer_state, read_checkpoint, save_checkpoint
from ..config import SLNConfig
from ..device import agree, all_reduce_sum_, init_distributed, is_main, resolve_device, shard, to_device

CKPT = "checkpoint.safetensors"
REFRESH_S = 0.5          # progress-bar postfix refresh: the only host sync of the running stats
LINE_EVERY_S = 30.0      # off a terminal the bar is a log line, at most one per 30 s (bar_kwargs)


@dataclass
class RunOptions:
    dataset: str = "mnist"
    out: Path | None = Path("runs/default")   # None: write nothing (the benchmark's baselines cache themselves)
    data_dir: Path | None = None
    resume: bool = False
    limit_train: int | None = None   # use the first n training examples (tests, smoke runs)
    limit_test: int | None = None
    progress: bool = True
    stop_after_epoch: int | None = None  # end this run early (simulates an interruption; tests)
    threads: int | None = None           # torch intra-op threads (default: $SLN_THREADS, else all cores)
    device: str = "auto"                 # auto (CUDA when present) | cpu | cuda | cuda:N (sln/device.py)
    eval_points: int | None = None       # --eval-points: overrides TrainSpec.eval_points (0: every epoch)


@dataclass
class TrainSpec:
    """Optimizer, schedule and stopping rule of one run (the model's config supplies the values)."""
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = 1
    time_budget_s: float = 0.0        # > 0: train for this many seconds (epochs then ignored)
    max_steps: int | None = None      # stop after this many steps (instead of epochs)
    warmup_steps: int = 100           # step runs: linear warm-up, capped at a tenth of the run
    warmup_frac: float = 0.02         # time budgets: warm-up over this share of the budget
    floor: float = 0.0                # cosine decays to floor * lr
    clip: float = 1.0                 # gradient-norm clipping
    checkpoint_every_s: float = 120.0  # runs without per-epoch checkpoints: save this often
    # eval_each_epoch tasks: at most about this many held-out evaluations per run besides the last (0: after
    # every epoch). A small time-series set trains 500-750 tiny epochs (min_steps); evaluating its test split
    # after each took 578 of ArrowHead's 845 s of wall time (docs/SEQUENCES.md). Epoch runs evaluate every
    # ceil(epochs / eval_points)-th epoch and the last; budget runs when budget / eval_points seconds of
    # training have passed since the last evaluation. Runs of <= eval_points epochs evaluate every epoch.
    eval_points: int = 25

    @classmethod
    def from_config(cls, cfg: SLNConfig, **kw: Any) -> TrainSpec:
        return cls(lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, time_budget_s=cfg.time_budget_s,
                   **kw)


class Task(Protocol):
    steps_per_epoch: int
    eval_each_epoch: bool

    def get_batch(self, step: int) -> Any: ...

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def evaluate(self, model: nn.Module) -> dict[str, Any]: ...


@dataclass
class FitResult:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: list[dict[str, Any]]        # one entry per evaluated epoch (eval_each_epoch tasks)
    final: dict[str, Any]                # the task's evaluation after the last step
    steps: int
    train_seconds: float                 # training time (without evaluation), incl. before a resume
    epoch_seconds: list[float] = field(default_factory=list)   # per completed epoch, this run
    running: dict[str, float] = field(default_factory=dict)    # last running averages (loss, ...)
    threads: int = 1
    device: str = "cpu"                  # where it trained (the model is left there)
    world_size: int = 1                  # processes under torchrun (1: a plain run)


def lr_at(pos: float, total: float, base: float, warmup: float = 100, floor: float = 0.0,
          tick: float = 1.0) -> float:
    """The one learning-rate schedule: linear warm-up over `warmup`, then cosine from base down to
    floor * base at `total`. pos, total and warmup share a unit: steps (pos = index of the step
    about to run) or a fraction of a time budget (total = 1). `tick` is one unit of progress
    (a step; 1e-3 of a budget): step 0 trains at base * tick / warmup, not at 0.

    Step runs (fit): warmup = min(warmup_steps, total // 10), floor 0 (images, time series, ViT, CfC).
    Budget runs (fit): lr_at(elapsed / budget, 1, base, warmup_frac, floor, tick=1e-3).
    """
    if pos < warmup:
        return base * (pos + tick) / warmup
    c = 1 + math.cos(math.pi * min(1.0, (pos - warmup) / max(tick, total - warmup)))
    return floor * base + (1 - floor) * 0.5 * base * c


def resolve_threads(threads: int | None, default: int | None = None) -> int:
    """--threads, else $SLN_THREADS, else $OMP_NUM_THREADS (what users set for every torch program), else
    `default` (every core when None)."""
    if threads:
        return threads
    for var in ("SLN_THREADS", "OMP_NUM_THREADS"):
        env = os.environ.get(var, "").strip()
        if env:
            if not env.isdigit() or int(env) < 1:
                raise ValueError(f"${var} must be a positive whole number of threads, got {env!r}")
            return int(env)
    return default or os.cpu_count() or 1


def write_metrics(out: Path, metrics: dict[str, Any]) -> None:
    """Atomic metrics.json (a reader never sees half a file); under torchrun only rank 0 writes."""
    if not is_main():
        return
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
    if isinstance(metrics.get("history"), list) and metrics["history"]:
        write_curves(out, metrics["history"])


def curve_columns(history: list[dict[str, Any]]) -> list[str]:
    """epoch, train_loss, then every other number the entries hold; a per-layer list `k` becomes
    k_l0, k_l1, ... (first-seen order, so the columns follow the history, not a fixed schema)."""
    cols: list[str] = ["epoch", "train_loss"]
    for h in history:
        for k, v in h.items():
            names = ([f"{k}_l{i}" for i in range(len(v))] if isinstance(v, list)
                     else [k] if isinstance(v, (int, float)) and not isinstance(v, bool) else [])
            cols += [n for n in names if n not in cols]
    return cols


def write_curves(out: Path, history: list[dict[str, Any]]) -> None:
    """curves.csv beside metrics.json: one row per evaluated epoch of the loop's history (atomic)."""
    cols = curve_columns(history)
    rows = [",".join(cols)]
    for h in history:
        flat: dict[str, Any] = {}
        for k, v in h.items():
            if isinstance(v, list):
                flat.update({f"{k}_l{i}": x for i, x in enumerate(v)})
            else:
                flat[k] = v
        rows.append(",".join("" if flat.get(c) is None else repr(flat[c]) if isinstance(flat[c], float)
                             else str(flat[c]) for c in cols))
    tmp = out / "curves.csv.tmp"
    tmp.write_text("\n".join(rows) + "\n")
    os.replace(tmp, out / "curves.csv")


def resume_config(cfg: SLNConfig, opts: RunOptions) -> SLNConfig:
    """--resume: the checkpoint's config wins over the flags' (a resumed run must be the same run)."""
    if not opts.resume:
        return cfg
    ckpt = _ckpt_path(opts)
    meta, _ = read_checkpoint(ckpt)
    if meta.get("kind", "sln") != "sln":
        raise ValueError(f"--resume: {ckpt} holds a {meta['kind']!r} model, not an SLN")
    saved = SLNConfig.from_dict(json.loads(meta["config"]))
    if saved.to_dict() != cfg.to_dict():
        print(f"note: resuming with the checkpoint's config ({ckpt}), not the flags'")
    return saved


def _ckpt_path(opts: RunOptions) -> Path:
    if opts.out is None:
        raise ValueError("--resume needs a run folder (--out DIR) holding checkpoint.safetensors")
    ckpt = Path(opts.out) / CKPT
    if not ckpt.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}; start the run without --resume first")
    return ckpt


def _restore(opts: RunOptions, model: nn.Module, opt: torch.optim.Optimizer, spe: int
             ) -> tuple[int, list[dict[str, Any]], float]:
    """Load weights + Adam moments into model/opt -> (steps done, history, training seconds spent)."""
    ckpt = _ckpt_path(opts)
    kind = getattr(model, "kind", "sln")
    loaded, state = load_checkpoint(ckpt, builders={kind: lambda _cfg: model})
    if getattr(loaded, "kind", "sln") != kind:
        raise ValueError(f"--resume: {ckpt} holds a {getattr(loaded, 'kind', 'sln')!r} model, this run trains {kind!r}")
    if loaded is not model:
        model.load_state_dict(loaded.state_dict())
    load_optimizer_state(ckpt, opt)
    step = int(state.get("step", state.get("epoch", 0) * spe))   # older checkpoints stored epochs only
    print(f"resuming {ckpt} after step {step} (epoch {step / spe:.2f})")
    return step, list(state.get("history", [])), float(state.get("train_seconds", 0.0))


def fit(model: nn.Module, task: Task, spec: TrainSpec, opts: RunOptions,
        train_state: dict[str, Any] | None = None) -> FitResult:
    """Train `model` on `task` (see the module docstring); train_state is stored in every checkpoint."""
    threads = resolve_threads(opts.threads)
    torch.set_num_threads(threads)
    dev = resolve_device(opts.device)
    rank, world = init_distributed(dev)      # under torchrun: join its process group (else rank 0 of 1)
    if world > 1 and not getattr(task, "distributed", True):
        raise ValueError(f"{type(task).__name__} cannot train under torchrun (its loss does not go through the "
                         "model's forward, which DistributedDataParallel needs); run it in one process")
    main = rank == 0                         # only rank 0 writes checkpoints and logs
    out = None if opts.out is None else Path(opts.out)
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)
    spe = task.steps_per_epoch
    if spe < 1:
        raise ValueError("the task has no training batch; use more training data or a smaller --batch-size")
    after_step = getattr(task, "after_step", None)
    before_step = getattr(task, "before_step", None)   # optional: before_step(model, progress in [0, 1])
    cfg = getattr(model, "cfg", None)
    if after_step is None and isinstance(cfg, SLNConfig) and min(cfg.density_in, cfg.density_rec) < 1.0:
        # a sparse config trained without the schedule would silently come out dense
        raise ValueError("density_in/density_rec < 1 need a trainer that runs the pruning schedule "
                         "(image datasets); this one does not")
    model.to(dev)
    to = getattr(task, "to", None)           # optional: a task that keeps its data on the device
    if to is not None:
        to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, betas=spec.betas)
    step, history, spent = (0, [], 0.0) if not opts.resume else _restore(opts, model, opt, spe)
    # torchrun: DDP averages the gradients; the boosts agree through sln.device.win_rates (buffers are
    # copied from rank 0 once, not before every forward: each rank computes the same from the all-reduced wins)
    net = model if world == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None, forward_sync_buffers=False)
    step0 = step
    budget = spec.time_budget_s
    total = spec.max_steps if spec.max_steps is not None else (None if budget else spe * spec.epochs)
    warm = min(spec.warmup_steps, total // 10) if total is not None else 0
    if opts.resume and ((budget and spent >= budget) or (total is not None and step >= total)):
        print("note: the checkpoint's run is already complete: its stored config's epochs / time budget win over "
              "the flags (a resumed run is the same run, so its schedule cannot change); nothing is trained, the "
              "resumed model is re-evaluated. To train longer, start a new run (another --out)")

    def save() -> None:
        if out is not None and main:
            save_checkpoint(out / CKPT, model, opt, {**(train_state or {}), "step": step, "epoch": step // spe,
                                                    "history": history, "train_seconds": clock(),
                                                    "world_size": world})

    t_start = time.monotonic() - spent       # training clock; evaluation time is added back to t_start

    def clock() -> float:
        return time.monotonic() - t_start

    # a budget run under torchrun follows rank 0's clock: every rank stops at the same step, same lr
    run_clock = clock if world == 1 or not budget else (lambda: agree(clock()))
    el = 0.0
    bar = None
    ema: dict[str, torch.Tensor] = {}
    loss_sum, n_epoch, epoch_t0 = torch.zeros((), device=dev), 0, time.monotonic()
    epoch_seconds: list[float] = []
    last_save = last_show = time.monotonic()
    model.train()
    if opts.eval_points is not None:
        spec = dataclasses.replace(spec, eval_points=opts.eval_points)
    every = eval_stride(spec, spe)
    last_eval = clock()                      # training seconds at the last evaluation (budget runs)
    while not ((budget and (el := run_clock()) >= budget) or (total is not None and step >= total)):
        b = step % spe
        if bar is None or (b == 0 and not budget and spec.max_steps is None):
            if bar is not None:
                bar.close()
            bar = _bar(opts.progress and main, step, spe, spec, budget, total)
        if b == 0 or n_epoch == 0:
            ema, loss_sum, n_epoch, epoch_t0 = {}, torch.zeros((), device=dev), 0, time.monotonic()
        lr = (lr_at(el / budget, 1.0, spec.lr, spec.warmup_frac, spec.floor, tick=1e-3) if budget
              else lr_at(step, total, spec.lr, warm, spec.floor))
        for grp in opt.param_groups:
            grp["lr"] = lr
        if before_step is not None:   # share of training done, as the lr schedule counts it
            before_step(model, el / budget if budget else step / total)
        batch = to_device(task.get_batch(step), dev)       # a no-op for a task whose data is on dev
        share = 1.0
        if world > 1:
            batch, share = shard(batch, rank, world)        # this rank's part of the global batch
        loss, stats = task.loss(net, batch)
        opt.zero_grad(set_to_none=True)
        # DDP averages over ranks; weighting by the local share makes that the global batch's mean
        (loss * (share * world) if world > 1 else loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
        opt.step()
        step += 1
        if after_step is not None:
            after_step(model, step)
        # running averages stay tensors: no host sync per step, only at a bar refresh
        stats = {"loss": loss.detach(), **stats}
        ema = dict(stats) if not ema else {k: 0.9 * ema[k] + 0.1 * v for k, v in stats.items()}
        loss_sum, n_epoch = loss_sum + loss.detach(), n_epoch + 1
        if budget:   # update(), not refresh(): a forced redraw per step would defeat line mode's interval
            bar.update(max(0, min(int(clock()), int(budget)) - bar.n))
        else:
            bar.update(1)
        if opts.progress and main and time.monotonic() - last_show > REFRESH_S:
            bar.set_postfix({k: f"{v.item():.3f}" for k, v in ema.items()}, refresh=False)
            last_show = time.monotonic()
        if step % spe == 0:                                    # an epoch ended
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)                    # the epoch's time includes its queued kernels
            epoch_seconds.append(time.monotonic() - epoch_t0)
            stopping = opts.stop_after_epoch is not None and step // spe >= opts.stop_after_epoch
            due = (stopping or (total is not None and step >= total)
                   or (clock() - last_eval >= budget / spec.eval_points if budget and spec.eval_points
                       else (step // spe) % every == 0))
            if task.eval_each_epoch and due:
                t_eval = time.monotonic()
                ev = task.evaluate(model)                      # every rank: the same model, the same figures
                model.train()
                train_loss = all_reduce_sum_(loss_sum / n_epoch) / world      # the ranks' mean
                history.append({"epoch": step // spe, "train_loss": train_loss.item(),
                                "seconds": epoch_seconds[-1], **ev})
                of = "" if budget or spec.max_steps is not None else f"/{spec.epochs}"
                if main:
                    _log(task, f"epoch {step // spe}{of}", ev, epoch_seconds[-1])
                save()
                last_save = time.monotonic()
                t_start += last_save - t_eval
                last_eval = clock()
                if stopping:
                    break
            elif stopping:
                break                                          # evaluated and saved after the loop
        if out is not None and (not task.eval_each_epoch or step % spe == 0) \
                and time.monotonic() - last_save > spec.checkpoint_every_s:
            save()                                            # periodic, atomic
            last_save = time.monotonic()
    if bar is not None:
        bar.close()
    train_s = clock()
    if step == step0 and opts.resume:
        # nothing trained in this run: evaluate what was resumed, never re-report the stored figures
        # (a checkpoint edited or damaged after its last evaluation would otherwise keep its old score)
        final = task.evaluate(model)
        _log(task, f"resumed checkpoint after {step} steps (re-evaluated)", final, None)
    elif history and history[-1]["epoch"] * spe == step:
        final = {k: v for k, v in history[-1].items() if k not in ("epoch", "train_loss", "seconds")}
    else:
        final = task.evaluate(model)
        save()
        if task.eval_each_epoch:
            _log(task, f"after {step} steps", final, None)
    model.eval()
    return FitResult(model, opt, history, final, step, train_s, epoch_seconds,
                     {k: v.item() for k, v in ema.items()}, threads, str(dev), world)


def eval_stride(spec: TrainSpec, spe: int) -> int:
    """Epochs between held-out evaluations of an epoch (or max_steps) run: 1 up to spec.eval_points epochs,
    else ceil(epochs / eval_points) (the last epoch is always evaluated). Budget runs evaluate by time."""
    epochs = spec.epochs if spec.max_steps is None else math.ceil(spec.max_steps / spe)
    return 1 if spec.eval_points <= 0 or spec.time_budget_s else max(1, math.ceil(epochs / spec.eval_points))


def _bar(progress: bool, step: int, spe: int, spec: TrainSpec, budget: float, total: int | None) -> tqdm:
    """Budget: one bar in seconds; max_steps: one bar in steps; epochs: one bar per epoch in steps."""
    kw = bar_kwargs(progress)
    if budget:
        return tqdm(total=int(budget), unit="s", desc="train", **kw)
    if spec.max_steps is not None:
        return tqdm(total=total, initial=step, unit="step", desc="train", **kw)
    e = step // spe
    return tqdm(total=spe, unit="step", desc=f"epoch {e + 1}/{spec.epochs}", **kw)


class _Lines:
    """A stderr that ends every tqdm frame with a newline instead of a carriage return: a log file
    or CI console gets whole lines, never a flood of '\\r' redraws."""

    def write(self, s: str) -> int:
        s = s.replace("\r", "").replace("\x1b[A", "")    # a nested bar's cursor-up moves, too
        if s.strip():
            sys.stderr.write(s.rstrip("\n") + "\n")
        return len(s)

    def flush(self) -> None:
        sys.stderr.flush()


def bar_kwargs(progress: bool) -> dict[str, Any]:
    """tqdm options for sln's bars. On a terminal: the usual redrawn bar. Elsewhere (a log, a pipe,
    CI): line mode, one line at most every LINE_EVERY_S seconds plus the last one, unless
    SLN_PROGRESS=0 turns bars off (SLN_PROGRESS=1 forces the terminal bar)."""
    env = os.environ.get("SLN_PROGRESS", "")
    if not progress or env == "0":
        return {"disable": True}
    if env == "1" or sys.stderr.isatty():
        return {"disable": False}
    return {"disable": False, "file": _Lines(), "mininterval": LINE_EVERY_S, "maxinterval": LINE_EVERY_S,
            "ascii": True, "dynamic_ncols": False, "ncols": 100}


def _log(task: Task, head: str, ev: dict[str, Any], secs: float | None) -> None:
    describe = getattr(task, "describe", None)
    if describe is not None:
        print(f"{head}: {describe(ev)}" + ("" if secs is None else f"  ({secs:.0f} s train)"))

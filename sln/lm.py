r"""Character language model training and evaluation: the SLN char-LM and its GPT baseline.

SLN char-LM (`sln.model.SLN` with task "lm"):  char c_t -> liquid k-WTA cell(s) -> logits_t =
W_o y_t + b_o. The first cell's input is the one-hot character, so W_in x_t is one column of W_in
(a gather, no multiplies): the character is a single input event. Deeper cells read the sparse
output of the cell below. The readout reads only the k winners of the top cell. Training is
truncated backprop through time over `BPTT` steps on `batch_size` contiguous streams of the
training text, the state carried (detached) from one window to the next, so the model learns to
run indefinitely like it does when generating; validation streams the whole validation text the
same way. Cost per generated token does not depend on the context.

The GPT baseline (sln/gpt.py) trains on random windows of `GPT_CTX` characters for the same
wall-clock budget (`time_budget_s`). The corpus and its split: sln/text.py. Both train in the
one loop (`sln.train.fit`, tasks `StreamTask` / `WindowTask` below): AdamW betas (0.9, 0.99),
clipping at 1.0, `lr_at` with warm-up over 2 % of the budget and cosine down to 10 % of lr.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import SLNConfig
from .device import add_device_argument, model_device
from .fetch import DataError
from .gpt import GPTLM, GPTConfig, gpt_config_for_params
from .model import SLN
from .series_files import DataFiles, file_record, read_utf8, run_label
from .tasks.loop import bar_kwargs
from .text import VAL_SHARE, Vocab, prepare, prepare_user_text
from .train import RunOptions, TrainSpec, fit, resolve_threads, resume_config, write_metrics

BPTT = 128        # SLN truncated-BPTT window
LN2 = math.log(2.0)


def is_sln(model: nn.Module) -> bool:
    return isinstance(model, SLN)


def _kind(model: nn.Module) -> str:
    return getattr(model, "kind", "sln")      # the checkpoint's convention: no attribute means an SLN


def save_lm(path: Path, model: nn.Module, vocab: Vocab, train_state: dict[str, Any] | None = None) -> None:
    save_checkpoint(path, model, None, {**(train_state or {}), "vocab": vocab.chars})


def load_lm(path: str | Path) -> tuple[nn.Module, Vocab, dict[str, Any]]:
    """-> (SLN LM or GPTLM in eval mode, vocab, training state)."""
    model, state = load_checkpoint(path, builders={"gpt": lambda cfg: GPTLM(GPTConfig(**cfg))})
    if "vocab" not in state:
        raise ValueError(f"{path} is not a character-LM checkpoint (no vocabulary); train one with "
                         "`python train.py --dataset shakespeare --model sln-lm-small --out DIR`")
    return model, Vocab(state["vocab"]), state


# --- evaluation -------------------------------------------------------------------------------

@torch.no_grad()
def eval_bpc(model: nn.Module, ids: torch.Tensor, streams: int = 32, progress: bool = False) -> dict[str, float]:
    """Validation bits per character on ids (L,).

    SLN: `streams` contiguous segments run in parallel with carried state (unbounded context).
    GPT: windows of ctx characters with stride ctx/2; each character is scored once, with at
    least ctx/2 characters of context (except the first window's).
    """
    model.eval()
    ids = ids.to(model_device(model))
    if is_sln(model):
        L = (len(ids) - 1) // streams
        x = ids[: streams * L].view(streams, L)
        y = ids[1: streams * L + 1].view(streams, L)
        state = model.init_state(streams)
        nll, act = 0.0, 0.0
        for s in tqdm(range(0, L, 256), desc="val", leave=False, **bar_kwargs(progress)):
            out = model.run(x[:, s:s + 256], state=state)
            state = out.state
            nll += F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y[:, s:s + 256].reshape(-1),
                                   reduction="sum").item()
            act += out.activity.wins[-1].sum().item()
        n = streams * L
        return {"bpc": nll / n / LN2, "chars": n, "active_fraction": act / n / model.cfg.n_neurons}
    ctx, half = model.cfg.ctx, model.cfg.ctx // 2
    starts = list(range(0, len(ids) - 1 - ctx, half)) or [0]
    nll, n = 0.0, 0
    for b in tqdm(range(0, len(starts), 32), desc="val", leave=False, **bar_kwargs(progress)):
        st = starts[b:b + 32]
        x = torch.stack([ids[s:s + ctx] for s in st])
        y = torch.stack([ids[s + 1:s + ctx + 1] for s in st])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(len(st), ctx)
        for j, s in enumerate(st):
            lo = 0 if s == 0 else half
            nll += loss[j, lo:].sum().item()
            n += ctx - lo
    return {"bpc": nll / n / LN2, "chars": n}


# --- tasks: what the one loop (sln.train.fit) trains on ----------------------------------------

def init_unigram_bias(model: SLN, train_ids: torch.Tensor) -> None:
    """Readout bias = log unigram frequencies: the untrained model starts at the unigram entropy
    (~4.4 bits/char) instead of log2(V) (6.4), so the short budgets go into context, not letter counts."""
    counts = torch.bincount(train_ids, minlength=model.cfg.n_classes).float() + 1.0
    with torch.no_grad():
        model.readout.bias.copy_(torch.log(counts / counts.sum()))


class StreamTask:
    """SLN LM: `batch_size` contiguous streams through the training text, BPTT windows, the state
    carried (detached) from one window to the next; an epoch is one pass, after which the streams
    restart from zero state. (A resumed run restarts its streams' state from zero mid-epoch; at an
    epoch's end, where the streams restart anyway, the resumed run is the uninterrupted one.)

    The streams live on the training device (`to`, called by the loop): a batch is a slice (a view)
    of them, no copy and no host round trip per step. Under torchrun the loop gives each rank a
    contiguous share of the streams (sln.device.shard): disjoint segments of the text, each rank
    carries its own streams' state, and the loss goes through the model's forward (`return_output`),
    so DistributedDataParallel averages the gradients and the win rates are all-reduced in the model."""
    eval_each_epoch = False

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, batch_size: int, bptt: int = BPTT,
                 progress: bool = False) -> None:
        L = (len(train_ids) - 1) // batch_size
        self.xs = train_ids[: batch_size * L].view(batch_size, L)          # (B, L) inputs
        self.ys = train_ids[1: batch_size * L + 1].view(batch_size, L)     # (B, L) next characters
        self.val_ids, self.batch_size, self.bptt, self.progress = val_ids, batch_size, bptt, progress
        self.steps_per_epoch = L // bptt
        self.state: list | None = None
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(train_ids)} training characters do not fill one window of {batch_size} streams "
                             f"x {bptt} steps; use more text or a smaller --batch-size")

    def to(self, dev: torch.device) -> None:
        """The streams (and the validation text) on the training device (the loop calls this)."""
        self.xs, self.ys, self.val_ids = self.xs.to(dev), self.ys.to(dev), self.val_ids.to(dev)

    def get_batch(self, step: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        b = step % self.steps_per_epoch
        s = slice(b * self.bptt, (b + 1) * self.bptt)
        return b, self.xs[:, s], self.ys[:, s]

    def loss(self, model: nn.Module, batch: tuple[int, torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, x, y = batch
        # None: the model starts this window's streams from zero state (their number is x's batch: this
        # rank's share under torchrun); model may be the DDP wrapper, so only its forward is called
        state = None if b == 0 or self.state is None else [(h.detach(), yy.detach()) for h, yy in self.state]
        out = model(x, state=state, return_output=True)
        self.state = out.state
        loss = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y.reshape(-1))
        return loss, {"bpc": loss.detach() / LN2}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        return eval_bpc(model, self.val_ids, progress=self.progress)


class WindowTask:
    """GPT baseline: random windows of ctx characters; an epoch is len(text) / (batch_size * ctx) steps.
    A resumed run reseeds its window generator with the step (fresh windows, not the same ones).

    The text lives on the training device (`to`); the window starts are drawn on the CPU generator
    (the same draws on every device, in the same order as one (batch_size,) draw per step) one epoch's
    worth at a time and copied to the device once, and a batch is gathered there (text[start + arange]):
    no per-step copy, no host round trip."""
    eval_each_epoch = False

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, batch_size: int, ctx: int, seed: int,
                 progress: bool = False) -> None:
        self.train_ids, self.val_ids, self.batch_size, self.ctx = train_ids, val_ids, batch_size, ctx
        self.seed, self.progress = seed, progress
        self.steps_per_epoch = max(1, (len(train_ids) - 1) // (batch_size * ctx))
        self._gen: torch.Generator | None = None
        self._starts, self._next = torch.empty(0, batch_size, dtype=torch.long), 0   # drawn, not yet used
        self._offsets = torch.arange(ctx)

    def to(self, dev: torch.device) -> None:
        """The training and validation text on the training device (the loop calls this)."""
        self.train_ids, self.val_ids = self.train_ids.to(dev), self.val_ids.to(dev)
        self._starts, self._offsets = self._starts.to(dev), self._offsets.to(dev)

    def get_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed if step == 0 else self.seed * 100003 + step)
        if self._next >= len(self._starts):   # the next steps_per_epoch steps' starts, one copy to the device
            draw = torch.randint(0, len(self.train_ids) - self.ctx - 1, (self.steps_per_epoch * self.batch_size,),
                                 generator=self._gen)
            self._starts = draw.view(-1, self.batch_size).to(self.train_ids.device, non_blocking=True)
            self._next = 0
        ix = self._starts[self._next][:, None] + self._offsets[None]                 # (B, ctx) on the device
        self._next += 1
        return self.train_ids[ix], self.train_ids[ix + 1]                             # x, y (B, ctx)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, {"bpc": loss.detach() / LN2}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        return eval_bpc(model, self.val_ids, progress=self.progress)


# --- training (shared by both models) ---------------------------------------------------------

def train_lm(model: nn.Module, vocab: Vocab, train_ids: torch.Tensor, val_ids: torch.Tensor, out: Path, *,
             lr: float, batch_size: int, seed: int, time_budget_s: float, max_steps: int | None = None,
             epochs: int = 1, progress: bool = True, dataset: str = "shakespeare", bptt: int = BPTT,
             threads: int | None = None, resume: bool = False, extra: dict[str, Any] | None = None,
             device: str = "auto", stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Train for `time_budget_s` seconds (else max_steps, else `epochs` passes), evaluate, write
    checkpoint and metrics.json. Schedule: warm-up over 2 % of the run, cosine down to 10 % of lr.
    stop_after_epoch: end this run after that epoch (an interruption; tests of --resume, also under torchrun).
    threads None: keep torch's current thread count (the command lines pass --threads).
    extra: JSON-able keys added to the checkpoint's training state and to metrics.json (user files)."""
    out = Path(out)
    torch.manual_seed(seed)
    sln = is_sln(model)
    task: StreamTask | WindowTask = (StreamTask(train_ids, val_ids, batch_size, bptt, progress) if sln
                                     else WindowTask(train_ids, val_ids, batch_size, model.cfg.ctx, seed, progress))
    steps = max_steps if max_steps is not None else task.steps_per_epoch * epochs
    spec = TrainSpec(lr=lr, weight_decay=0.0 if sln else 0.1, betas=(0.9, 0.99), epochs=epochs,
                     time_budget_s=time_budget_s, max_steps=max_steps, warmup_steps=max(1, steps // 50),
                     warmup_frac=0.02, floor=0.1)
    opts = RunOptions(dataset=dataset, out=out, resume=resume, progress=progress,
                      threads=threads or torch.get_num_threads(), device=device, stop_after_epoch=stop_after_epoch)
    res = fit(model, task, spec, opts, {"vocab": vocab.chars, "dataset": dataset, **(extra or {})})
    ev = res.final
    metrics = {"dataset": dataset, "model": getattr(model.cfg, "name", _kind(model)), "kind": _kind(model),
               "val_bpc": ev["bpc"], "val_chars": ev["chars"], "train_bpc_running": res.running.get("bpc", 0.0),
               "params": model.num_params(), "train_seconds": res.train_seconds, "steps": res.steps,
               "train_chars": res.steps * batch_size * (bptt if sln else model.cfg.ctx),
               "threads": res.threads, "seed": seed, "lr": lr, "batch_size": batch_size,
               "time_budget_s": time_budget_s, "steps_per_epoch": task.steps_per_epoch,
               # the one measure (sln.train.classify_metrics): completed epochs' training time; a budget
               # that ends inside the first epoch: training seconds scaled to one epoch's steps
               "seconds_per_epoch": (sum(res.epoch_seconds) / len(res.epoch_seconds) if res.epoch_seconds
                                     else res.train_seconds * task.steps_per_epoch / max(1, res.steps)),
               **(extra or {}), "config": model.cfg.to_dict() if sln else asdict(model.cfg)}
    if sln:
        metrics.update({"active_fraction": [ev["active_fraction"]], "k": model.cfg.k, "n_neurons": model.cfg.n_neurons,
                        "epochs": model.cfg.epochs, "test_accuracy": None})
    write_metrics(out, metrics)
    return metrics


def train_shakespeare(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset shakespeare --model sln-lm-small` (budget: cfg.time_budget_s; 0 = cfg.epochs)."""
    vocab, tr, va = prepare(opts.data_dir)
    if opts.limit_train:
        tr = tr[: opts.limit_train]
    if opts.limit_test:
        va = va[: opts.limit_test]
    cfg = resume_config(cfg.replace(input_size=len(vocab), n_classes=len(vocab)), opts)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    init_unigram_bias(model, tr)
    budget = cfg.time_budget_s
    out = Path(opts.out or Path("runs") / f"shakespeare-{cfg.name}")
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k} ({100 * cfg.k / cfg.n_neurons:.1f}% active), "
          f"{model.num_params():,} params; shakespeare {len(tr):,} train / {len(va):,} val chars, vocab {len(vocab)}; "
          + (f"budget {budget:.0f} s" if budget else f"{cfg.epochs} epoch(s)")
          + f", {resolve_threads(opts.threads)} threads")
    m = train_lm(model, vocab, tr, va, out, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
                 time_budget_s=budget, epochs=cfg.epochs, progress=opts.progress, threads=resolve_threads(opts.threads),
                 resume=opts.resume, device=opts.device)
    print(f"val bits/char {m['val_bpc']:.3f}  active/step {100 * m['active_fraction'][0]:.2f}%  "
          f"({m['steps']} steps, {m['train_seconds']:.0f} s)")
    return m


def train_text(cfg: SLNConfig, opts: RunOptions, files: DataFiles | None = None) -> dict[str, Any]:
    """`python train.py --dataset text:PATH [--val text:PATH2] --model sln-lm-small`: the char LM on any
    UTF-8 text (split and vocabulary: sln/text.py's docstring); the files are recorded in the run."""
    files = files or DataFiles()
    if cfg.task != "lm":
        raise ValueError(f"--dataset text:PATH trains a character LM; --model {cfg.name} is a {cfg.task!r} model "
                         "(use --model sln-lm-small or sln-lm-tiny)")
    path = Path(opts.dataset[len("text:"):])
    records = {"train": file_record(path, files.train_sha256)}
    text = read_utf8(path)
    val_text = None
    if files.val is not None:
        records["val"] = file_record(files.val, files.val_sha256)
        val_text = read_utf8(files.val)
    vocab, tr, va, unknown = prepare_user_text(text, val_text)
    if opts.limit_train:
        tr = tr[: opts.limit_train]
    if opts.limit_test:
        va = va[: opts.limit_test]
    if len(va) < 64:
        raise DataError(f"{files.val or path}: {len(va)} validation characters; the validation text needs at "
                        f"least 64 (use a longer file: the last {int(VAL_SHARE * 100)} % validates, or pass "
                        "--val text:PATH2)")
    cfg = resume_config(cfg.replace(input_size=len(vocab), n_classes=len(vocab)), opts)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    init_unigram_bias(model, tr)
    out = Path(opts.out or Path("runs") / f"{run_label(opts.dataset)}-{cfg.name}")
    budget = cfg.time_budget_s
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k}, {model.num_params():,} params; {path}: "
          f"{len(tr):,} train / {len(va):,} val chars ({unknown} unseen in training -> unknown), vocab {len(vocab)}; "
          + (f"budget {budget:.0f} s" if budget else f"{cfg.epochs} epoch(s)")
          + f", {resolve_threads(opts.threads)} threads")
    m = train_lm(model, vocab, tr, va, out, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
                 time_budget_s=budget, epochs=cfg.epochs, progress=opts.progress, dataset=opts.dataset,
                 threads=resolve_threads(opts.threads), resume=opts.resume,
                 extra={"files": records, "val_unknown_chars": unknown}, device=opts.device)
    print(f"val bits/char {m['val_bpc']:.3f}  ({m['steps']} steps, {m['train_seconds']:.0f} s)")
    return m


def main(argv: list[str] | None = None) -> int:
    """python -m sln.lm gpt --seconds 300: the GPT baseline sized to an SLN config's parameter count."""
    p = argparse.ArgumentParser(prog="python -m sln.lm")
    sub = p.add_subparsers(dest="cmd", required=True)
    gp = sub.add_parser("gpt", help="train the GPT baseline (same params as --match, same time budget)")
    gp.add_argument("--match", default="sln-lm-small", help="registered SLN LM whose parameter count to match")
    gp.add_argument("--seconds", type=float, default=300.0)
    gp.add_argument("--layers", type=int, default=4)
    gp.add_argument("--d-model", type=int, default=None,
                    help="model width (default: the width whose parameter count is closest to --match's)")
    gp.add_argument("--lr", type=float, default=3e-3)
    gp.add_argument("--batch-size", type=int, default=32)
    gp.add_argument("--seed", type=int, default=0)
    gp.add_argument("--out", type=Path, default=Path("runs/shakespeare-gpt-baseline"))
    gp.add_argument("--data-dir", type=Path, default=None)
    gp.add_argument("--no-progress", action="store_true")
    gp.add_argument("--threads", type=int, default=None, help="torch threads (default: $SLN_THREADS, else all cores)")
    gp.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (rest of the budget)")
    add_device_argument(gp)
    a = p.parse_args(argv)
    from .config import get_config
    vocab, tr, va = prepare(a.data_dir)
    scfg = get_config(a.match).replace(input_size=len(vocab), n_classes=len(vocab))
    target = SLN(scfg).num_params()
    gcfg = (gpt_config_for_params(target, len(vocab), n_layers=a.layers) if a.d_model is None
            else GPTConfig(vocab_size=len(vocab), d_model=a.d_model, n_layers=a.layers))
    gcfg.lr, gcfg.batch_size, gcfg.seed = a.lr, a.batch_size, a.seed
    torch.manual_seed(a.seed)
    model = GPTLM(gcfg)
    print(f"GPT baseline d={gcfg.d_model} L={gcfg.n_layers} H={gcfg.n_heads} ctx={gcfg.ctx}: {model.num_params():,} "
          f"params (SLN {a.match}: {target:,}); budget {a.seconds:.0f} s")
    m = train_lm(model, vocab, tr, va, a.out, lr=a.lr, batch_size=a.batch_size, seed=a.seed,
                 time_budget_s=a.seconds, progress=not a.no_progress, threads=resolve_threads(a.threads),
                 resume=a.resume, device=a.device)
    print(json.dumps({k: m[k] for k in ("val_bpc", "params", "steps", "train_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

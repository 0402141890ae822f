"""The SLN domain / URL detector: characters as events, trained by the one loop, a stored threshold.

    python train.py --dataset domains --model sln-domains-small --threads 1        # hosts, grouped split
    python train.py --dataset urls --model sln-domains-small                       # host + path
    python train.py --dataset urls-hostname --model sln-domains-small              # the URL hosts only

Model: `sln.model.SLN` with a classify readout, input = token ids over the fixed `domains.VOCAB`
(59 symbols + pad + other = 61 = cfg.input_size): each character is one step, the first cell gathers
one W_in column per step (one input event of value 1); `SLN.run(ids (B, T), None, lengths (B,))`
averages the top layer over the valid steps and gives two logits; the score is their difference
logit[1] - logit[0] (log-odds of "malicious", higher = worse).

Protocol (the same as `sln.security.bench` for the baselines): train on the grouped train split,
evaluate on val each epoch; at the end the alert threshold is calibrated at FPR 1e-3 on the *benign
validation* scores and stored in the checkpoint's train_state (`detector`: task, max_len, tail,
vocabulary, threshold, target FPR), where `sln detect-url` reads it; metrics.json gets test and
temporal metrics, the realised FPR at the stored threshold, throughput, batch-1 latency and bytes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import CheckpointError, load_with_spec, read_checkpoint, save_checkpoint
from ..config import SLNConfig
from ..device import is_main, model_device
from ..model import SLN
from ..tasks.loop import CKPT, RunOptions, TrainSpec, fit, resolve_threads, resume_config, write_metrics
from . import metrics
from .domains import VOCAB, VOCAB_SIZE, Sample, Splits, encode, load_splits, temporal_eval

CAL_FPR = 1e-3
# dataset -> (splits task, hostname_only, max_len, tail). Hosts keep their last 48 characters (99.9 % of
# the training hosts are shorter; the TLD and eTLD+1 are at the end), URLs their first 96 (host first),
# as the char-CNN baseline does.
VIEWS: dict[str, tuple[str, bool, int, bool]] = {
    "domains": ("domains", False, 48, True),
    "urls": ("urls", False, 96, False),
    "urls-hostname": ("urls", True, 48, True),
}
SORT_CHUNK = 32          # training batches are drawn from chunks of 32 batches sorted by length


@dataclasses.dataclass
class DetectorSpec:
    """What a checkpoint must carry to score raw strings (stored under train_state["detector"])."""
    dataset: str
    max_len: int
    tail: bool
    threshold: float
    target_fpr: float
    vocab: str = VOCAB

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ids_and_lengths(texts: list[str], max_len: int, tail: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """-> ids (N, max_len) int64 (0 pads on the right), lengths (N,) int64 >= 1 (an empty text scores
    one padding step rather than dividing by zero)."""
    ids = torch.from_numpy(encode(texts, max_len, tail))
    return ids, (ids != 0).sum(1).clamp(min=1)


@torch.no_grad()
def score_ids(model: SLN, ids: torch.Tensor, lengths: torch.Tensor, batch: int = 1024,
              activity: list[float] | None = None) -> np.ndarray:
    """Scores (N,) float64 = logit[1] - logit[0]. Samples are sorted by length and each batch is cut to
    its longest sample: exact, because steps past a sample's length are masked out of its mean and the
    state after them is never read. activity, if given, gets [sum of active share x valid steps, steps]."""
    model.eval()
    dev = model_device(model)
    out = torch.empty(len(ids), dtype=torch.float64)
    order = torch.argsort(lengths, stable=True)
    for s in range(0, len(ids), batch):
        idx = order[s:s + batch]
        L = lengths[idx]
        o = model.run(ids[idx, :int(L.max())].to(dev), None, L.to(dev))
        out[idx] = (o.logits[:, 1] - o.logits[:, 0]).double().cpu()
        if activity is not None:
            activity[0] += float(o.activity.mean[-1]) * float(o.activity.n_valid)
            activity[1] += float(o.activity.n_valid)
    return out.numpy()


class DomainTask:
    """The loop's task (sln/tasks/loop.py). Epoch e: a permutation from a generator seeded with (seed, e),
    cut into chunks of SORT_CHUNK batches sorted by length (so a batch runs ~its samples' length in
    steps, not 48), the batch order shuffled again; reproducible per epoch (resume).

    Device: the loop's `to` puts the training ids, lengths and labels on the training device once; the
    epoch's plan is drawn on the CPU and its indices copied there once per epoch (each batch's longest
    sample is known on the CPU), so a step only indexes device tensors: no copy, no host read."""

    eval_each_epoch = True

    def __init__(self, train: list[Sample], val: list[Sample], max_len: int, tail: bool, batch_size: int,
                 seed: int) -> None:
        self.ids, self.lengths = ids_and_lengths([s.text for s in train], max_len, tail)
        self.y = torch.tensor([s.label for s in train], dtype=torch.long)
        self.val_ids, self.val_len = ids_and_lengths([s.text for s in val], max_len, tail)
        self.val_y = np.array([s.label for s in val], dtype=np.int64)
        self.batch_size, self.seed = batch_size, seed
        self.steps_per_epoch = math.ceil(len(train) / batch_size)
        self._epoch, self._batches, self._cuts = -1, [], []
        self._ids, self._len, self._y, self._dev = self.ids, self.lengths, self.y, torch.device("cpu")

    def to(self, dev: torch.device) -> None:
        """The training set on the training device (the loop calls this)."""
        self._ids, self._len, self._y = self.ids.to(dev), self.lengths.to(dev), self.y.to(dev)
        self._dev, self._epoch = dev, -1

    def _plan(self, epoch: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        perm = torch.randperm(len(self.ids), generator=g)
        batches = []
        for c in perm.split(self.batch_size * SORT_CHUNK):
            c = c[torch.argsort(self.lengths[c], stable=True)]
            batches += list(c.split(self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=g)]

    def get_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ids (B, T_batch) int64, lengths (B,), labels (B,)."""
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            plan = self._plan(epoch)
            self._cuts = [int(self.lengths[i].max()) for i in plan]           # on the CPU copy of the lengths
            self._batches = list(torch.cat(plan).to(self._dev, non_blocking=True).split([len(i) for i in plan]))
            self._epoch = epoch
        idx = self._batches[b]
        return self._ids[idx, :self._cuts[b]], self._len[idx], self._y[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, lengths, y = batch
        logits, act = model(x, None, lengths, return_activity=True)
        acc = (logits.detach().argmax(1) == y).float().mean()
        return F.cross_entropy(logits, y), {"acc": acc, "active": act.mean[-1].detach()}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        act = [0.0, 0.0]
        s = score_ids(model, self.val_ids, self.val_len, activity=act)
        r = metrics.report(self.val_y, s)
        return {"val_roc_auc": r["roc_auc"], "val_pr_auc": r["pr_auc"], "val_tpr@1e-3": r["tpr@1e-3"],
                "active_fraction": act[0] / max(act[1], 1.0)}

    def describe(self, ev: dict[str, Any]) -> str:
        return (f"val ROC-AUC {ev['val_roc_auc']:.4f}  PR-AUC {ev['val_pr_auc']:.4f}  "
                f"TPR@1e-3 {ev['val_tpr@1e-3']:.3f}  active/step {100 * ev['active_fraction']:.2f}%")


@lru_cache(maxsize=4)
def _splits(task: str, hostname_only: bool, seed: int, data_dir: Path | None) -> Splits:
    return load_splits(task, seed=seed, hostname_only=hostname_only, data_dir=data_dir)


def _limit(samples: list[Sample], n: int | None, seed: int) -> list[Sample]:
    """A seeded random subset of n samples (order kept): the lists are sorted by text, so the first n
    would be one alphabetical slice."""
    if n is None or n >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[:n])
    return [samples[i] for i in keep]


def latency_us(model: SLN, texts: list[str], spec: DetectorSpec, n: int = 200) -> float:
    """Median wall time of scoring one string (encoding included), as the baselines' latency."""
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        ids, L = ids_and_lengths([t], spec.max_len, spec.tail)
        score_ids(model, ids, L)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6) if times else math.nan


def train_detector(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset domains|urls|urls-hostname`: fit, calibrate, store, write metrics.json."""
    if opts.dataset not in VIEWS:
        raise ValueError(f"unknown detector dataset {opts.dataset!r}; known: {', '.join(VIEWS)}")
    if cfg.task != "classify" or cfg.input_size != VOCAB_SIZE or cfg.n_classes != 2:
        raise ValueError(f"the detector needs a classify config with input_size={VOCAB_SIZE} (the character "
                         f"vocabulary) and n_classes=2, e.g. --model sln-domains-small; got task={cfg.task!r} "
                         f"input_size={cfg.input_size} n_classes={cfg.n_classes}")
    out = Path(opts.out or "runs/default")
    opts = dataclasses.replace(opts, out=out)
    task_name, hostname_only, max_len, tail = VIEWS[opts.dataset]
    s = _splits(task_name, hostname_only, cfg.seed, opts.data_dir)
    train, val = _limit(s.train, opts.limit_train, cfg.seed), _limit(s.val, opts.limit_test, cfg.seed)
    test, temporal = _limit(s.test, opts.limit_test, cfg.seed), _limit(s.temporal, opts.limit_test, cfg.seed)
    if not any(x.label for x in train) or all(x.label for x in train):
        raise ValueError("the training slice holds one class only; use a larger --limit-train")
    cfg = resume_config(cfg, opts)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    task = DomainTask(train, val, max_len, tail, cfg.batch_size, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    if is_main():                                     # under torchrun only rank 0 writes
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    threads = resolve_threads(opts.threads)
    print(f"{cfg.name}: N={cfg.n_neurons} x {cfg.n_layers}, k={cfg.k}, {model.num_params():,} params; "
          f"{opts.dataset}: {len(train)} train ({sum(x.label for x in train)} malicious) / {len(val)} val / "
          f"{len(test)} test / {len(temporal)} temporal; {threads} threads")
    res = fit(model, task, TrainSpec.from_config(cfg), opts, {"dataset": opts.dataset})
    torch.set_num_threads(threads)

    # the threshold: at most floor(1e-3 * n) benign VALIDATION scores above it, stored with the model
    val_s = score_ids(model, task.val_ids, task.val_len)
    thr = metrics.calibrate_threshold(val_s[task.val_y == 0], CAL_FPR)
    spec = DetectorSpec(opts.dataset, max_len, tail, thr, CAL_FPR)
    if is_main():   # under torchrun only rank 0 wrote the loop's checkpoint (train_state: step, history)
        state = json.loads(read_checkpoint(out / CKPT)[0]["train"])
        save_checkpoint(out / CKPT, model, res.optimizer, {k: v for k, v in state.items() if k != "optimizer_groups"}
                        | {"detector": spec.to_dict()})

    xte, yte = [x.text for x in test], np.array([x.label for x in test], dtype=np.int64)
    ids, L = ids_and_lengths(xte, max_len, tail)
    score_ids(model, ids[:64], L[:64])          # warm-up before timing, as the baselines
    act = [0.0, 0.0]
    t0 = time.perf_counter()
    te_s = score_ids(model, *ids_and_lengths(xte, max_len, tail), activity=act)   # from raw strings
    per_s = len(xte) / (time.perf_counter() - t0)
    row: dict[str, Any] = {
        "model": f"SLN {cfg.name}", "fit_s": round(res.train_seconds, 1), "threshold": thr,
        "test": metrics.report(yte, te_s, thr), "val_roc_auc": metrics.roc_auc(task.val_y, val_s),
        "per_s": per_s, "latency_us": latency_us(model, xte, spec),
        "bytes": sum(p.numel() * 4 for p in model.parameters()),        # float32 weights, as the char-CNN's
        "active_fraction": act[0] / max(act[1], 1.0)}
    if temporal:
        tm = temporal_eval(Splits(s.task, [], [], test, temporal))
        row["temporal"] = metrics.report(np.array([x.label for x in tm]),
                                         score_ids(model, *ids_and_lengths([x.text for x in tm], max_len, tail)), thr)
    m = {"dataset": opts.dataset, "model": cfg.name, "detector": spec.to_dict(), "row": row,
         "active_fraction": row["active_fraction"], "params": model.num_params(), "k": cfg.k,
         "n_neurons": cfg.n_neurons, "steps": res.steps, "epochs_done": res.steps / task.steps_per_epoch,
         "train_seconds": res.train_seconds, "threads": res.threads, "seed": cfg.seed,
         "sizes": {"train": len(train), "val": len(val), "test": len(test), "temporal": len(temporal)},
         "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "machine": f"{platform.machine()}, {resolve_threads(None)} CPU cores, torch {torch.__version__}",
         "history": res.history, "config": cfg.to_dict()}
    write_metrics(out, m)
    t = row["test"]
    print(f"test ROC-AUC {t['roc_auc']:.4f}  PR-AUC {t['pr_auc']:.4f}  TPR@1e-3 {t['tpr@1e-3']:.3f}  "
          f"TPR@1e-4 {t['tpr@1e-4']:.3f}  at stored thr {thr:.4f}: TPR {t['tpr@thr']:.3f} FPR {t['fpr@thr']:.4f}")
    return m


def load_detector(path: str | Path) -> tuple[SLN, DetectorSpec]:
    """A trained detector checkpoint -> (model in eval mode, spec); CheckpointError if it is not one."""
    model, spec = load_with_spec(path, "detector", DetectorSpec, "detector",
                                 "python train.py --dataset domains --model sln-domains-small")
    if spec.vocab != VOCAB or model.cfg.input_size != VOCAB_SIZE:
        raise CheckpointError(f"{path}: trained with another character vocabulary than this sln's")
    return model, spec

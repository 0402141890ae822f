"""The SLN intrusion detectors on a packet stream (and the dense GRU baseline), trained by the one loop.

    python train.py --dataset packets --model sln-ids-small --threads 1      # unsupervised, benign prefix
    python train.py --dataset packets --model sln-ids-sup --threads 1        # supervised, all attack types
    (--data-dir DIR picks the capture; default tests/fixtures/ids, the shipped small capture)

Input: each packet is one step: x_t = its 58 features (sln.security.packets) divided by a per-feature
scale (no mean shift, so absent flags stay zero and cost no input event), dt_t = seconds since the
previous packet x DT_SCALE. One state runs through the whole link's stream (the per-host, per-channel
and per-flow context is already in the features; the state adds the recent history of the link).

Two detectors, both `SLN` with the per-step readout (task "events", sln/model.py):
  * "reconstruct" (unsupervised, Kitsune-like; sln-ids-small): trained on the benign-only prefix to
    reconstruct the packet's own scaled features from the top layer's sparse output y_t (k of N
    neurons) through the linear readout; score = RMSE of that reconstruction. Why reconstruction and
    not next-packet prediction: the packets of ~50 hosts are interleaved, so which host sends next is
    close to random and a prediction error would be dominated by that noise on benign traffic too;
    reconstructing the packet through a k-sparse code of it *and* of the recent history is KitNET's
    criterion (the score is the RMSE of an autoencoder trained on benign traffic) with the liquid state
    in place of KitNET's stateless autoencoders. Streaming: one step per packet, state of fixed size.
  * "classify" (supervised; sln-ids-sup): per-packet cross-entropy (benign / attack, classes weighted
    by inverse frequency); score = logit[1] - logit[0]. Evaluated leave-one-attack-type-out by
    sln.security.ids_bench.
The GRU baseline (`PacketGRU`, sized to the SLN's parameter count) trains through the same task.

Threshold: calibrated at FPR 1e-3 on the benign validation packets (last 20 % of the prefix) and
stored with the model (`IdsSpec` in the checkpoint's train_state["ids"]), where `sln detect-net` reads it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import CheckpointError, load_with_spec, read_checkpoint, save_checkpoint
from ..config import SLNConfig
from ..device import is_main
from ..engine import EngineBuildError
from ..model import SLN
from ..prune import Pruner
from ..tasks.loop import CKPT, RunOptions, TrainSpec, fit, resolve_threads, resume_config, write_metrics
from .ids_data import (
    DT_SCALE,
    Capture,
    IdsSpec,
    Split,
    apply_scale,
    fit_scale,
    ids_report,
    load_capture,
    unsupervised_split,
)
from .ids_stream import StepScorer
from .keyed import pair_scores
from .metrics import calibrate_threshold
from .packets import FEATURE_NAMES, N_FEATURES

__all__ = ["DT_SCALE", "IdsSpec", "PacketGRU", "PacketTask", "load_ids", "score_stream", "train_packets"]

CAL_FPR = 1e-3
RESID_FLOOR = 0.05       # scaled-feature units (features are O(1) after scaling)
WINDOW, BURN_IN = 64, 8        # training windows of 64 consecutive packets; the first 8 only warm the state
MODES = ("reconstruct", "classify")
DEFAULT_CAPTURE = Path("tests/fixtures/ids")


def mode_of(n_classes: int) -> str:
    """A 2-class readout is the supervised detector; a readout as wide as the input reconstructs it."""
    if n_classes == 2:
        return "classify"
    if n_classes == N_FEATURES:
        return "reconstruct"
    raise ValueError(f"an IDS model needs n_classes=2 (supervised) or {N_FEATURES} (reconstruction), got {n_classes}")


class PacketGRU(nn.Module):
    """The dense baseline: a one-layer GRU over the same scaled features (dt enters as the log-dt feature,
    as in any discrete-time model) and a linear readout at every step. forward(x, dt) -> (B, T, C)."""

    kind = "ids-gru"

    def __init__(self, input_size: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.cfg = dataclasses.make_dataclass("GRUConfig", [("input_size", int), ("hidden", int),
                                                            ("n_classes", int)])(input_size, hidden, n_classes)
        self.gru = nn.GRU(input_size, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor, dt: torch.Tensor | None = None, h0: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.readout(self.gru(x, h0)[0])

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def gru_hidden_for(params: int, input_size: int, n_classes: int) -> int:
    """The GRU width whose parameter count (3H(D+H) + 6H + HC + C) is closest to `params`."""
    best = min(range(1, 4096), key=lambda h: abs(3 * h * (input_size + h) + 6 * h + h * n_classes + n_classes - params))
    return int(best)


class PacketTask:
    """The loop's task (sln/tasks/loop.py): windows of WINDOW consecutive packets from the training
    segments (contiguous runs of the real stream), starts drawn from a generator seeded (seed, epoch);
    loss over the steps after BURN_IN. Epoch = as many windows as the segments hold packets.

    Device: the loop's `to` puts the stream's features, dt, labels and class weights on the training
    device once; an epoch's window starts are drawn on the CPU (the same per-step generators as before)
    and copied there once per epoch, and a batch is gathered there (stream[start + arange(WINDOW)])."""

    eval_each_epoch = False

    def __init__(self, x: np.ndarray, dt: np.ndarray, y: np.ndarray, segments: list[tuple[int, int]], mode: str,
                 batch_size: int, seed: int, val: np.ndarray | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.x, self.dt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(dt))
        self.y = torch.from_numpy(np.ascontiguousarray(y, np.int64))
        self.mode, self.batch_size, self.seed, self.val = mode, batch_size, seed, val
        self.segs = [(a, b) for a, b in segments if b - a >= WINDOW]
        if not self.segs:
            raise ValueError(f"no training segment holds {WINDOW} consecutive packets")
        lens = np.array([b - a - WINDOW + 1 for a, b in self.segs], np.float64)
        self.p = lens / lens.sum()
        n = int(sum(b - a for a, b in self.segs))
        self.steps_per_epoch = max(1, math.ceil(n / (WINDOW - BURN_IN) / batch_size))
        ys = self.y[torch.cat([torch.arange(a, b) for a, b in self.segs])]
        cnt = torch.bincount(ys, minlength=2).double().clamp(min=1)
        self.class_w = (cnt.sum() / (2 * cnt)).float()          # inverse frequency, mean weight 1
        self._epoch, self._starts, self._window = -1, torch.empty(0), torch.arange(WINDOW)

    def to(self, dev: torch.device) -> None:
        """The stream and the class weights on the training device (the loop calls this)."""
        self.x, self.dt, self.y, self.class_w = (t.to(dev) for t in (self.x, self.dt, self.y, self.class_w))
        self._window, self._epoch = self._window.to(dev), -1

    def epoch_starts(self, epoch: int) -> torch.Tensor:
        """(steps_per_epoch, batch_size) window starts of epoch e; step b's from a generator seeded (seed, e, b)."""
        rows = []
        for b in range(self.steps_per_epoch):
            rng = np.random.default_rng([self.seed, epoch, b])
            seg = rng.choice(len(self.segs), size=self.batch_size, p=self.p)
            rows.append([rng.integers(self.segs[s][0], self.segs[s][1] - WINDOW + 1) for s in seg])
        return torch.tensor(rows, dtype=torch.long)

    def get_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> x (B, WINDOW, D), dt (B, WINDOW) in cell units, y (B, WINDOW)."""
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._starts, self._epoch = self.epoch_starts(epoch).to(self._window.device, non_blocking=True), epoch
        idx = self._starts[b][:, None] + self._window[None, :]                 # (B, WINDOW) on the device
        return self.x[idx], self.dt[idx], self.y[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, dt, y = batch
        out = model(x, dt)[:, BURN_IN:]
        if self.mode == "reconstruct":
            return F.mse_loss(out, x[:, BURN_IN:]), {}
        yy = y[:, BURN_IN:].reshape(-1)
        loss = F.cross_entropy(out.reshape(-1, 2), yy, weight=self.class_w)
        return loss, {"acc": (out.detach().argmax(-1).reshape(-1) == yy).float().mean()}

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        return {}


def scores_from_outputs(mode: str, out: np.ndarray, x: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Per-step readout (T, C) -> score (T,): reconstruction RMSE (each feature's residual times its
    weight, see `residual_weight`), or logit[1] - logit[0]."""
    if mode == "reconstruct":
        r = out.astype(np.float64) - x
        return np.sqrt(np.mean((r if weight is None else r * weight) ** 2, axis=1))
    return (out[:, 1] - out[:, 0]).astype(np.float64)


def residual_weight(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """1 / (RMS residual of each feature on benign training packets), floor RESID_FLOOR: a feature the model
    reconstructs tightly on benign traffic counts more when it is off, a noisy one less (a diagonal
    Mahalanobis distance of the residual; without it the score is dominated by the few features that are
    hard to reconstruct on benign traffic too). Measured on the small capture: see docs/SECURITY_IDS.md."""
    rms = np.sqrt(np.mean((out.astype(np.float64) - x) ** 2, axis=0))
    return 1.0 / np.maximum(rms, RESID_FLOOR)


@torch.no_grad()
def stream_outputs(model: nn.Module, x: np.ndarray, dt: np.ndarray, backend: str = "auto") -> np.ndarray:
    """Per-step readouts (T, C) of a whole stream (T packets in order; x scaled (T, D), dt in cell units),
    the state carried through it: the SLN one packet at a time (ids_stream.StepScorer: the C runtime's
    step, else SLN's own Stream), the GRU in one pass of nn.GRU."""
    model.eval()
    if isinstance(model, SLN):
        return StepScorer(model, "raw", backend).outputs_all(x, dt)
    o, _ = model.gru(torch.from_numpy(np.ascontiguousarray(x))[None])
    return model.readout(o)[0].numpy()


def score_stream(model: nn.Module, x: np.ndarray, dt: np.ndarray, mode: str, backend: str = "auto",
                 weight: np.ndarray | None = None) -> np.ndarray:
    return scores_from_outputs(mode, stream_outputs(model, x, dt, backend), x, weight)


def stream_inputs(cap: Capture, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return apply_scale(cap.ev.x, scale), (cap.ev.dt.astype(np.float32) * np.float32(DT_SCALE))


@dataclasses.dataclass
class Trained:
    model: nn.Module
    spec: IdsSpec
    scores: np.ndarray          # (N,) every packet of the capture, streamed in order
    fit_s: float
    steps: int
    optimizer: torch.optim.Optimizer | None = None
    pair_scores: np.ndarray | None = None     # (N,) the same packets scored with the per-host-pair state


def train_on_split(model: nn.Module, cap: Capture, split: Split, mode: str, spec: TrainSpec, opts: RunOptions,
                   batch_size: int, seed: int, train_state: dict[str, Any] | None = None) -> Trained:
    """Fit on split.train (the one loop), stream the whole capture, weight the residuals by their benign
    training RMS (reconstruction), calibrate the threshold at FPR 1e-3 on split.val (benign)."""
    scale = fit_scale(cap.ev.x[split.train & (cap.y == 0)])
    x, dt = stream_inputs(cap, scale)
    task = PacketTask(x, dt, cap.y, split.segments(), mode, batch_size, seed)
    mcfg = getattr(model, "cfg", None)
    if isinstance(mcfg, SLNConfig) and min(mcfg.density_in, mcfg.density_rec) < 1.0:
        # sparse weights (--density-in / --density-rec): the magnitude-pruning schedule over the run's epochs
        task.after_step = Pruner(mcfg, task.steps_per_epoch * mcfg.epochs)   # type: ignore[attr-defined]
    res = fit(model, task, spec, opts, train_state)
    model.cpu()     # trained on --device; the stream is scored one packet at a time: the CPU's work (C runtime)
    out = stream_outputs(model, x, dt)
    tb = split.train & (cap.y == 0)
    w = residual_weight(out[tb], x[tb]) if mode == "reconstruct" else None
    s = scores_from_outputs(mode, out, x, w)
    thr = calibrate_threshold(s[split.val & (cap.y == 0)], CAL_FPR)
    ids = IdsSpec(mode, scale.tolist(), thr, CAL_FPR, held_out=split.held_out, capture_sha256=cap.sha256,
                  resid_weight=None if w is None else w.tolist(), state_thresholds={"link": thr})
    ps = None
    if isinstance(model, SLN):   # per-host-pair / per-source states (sln.security.keyed): own thresholds, same rule
        try:
            ps = pair_scores(model, ids, cap.ev.x, cap.ev.ts, cap.ev.src, cap.ev.dst)
            ss = pair_scores(model, ids, cap.ev.x, cap.ev.ts, cap.ev.src, cap.ev.dst, key="src")
        except EngineBuildError:  # no C compiler: the checkpoint is calibrated for the link state only
            ps = None
        if ps is not None:
            # `threshold` stays the link state's (int8 export, ids_bench); sln detect-net --state auto uses "pair"
            vb = split.val & (cap.y == 0)
            ids.state_thresholds = {"link": thr, "pair": calibrate_threshold(ps[vb], CAL_FPR),
                                    "src": calibrate_threshold(ss[vb], CAL_FPR)}
    return Trained(model, ids, s, res.train_seconds, res.steps, res.optimizer, ps)


def train_packets(cfg: SLNConfig, opts: RunOptions) -> dict[str, Any]:
    """`python train.py --dataset packets`: the unsupervised detector (n_classes 58) on the benign prefix,
    or the supervised one (n_classes 2) on benign + every attack type of the capture (a deployed model;
    the held-out evaluation is sln.security.ids_bench). Writes checkpoint (with IdsSpec) and metrics.json."""
    mode = mode_of(cfg.n_classes)
    if cfg.task != "events" or cfg.input_size != N_FEATURES:
        raise ValueError(f"the packet detector needs task='events' and input_size={N_FEATURES}, e.g. --model "
                         f"sln-ids-small; got task={cfg.task!r} input_size={cfg.input_size}")
    out = Path(opts.out or "runs/packets")
    opts = dataclasses.replace(opts, out=out)
    cap = load_capture(opts.data_dir or DEFAULT_CAPTURE)
    split = unsupervised_split(cap)
    if mode == "classify":   # deployed supervised model: the prefix + every attack (no held-out type)
        split = Split(split.train | split.test, split.val, split.test)
    cfg = resume_config(cfg, opts)
    torch.manual_seed(cfg.seed)
    model = SLN(cfg)
    threads = resolve_threads(opts.threads)
    print(f"{cfg.name}: N={cfg.n_neurons}, k={cfg.k}, {model.num_params():,} params; {mode}; capture {cap.path}: "
          f"{len(cap.y)} packets, {int(split.train.sum())} train / {int(split.val.sum())} val; {threads} threads")
    out.mkdir(parents=True, exist_ok=True)
    if is_main():                                     # under torchrun only rank 0 writes
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    t = train_on_split(model, cap, split, mode, TrainSpec.from_config(cfg), opts, cfg.batch_size, cfg.seed,
                       {"dataset": "packets"})
    torch.set_num_threads(threads)
    if is_main():                 # under torchrun only rank 0 wrote the loop's checkpoint and adds the spec
        state = json.loads(read_checkpoint(out / CKPT)[0]["train"])
        save_checkpoint(out / CKPT, model, t.optimizer, {k: v for k, v in state.items() if k != "optimizer_groups"}
                        | {"ids": t.spec.to_dict()})
    link_thr = (t.spec.state_thresholds or {}).get("link", t.spec.threshold)
    rep = ids_report(cap, unsupervised_split(cap), t.scores, link_thr)
    m = {"dataset": "packets", "model": cfg.name, "mode": mode, "capture": cap.path, "ids": t.spec.to_dict(),
         "test": rep, "params": model.num_params(), "k": cfg.k, "n_neurons": cfg.n_neurons, "steps": t.steps,
         "train_seconds": t.fit_s, "threads": threads, "seed": cfg.seed,
         "note": "supervised: trained on every attack type, so its test numbers are not held-out (see ids_bench)"
         if mode == "classify" else "unsupervised: trained on benign packets only",
         "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "machine": f"{platform.machine()}, {resolve_threads(None)} CPU cores, torch {torch.__version__}",
         "config": cfg.to_dict()}
    if t.pair_scores is not None and t.spec.state_thresholds and "pair" in t.spec.state_thresholds:
        m["test_pair_state"] = ids_report(cap, unsupervised_split(cap), t.pair_scores, t.spec.state_thresholds["pair"])
    write_metrics(out, m)
    p = rep["per_packet"]
    print(f"test per packet ROC-AUC {p['roc_auc']:.4f}  TPR@1e-3 {p['tpr@1e-3']:.3f}  EER {p['eer']:.4f}  "
          f"at stored thr {link_thr:.4g}: TPR {p['tpr@thr']:.3f} FPR {p['fpr@thr']:.4f}")
    if "test_pair_state" in m:
        q = m["test_pair_state"]["per_packet"]
        print(f"pair state: ROC-AUC {q['roc_auc']:.4f}  TPR@1e-3 {q['tpr@1e-3']:.3f}  EER {q['eer']:.4f}  at its thr "
              f"{t.spec.state_thresholds['pair']:.4g}: TPR {q['tpr@thr']:.3f} FPR {q['fpr@thr']:.4f}")
    return m


def load_ids(path: str | Path) -> tuple[SLN, IdsSpec]:
    """A trained packet-detector checkpoint -> (SLN in eval mode, spec); CheckpointError if it is not one."""
    model, spec = load_with_spec(path, "ids", IdsSpec, "packet detector",
                                 "python train.py --dataset packets --model sln-ids-small")
    if spec.features != list(FEATURE_NAMES) or len(spec.scale) != N_FEATURES or model.cfg.task != "events":
        raise CheckpointError(f"{path}: trained on other packet features than this sln's reader computes")
    return model, spec



"""What `python -m sln.security.ids_bench` runs, and the bounds on it: model selection, training-packet caps,
a time budget, the plan printed first, progress, and a scoring path that scales to the full capture.

    python -m sln.security.ids_bench --models kitnet10,gru,iforest --max-train-packets 200000 --time-budget-s 1800

Items (`--models`, comma-separated, run in the order given; `all` (default), `unsup`, `sup` expand):
  sln       unsupervised SLN `sln-ids-small` (reconstruction on the benign prefix)
  gru       unsupervised GRU of the SLN's parameter count
  kitnet1   KitNET m = 10, 1 pass (as in the paper);  kitnet10: 10 passes
  iforest   Isolation Forest, 200 trees, on the packet features
  sup-sln   supervised SLN `sln-ids-sup`, one run per held-out attack type (leave one type out)
  sup-gru   supervised GRU, leave one type out;  gbt: gradient-boosted trees, leave one type out
  energy    estimated energy per packet (analytic counts; KitNET's row needs kitnet1 or kitnet10 run)
  speed     featurizer and streaming-detector speed (needs sln, and kitnet1 or kitnet10)
The leave-one-type-out items run one sub-item per held-out type (`--types` picks them), so a time budget can
end them part way. Bounds: `--max-packets M` uses the capture's first M packets; `--max-train-packets N`
fits every model on at most N training packets (evenly spaced blocks of BLOCK consecutive packets of the
split's training mask, so sequence windows stay contiguous); `--time-budget-s T` skips an item (recorded in
`res["skipped"]`) when the elapsed time plus its estimate would pass T. Estimates come from per-packet and
per-step costs measured on the shared 2-core machine (COST), rescaled after every finished item by the
ratio actual / estimated so far; they are rough (load on the machine changes them by 2x).

Scoring (why this module exists): the SLN and GRU detectors score the whole capture as one stream. The
SLN is scored through the C block path (`fastpath.BlockScorer`, the scorer of `sln detect-net`; equal to the
per-packet step to float32 rounding), the per-packet step only over the training prefix where the
reconstruction's residual weights are measured; the GRU in chunks with its state carried. On the 2.1 M-packet
full capture that is seconds instead of the per-packet path's minutes per model.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SLNConfig
from ..model import SLN
from ..prune import Pruner
from ..tasks.loop import RunOptions, TrainSpec, fit
from . import ids_data as D
from .ids import CAL_FPR, PacketTask, Trained, residual_weight, scores_from_outputs, stream_inputs, stream_outputs
from .metrics import calibrate_threshold

UNSUP = ("sln", "gru", "kitnet1", "kitnet10", "iforest")
SUP = ("sup-sln", "sup-gru", "gbt")
EXTRA = ("energy", "speed")
KNOWN = UNSUP + SUP + EXTRA
GROUPS = {"all": KNOWN, "unsup": UNSUP, "sup": SUP, "kitnet": ("kitnet1", "kitnet10")}
BLOCK = 256
CHUNK = 1 << 18          # packets per scoring call (progress and bounded temporaries)

# Rough costs on the shared 2-core AMD EPYC dev machine, 1 thread (seconds): per packet (pkt), per training
# packet and pass (train_pkt), per training step (step). Only for the plan's estimate and the budget.
COST = {"load_pkt": 4e-6, "report_pkt": 3e-6,
        "sln_step": 0.15, "sup_sln_step": 0.06, "sln_score_pkt": 1e-5, "sln_prefix_pkt": 1e-4,
        "gru_step": 0.06, "sup_gru_step": 0.04, "gru_score_pkt": 1e-5,
        "kitnet_train_pkt": 9e-4, "kitnet_score_pkt": 1.6e-5,
        "iforest_train_pkt": 2e-5, "iforest_score_pkt": 2e-5,
        "gbt_train_pkt": 4e-5, "gbt_score_pkt": 4e-6, "speed_pkt": 1.5e-4, "energy": 2.0}


def parse_models(text: str | None) -> list[str]:
    """'kitnet10,gru' -> ['kitnet10', 'gru'] (order kept, duplicates dropped, groups expanded);
    ValueError naming the known items for anything else."""
    out: list[str] = []
    for tok in (text or "all").replace(" ", "").split(","):
        if not tok:
            continue
        names = GROUPS.get(tok, (tok,))
        for n in names:
            if n not in KNOWN:
                groups = ", ".join(g + "=" + "+".join(v) for g, v in GROUPS.items())
                raise ValueError(f"unknown model {tok!r} for --models; known: {', '.join(KNOWN)} (groups: {groups})")
            if n not in out:
                out.append(n)
    if not out:
        raise ValueError(f"--models is empty; give some of: {', '.join(KNOWN)}")
    return out


def parse_types(text: str | None, known: list[str]) -> list[str]:
    if not text:
        return list(known)
    out = [t for t in text.replace(" ", "").split(",") if t]
    bad = [t for t in out if t not in known]
    if bad:
        raise ValueError(f"unknown attack type(s) {', '.join(bad)} for --types; this capture has {', '.join(known)}")
    return out


def limit_train(mask: np.ndarray, n: int | None, block: int = BLOCK) -> np.ndarray:
    """At most n packets of a training mask: n // block evenly spaced blocks of `block` consecutive training
    packets (in stream order; the first and the last training packets included; all of it when it holds
    <= n). A block may straddle a gap of the mask: it then contributes two runs, as the mask itself did.
    """
    idx = np.flatnonzero(mask)
    if n is None or len(idx) <= n:
        return mask
    if n < 1:
        raise ValueError("--max-train-packets must be >= 1")
    block = min(block, n)
    nb = n // block                                  # whole blocks; starts spaced >= block apart (nb * block < len)
    starts = np.linspace(0, len(idx) - block, nb).round().astype(np.int64)
    pos = (starts[:, None] + np.arange(block)[None, :]).ravel()
    out = np.zeros_like(mask, dtype=bool)
    out[idx[pos]] = True
    return out


def limit_split(sp: D.Split, n: int | None) -> D.Split:
    return sp if n is None else dataclasses.replace(sp, train=limit_train(sp.train, n))


def head(cap: D.Capture, m: int | None) -> D.Capture:
    """The capture's first m packets (all when m is None or larger)."""
    if m is None or m >= len(cap.y):
        return cap
    if m < 1:
        raise ValueError("--max-packets must be >= 1")
    ev = cap.ev
    cut = {f.name: getattr(ev, f.name)[:m] for f in dataclasses.fields(ev) if f.name != "stats"}
    return dataclasses.replace(cap, ev=dataclasses.replace(ev, **cut), y=cap.y[:m], kind=cap.kind[:m])


def load_capture(capture: str | Path) -> tuple[D.Capture, str]:
    """ids_data.load_capture, with the C featurizer when it builds (bit-identical features, ~30x faster:
    seconds instead of minutes on the full capture). -> (capture, 'c' | 'python')."""
    d = Path(capture)
    if d.is_dir() and (d / "manifest.json").is_file():
        try:
            from .fastpath import read_events_fast
            return D.load_capture(d, reader=read_events_fast), "c"
        except Exception:          # no compiler, an unusable build, bad labels: the Python reader decides
            pass
    return D.load_capture(d), "python"


# --------------------------------------------------------------------------- the plan
@dataclasses.dataclass
class Item:
    key: str                 # e.g. "kitnet10", "gbt:flood_syn"
    what: str
    est_s: float


def plan(models: list[str], cap: D.Capture, unsup: D.Split, loao: dict[str, D.Split], types: list[str],
         steps: int, quick: bool) -> list[Item]:
    """The items in run order with their estimated seconds (COST x packets / steps)."""
    n, C = len(cap.y), COST
    n_tr = int(unsup.train.sum())
    rep = 7 * n * C["report_pkt"]                 # one report per split: unsupervised + six held-out
    pre = int(np.flatnonzero(unsup.train).max()) + 1 if unsup.train.any() else 0
    out: list[Item] = []
    for m in models:
        if m == "sln":
            out.append(Item(m, f"SLN sln-ids-small, {steps} steps on {n_tr:,} benign packets, score {n:,}",
                            steps * C["sln_step"] + pre * C["sln_prefix_pkt"] + n * C["sln_score_pkt"] + rep))
        elif m == "gru":
            out.append(Item(m, f"GRU, {steps} steps on {n_tr:,} benign packets, score {n:,}",
                            steps * C["gru_step"] + n * C["gru_score_pkt"] + rep))
        elif m in ("kitnet1", "kitnet10"):
            ep = 1 if (quick or m == "kitnet1") else 10
            out.append(Item(m, f"KitNET m=10, {ep} pass(es) over {n_tr:,} benign packets, score {n:,}",
                            ep * n_tr * C["kitnet_train_pkt"] + n * C["kitnet_score_pkt"] + rep))
        elif m == "iforest":
            out.append(Item(m, f"Isolation Forest on {n_tr:,} benign packets, score {n:,}",
                            n_tr * C["iforest_train_pkt"] + n * C["iforest_score_pkt"] + rep))
        elif m in SUP:
            for t in types:
                k = int(loao[t].train.sum())
                if m == "gbt":
                    est = k * C["gbt_train_pkt"] + n * C["gbt_score_pkt"]
                elif m == "sup-sln":
                    est = steps * C["sup_sln_step"] + n * C["sln_score_pkt"]
                else:
                    est = steps * C["sup_gru_step"] + n * C["gru_score_pkt"]
                out.append(Item(f"{m}:{t}", f"{m}, {t} held out, trained on {k:,} packets, score {n:,}",
                                est + n * C["report_pkt"]))
        elif m == "energy":
            out.append(Item(m, "energy per packet (analytic operation counts)", C["energy"]))
        elif m == "speed":
            out.append(Item(m, "featurizer and detector speed on the pcap bytes", n * C["speed_pkt"]))
    return out


def fmt_s(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


class Progress:
    """Runs the items against the budget; prints the plan, a line per item and the rescaled estimate."""

    def __init__(self, items: list[Item], budget_s: float | None, stream: Any = None) -> None:
        self.items, self.budget = items, budget_s
        self.out = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.done_est = self.done_act = 0.0
        self.skipped: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}

    def say(self, msg: str) -> None:
        print(f"[ids_bench {self.elapsed():7.1f} s] {msg}", file=self.out, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def ratio(self) -> float:
        return self.done_act / self.done_est if self.done_est > 0 else 1.0

    def show_plan(self, header: str) -> None:
        tot = sum(i.est_s for i in self.items)
        self.say(header)
        self.say(f"plan: {len(self.items)} items, estimated {fmt_s(tot)} in all (rough)"
                 + (f"; time budget {fmt_s(self.budget)}" if self.budget else ""))
        for i, it in enumerate(self.items, 1):
            self.say(f"  {i:2d}. {it.key:<24s} ~{fmt_s(it.est_s):>8s}  {it.what}")

    def run(self, it: Item, fn: Callable[[], Any]) -> bool:
        """Run one item unless the budget forbids it -> whether it ran."""
        est = it.est_s * self.ratio()
        if self.budget and self.elapsed() + est > self.budget:
            self.skipped.append({"item": it.key, "estimate_s": round(est, 1),
                                 "reason": f"would pass the time budget ({fmt_s(self.elapsed())} used of "
                                           f"{fmt_s(self.budget)}, estimate {fmt_s(est)})"})
            self.say(f"skip {it.key}: {self.skipped[-1]['reason']}")
            return False
        n = self.items.index(it) + 1
        self.say(f"[{n}/{len(self.items)}] {it.key}: {it.what} (estimate {fmt_s(est)})")
        t = time.perf_counter()
        fn()
        act = time.perf_counter() - t
        self.done_est += it.est_s
        self.done_act += act
        self.timings[it.key] = round(act, 1)
        left = sum(i.est_s for i in self.items[n:]) * self.ratio()
        self.say(f"[{n}/{len(self.items)}] {it.key} done in {fmt_s(act)}; remaining estimate {fmt_s(left)}")
        return True


# --------------------------------------------------------------------------- training and whole-stream scoring
@torch.no_grad()
def gru_outputs(model: torch.nn.Module, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """ids.stream_outputs for the GRU, chunk by chunk with the hidden state carried (the same outputs)."""
    model.eval()
    out, h = [], None
    for a in range(0, len(x), chunk):
        o, h = model.gru(torch.from_numpy(np.ascontiguousarray(x[a:a + chunk]))[None], h)
        out.append(model.readout(o)[0].numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_classes), np.float32)


def sln_block_scores(model: SLN, spec: D.IdsSpec, cap: D.Capture, chunk: int = CHUNK) -> np.ndarray:
    """Every packet's score through the C block scorer (fastpath.BlockScorer), state carried over chunks."""
    from .fastpath import BlockScorer
    sc = BlockScorer(model, spec)
    dt = cap.ev.dt.astype(np.float64)
    return np.concatenate([sc.scores(cap.ev.x[a:a + chunk], dt[a:a + chunk]) for a in range(0, len(dt), chunk)])


def block_path_available() -> bool:
    try:
        from .fastpath import load_library
        load_library()
        return True
    except Exception:
        return False


def train_split(model: torch.nn.Module, cap: D.Capture, split: D.Split, mode: str, spec: TrainSpec,
                opts: RunOptions, batch_size: int, seed: int, block: bool = True) -> Trained:
    """ids.train_on_split (same task, loop, scale, residual weights and calibration), scoring the stream
    through the C block path (SLN; `block`) or in carried chunks (GRU) instead of one packet at a time."""
    if isinstance(model, SLN) and not block:
        from .ids import train_on_split
        return train_on_split(model, cap, split, mode, spec, opts, batch_size, seed)
    scale = D.fit_scale(cap.ev.x[split.train & (cap.y == 0)])
    x, dt = stream_inputs(cap, scale)
    task = PacketTask(x, dt, cap.y, split.segments(), mode, batch_size, seed)
    mcfg = getattr(model, "cfg", None)
    if isinstance(mcfg, SLNConfig) and min(mcfg.density_in, mcfg.density_rec) < 1.0:
        task.after_step = Pruner(mcfg, task.steps_per_epoch * mcfg.epochs)   # type: ignore[attr-defined]
    res = fit(model, task, spec, opts, None)
    model.cpu()
    tb = split.train & (cap.y == 0)
    w = None
    if isinstance(model, SLN):
        if mode == "reconstruct":        # residual weights from the per-packet step over the training prefix
            end = int(np.flatnonzero(tb).max()) + 1
            out = stream_outputs(model, x[:end], dt[:end])
            w = residual_weight(out[tb[:end]], x[:end][tb[:end]])
        ids = D.IdsSpec(mode, scale.tolist(), 0.0, CAL_FPR, resid_weight=None if w is None else w.tolist())
        s = sln_block_scores(model, ids, cap)
    else:
        out = gru_outputs(model, x)
        w = residual_weight(out[tb], x[tb]) if mode == "reconstruct" else None
        s = scores_from_outputs(mode, out, x, w)
    thr = calibrate_threshold(s[split.val & (cap.y == 0)], CAL_FPR)
    ids = D.IdsSpec(mode, scale.tolist(), thr, CAL_FPR, held_out=split.held_out, capture_sha256=cap.sha256,
                    resid_weight=None if w is None else w.tolist())
    return Trained(model, ids, s, res.train_seconds, res.steps, res.optimizer)

"""Streaming packet scoring with a trained detector: one packet in, one scored alert record out.

    det = NetDetector(model, spec)                     # from sln.security.ids.load_ids(path)
    for rec in det.run(iter_packets("-")):             # pcap file or a live `tcpdump -w -` stream
        ...                                            # {ts, src, dst, sport, dport, proto, score, alert, threshold}

Per packet: the bounded featurizer (sln.security.packets.Featurizer: LRU tables with idle expiry),
scaling by the stored per-feature scale, one step of the model with the packet's dt, the per-step
readout, the score. Nothing grows with the stream: the featurizer's tables are capped, the model state
is fixed-size, and latencies go into a fixed log-spaced histogram (p50/p99 read from it).

The step runs on the project's C runtime (sln.engine.Engine: float32, event-driven) when it builds,
else on the PyTorch model's own step (sln.model.Stream); `tests/test_security_ids.py` checks that the
two give the same scores. The per-step readout (W_o y + b over the k winners) is applied here to the
engine's top-layer output, as SLN.run does for task "events".
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..model import SLN
from .ids_data import IdsSpec
from .packets import Featurizer, Packet, ip_str

HIST_LO, HIST_BINS, HIST_STEP = 1e-7, 1200, 1.01    # 100 ns .. ~15 s in 1 % bins


class LatencyHistogram:
    """Fixed-size log histogram of durations (seconds): bounded memory on an endless stream."""

    def __init__(self) -> None:
        self.counts = np.zeros(HIST_BINS + 1, np.int64)
        self.n = 0
        self._log_step = math.log(HIST_STEP)

    def add(self, seconds: float, count: int = 1) -> None:
        """count durations of `seconds` each (count > 1: a block's mean per-packet time, sln.security.fastpath)."""
        i = 0 if seconds <= HIST_LO else min(HIST_BINS, int(math.log(seconds / HIST_LO) / self._log_step) + 1)
        self.counts[i] += count
        self.n += count

    def quantile(self, q: float) -> float:
        """Upper edge of the bin holding the q-quantile (within 1 % of the true value)."""
        if self.n == 0:
            return math.nan
        i = int(np.searchsorted(np.cumsum(self.counts), q * self.n, side="left"))
        return HIST_LO * HIST_STEP ** i


class StepScorer:
    """One packet's scaled features + dt (cell units) -> its score, the model state carried across calls.
    The C runtime's step when it builds (backend "auto" / "c"), else the PyTorch model's Stream."""

    def __init__(self, model: SLN, mode: str, backend: str = "auto", weight: list[float] | None = None) -> None:
        if backend not in ("auto", "c", "torch"):
            raise ValueError("backend must be 'auto', 'c' or 'torch'")
        self.model, self.recon = model.eval(), mode == "reconstruct"
        self.weight = None if weight is None else np.asarray(weight, np.float64)
        self.backend, self.engine = "torch", None
        if backend in ("auto", "c"):
            try:
                from ..engine import Engine
                self.engine = Engine(self.model)
                self.backend = "c"
            except Exception:   # no compiler / runtime mid-change: the torch step is exact, only slower
                if backend == "c":
                    raise
        if self.engine is not None:
            self.counts = self.engine.new_counts()
            self.w_out = self.model.readout.weight.detach().numpy().astype(np.float32)   # (C, N)
            self.b_out = self.model.readout.bias.detach().numpy().astype(np.float32)
        self.reset()

    def reset(self) -> None:
        if self.engine is not None:
            self.estate = self.engine.init_state()
        else:
            self.stream = self.model.stream(1)

    def output(self, xs: np.ndarray, dtc: float) -> np.ndarray:
        """xs (D,) float32 scaled features, dtc the elapsed time in cell units -> the readout (C,)."""
        if self.engine is not None:
            self.engine.step(xs, self.estate, dtc, self.counts)
            m = int(self.estate.wn[-1])
            idx, val = self.estate.widx[-1, :m].astype(np.intp), self.estate.wval[-1, :m]
            out = self.w_out[:, idx] @ val + self.b_out          # (C,): only the winners' columns
        else:
            y = self.stream.step(torch.from_numpy(xs)[None], dtc)
            with torch.inference_mode():
                out = self.model.readout(y)[0].numpy()
        return out

    def score(self, xs: np.ndarray, dtc: float) -> float:
        """One packet -> its score (the state advances): weighted reconstruction RMSE or logit difference."""
        out = self.output(xs, dtc)
        if self.recon:
            d = out.astype(np.float64) - xs
            if self.weight is not None:
                d *= self.weight
            return float(math.sqrt(float(np.dot(d, d)) / len(d)))
        return float(out[1] - out[0])

    def outputs_all(self, x: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """A whole stream (T, D) scaled, dt (T,) cell units -> (T, C) readouts, from the current state."""
        x = np.ascontiguousarray(x, np.float32)
        return np.stack([self.output(x[i], float(dt[i])) for i in range(len(x))]) if len(x) else np.zeros((0, 0))

    def score_all(self, x: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """A whole stream (T, D) scaled, dt (T,) cell units -> (T,) scores, from the current state."""
        x = np.ascontiguousarray(x, np.float32)
        return np.fromiter((self.score(x[i], float(dt[i])) for i in range(len(x))), np.float64, len(x))


class NetDetector:
    """A trained packet detector scoring a packet stream one packet at a time."""

    def __init__(self, model: SLN, spec: IdsSpec, threshold: float | None = None, backend: str = "auto",
                 featurizer: Featurizer | None = None, keyed: Any = None) -> None:
        self.spec = spec
        self.threshold = spec.threshold if threshold is None else float(threshold)
        self.fz = featurizer or Featurizer()
        self.inv_scale = (1.0 / np.asarray(spec.scale, np.float64)).astype(np.float32)
        self.clip = np.float32(spec.clip)
        self.dt_scale = float(spec.dt_scale)
        # default: the link state; sln.security.keyed passes a KeyedStepScorer (one state per host pair / source)
        self.keyed = keyed
        self.scorer = keyed.inner if keyed is not None else StepScorer(model, spec.mode, backend, spec.resid_weight)
        self.backend = self.scorer.backend
        self.latency = LatencyHistogram()
        self.packets = self.alerts = 0

    def score_features(self, x: list[float] | np.ndarray, dt: float) -> float:
        """One packet's raw features (58,) and dt (s) -> its score (the state advances)."""
        xs = np.clip(np.asarray(x, np.float32) * self.inv_scale, -self.clip, self.clip)
        return self.scorer.score(xs, dt * self.dt_scale)

    def run(self, packets: Iterable[Packet]) -> Iterator[dict[str, Any]]:
        """Alert records, one per packet, in stream order; latency = featurize + score per packet."""
        pc = time.perf_counter
        for p in packets:
            t0 = pc()
            e = self.fz.step(p)
            if self.keyed is None:
                s = self.score_features(e.x, e.dt)
            else:
                xs = np.clip(np.asarray(e.x, np.float32) * self.inv_scale, -self.clip, self.clip)
                s = self.keyed.score(xs, self.dt_scale, e.ts, e.src, e.dst)
            self.latency.add(pc() - t0)
            alert = s > self.threshold
            self.packets += 1
            self.alerts += alert
            yield {"ts": round(e.ts, 6), "src": ip_str(e.src), "dst": ip_str(e.dst), "sport": e.sport,
                   "dport": e.dport, "proto": e.proto, "score": round(s, 6), "alert": alert,
                   "threshold": self.threshold}

    def memory_items(self) -> int:
        """Entries held by the featurizer's tables (bounded by their caps) + the latency histogram's bins."""
        return self.fz.state_size() + len(self.latency.counts) + (0 if self.keyed is None else len(self.keyed.table))

"""What the image and LM benchmarks both measure: threads, wall-clock timing, a real energy meter
where one exists, weight footprints, and the energy estimate of counted operations.

One copy of each, so an fp32 and an int8 row, or an image and an LM row, are priced and timed
the same way. Every energy here is an estimate from counts (sln/energy.py) except
`measured_energy_uJ`, which only a RAPL counter fills.
"""
from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..energy import EnergyProfile, estimate_pj

PJ_TO_UJ = 1e-6


# --------------------------------------------------------------------------- machine
@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with n PyTorch threads, then restore the caller's setting. Batch-1 timing
    is done at 1 thread: a chain of tiny ops is fastest and least noisy there."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured_energy_source() -> dict[str, Any]:
    """A real meter, if this machine has one (Linux RAPL powercap package counter)."""
    for p in sorted(Path("/sys/class/powercap").glob("intel-rapl:*/energy_uj")):
        try:
            int(p.read_text())
            return {"available": True, "source": str(p),
                    "note": "RAPL package energy of the whole CPU package during the batch-1 loop, "
                            "divided by the number of inferences (includes idle and other processes)"}
        except (OSError, ValueError):
            continue
    return {"available": False, "source": None,
            "note": "not measured here: no RAPL powercap counter or NVML device on this machine; "
                    "all energy figures are estimates from the operation counts"}


def _rapl_read(src: str | None) -> float | None:
    if not src:
        return None
    try:
        return float(Path(src).read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- timing
def median_latency_ms(fn: Callable[[int], Any], n: int, warmup: int, meter: str | None = None
                      ) -> tuple[float, float | None]:
    """Median wall time of fn(i) in ms over n calls after `warmup` calls; RAPL uJ/call if metered."""
    for i in range(warmup):
        fn(i)
    ts = np.empty(n)
    e0 = _rapl_read(meter)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        ts[i] = time.perf_counter() - t0
    e1 = _rapl_read(meter)
    uj = (e1 - e0) / n if e0 is not None and e1 is not None and e1 >= e0 else None
    return float(np.median(ts) * 1e3), uj


def time_interleaved(items: list[tuple[dict[str, Any], dict[str, Callable[[int], Any]]]], n: int, warmup: int,
                     meter: str | None, progress: bool = True, block: int = 10) -> None:
    """Batch-1 median latency of every callable; fills the rows (row[key] = ms).

    Rounds interleave the models in blocks: each round runs, for every callable in turn, 2 untimed
    calls (to warm its caches again) then `block` timed calls. Load from other processes on a
    shared machine thus hits every model alike, while each timed call sees its own weights in
    cache, as in a plain warm batch-1 loop. With a RAPL meter, each model's energy is then
    measured in its own loop of n calls."""
    from tqdm import tqdm

    from ..tasks.loop import bar_kwargs

    flat = [(row, key, fn) for row, timers in items for key, fn in timers.items()]
    for _, _, fn in flat:
        for i in range(warmup):
            fn(i)
    ts: list[list[float]] = [[] for _ in flat]
    rounds = max(1, math.ceil(n / block))
    for r in tqdm(range(rounds), desc="batch-1 latency", leave=False, **bar_kwargs(progress)):
        for j, (_, _, fn) in enumerate(flat):
            fn(r * block)
            fn(r * block + 1)
            for i in range(block):
                t0 = time.perf_counter()
                fn(r * block + i)
                ts[j].append(time.perf_counter() - t0)
    for j, (row, key, _) in enumerate(flat):
        row[key] = float(np.median(ts[j][:n]) * 1e3)
    for row, timers in items:
        if row.get("torch_dense_latency_ms") and row.get("latency_ms"):
            row["speedup_vs_torch_dense"] = row["torch_dense_latency_ms"] / row["latency_ms"]
        if meter:
            _, row["measured_energy_uJ"] = median_latency_ms(timers["latency_ms"], n, 0, meter)


def best_rate(setup: Callable[[], Any], step: Callable[[Any, int], Any], n: int, repeats: int) -> float:
    """Calls per second of a chain of n calls carry = step(carry, j), after carry = setup()
    (untimed); the best of `repeats`: on a shared machine the fastest run is the one least
    disturbed by other processes (the LM's decode speed)."""
    best = 0.0
    for _ in range(repeats):
        carry = setup()
        t0 = time.perf_counter()
        for j in range(n):
            carry = step(carry, j)
        best = max(best, n / (time.perf_counter() - t0))
    return best


# --------------------------------------------------------------------------- footprint and energy
def weight_footprint(n_int8: int, n_wide: int) -> int:
    """Bytes of a weight set: 1 byte per int8 weight, 4 per other parameter (fp32, or an int32
    multiplier/shift/bias/table entry of an int8 model). fp32 models: weight_footprint(0, n)."""
    return int(n_int8) + 4 * int(n_wide)


def energy(ops: dict[str, float], weight_footprint_bytes: float, act_footprint_bytes: float,
           profile: EnergyProfile | None = None, precision: str = "fp32",
           param_footprint_bytes: float | None = None) -> dict[str, Any]:
    """sln.energy.estimate_pj of one inference (pJ by term, levels); see that function's keys.
    weight_footprint_bytes: the weight matrices; param_footprint_bytes: the parameter vectors."""
    return estimate_pj(ops, weight_footprint_bytes, act_footprint_bytes, profile, precision=precision,
                       param_footprint_bytes=param_footprint_bytes)


def breakdown_uj(e: dict[str, Any], precision: str) -> dict[str, float]:
    """The energy_breakdown_uJ of a row from an estimate: compute / weight_mem (matrices) /
    param_mem (parameter vectors) / act_mem, and at int8 also the MAC and int32-op parts of
    compute (the int8 table prints those)."""
    keys = ("compute", "weight_mem", "param_mem", "act_mem") if precision == "fp32" else \
        ("compute", "mac", "int32_ops", "weight_mem", "param_mem", "act_mem")
    return {k: e[k] * PJ_TO_UJ for k in keys}


def term_energy_uj(term_ops: dict[str, dict[str, float]], weight_footprint_bytes: float,
                   act_footprint_bytes: float, profile: EnergyProfile, precision: str,
                   param_footprint_bytes: float | None = None) -> dict[str, float]:
    """Breakdown by term: the same arithmetic applied to each term's counts (memory levels from
    the whole model's footprints) -> {"<term>.compute" | ".weight_mem" | ".param_mem" | ".act_mem": uJ}."""
    out: dict[str, float] = {}
    for term, ops in term_ops.items():
        te = energy(ops, weight_footprint_bytes, act_footprint_bytes, profile, precision, param_footprint_bytes)
        for part in ("compute", "weight_mem", "param_mem", "act_mem"):
            out[f"{term}.{part}"] = te[part] * PJ_TO_UJ
    return out

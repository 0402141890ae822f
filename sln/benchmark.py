"""`python benchmark.py --compare-energy --model sln-base`: SLN vs transformers, counted honestly.

For each model (SLN sparse, SLN dense k=N, ViT sizes, ncps CfC when installed) it measures
on the real test set: accuracy, operations and bytes counted while executing (SLN: the
event-driven engine's counters; ViT: its counting forward), estimated energy per inference
from one cited table (sln/energy.py, `--energy-profile`), batch-1 median latency (warm-up
excluded, threads stated), and throughput. The headline ratios are taken at equal accuracy
and equal precision (fp32 vs fp32); the method is written into the output. Measured energy
is reported only where a real meter exists (Linux RAPL powercap); otherwise "not measured
here". A separate int8 vs int8 section (doc["int8"], its own table; `--no-int8` skips it) puts
the SLNs through sln.quant's integer model and the ViTs through int8 weights and activations,
with measured int8 accuracies and int8 energies. See docs/ENERGY.md for the JSON schema and the
method.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .baselines import CFC_SIZES, VIT_SIZES, count_cfc, count_vit, ncps_available, train_cfc, train_vit
from .checkpoint import load_checkpoint
from .config import get_config, list_models
from .data import load_split
from .energy import EnergyProfile, estimate_pj, get_profile
from .engine import Engine
from .model import SLN, images_to_sequence

SCHEMA_ID = "sln-energy-benchmark-v1"
FAMILY_COLORS = {"sln": "tab:red", "sln-dense": "tab:orange", "vit": "tab:blue", "cfc": "tab:green"}

# JSON Schema (draft 2020-12 subset) of --json output; docs/ENERGY.md explains every field.
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "family", "params", "precision", "accuracy", "test_images", "active_fraction",
                 "dense_macs", "effective_macs", "effective_acs", "elementwise", "weight_bytes_read",
                 "act_bytes", "weight_footprint_bytes", "weight_memory_level", "act_memory_level",
                 "energy_uJ", "energy_breakdown_uJ", "measured_energy_uJ", "latency_ms", "latency_threads",
                 "torch_dense_latency_ms", "throughput_per_s", "epochs", "source", "how"],
    "properties": {
        "name": {"type": "string"}, "family": {"type": "string", "enum": list(FAMILY_COLORS)},
        "params": {"type": "integer", "minimum": 1}, "precision": {"type": "string", "enum": ["fp32", "int8"]},
        "accuracy": {"type": "number", "minimum": 0, "maximum": 1},
        "test_images": {"type": "integer", "minimum": 1},
        "active_fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "dense_macs": _NUM, "effective_macs": _NUM, "effective_acs": _NUM,
        "elementwise": {"type": "object", "required": ["adds", "muls", "cmps", "nonlin"],
                        "properties": {k: _NUM for k in ("adds", "muls", "cmps", "nonlin")}},
        "weight_bytes_read": _NUM, "act_bytes": _NUM, "weight_footprint_bytes": _NUM,
        "weight_memory_level": {"type": "string"}, "act_memory_level": {"type": "string"},
        "energy_uJ": {"type": "number", "minimum": 0}, "energy_breakdown_uJ": {"type": "object"},
        "measured_energy_uJ": _NUM_OR_NULL, "latency_ms": {"type": "number", "minimum": 0},
        "latency_threads": {"type": "integer", "minimum": 1}, "torch_dense_latency_ms": _NUM_OR_NULL,
        "throughput_per_s": {"type": "number", "minimum": 0}, "epochs": {"type": ["integer", "null"]},
        "source": {"type": "string"},
        "how": {"type": "object", "required": ["accuracy", "counts", "energy", "latency", "throughput"],
                "properties": {k: {"type": "string"} for k in ("accuracy", "counts", "energy", "latency",
                                                               "throughput")}},
    },
}
JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "command", "date", "dataset", "quick", "machine", "energy_profile",
                 "measured_energy", "models", "comparisons", "headline"],
    "properties": {
        "schema": {"type": "string", "enum": [SCHEMA_ID]},
        "command": {"type": "string"}, "date": {"type": "string"},
        "dataset": {"type": "string"}, "quick": {"type": "boolean"},
        "machine": {"type": "object", "required": ["cpu", "cores", "threads", "torch", "engine_backend"]},
        "energy_profile": {"type": "object", "required": ["name", "citation"]},
        "measured_energy": {"type": "object", "required": ["available", "note"]},
        "models": {"type": "array", "minItems": 1, "items": MODEL_SCHEMA},
        "comparisons": {"type": "array", "items": {
            "type": "object",
            "required": ["sln", "method", "baseline", "sln_accuracy", "baseline_accuracy", "energy_ratio",
                         "latency_ratio", "note"],
            "properties": {"energy_ratio": _NUM_OR_NULL, "latency_ratio": _NUM_OR_NULL,
                           "method": {"type": "string", "enum": ["smallest-matching", "interpolated"]}}}},
        "headline": {"type": "object", "required": ["model", "precision", "method", "energy_ratio",
                                                     "latency_ratio", "target_energy_ratio",
                                                     "target_latency_ratio", "text"]},
        # optional (absent with --no-int8 and in JSON written before it existed); INT8_SCHEMA below
        "int8": {"type": "object"},
    },
}


def validate(doc: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Errors of doc against the JSON-Schema subset used here (type, enum, required,
    properties, items, minItems, minimum, maximum). Empty list = valid."""
    errs: list[str] = []
    types = schema.get("type")
    if types is not None:
        tl = types if isinstance(types, list) else [types]
        py = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        ok = False
        for t in tl:
            if t == "integer":
                ok |= isinstance(doc, int) and not isinstance(doc, bool)
            elif t == "number":
                ok |= isinstance(doc, (int, float)) and not isinstance(doc, bool) and math.isfinite(doc)
            else:
                ok |= isinstance(doc, py[t])
        if not ok:
            return [f"{path}: expected {types}, got {type(doc).__name__}"]
    if "enum" in schema and doc not in schema["enum"]:
        errs.append(f"{path}: {doc!r} not in {schema['enum']}")
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        if "minimum" in schema and doc < schema["minimum"]:
            errs.append(f"{path}: {doc} < minimum {schema['minimum']}")
        if "maximum" in schema and doc > schema["maximum"]:
            errs.append(f"{path}: {doc} > maximum {schema['maximum']}")
    if isinstance(doc, dict):
        for r in schema.get("required", []):
            if r not in doc:
                errs.append(f"{path}: missing {r!r}")
        for k, sub in schema.get("properties", {}).items():
            if k in doc:
                errs += validate(doc[k], sub, f"{path}.{k}")
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0):
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, it in enumerate(doc):
                errs += validate(it, schema["items"], f"{path}[{i}]")
    return errs


# --------------------------------------------------------------------------- measurement
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
    """Batch-1 median latency of every callable; fills the rows.

    Rounds interleave the models in blocks: each round runs, for every callable in turn, 2 untimed
    calls (to warm its caches again) then `block` timed calls. Load from other processes on a
    shared machine thus hits every model alike, while each timed call sees its own weights in
    cache, as in a plain warm batch-1 loop. With a RAPL meter, each model's energy is then
    measured in its own loop of n calls."""
    from tqdm import tqdm

    flat = [(row, key, fn) for row, timers in items for key, fn in timers.items()]
    for _, _, fn in flat:
        for i in range(warmup):
            fn(i)
    ts: list[list[float]] = [[] for _ in flat]
    rounds = max(1, math.ceil(n / block))
    for r in tqdm(range(rounds), desc="batch-1 latency", disable=not progress, leave=False):
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


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------- per family
def sln_weight_footprint(engine: Engine) -> int:
    """Bytes of every weight the engine may read (fp32)."""
    n = engine.w.w_out_t.size + engine.w.b_out.size
    for d in engine.w.layers:
        n += sum(d[k].size for k in ("w_in_t", "w_rec_t", "bias", "ln_w", "ln_b", "boost"))
    return 4 * n


def sln_act_footprint(engine: Engine) -> int:
    """Activation working set of the engine: per layer a (2N), h (N), scores (N), events (2N);
    the readout accumulator (N) and logits (C); fp32."""
    return 4 * (engine.L * 6 * engine.N + engine.N + engine.C)


def evaluate_sln(name: str, family: str, model: SLN, xte: np.ndarray, yte: np.ndarray, args: argparse.Namespace,
                 profile: EnergyProfile, meter: str | None, source: str, epochs: int | None
                 ) -> tuple[dict[str, Callable[[int], Any]], dict[str, Any]]:
    """-> (batch-1 callables to time, row of the JSON without latencies)."""
    eng = Engine(model, "numpy" if args.engine == "numpy" else "auto")
    seq = images_to_sequence(torch.from_numpy(xte.copy()), model.cfg.input_size).numpy()
    # accuracy and counts over the whole test set, from the engine's own execution
    t0 = time.perf_counter()
    logits, counts = eng.run_batch(seq)
    batch_s = time.perf_counter() - t0
    acc = float((logits.argmax(1) == yte).mean())
    # agreement with the PyTorch forward on the first images (a cross-check of the engine)
    nchk = min(len(seq), 500)
    with torch.no_grad():
        tl = model(torch.from_numpy(seq[:nchk])).numpy()
    agree = float((tl.argmax(1) == logits[:nchk].argmax(1)).mean())
    max_diff = float(np.abs(tl - logits[:nchk]).max())
    s = counts.summary()
    ops = {"macs": s["effective_macs"], "acs": s["effective_acs"], "adds": s["elementwise_adds"],
           "muls": s["elementwise_muls"], "cmps": s["compares"], "nonlin": s["nonlinear_ops"],
           "weight_bytes": s["weight_bytes_read"], "act_bytes": s["act_bytes_read"] + s["act_bytes_written"]}
    wfp, afp = sln_weight_footprint(eng), sln_act_footprint(eng)
    e = estimate_pj(ops, wfp, afp, profile)
    # breakdown by term: the same arithmetic applied to each term's counters
    terms: dict[str, float] = {}
    for term, c in counts.per_term().items():
        t_ops = {"macs": c["mac"], "acs": c["ac"], "adds": c["add"], "muls": c["mul"], "cmps": c["cmp"],
                 "nonlin": c["nonlin"], "weight_bytes": c["weight_bytes"],
                 "act_bytes": c["act_bytes_read"] + c["act_bytes_written"]}
        te = estimate_pj(t_ops, wfp, afp, profile)
        terms[f"{term}.compute"] = te["compute"] * 1e-6
        terms[f"{term}.weight_mem"] = te["weight_mem"] * 1e-6
        terms[f"{term}.act_mem"] = te["act_mem"] * 1e-6
    # latency: batch 1, real test images in turn; timed later, interleaved with every model
    nl = len(seq)
    xt = torch.from_numpy(seq)

    def torch_fwd(i: int) -> None:
        with torch.inference_mode():
            model(xt[i % nl][None])

    timers = {"latency_ms": lambda i: eng.run(seq[i % nl], record_winners=False), "torch_dense_latency_ms": torch_fwd}
    lat = tlat = uj = None
    return timers, {
        "name": name, "family": family, "params": int(model.num_params()), "precision": "fp32",
        "accuracy": acc, "test_images": int(len(yte)), "active_fraction": 1.0 - s["activation_sparsity"],
        "dense_macs": s["dense_macs"], "effective_macs": s["effective_macs"], "effective_acs": s["effective_acs"],
        "elementwise": {"adds": s["elementwise_adds"], "muls": s["elementwise_muls"], "cmps": s["compares"],
                        "nonlin": s["nonlinear_ops"]},
        "weight_bytes_read": s["weight_bytes_read"], "act_bytes": ops["act_bytes"],
        "weight_footprint_bytes": wfp, "act_footprint_bytes": afp,
        "weight_memory_level": e["weight_level"], "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * 1e-6,
        "energy_breakdown_uJ": {"compute": e["compute"] * 1e-6, "weight_mem": e["weight_mem"] * 1e-6,
                                "act_mem": e["act_mem"] * 1e-6, "by_term": terms},
        "measured_energy_uJ": uj, "latency_ms": lat, "latency_threads": 1, "torch_dense_latency_ms": tlat,
        "torch_latency_threads": torch.get_num_threads(),
        "speedup_vs_torch_dense": None,
        "throughput_per_s": len(seq) / batch_s if batch_s > 0 else 0.0, "epochs": epochs, "source": source,
        "input_events_per_inference": s["input_events"], "steps": s["steps"],
        "torch_agreement": {"images": nchk, "same_prediction": agree, "max_abs_logit_diff": max_diff},
        "how": {
            "accuracy": f"event engine ({eng.backend}) on {len(yte)} real test images",
            "counts": f"counted by the event engine ({eng.backend}) while executing, mean over the test images",
            "energy": "estimated: counted ops x per-op energy + bytes/8 x per-64-bit access energy (sln/energy.py)",
            "latency": f"median of {args.repeats} batch-1 runs of the {eng.backend} engine after {args.warmup} "
                       f"warm-up runs (interleaved with the other models in blocks of 10 after 2 untimed calls), "
                       f"1 thread; torch_dense_latency_ms: PyTorch eval forward of the same SLN, same protocol",
            "throughput": f"{eng.backend} engine, whole test set in one call, 1 thread",
        },
    }


def evaluate_baseline(family: str, name: str, cfg: Any, model: torch.nn.Module, to_input: Callable[[torch.Tensor], Any],
                      counter: Callable[[torch.Tensor], Any], info: dict[str, Any], xte: np.ndarray,
                      yte: np.ndarray, args: argparse.Namespace, profile: EnergyProfile
                      ) -> tuple[dict[str, Callable[[int], Any]], dict[str, Any]]:
    """A PyTorch baseline (ViT, CfC): accuracy, counts (counter(image) -> OpCounter), energy, timers."""
    model.eval()
    xt = to_input(torch.from_numpy(xte.copy()))
    nl = len(xt)
    with torch.inference_mode():
        t0 = time.perf_counter()
        pred = torch.cat([model(xt[s:s + 256]).argmax(1) for s in range(0, nl, 256)])
        thr = nl / (time.perf_counter() - t0)
    acc = float((pred.numpy() == yte).mean())
    # counts at batch 1 on real images (only the effective MACs depend on the image)
    nc = min(len(xte), 20)
    cnts = [counter(torch.from_numpy(xte[i].copy())) for i in range(nc)]
    c0 = cnts[0]
    eff = float(np.mean([c.effective_macs for c in cnts]))
    ops = {**c0.to_ops(), "macs": eff}
    n_params = sum(p.numel() for p in model.parameters())
    wfp = 4 * n_params
    e = estimate_pj(ops, wfp, c0.peak_act_bytes, profile)

    def fwd(i: int) -> None:
        with torch.inference_mode():
            model(xt[i % nl][None])

    mac_terms = {k: v * profile.op_pj("fp32")["mac"] * 1e-6 for k, v in c0.by_term.items()}
    return {"latency_ms": fwd}, {
        "name": name, "family": family, "params": int(n_params), "precision": "fp32",
        "accuracy": acc, "test_images": int(len(yte)), "active_fraction": None,
        "dense_macs": c0.macs, "effective_macs": eff, "effective_acs": 0.0,
        "elementwise": {"adds": c0.adds, "muls": c0.muls, "cmps": c0.cmps, "nonlin": c0.nonlin},
        "weight_bytes_read": c0.weight_bytes, "act_bytes": ops["act_bytes"],
        "weight_footprint_bytes": wfp, "act_footprint_bytes": c0.peak_act_bytes,
        "weight_memory_level": e["weight_level"], "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * 1e-6,
        "energy_breakdown_uJ": {"compute": e["compute"] * 1e-6, "weight_mem": e["weight_mem"] * 1e-6,
                                "act_mem": e["act_mem"] * 1e-6, "mac_by_term": mac_terms},
        "measured_energy_uJ": None, "latency_ms": None, "latency_threads": torch.get_num_threads(),
        "torch_dense_latency_ms": None, "throughput_per_s": thr, "epochs": info["epochs"],
        "source": ("reused from " if info.get("reused") else "trained by this run into ") + str(args.cache_dir),
        "config": asdict(cfg), "seconds_per_epoch": info.get("seconds_per_epoch"),
        "how": {
            "accuracy": f"PyTorch forward on {len(yte)} real test images",
            "counts": f"counted while executing at batch 1 on {nc} real test images (sln.baselines); "
                      "effective MACs skip zero input operands (NeuroBench), executed MACs in dense_macs",
            "energy": "estimated: counted ops x per-op energy + bytes/8 x per-64-bit access energy (sln/energy.py)",
            "latency": f"median of {args.repeats} batch-1 PyTorch forwards after {args.warmup} warm-up runs "
                       f"(interleaved with the other models in blocks of 10 after 2 untimed calls), "
                       f"{torch.get_num_threads()} thread(s)",
            "throughput": "PyTorch forward, batches of 256, 1 thread",
        },
    }


# --------------------------------------------------------------------------- int8 vs int8
# The int8 comparison is a section of its own (doc["int8"]); its rows are never mixed into the
# fp32 table. SLN int8 = sln.quant's integer model (accuracy from quant.reference_forward, the
# spec the C runtime matches bit for bit); its counts come from `int8_sln_counted_forward`,
# which executes the same integer operations event by event and is checked to give the
# reference's logits and winners exactly. ViT int8 = per-channel int8 weights and per-tensor
# int8 activations (static, calibrated) at the input of every matmul, simulated in PyTorch.
INT8_TERMS = ("input", "recurrent", "elementwise", "readout")
INT8_COUNTERS = ("mac", "adds32", "muls32", "cmps32", "weight_bytes", "act_bytes", "events", "dense_mac")
INT8_ISQRT_ITERS = 16   # isqrt of a 32-bit value: 16 iterations of (2 adds + 1 compare)


def int8_sln_counted_forward(qm: Any, pixels: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, float]], float]:
    """The integer model of sln.quant.reference_forward, executed with counters.

    Same integer arithmetic, vectorised over the batch; the counters add, per image, what an
    event-driven integer runtime executes: a MAC (int8 weight x integer activation, int32
    accumulate) for each weight column of a nonzero input / nonzero winner of the previous step
    (2N columns each), 1 byte per int8 weight read; requantisation (acc * m, round, shift) as
    1 int32 mul + 2 int32 adds per output; integer LayerNorm, LUT gate, state update, boost and
    top-k as the int32 adds / muls / compares listed in the code below (a shift, mask or
    clamp bound counts as an add / compare; a division as 1 mul + 1 add; isqrt as
    INT8_ISQRT_ITERS x (2 adds + 1 compare)); int32 parameters (mults, shifts, bias, gamma,
    beta, boost, gate table entries) as 4 bytes per read.

    -> logits (B, C) int64, winners (B, L, T, k), per-term totals over the batch
       {term: {counter: value}}, mean nonzero neuron outputs per layer-step / N (active fraction)
    """
    from . import quant as Q

    B = pixels.shape[0]
    N, k, T, D = qm.n_neurons, qm.k, qm.n_steps, qm.input_size
    N2 = 2 * N
    C = qm.n_classes
    cnt = {t: dict.fromkeys(INT8_COUNTERS, 0.0) for t in INT8_TERMS}
    ci, cr, ce, ro = (cnt[t] for t in INT8_TERMS)
    x = pixels.reshape(B, T, D).astype(np.int64)
    h = [np.zeros((B, N), np.int64) for _ in qm.layers]
    y = [np.zeros((B, N), np.int64) for _ in qm.layers]
    racc = np.zeros((B, N), np.int64)
    winners = np.zeros((B, qm.n_layers, T, k), np.int64)
    rows = np.arange(B)[:, None]
    nz_out = 0.0
    topk_cmps = N + int(k * math.ceil(math.log2(max(k, 2)))) + k   # same convention as the engine
    for t in range(T):
        inp = x[:, t]
        for li, L in enumerate(qm.layers):
            # input projection: one int8 column (2N weights) per nonzero input
            ev = float((inp != 0).sum())
            ci["events"] += ev
            ci["mac"] += ev * N2
            ci["dense_mac"] += B * inp.shape[1] * N2
            ci["weight_bytes"] += ev * N2 + B * N2 * 8          # columns + in_mult/in_shift
            ci["act_bytes"] += B * inp.shape[1] if li == 0 else ev * 4   # pixel scan / (idx, val) events
            ci["muls32"] += B * N2
            ci["adds32"] += B * N2 * 2                          # requant: round + shift
            acc_in = Q.requant(Q._matmul_exact(inp, L.w_in), L.in_mult, L.in_shift)
            # recurrent projection: one column per nonzero winner of the previous step
            m_b = (y[li] != 0).sum(1)
            m = float(m_b.sum())
            busy = float((m_b > 0).sum())                       # images whose recurrent sum is not empty
            cr["events"] += m
            cr["mac"] += m * N2
            cr["dense_mac"] += B * N * N2
            cr["weight_bytes"] += m * N2 + busy * N2 * 8
            cr["act_bytes"] += m * 4
            cr["muls32"] += busy * N2
            cr["adds32"] += busy * N2 * 2
            a = acc_in + Q.requant(Q._matmul_exact(y[li], L.w_rec), L.rec_mult, L.rec_shift) + L.bias
            a = np.clip(a, -Q.A_SAT, Q.A_SAT)
            ce["adds32"] += B * N2 * 2                          # + rec, + bias
            ce["cmps32"] += B * N2 * 2                          # saturation
            ce["weight_bytes"] += B * N2 * 4                    # bias
            ce["act_bytes"] += B * N2 * 4 * 2                   # a written, read (int32)
            u, v = a[:, :N], a[:, N:]
            # integer LayerNorm
            mean = Q._round_div(u.sum(1, keepdims=True), N)
            d = u - mean
            var = (d * d).sum(1, keepdims=True) // N
            std = np.maximum(Q._isqrt(var + L.eps_q), 1)
            inv = (np.int64(1) << Q.INV_BITS) // std
            n = Q.rsr(d * inv, Q.INV_BITS - Q.NORM_FRAC)
            c = np.clip(Q.rsr(L.ln_gamma * n + L.ln_beta, Q.NORM_FRAC + Q.GAMMA_FRAC - L.h_frac), 0, Q.H_MAX)
            ce["adds32"] += B * (N + 2 + N + N + 1 + 1 + 2 * INT8_ISQRT_ITERS + 1 + 2 * N + 3 * N)
            ce["muls32"] += B * (1 + N + 1 + 1 + N + N)
            ce["cmps32"] += B * (1 + INT8_ISQRT_ITERS + 2 * N)
            ce["weight_bytes"] += B * N * 8                     # gamma, beta
            # gate: clamp, offset, index/fraction, two table reads, interpolation
            alpha = Q._lut_gate(v, L.alpha_lut, L.a_frac)
            ce["cmps32"] += B * N * 2
            ce["adds32"] += B * N * (1 + 2 + 1 + 1 + 1)
            ce["muls32"] += B * N
            ce["weight_bytes"] += B * N * 2 * 4
            # state update h = (alpha h + (1 - alpha) c + half) >> 15  (int16 state)
            h[li] = (alpha * h[li] + (Q.ALPHA_ONE - alpha) * c + (Q.ALPHA_ONE >> 1)) >> 15
            ce["muls32"] += B * N * 2
            ce["adds32"] += B * N * 4
            ce["act_bytes"] += B * N * 2 * 2                    # h read, written (int16)
            # k-WTA on boost * h
            win = Q.topk_stable(L.boost * h[li], k)
            ce["muls32"] += B * N
            ce["weight_bytes"] += B * N * 4                     # boost
            ce["cmps32"] += B * topk_cmps
            winners[:, li, t] = win
            y[li] = np.zeros_like(h[li])
            y[li][rows, win] = h[li][rows, win]
            nzl = float((y[li] != 0).sum())
            nz_out += nzl
            ce["act_bytes"] += nzl * 4                          # events (idx, val) written
            inp = y[li]
        mt = float((y[-1] != 0).sum())
        racc += y[-1]
        ro["adds32"] += mt
        ro["act_bytes"] += mt * 4 + mt * 4 * 2                  # events read; accumulator read + written
        ro["events"] += mt
    dot = Q._matmul_exact(racc, qm.w_out)
    logits = np.clip(Q.requant(dot, qm.out_mult, qm.out_shift) + qm.out_bias, -2 ** 31, 2 ** 31 - 1)
    nf = float((racc != 0).sum())
    ro["mac"] += nf * C
    ro["dense_mac"] += B * N * C
    ro["weight_bytes"] += nf * C + B * C * 12                   # int8 rows; out_mult, out_shift, out_bias
    ro["muls32"] += B * C
    ro["adds32"] += B * C * 3                                   # requant round + shift, + bias
    ro["act_bytes"] += nf * 4 + B * C * 4
    active = nz_out / (B * qm.n_layers * T * N)
    return logits, winners, cnt, active


def sln_int8_footprint(qm: Any) -> dict[str, int]:
    """Bytes of the int8 model's weight set: int8 matrices at 1 byte per weight, every other
    parameter (requantisation multipliers and shifts, biases, LayerNorm, boost, gate table)
    at 4 bytes; plus the activation working set (a int32 2N, h int16 N, events 4 bytes x k,
    readout accumulator int32 N, logits int32 C)."""
    n8 = int(qm.w_out.size) + sum(int(L.w_in.size + L.w_rec.size) for L in qm.layers)
    n32 = int(qm.out_mult.size + qm.out_shift.size + qm.out_bias.size)
    for L in qm.layers:
        n32 += sum(int(getattr(L, f).size) for f in ("in_mult", "in_shift", "rec_mult", "rec_shift", "bias",
                                                       "ln_gamma", "ln_beta", "boost", "alpha_lut"))
    N = qm.n_neurons
    act = qm.n_layers * (2 * N * 4 + N * 2 + qm.k * 4) + N * 4 + qm.n_classes * 4
    return {"int8_weights": n8, "int32_params": n32, "weight_bytes": n8 + 4 * n32, "act_bytes": act}


def _int8_ops(c: dict[str, float], per: float) -> dict[str, float]:
    return {"macs": c["mac"] / per, "adds32": c["adds32"] / per, "muls32": c["muls32"] / per,
            "cmps32": c["cmps32"] / per, "weight_bytes": c["weight_bytes"] / per, "act_bytes": c["act_bytes"] / per}


def evaluate_sln_int8(name: str, family: str, model: SLN, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      profile: EnergyProfile, source: str, calib: int = 2000, chunk: int = 1000
                      ) -> dict[str, Any]:
    """int8 row of an SLN: quantise (sln.quant, calibration on the first `calib` training
    images, as sln.export), accuracy from quant.reference_forward on the test images, counts
    from int8_sln_counted_forward on the same images (checked identical to the reference)."""
    from . import quant as Q

    qm = Q.quantize(model, xtr[:calib])
    tot = {t: dict.fromkeys(INT8_COUNTERS, 0.0) for t in INT8_TERMS}
    correct, act_sum, same = 0, 0.0, True
    t0 = time.perf_counter()
    for s in range(0, len(xte), chunk):
        px = xte[s:s + chunk]
        ref_logits, ref_win = Q.reference_forward(qm, px)
        logits, win, cnt, active = int8_sln_counted_forward(qm, px)
        same &= bool(np.array_equal(logits, ref_logits) and np.array_equal(win, ref_win))
        correct += int((ref_logits.argmax(1) == yte[s:s + chunk]).sum())
        act_sum += active * len(px)
        for t in INT8_TERMS:
            for kk in INT8_COUNTERS:
                tot[t][kk] += cnt[t][kk]
    secs = time.perf_counter() - t0
    if not same:
        raise RuntimeError(f"{name}: the counting int8 executor diverged from sln.quant.reference_forward")
    n = float(len(yte))
    fp = sln_int8_footprint(qm)
    allc = {kk: sum(tot[t][kk] for t in INT8_TERMS) for kk in INT8_COUNTERS}
    ops = _int8_ops(allc, n)
    e = estimate_pj(ops, fp["weight_bytes"], fp["act_bytes"], profile, precision="int8")
    terms: dict[str, float] = {}
    for t in INT8_TERMS:
        te = estimate_pj(_int8_ops(tot[t], n), fp["weight_bytes"], fp["act_bytes"], profile, precision="int8")
        terms[f"{t}.compute"] = te["compute"] * 1e-6
        terms[f"{t}.weight_mem"] = te["weight_mem"] * 1e-6
        terms[f"{t}.act_mem"] = te["act_mem"] * 1e-6
    # sensitivity (a separate line, not the estimate): the recurrent and readout MACs multiply an
    # int8 weight by a wider integer (int16 state, int32 readout sum); priced as int32 multiplies
    wide = (tot["recurrent"]["mac"] + tot["readout"]["mac"]) / n
    wide_uj = (e["total"] + wide * (profile.int32_mul - profile.int8_mul)) * 1e-6
    return {
        "name": name, "family": family, "precision": "int8", "params": int(model.num_params()),
        "accuracy": correct / n, "accuracy_measured": True, "test_images": int(n), "active_fraction": act_sum / n,
        "dense_macs": allc["dense_mac"] / n, "effective_macs": ops["macs"], "effective_acs": 0.0,
        "int32_ops": {"adds": ops["adds32"], "muls": ops["muls32"], "cmps": ops["cmps32"]},
        "weight_bytes_read": ops["weight_bytes"], "act_bytes": ops["act_bytes"],
        "weight_footprint_bytes": fp["weight_bytes"], "act_footprint_bytes": fp["act_bytes"],
        "int8_weights": fp["int8_weights"], "int32_params": fp["int32_params"],
        "weight_memory_level": e["weight_level"], "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * 1e-6,
        "energy_breakdown_uJ": {"compute": e["compute"] * 1e-6, "mac": e["mac"] * 1e-6,
                                "int32_ops": e["int32_ops"] * 1e-6, "weight_mem": e["weight_mem"] * 1e-6,
                                "act_mem": e["act_mem"] * 1e-6, "by_term": terms},
        "energy_uJ_wide_multiplies": wide_uj, "latency_ms": None, "source": source,
        "how": {
            "accuracy": f"sln.quant.reference_forward (the integer model the C runtime matches bit for bit) on "
                        f"{int(n)} real test images; post-training quantisation calibrated on the first {calib} "
                        f"training images (as sln.export)",
            "counts": "counted while executing the same integer operations (benchmark.int8_sln_counted_forward, "
                      "identical logits and winners to the reference on every image), mean per image: MACs only "
                      "for the weight columns of nonzero inputs / nonzero winners, 1 byte per int8 weight",
            "energy": "estimated: MAC = int8 multiply + int32 add; requantisation, integer LayerNorm, LUT gate, "
                      "state update and top-k as counted int32 adds/muls/compares; bytes/8 x 64-bit access "
                      "energy at the level of the int8 model's size (sln/energy.py)",
            "latency": "not measured for int8 (the fp32 table has the latencies)",
            "seconds": f"{secs:.1f} s for reference + counting executor",
        },
    }


class _ViTInt8Sim:
    """Stand-in for the ViT's counter argument that makes every matmul int8: per-output-channel
    symmetric int8 weights; per-tensor int8 activations at the input of every Linear and both
    operands of the attention matmuls (static scales: max |x| over the calibration images at that
    call site; unsigned 0..255 when the calibrated tensor is never negative, else -127..127).
    LayerNorm, softmax, GELU and the residual adds stay in float (as the integer-only kernels
    of I-BERT-style int8 transformers approximate them); they are priced as int32 ops."""

    def __init__(self) -> None:
        self.calibrating = True
        self.stats: list[tuple[float, float]] = []   # (max |x|, min x) per call site, in call order
        self.i = 0
        self._wq: dict[int, torch.Tensor] = {}

    def _q(self, x: torch.Tensor) -> torch.Tensor:
        i = self.i
        self.i += 1
        if self.calibrating:
            mx, mn = float(x.abs().max()), float(x.min())
            if i < len(self.stats):
                self.stats[i] = (max(self.stats[i][0], mx), min(self.stats[i][1], mn))
            else:
                self.stats.append((mx, mn))
            return x
        mx, mn = self.stats[i]
        if mx == 0:
            return torch.zeros_like(x)
        if mn >= 0:
            s = mx / 255.0
            return torch.clamp(torch.round(x / s), 0, 255) * s
        s = mx / 127.0
        return torch.clamp(torch.round(x / s), -127, 127) * s

    def _w(self, lin: torch.nn.Linear) -> torch.Tensor:
        key = id(lin)
        if key not in self._wq:
            w = lin.weight.detach()
            s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
            self._wq[key] = torch.clamp(torch.round(w / s), -127, 127) * s
        return self._wq[key]

    def linear(self, x: torch.Tensor, lin: torch.nn.Linear, term: str) -> torch.Tensor:
        return torch.nn.functional.linear(self._q(x), self._w(lin), lin.bias)

    def matmul(self, a: torch.Tensor, b: torch.Tensor, term: str) -> torch.Tensor:
        return self._q(a) @ self._q(b)

    @staticmethod
    def layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
        return ln(x)

    @staticmethod
    def softmax(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)

    @staticmethod
    def gelu(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x)

    @staticmethod
    def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    @staticmethod
    def scale(x: torch.Tensor, s: float) -> torch.Tensor:
        return x * s

    @staticmethod
    def param(p: torch.Tensor) -> torch.Tensor:
        return p


@torch.no_grad()
def vit_int8_accuracy(model: torch.nn.Module, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      calib: int = 2000, batch: int = 500) -> tuple[float, _ViTInt8Sim]:
    """Calibrate the activation scales on the first `calib` training images, then the int8
    (simulated) test accuracy."""
    model.eval()
    sim = _ViTInt8Sim()
    for s in range(0, min(calib, len(xtr)), batch):
        sim.i = 0
        model(model.patches(torch.from_numpy(xtr[s:min(s + batch, calib)].copy())), counter=sim)
    sim.calibrating = False
    correct = 0
    for s in range(0, len(xte), batch):
        sim.i = 0
        out = model(model.patches(torch.from_numpy(xte[s:s + batch].copy())), counter=sim)
        correct += int((out.argmax(1).numpy() == yte[s:s + batch]).sum())
    return correct / len(xte), sim


def evaluate_vit_int8(name: str, model: torch.nn.Module, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      profile: EnergyProfile, source: str, calib: int = 2000) -> dict[str, Any]:
    """int8 row of a ViT: measured int8 accuracy (_ViTInt8Sim), counts of count_vit at int8 widths."""
    acc, _ = vit_int8_accuracy(model, xtr, xte, yte, calib)
    nc = min(len(xte), 20)
    cnts = [count_vit(model, torch.from_numpy(xte[i].copy())) for i in range(nc)]
    c0 = cnts[0]
    eff = float(np.mean([c.effective_macs for c in cnts]))
    lin_w = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    n_params = sum(p.numel() for p in model.parameters())
    wfp = lin_w + 4 * (n_params - lin_w)                 # int8 Linear weights; the rest 4 bytes
    wread = c0.weight_bytes - 3 * lin_w                  # the counter read every Linear weight once at 4 bytes
    act = (c0.act_bytes_read + c0.act_bytes_written) / 4.0
    nl_m, nl_a = profile.nonlin_muls * c0.nonlin, profile.nonlin_adds * c0.nonlin
    ops = {"macs": eff, "adds32": c0.adds + nl_a, "muls32": c0.muls + nl_m, "cmps32": c0.cmps,
           "weight_bytes": wread, "act_bytes": act}
    e = estimate_pj(ops, wfp, c0.peak_act_bytes / 4.0, profile, precision="int8")
    mac_pj = profile.op_pj("int8")["mac"]
    return {
        "name": name, "family": "vit", "precision": "int8", "params": int(n_params),
        "accuracy": acc, "accuracy_measured": True, "test_images": int(len(yte)), "active_fraction": None,
        "dense_macs": c0.macs, "effective_macs": eff, "effective_acs": 0.0,
        "int32_ops": {"adds": ops["adds32"], "muls": ops["muls32"], "cmps": ops["cmps32"]},
        "weight_bytes_read": wread, "act_bytes": act, "weight_footprint_bytes": float(wfp),
        "act_footprint_bytes": c0.peak_act_bytes / 4.0, "int8_weights": int(lin_w),
        "int32_params": int(n_params - lin_w),
        "weight_memory_level": e["weight_level"], "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * 1e-6,
        "energy_breakdown_uJ": {"compute": e["compute"] * 1e-6, "mac": e["mac"] * 1e-6,
                                "int32_ops": e["int32_ops"] * 1e-6, "weight_mem": e["weight_mem"] * 1e-6,
                                "act_mem": e["act_mem"] * 1e-6,
                                "mac_by_term": {kk: v * mac_pj * 1e-6 for kk, v in c0.by_term.items()}},
        "latency_ms": None, "source": source,
        "how": {
            "accuracy": f"measured: PyTorch forward with int8 per-channel weights and static per-tensor int8 "
                        f"activations at every matmul input (calibrated on the first {calib} training images), "
                        f"{len(yte)} real test images",
            "counts": f"count_vit at batch 1 on {nc} real test images; MACs = NeuroBench effective MACs; "
                      "Linear weights 1 byte, other parameters 4 bytes; activations 1 byte (a quarter of the "
                      "fp32 bytes, generous to the ViT: its int32 accumulators are not counted wider)",
            "energy": "estimated: MAC = int8 multiply + int32 add; LayerNorm/softmax/GELU/residual adds/muls/"
                      "compares as int32 ops, each nonlinear op as the profile's polynomial (5 int32 mul + "
                      "5 int32 add); bytes/8 x 64-bit access energy at the level of the int8 model's size",
            "latency": "not measured for int8",
        },
    }


INT8_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "family", "precision", "params", "accuracy", "accuracy_measured", "test_images",
                 "effective_macs", "int32_ops", "weight_bytes_read", "act_bytes", "weight_footprint_bytes",
                 "weight_memory_level", "act_memory_level", "energy_uJ", "energy_breakdown_uJ", "how"],
    "properties": {
        "name": {"type": "string"}, "family": {"type": "string", "enum": list(FAMILY_COLORS)},
        "precision": {"type": "string", "enum": ["int8"]}, "params": {"type": "integer", "minimum": 1},
        "accuracy": {"type": "number", "minimum": 0, "maximum": 1}, "accuracy_measured": {"type": "boolean"},
        "test_images": {"type": "integer", "minimum": 1}, "effective_macs": _NUM,
        "int32_ops": {"type": "object", "required": ["adds", "muls", "cmps"],
                      "properties": {kk: _NUM for kk in ("adds", "muls", "cmps")}},
        "weight_bytes_read": _NUM, "act_bytes": _NUM, "weight_footprint_bytes": _NUM,
        "weight_memory_level": {"type": "string"}, "act_memory_level": {"type": "string"},
        "energy_uJ": {"type": "number", "minimum": 0},
        "energy_breakdown_uJ": {"type": "object", "required": ["compute", "mac", "int32_ops", "weight_mem",
                                                               "act_mem"]},
        "how": {"type": "object", "required": ["accuracy", "counts", "energy"]},
    },
}
INT8_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["precision", "note", "models", "comparisons", "headline"],
    "properties": {
        "precision": {"type": "string", "enum": ["int8 vs int8"]}, "note": {"type": "string"},
        "models": {"type": "array", "items": INT8_ROW_SCHEMA},
        "comparisons": {"type": "array", "items": {
            "type": "object", "required": ["sln", "method", "baseline", "sln_accuracy", "energy_ratio", "note"],
            "properties": {"energy_ratio": _NUM_OR_NULL,
                           "method": {"type": "string", "enum": ["smallest-matching", "interpolated"]}}}},
        "headline": {"type": "object", "required": ["model", "precision", "method", "energy_ratio", "text"]},
    },
}

JSON_SCHEMA["properties"]["int8"] = INT8_SCHEMA   # the optional int8 section, validated when present


def int8_section(rows: list[dict[str, Any]], head: str) -> dict[str, Any]:
    """Equal-accuracy comparisons among int8 rows only (same methods as fp32), and a headline."""
    vits = [r for r in rows if r["family"] == "vit"]
    comps = [c for r in rows if r["family"] in ("sln", "sln-dense") and vits for c in compare(r, vits)]
    hc = [c for c in comps if c["sln"] == head]
    sm = next((c for c in hc if c["method"] == "smallest-matching"), None)
    ip = next((c for c in hc if c["method"] == "interpolated"), None)
    use = ip if ip and ip["energy_ratio"] is not None else sm
    hrow = next((r for r in rows if r["name"] == head), None)
    text = ""
    if use and hrow:
        text = (f"{head} int8 ({100 * hrow['accuracy']:.2f}%) vs int8 ViT at equal accuracy ({use['method']}, "
                f"{use['baseline']}), int8 vs int8: estimated energy ViT/SLN = {_ratio_words(use['energy_ratio'])} "
                f"(target 100x)")
    return {
        "precision": "int8 vs int8",
        "note": "a section of its own: int8 rows are never mixed into the fp32 table; accuracies are measured "
                "int8 accuracies (SLN: sln.quant's integer reference; ViT: int8 weights and activations "
                "simulated in PyTorch); no int8 latency is measured",
        "models": rows, "comparisons": comps,
        "headline": {"model": head, "precision": "int8 vs int8", "method": use["method"] if use else None,
                     "energy_ratio": use["energy_ratio"] if use else None, "target_energy_ratio": 100.0,
                     "text": text},
    }


def format_int8_table(rows: list[dict[str, Any]]) -> str:
    hdr = (f"{'family':<9} {'model':<18} {'params':>9} {'int8 acc %':>10} {'eff MACs':>10} {'int32 ops':>10} "
           f"{'W read kB':>9} {'W size kB':>9} {'W level':>11} {'est uJ':>8}")
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        i32 = sum(r["int32_ops"].values())
        out.append(f"{r['family']:<9} {r['name']:<18} {r['params']:>9,} {100 * r['accuracy']:>10.2f} "
                   f"{r['effective_macs']:>10,.0f} {i32:>10,.0f} {r['weight_bytes_read'] / 1e3:>9.1f} "
                   f"{r['weight_footprint_bytes'] / 1e3:>9.1f} {r['weight_memory_level']:>11} {r['energy_uJ']:>8.3f}")
    return "\n".join(out)


def format_int8_breakdown(r: dict[str, Any]) -> str:
    b = r["energy_breakdown_uJ"]
    tot = r["energy_uJ"] or 1.0
    lines = [f"{r['name']} (int8): {r['energy_uJ']:.3f} uJ = MACs {b['mac']:.3f} + int32 ops {b['int32_ops']:.3f} "
             f"+ weight reads {b['weight_mem']:.3f} ({r['weight_memory_level']}) + activations {b['act_mem']:.3f} "
             f"({r['act_memory_level']})"]
    if "by_term" in b:
        terms: dict[str, dict[str, float]] = {}
        for kk, v in b["by_term"].items():
            t, part = kk.rsplit(".", 1)
            terms.setdefault(t, {})[part] = v
        for t, d in terms.items():
            s = sum(d.values())
            lines.append(f"    {t:<12} {s:8.3f} uJ ({100 * s / tot:5.1f}%)  compute {d['compute']:.3f}  "
                         f"weights {d['weight_mem']:.3f}  activations {d['act_mem']:.3f}")
        if r.get("energy_uJ_wide_multiplies") is not None:
            lines.append(f"    [separate line: recurrent + readout MACs priced as int32 multiplies (their "
                         f"activation operand is int16/int32): {r['energy_uJ_wide_multiplies']:.3f} uJ]")
    elif b.get("mac_by_term"):
        lines.append("    MAC energy by term: " + ", ".join(f"{kk} {v:.3f}" for kk, v in b["mac_by_term"].items()))
    return "\n".join(lines)


def int8_markdown(sec: dict[str, Any]) -> str:
    out = ["#### int8 vs int8 (a separate table; never mixed into the fp32 columns)", "",
           "| family | model | params | int8 test acc | eff. MACs | int32 ops | weight bytes read | int8 model size "
           "| weights in | est. energy (µJ) |", "|" + " --- |" * 10]
    for r in sec["models"]:
        out.append(f"| {r['family']} | {r['name']} | {r['params']:,} | {100 * r['accuracy']:.2f}% "
                   f"(n={r['test_images']:,}) | {r['effective_macs']:,.0f} | {sum(r['int32_ops'].values()):,.0f} | "
                   f"{r['weight_bytes_read'] / 1e3:,.1f} kB | {r['weight_footprint_bytes'] / 1e3:,.1f} kB | "
                   f"{r['weight_memory_level']} | {r['energy_uJ']:.3f} |")
    out += ["", "int8 energy breakdown per inference:", "", "```"]
    out += [format_int8_breakdown(r) for r in sec["models"]]
    out += ["```", "", "int8 equal-accuracy comparisons (ratio = int8 ViT / int8 SLN):", "",
            "| SLN | method | ViT | SLN int8 acc | ViT int8 acc | energy ratio | compute-only energy ratio "
            "(separate line) | note |", "|" + " --- |" * 8]
    for c in sec["comparisons"]:
        def f(v: Any, fmt: str = "{:.3f}") -> str:
            return "–" if v is None else fmt.format(v)
        out.append(f"| {c['sln']} | {c['method']} | {c['baseline'] or '–'} | {100 * c['sln_accuracy']:.2f}% | "
                   f"{f(c['baseline_accuracy'], '{:.2%}')} | {f(c['energy_ratio'])} | "
                   f"{f(c.get('energy_ratio_compute_only'))} | {c['note']} |")
    for sk in sec.get("skipped", []):
        out.append(f"\nNot in the int8 table: {sk['name']} ({sk['reason']}).")
    out += ["", f"Note: {sec['note']}.", "", "**int8 headline:** " + (sec["headline"]["text"] or "n/a")]
    return "\n".join(out)


# --------------------------------------------------------------------------- comparison
def _front(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Pareto front (lower `key`, higher accuracy), sorted by key."""
    out: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: (r[key], -r["accuracy"])):
        if not out or r["accuracy"] > out[-1]["accuracy"]:
            out.append(r)
    return out


def compare(sln: dict[str, Any], base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SLN vs a baseline family at equal accuracy, by two methods (ratios = baseline / SLN)."""
    res = []
    a = sln["accuracy"]
    # (1) the cheapest baseline (by energy) whose accuracy is >= the SLN's
    match = [r for r in base if r["accuracy"] >= a]
    if match:
        r = min(match, key=lambda r: r["energy_uJ"])
        note = "cheapest baseline with accuracy >= SLN's"
    else:
        r = max(base, key=lambda r: r["accuracy"])
        note = ("no baseline reaches the SLN's accuracy: ratio vs the most accurate one, which is less "
                "accurate (a matching one would cost more)")
    comp = None
    if "energy_breakdown_uJ" in r and "energy_breakdown_uJ" in sln:
        comp = r["energy_breakdown_uJ"]["compute"] / sln["energy_breakdown_uJ"]["compute"]
    res.append({"sln": sln["name"], "method": "smallest-matching", "baseline": r["name"],
                "sln_accuracy": a, "baseline_accuracy": r["accuracy"],
                "energy_ratio": r["energy_uJ"] / sln["energy_uJ"],
                "latency_ratio": (r["latency_ms"] / sln["latency_ms"]
                                  if r.get("latency_ms") and sln.get("latency_ms") else None),
                "energy_ratio_compute_only": comp, "note": note})
    # (2) interpolation on the baseline's Pareto front: log(cost) linear in accuracy between the two
    # front points that bracket the SLN's accuracy; no extrapolation.
    ratios: dict[str, float | None] = {}
    names = ""
    for key in ("energy_uJ", "latency_ms"):
        if sln.get(key) is None or any(r.get(key) is None for r in base):
            ratios[key] = None   # not measured (int8 rows have no latency)
            continue
        fr = _front(base, key)
        val = None
        for lo, hi in zip(fr, fr[1:], strict=False):
            if lo["accuracy"] <= a <= hi["accuracy"]:
                f = (a - lo["accuracy"]) / (hi["accuracy"] - lo["accuracy"])
                val = math.exp((1 - f) * math.log(lo[key]) + f * math.log(hi[key]))
                names = f"{lo['name']}..{hi['name']}"
                break
        ratios[key] = None if val is None else val / sln[key]
    res.append({"sln": sln["name"], "method": "interpolated", "baseline": names or None,
                "sln_accuracy": a, "baseline_accuracy": a if ratios["energy_uJ"] is not None else None,
                "energy_ratio": ratios["energy_uJ"], "latency_ratio": ratios["latency_ms"],
                "note": "log-cost linear in accuracy between the two Pareto-front baselines that bracket the "
                        "SLN's accuracy" if names else "SLN accuracy outside the baselines' range: "
                                                       "no interpolation (no extrapolation is done)"})
    return res


# --------------------------------------------------------------------------- output
def format_table(rows: list[dict[str, Any]]) -> str:
    hdr = (f"{'family':<9} {'model':<22} {'params':>9} {'acc %':>6} {'active':>7} {'eff MACs':>10} "
           f"{'eff ACs':>9} {'W read kB':>9} {'est uJ':>8} {'W level':>11} {'lat ms':>7} {'vs torch':>8} "
           f"{'img/s':>7}")
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        act = "-" if r["active_fraction"] is None else f"{100 * r['active_fraction']:.2f}%"
        sp = r.get("speedup_vs_torch_dense")
        out.append(f"{r['family']:<9} {r['name']:<22} {r['params']:>9,} {100 * r['accuracy']:>6.2f} {act:>7} "
                   f"{r['effective_macs']:>10,.0f} {r['effective_acs']:>9,.0f} {r['weight_bytes_read'] / 1e3:>9.1f} "
                   f"{r['energy_uJ']:>8.2f} {r['weight_memory_level']:>11} {r['latency_ms']:>7.3f} "
                   f"{'' if sp is None else f'{sp:.1f}x':>8} {r['throughput_per_s']:>7.0f}")
    return "\n".join(out)


def format_breakdown(r: dict[str, Any]) -> str:
    """One line per term with its share of the estimated energy (SLN rows; MAC terms for baselines)."""
    b = r["energy_breakdown_uJ"]
    tot = r["energy_uJ"] or 1.0
    head = (f"{r['name']}: {r['energy_uJ']:.3f} uJ = compute {b['compute']:.3f} + weight reads {b['weight_mem']:.3f} "
            f"({r['weight_memory_level']}) + activations {b['act_mem']:.3f} ({r['act_memory_level']})")
    lines = [head]
    if "by_term" in b:
        terms: dict[str, dict[str, float]] = {}
        for k, v in b["by_term"].items():
            t, part = k.rsplit(".", 1)
            terms.setdefault(t, {})[part] = v
        for t, d in terms.items():
            s = sum(d.values())
            lines.append(f"    {t:<16} {s:8.3f} uJ ({100 * s / tot:5.1f}%)  compute {d['compute']:.3f}  "
                         f"weights {d['weight_mem']:.3f}  activations {d['act_mem']:.3f}")
    elif b.get("mac_by_term"):
        lines.append("    MAC energy by term: " + ", ".join(f"{k} {v:.3f}" for k, v in b["mac_by_term"].items()))
    return "\n".join(lines)


def markdown_report(doc: dict[str, Any]) -> str:
    """The results of one run as Markdown (table, breakdown, comparisons) for docs/ENERGY.md."""
    rows = doc["models"]
    out = [f"`{doc['command']}` — {doc['date']}, {doc['machine']['cpu']}, {doc['machine']['cores']} cores "
           f"(shared), timing at {doc['machine']['threads']} thread, "
           f"engine backend `{doc['machine']['engine_backend']}`, "
           f"energy profile `{doc['energy_profile']['name']}`; measured energy: "
           f"{'see column' if doc['measured_energy']['available'] else 'not measured here'}.", "",
           "| family | model | params | epochs | test acc | active/step | dense MACs | eff. MACs | eff. ACs | "
           "weight bytes read | weights in | est. energy (µJ) | batch-1 latency (ms) | PyTorch dense (ms) | "
           "img/s |", "|" + " --- |" * 15]
    for r in rows:
        act = "–" if r["active_fraction"] is None else f"{100 * r['active_fraction']:.2f}%"
        td = r.get("torch_dense_latency_ms")
        tds = "–" if td is None else f"{td:.3f} ({r['speedup_vs_torch_dense']:.1f}x)"
        out.append(f"| {r['family']} | {r['name']} | {r['params']:,} | {r['epochs']} | {100 * r['accuracy']:.2f}% | "
                   f"{act} | {r['dense_macs']:,.0f} | {r['effective_macs']:,.0f} | {r['effective_acs']:,.0f} | "
                   f"{r['weight_bytes_read'] / 1e3:,.1f} kB | {r['weight_memory_level']} | {r['energy_uJ']:.3f} | "
                   f"{r['latency_ms']:.3f} | {tds} | {r['throughput_per_s']:,.0f} |")
    out += ["", "Estimated energy breakdown per inference:", "", "```"]
    out += [format_breakdown(r) for r in rows]
    out += ["```", "", "Equal-accuracy comparisons (ratio = ViT / SLN, fp32 vs fp32):", "",
            "| SLN | method | ViT | SLN acc | ViT acc | energy ratio | latency ratio | compute-only energy ratio "
            "(separate line) | note |", "|" + " --- |" * 9]
    for c in doc["comparisons"]:
        def f(v: Any, fmt: str = "{:.3f}") -> str:
            return "–" if v is None else fmt.format(v)
        out.append(f"| {c['sln']} | {c['method']} | {c['baseline'] or '–'} | {100 * c['sln_accuracy']:.2f}% | "
                   f"{f(c['baseline_accuracy'], '{:.2%}')} | {f(c['energy_ratio'])} | {f(c['latency_ratio'])} | "
                   f"{f(c.get('energy_ratio_compute_only'))} | {c['note']} |")
    out += ["", "**Headline:** " + doc["headline"]["text"]]
    if doc.get("int8"):
        out += ["", int8_markdown(doc["int8"])]
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], out_png: Path, key: str, xlabel: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=90)
    for fam, col in FAMILY_COLORS.items():
        pts = sorted((r for r in rows if r["family"] == fam), key=lambda r: r[key])
        if not pts:
            continue
        ax.plot([r[key] for r in pts], [100 * r["accuracy"] for r in pts], "o-" if fam == "vit" else "o",
                color=col, label=fam)
        for r in pts:
            ax.annotate(r["name"], (r[key], 100 * r["accuracy"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=["image", "lm"], default="image",
                   help="image: MNIST/Fashion-MNIST energy comparison; lm: sln.lm_bench")
    p.add_argument("--compare-energy", action="store_true", help="run the SLN vs baselines comparison")
    p.add_argument("--model", default="sln-base", help="headline SLN model: " + ", ".join(list_models()))
    p.add_argument("--extra-models", default="sln-tiny,sln-small,sln-base",
                   help="more SLN models, included when their checkpoint exists (never trained here)")
    p.add_argument("--dense", default="sln-small-dense", help="dense SLN reference (k = N); '' to skip")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where SLN checkpoints are looked up "
                   "(<runs-dir>/<dataset>-<model>/checkpoint.safetensors)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where baselines/missing SLNs are trained and reused (default <runs-dir>/bench-cache)")
    p.add_argument("--out", type=Path, default=None, help="folder of the PNG plots and default JSON "
                   "(default bench/, or runs/bench-quick/ with --quick so a quick run never overwrites results)")
    p.add_argument("--json", type=Path, default=None, help="write the results JSON here "
                   "(default <out>/<dataset>.json)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the results as Markdown here")
    p.add_argument("--energy-profile", default=None, help="energy table: horowitz45 (default), "
                   "horowitz45-dram-high, or a JSON file (docs/ENERGY.md)")
    p.add_argument("--vit-sizes", default="vit-xs,vit-s", help="ViT sizes (vit-m adds ~17-37 min of training "
                   "on 2 cores, beyond the 25-min budget): " + ", ".join(VIT_SIZES))
    p.add_argument("--epochs", type=int, default=None, help="epochs for models trained here (default: the "
                   "headline SLN checkpoint's epochs, else 10)")
    p.add_argument("--train-threads", type=int, default=1, help="threads for training baselines (on a shared "
                   "2-core machine 1 thread trained the ViT ~10x faster than 2)")
    p.add_argument("--repeats", type=int, default=200, help="timed batch-1 runs per model")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up runs per model")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--engine", choices=["auto", "numpy"], default="auto", help="SLN engine backend")
    p.add_argument("--cfc-sizes", default=",".join(CFC_SIZES), help="ncps CfC peers (when ncps is installed): "
                   + ", ".join(CFC_SIZES))
    p.add_argument("--no-cfc", action="store_true", help="skip ncps's CfC even when installed")
    p.add_argument("--quick", action="store_true", help="small end-to-end run (tests): sln-tiny, 1 epoch, "
                   "2000 train / 300 test images, vit-xs; numbers are not results")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 vs int8 section (SLN through "
                   "sln.quant's integer reference, ViTs with int8 weights and activations)")
    p.add_argument("--int8-calib", type=int, default=2000, help="training images calibrating the int8 models")
    p.add_argument("--int8-limit-test", type=int, default=None, help="int8 accuracy/counts on the first N test "
                   "images only (default: all the test images used)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("--task lm (passed to sln.lm_bench.run_lm_benchmark with --json and --quick)")
    g.add_argument("--sln-checkpoint", type=Path, default=None, help="SLN language model checkpoint")
    g.add_argument("--gpt-checkpoint", type=Path, default=None, help="GPT baseline checkpoint")
    g.add_argument("--contexts", type=int, nargs="+", default=None, help="context lengths to measure")
    return p


def _ckpt_epochs(run_dir: Path) -> int | None:
    m = run_dir / "metrics.json"
    if m.is_file():
        try:
            return int(json.loads(m.read_text())["epochs"])
        except (ValueError, KeyError, json.JSONDecodeError):
            return None
    return None


def _get_sln(name: str, args: argparse.Namespace, train_if_missing: bool, epochs: int
             ) -> tuple[SLN, str, int | None] | None:
    """Checkpoint from runs/ (reused), or from the cache, or trained into the cache."""
    from .train import RunOptions, train

    run_dir = args.runs_dir / f"{args.dataset}-{name}"
    ck = run_dir / "checkpoint.safetensors"
    if not args.quick and ck.is_file() and (run_dir / "metrics.json").is_file():
        model, _ = load_checkpoint(ck)
        return model, f"checkpoint {ck}", _ckpt_epochs(run_dir)
    overrides: dict[str, Any] = {"epochs": epochs}
    if args.quick:
        overrides.update(n_neurons=64, active_frac=0.0625 if "dense" not in name else 1.0)
    cache = args.cache_dir / (f"{args.dataset}-{name}-e{epochs}" + ("-quick" if args.quick else ""))
    cck = cache / "checkpoint.safetensors"
    if cck.is_file() and (cache / "metrics.json").is_file():
        model, _ = load_checkpoint(cck)
        return model, f"checkpoint {cck} (trained earlier by the benchmark)", _ckpt_epochs(cache)
    if not train_if_missing:
        return None
    print(f"no checkpoint for {name} on {args.dataset} in {run_dir}: training it ({epochs} epochs) into {cache}")
    cfg = get_config(name, **overrides)
    train(cfg, RunOptions(dataset=args.dataset, out=cache, limit_train=args.limit_train,
                          limit_test=args.limit_test, progress=not args.no_progress))
    torch.set_num_threads(1)  # train() uses every core; timing is at 1 thread
    model, _ = load_checkpoint(cck)
    return model, f"trained by this run into {cache}", epochs


def run_image_benchmark(args: argparse.Namespace, argv: list[str]) -> int:
    if args.quick:
        args.model = "sln-tiny"
        args.extra_models = ""
        args.dense = "sln-small-dense"
        args.vit_sizes = "vit-xs"
        args.cfc_sizes = "cfc-64"
        args.limit_train = args.limit_train or 2000
        args.limit_test = args.limit_test or 300
        args.repeats, args.warmup = min(args.repeats, 20), min(args.warmup, 3)
        args.epochs = args.epochs or 1
    if args.cache_dir is None:
        args.cache_dir = args.runs_dir / "bench-cache"
    if args.out is None:
        args.out = args.runs_dir / "bench-quick" if args.quick else Path("bench")
    try:
        profile = get_profile(args.energy_profile)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # batch-1 latency and the engine: 1 thread (training sets its own)
    meter = measured_energy_source()
    xtr, ytr = load_split(args.dataset, "train", limit=args.limit_train)
    xte, yte = load_split(args.dataset, "test", limit=args.limit_test)
    head_dir = args.runs_dir / f"{args.dataset}-{args.model}"
    epochs = args.epochs or _ckpt_epochs(head_dir) or 10
    items: list[tuple[dict[str, Callable[[int], Any]], dict[str, Any]]] = []
    int8_jobs: list[tuple[str, str, Any, str]] = []   # (family, name, model, source) for the int8 section

    head_cfg_input = get_config(args.model).input_size
    sln_names = [args.model] + [m for m in args.extra_models.split(",") if m and m != args.model]
    for i, name in enumerate(sln_names):
        got = _get_sln(name, args, train_if_missing=(i == 0), epochs=epochs)
        if got is None:
            print(f"(skipping {name}: no checkpoint in {args.runs_dir}/{args.dataset}-{name})")
            continue
        model, src, ep = got
        if i == 0:
            head_cfg_input = model.cfg.input_size  # CfC reads the same sequence as SLN
        print(f"evaluating {name} ({src})")
        items.append(evaluate_sln(name, "sln", model, xte, yte, args, profile, meter["source"], src, ep))
        int8_jobs.append(("sln", name, model, src))
    if args.dense:
        got = _get_sln(args.dense, args, train_if_missing=True, epochs=epochs)
        assert got is not None
        model, src, ep = got
        print(f"evaluating {args.dense} ({src})")
        items.append(evaluate_sln(args.dense, "sln-dense", model, xte, yte, args, profile, meter["source"], src,
                                  ep))
        int8_jobs.append(("sln-dense", args.dense, model, src))
    for vs in [v for v in args.vit_sizes.split(",") if v]:
        if vs not in VIT_SIZES:
            print(f"unknown ViT size {vs!r}; known: {', '.join(VIT_SIZES)}", file=sys.stderr)
            return 2
        cfg = VIT_SIZES[vs]
        torch.set_num_threads(args.train_threads)
        model, info = train_vit(cfg, xtr, ytr, xte, yte, epochs,
                                args.cache_dir / f"{args.dataset}-{vs}-e{epochs}-n{len(xtr)}",
                                progress=not args.no_progress)
        torch.set_num_threads(1)
        print(f"evaluating {vs} ({'reused' if info['reused'] else 'trained'}, {epochs} epochs)")
        items.append(evaluate_baseline("vit", vs, cfg, model, model.patches, lambda im, m=model: count_vit(m, im),
                                       info, xte, yte, args, profile))
        int8_jobs.append(("vit", vs, model, ("reused from " if info.get("reused") else "trained by this run into ")
                          + str(args.cache_dir)))
    if args.no_cfc or not args.cfc_sizes:
        pass
    elif not ncps_available():
        print("(ncps not installed: the CfC peer is skipped; pip install --no-deps ncps==1.0.1 to include it)")
    else:
        for cs in [c for c in args.cfc_sizes.split(",") if c]:
            if cs not in CFC_SIZES:
                print(f"unknown CfC size {cs!r}; known: {', '.join(CFC_SIZES)}", file=sys.stderr)
                return 2
            ccfg = dataclasses.replace(CFC_SIZES[cs], input_size=head_cfg_input)
            torch.set_num_threads(args.train_threads)
            cm, cinfo = train_cfc(ccfg, xtr, ytr, xte, yte, epochs,
                                  args.cache_dir / f"{args.dataset}-{cs}-e{epochs}-n{len(xtr)}",
                                  progress=not args.no_progress)
            torch.set_num_threads(1)
            print(f"evaluating {cs} (ncps CfC, {'reused' if cinfo['reused'] else 'trained'}, {epochs} epochs)")
            items.append(evaluate_baseline("cfc", cs, ccfg, cm, cm.to_input, lambda im, m=cm: count_cfc(m, im),
                                           cinfo, xte, yte, args, profile))
    print(f"timing batch-1 latency: {args.repeats} runs per model after {args.warmup} warm-up, models "
          f"interleaved in blocks of 10, 1 thread")
    time_interleaved([(row, timers) for timers, row in items], args.repeats, args.warmup, meter["source"],
                     progress=not args.no_progress)
    rows = [row for _, row in items]
    int8_sec: dict[str, Any] | None = None
    if not args.no_int8:
        n8 = args.int8_limit_test or len(xte)
        print(f"int8 vs int8: quantising and evaluating {len(int8_jobs)} models on {min(n8, len(xte))} test images")
        rows8, skipped8 = [], []
        for fam, name, mdl, src in int8_jobs:
            t0 = time.perf_counter()
            try:
                if fam == "vit":
                    rows8.append(evaluate_vit_int8(name, mdl, xtr, xte[:n8], yte[:n8], profile, src,
                                                   args.int8_calib))
                else:
                    rows8.append(evaluate_sln_int8(name, fam, mdl, xtr, xte[:n8], yte[:n8], profile, src,
                                                   args.int8_calib))
            except ValueError as e:   # outside what the int8 model supports (e.g. k > 255)
                skipped8.append({"name": name, "reason": str(e)})
                print(f"  int8 {name}: skipped ({e})")
                continue
            print(f"  int8 {name}: {100 * rows8[-1]['accuracy']:.2f}% ({time.perf_counter() - t0:.0f} s)")
        int8_sec = int8_section(rows8, args.model)
        int8_sec["skipped"] = skipped8

    vits = [r for r in rows if r["family"] == "vit"]
    comparisons = [c for r in rows if r["family"] in ("sln", "sln-dense") and vits for c in compare(r, vits)]
    head = next(r for r in rows if r["name"] == args.model)
    hc = [c for c in comparisons if c["sln"] == args.model]
    sm = next((c for c in hc if c["method"] == "smallest-matching"), None)
    ip = next((c for c in hc if c["method"] == "interpolated"), None)
    use = ip if ip and ip["energy_ratio"] is not None else sm
    headline = {
        "model": args.model, "precision": "fp32 vs fp32",
        "method": use["method"] if use else None,
        "energy_ratio": use["energy_ratio"] if use else None,
        "latency_ratio": use["latency_ratio"] if use else None,
        "target_energy_ratio": 100.0, "target_latency_ratio": 3.0,
        "int8": ("see the 'int8' section (int8 vs int8, a table of its own)" if not args.no_int8 else
                 "not compared in this run (--no-int8)"),
        "text": "",
    }
    if use:
        headline["text"] = (f"{args.model} ({100 * head['accuracy']:.2f}%) vs ViT at equal accuracy "
                            f"({use['method']}, {use['baseline']}), fp32 vs fp32: estimated energy ViT/SLN = "
                            f"{_ratio_words(use['energy_ratio'])} (target 100x); batch-1 latency ViT/SLN = "
                            f"{_ratio_words(use['latency_ratio'])} (target 3x)")
    doc = {
        "schema": SCHEMA_ID, "command": "python benchmark.py " + " ".join(argv),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": args.dataset, "quick": bool(args.quick),
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count() or 1, "threads": 1,
                    "torch": torch.__version__, "engine_backend": _engine_backend(args)},
        "energy_profile": profile.to_dict(), "measured_energy": meter,
        "models": rows, "comparisons": comparisons, "headline": headline,
    }
    if int8_sec is not None:
        doc["int8"] = int8_sec
    print()
    print(format_table(rows))
    print()
    print("estimated energy breakdown per inference:")
    for r in rows:
        print("  " + format_breakdown(r))
    print()
    print(f"energy: estimated with {profile.name} ({profile.citation}); measured: {meter['note']}")
    for c in comparisons:
        er = "n/a" if c["energy_ratio"] is None else f"{c['energy_ratio']:.2f}x"
        lr = "n/a" if c["latency_ratio"] is None else f"{c['latency_ratio']:.2f}x"
        co = c.get("energy_ratio_compute_only")
        co_s = "" if co is None else f" [separate line: compute only, memory excluded {co:.2f}x]"
        print(f"  {c['sln']:<18} vs {str(c['baseline']):<14} [{c['method']}]: energy {er}, latency {lr}{co_s}  "
              f"({c['note']})")
    if headline["text"]:
        print("HEADLINE: " + headline["text"])
    if int8_sec is not None:
        print()
        print("int8 vs int8 (a separate table; not mixed into the fp32 columns above):")
        print(format_int8_table(int8_sec["models"]))
        for r in int8_sec["models"]:
            print("  " + format_int8_breakdown(r))
        for c in int8_sec["comparisons"]:
            er = "n/a" if c["energy_ratio"] is None else f"{c['energy_ratio']:.2f}x"
            print(f"  int8 {c['sln']:<13} vs {str(c['baseline']):<14} [{c['method']}]: energy {er}  ({c['note']})")
        if int8_sec["headline"]["text"]:
            print("INT8 HEADLINE: " + int8_sec["headline"]["text"])
    args.out.mkdir(parents=True, exist_ok=True)
    js = args.json or args.out / f"{args.dataset}.json"
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(doc, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown_report(doc) + "\n")
    plot(rows, args.out / f"{args.dataset}_energy.png", "energy_uJ", "estimated energy per inference (uJ, fp32)",
         f"{args.dataset}: accuracy vs estimated energy ({profile.name})")
    plot(rows, args.out / f"{args.dataset}_latency.png", "latency_ms", "batch-1 latency (ms, median)",
         f"{args.dataset}: accuracy vs batch-1 latency ({_cpu_name()[:40]})")
    if int8_sec is not None and int8_sec["models"]:
        plot(int8_sec["models"], args.out / f"{args.dataset}_int8_energy.png", "energy_uJ",
             "estimated energy per inference (uJ, int8)",
             f"{args.dataset}: int8 accuracy vs estimated int8 energy ({profile.name})")
    print(f"wrote {js}, {args.out / (args.dataset + '_energy.png')}, {args.out / (args.dataset + '_latency.png')}"
          + ("" if int8_sec is None else f", {args.out / (args.dataset + '_int8_energy.png')}"))
    return 0


def _ratio_words(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:.2f}x (SLN lower)" if r >= 1 else f"{r:.3f}x (SLN {1 / r:.1f}x higher)"


def _engine_backend(args: argparse.Namespace) -> str:
    if args.engine == "numpy":
        return "numpy"
    from .engine import c_backend_available
    return "c" if c_backend_available() else "numpy"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = build_parser().parse_known_args(argv)
    if args.task != "lm" and rest:
        build_parser().error("unrecognized arguments: " + " ".join(rest))
    if args.task == "lm":
        args.lm_argv = rest  # flags of the LM benchmark, parsed by sln.lm_bench
        try:
            from . import lm_bench  # type: ignore[attr-defined]
        except ImportError as e:
            if "lm_bench" not in str(e):
                raise
            print("benchmark.py --task lm needs sln/lm_bench.py (the sequence/LM benchmark), which is not in "
                  "this checkout yet", file=sys.stderr)
            return 2
        return int(lm_bench.run_lm_benchmark(args))
    if not args.compare_energy:
        print("nothing to do: add --compare-energy (e.g. python benchmark.py --compare-energy --model sln-base)",
              file=sys.stderr)
        return 2
    threads = torch.get_num_threads()
    try:
        return run_image_benchmark(args, argv)
    finally:
        torch.set_num_threads(threads)  # the benchmark times at 1 thread; leave the caller's setting


if __name__ == "__main__":
    sys.exit(main())

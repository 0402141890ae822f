"""The image benchmark (`benchmark.py --compare-energy`): SLN vs ViT / CNN / CfC on MNIST, counted honestly.

For each model (SLN sparse, SLN dense k=N, ViT sizes, LeNet-class CNN sizes, ncps CfC when
installed) it measures on
the real test set: accuracy, operations and bytes counted while executing (SLN: the
event-driven engine's counters; baselines: their counting forward), estimated energy per
inference from one cited table (sln/energy.py), batch-1 median latency (interleaved, 1
thread) and throughput; then the int8 vs int8 section (int8.py) and the output (report.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import intspec
from ..baselines import (
    CFC_SIZES,
    VIT_SIZES,
    count_cfc,
    count_vit,
    ncps_available,
    train_cfc,
    train_vit,
    vector_param_count,
)
from ..checkpoint import load_checkpoint
from ..cnn import CNN, CNN_SIZES, count_cnn, train_cnn
from ..config import get_config
from ..data import load_split
from ..energy import EnergyProfile, get_profile
from ..engine import Engine
from ..model import SLN, encode_images
from .cnn_int8 import evaluate_cnn_int8
from .compare import SLN_FAMILIES, compare, compare_all, headline_comparison, ratio_words
from .int8 import run_int8_section
from .measure import (
    PJ_TO_UJ,
    breakdown_uj,
    cpu_name,
    energy,
    measured_energy_source,
    term_energy_uj,
    time_interleaved,
    weight_footprint,
)
from .plan import announce, build_plan, sln_where, train_threads
from .report import markdown_report, print_section, write_plots
from .schema import SCHEMA_ID

Timers = dict[str, Callable[[int], Any]]   # row key ("latency_ms", ...) -> batch-1 call on test image i
ENERGY_HOW = ("estimated: counted ops x per-op energy + bytes/8 x per-64-bit access energy (sln/energy.py); "
              "weight matrices, parameter vectors and activations each priced by their own size")
LATENCY_PROTOCOL = "(interleaved with the other models in blocks of 10 after 2 untimed calls)"


# --------------------------------------------------------------------------- SLN (fp32, event engine)
def _f32_matrix_bytes(w: torch.Tensor) -> int:
    """fp32 bytes of one weight matrix (out x in, as nn.Linear holds it) as the event engine's file
    stores it (sln.fmt.float_model_bytes: input-major, column-sparse when that is smaller at 4 bytes
    per value; intspec.storage_bytes: values + row steps + column pointers)."""
    a = w.detach().cpu().numpy().T                       # (D, R): one row per input / winner
    return intspec.storage_bytes(a, 4, intspec.choose_storage(a, 4))


def sln_footprints(model: SLN) -> tuple[int, int]:
    """fp32 bytes of what the event engine may read -> (weight matrices, parameter vectors):
    matrices per layer W_in (D_l x 2N) and W_rec (N x 2N) as stored (a pruned matrix column-sparse,
    values + indices, `_f32_matrix_bytes`), the readout (C x N); vectors per layer the summed bias
    (2N), LayerNorm gain and shift and the boost (N each), the readout bias (C)."""
    cfg = model.cfg
    N, C = cfg.n_neurons, cfg.n_classes
    mat, vec = C * N * 4, C
    for cell in model.cells:
        mat += _f32_matrix_bytes(cell.w_in.weight) + _f32_matrix_bytes(cell.w_rec.weight)
        vec += 2 * N + 3 * N
    return mat, weight_footprint(0, vec)


def distinct_input_rows(seq: np.ndarray) -> float:
    """Mean over the sequences (B, T, D) of the number of distinct input indices j with a
    nonzero x[t, j] at some step: the W_in rows an image touches (each event reads one; the
    same j at two steps reads the same row twice)."""
    return float((seq != 0).any(axis=1).sum(axis=1).mean())


def sln_act_footprint(model: SLN) -> int:
    """Activation working set of the engine: per layer a (2N), h (N), scores (N), events (2N);
    the readout accumulator (N) and logits (C); fp32."""
    cfg = model.cfg
    return 4 * (cfg.n_layers * 6 * cfg.n_neurons + cfg.n_neurons + cfg.n_classes)


def _engine_ops(c: dict[str, float]) -> dict[str, float]:
    """Engine counters (Counts.per_term() names) -> estimate_pj's fp32 keys."""
    return {"macs": c["mac"], "acs": c["ac"], "adds": c["add"], "muls": c["mul"], "cmps": c["cmp"],
            "nonlin": c["nonlin"], "weight_bytes": c["weight_bytes"], "param_bytes": c["param_bytes"],
            "index_bytes": c["index_bytes"], "act_bytes": c["act_bytes_read"] + c["act_bytes_written"]}


def evaluate_sln(name: str, family: str, model: SLN, xte: np.ndarray, yte: np.ndarray, args: argparse.Namespace,
                 profile: EnergyProfile, meter: str | None, source: str, epochs: int | None,
                 backends: list[str] | None = None) -> tuple[Timers, dict[str, Any]]:
    """-> (batch-1 callables to time, row of the JSON without latencies); appends the engine's
    backend to `backends` (the JSON's machine.engine_backend)."""
    eng = Engine(model, args.engine)
    if backends is not None:
        backends.append(eng.backend)
    seq = encode_images(torch.from_numpy(xte.copy()), model.cfg).numpy()   # (B, T, D) in [0, 1], its input coding
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
           "weight_bytes": s["matrix_bytes_read"], "param_bytes": s["param_bytes_read"],
           "index_bytes": s["index_bytes_read"], "act_bytes": s["act_bytes_read"] + s["act_bytes_written"]}
    (mfp, pfp), afp = sln_footprints(model), sln_act_footprint(model)
    e = energy(ops, mfp, afp, profile, "fp32", pfp)
    terms = term_energy_uj({t: _engine_ops(c) for t, c in counts.per_term().items()}, mfp, afp, profile, "fp32",
                           pfp)
    # latency: batch 1, real test images in turn; timed later, interleaved with every model
    nl = len(seq)
    xt = torch.from_numpy(seq)

    def torch_fwd(i: int) -> None:
        with torch.inference_mode():
            model(xt[i % nl][None])

    timers = {"latency_ms": lambda i: eng.run(seq[i % nl], record_winners=False), "torch_dense_latency_ms": torch_fwd}
    return timers, {
        "name": name, "family": family, "params": int(model.num_params()), "precision": "fp32",
        "accuracy": acc, "test_images": int(len(yte)), "active_fraction": 1.0 - s["activation_sparsity"],
        "dense_macs": s["dense_macs"], "effective_macs": s["effective_macs"], "effective_acs": s["effective_acs"],
        "elementwise": {"adds": s["elementwise_adds"], "muls": s["elementwise_muls"], "cmps": s["compares"],
                        "nonlin": s["nonlinear_ops"]},
        "weight_bytes_read": s["weight_bytes_read"], "act_bytes": ops["act_bytes"],
        "matrix_bytes_read": s["matrix_bytes_read"], "param_bytes_read": s["param_bytes_read"],
        "index_bytes_read": s["index_bytes_read"],
        "weight_footprint_bytes": mfp + pfp, "matrix_footprint_bytes": mfp, "param_footprint_bytes": pfp,
        "act_footprint_bytes": afp,
        "weight_memory_level": e["weight_level"], "param_memory_level": e["param_level"],
        "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * PJ_TO_UJ,
        "energy_breakdown_uJ": {**breakdown_uj(e, "fp32"), "by_term": terms},
        "measured_energy_uJ": None, "latency_ms": None, "latency_threads": 1, "torch_dense_latency_ms": None,
        "torch_latency_threads": torch.get_num_threads(),
        "speedup_vs_torch_dense": None,
        "throughput_per_s": len(seq) / batch_s if batch_s > 0 else 0.0, "epochs": epochs, "source": source,
        "input_events_per_inference": s["input_events"], "steps": s["steps"],
        "input_rows_distinct_per_inference": distinct_input_rows(seq),
        "torch_agreement": {"images": nchk, "same_prediction": agree, "max_abs_logit_diff": max_diff},
        "how": {
            "accuracy": f"event engine ({eng.backend}) on {len(yte)} real test images",
            "counts": f"counted by the event engine ({eng.backend}) while executing, mean over the test images",
            "energy": ENERGY_HOW,
            "latency": f"median of {args.repeats} batch-1 runs of the {eng.backend} engine after {args.warmup} "
                       f"warm-up runs {LATENCY_PROTOCOL}, "
                       f"1 thread; torch_dense_latency_ms: PyTorch eval forward of the same SLN, same protocol",
            "throughput": f"{eng.backend} engine, whole test set in one call, 1 thread",
        },
    }


# --------------------------------------------------------------------------- PyTorch baselines (fp32)
def evaluate_baseline(family: str, name: str, cfg: Any, model: torch.nn.Module, to_input: Callable[[torch.Tensor], Any],
                      counter: Callable[[torch.Tensor], Any], info: dict[str, Any], xte: np.ndarray,
                      yte: np.ndarray, args: argparse.Namespace, profile: EnergyProfile
                      ) -> tuple[Timers, dict[str, Any]]:
    """A PyTorch baseline (ViT, CNN, CfC): accuracy, counts (counter(image) -> OpCounter), energy, timers."""
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
    n_vec = vector_param_count(model)
    mfp, pfp = weight_footprint(0, n_params - n_vec), weight_footprint(0, n_vec)
    e = energy(ops, mfp, c0.peak_act_bytes, profile, "fp32", pfp)

    def fwd(i: int) -> None:
        with torch.inference_mode():
            model(xt[i % nl][None])

    mac_terms = {k: v * profile.op_pj("fp32")["mac"] * PJ_TO_UJ for k, v in c0.by_term.items()}
    return {"latency_ms": fwd}, {
        "name": name, "family": family, "params": int(n_params), "precision": "fp32",
        "accuracy": acc, "test_images": int(len(yte)), "active_fraction": None,
        "dense_macs": c0.macs, "effective_macs": eff, "effective_acs": 0.0,
        "elementwise": {"adds": c0.adds, "muls": c0.muls, "cmps": c0.cmps, "nonlin": c0.nonlin},
        "weight_bytes_read": c0.weight_bytes + c0.param_bytes, "act_bytes": ops["act_bytes"],
        "matrix_bytes_read": c0.weight_bytes, "param_bytes_read": c0.param_bytes,
        "weight_footprint_bytes": mfp + pfp, "matrix_footprint_bytes": mfp, "param_footprint_bytes": pfp,
        "act_footprint_bytes": c0.peak_act_bytes,
        "weight_memory_level": e["weight_level"], "param_memory_level": e["param_level"],
        "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * PJ_TO_UJ,
        "energy_breakdown_uJ": {**breakdown_uj(e, "fp32"), "mac_by_term": mac_terms},
        "measured_energy_uJ": None, "latency_ms": None, "latency_threads": torch.get_num_threads(),
        "torch_dense_latency_ms": None, "throughput_per_s": thr, "epochs": info["epochs"],
        "source": ("reused from " if info.get("reused") else "trained by this run into ") + str(args.cache_dir),
        "config": asdict(cfg), "seconds_per_epoch": info.get("seconds_per_epoch"),
        "how": {
            "accuracy": f"PyTorch forward on {len(yte)} real test images",
            "counts": f"counted while executing at batch 1 on {nc} real test images (sln.baselines); "
                      "effective MACs skip zero input operands (NeuroBench), executed MACs in dense_macs",
            "energy": ENERGY_HOW,
            "latency": f"median of {args.repeats} batch-1 PyTorch forwards after {args.warmup} warm-up runs "
                       f"{LATENCY_PROTOCOL}, {torch.get_num_threads()} thread(s)",
            "throughput": "PyTorch forward, batches of 256, 1 thread",
        },
    }


# --------------------------------------------------------------------------- models
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
    """Checkpoint from runs/ (reused), or from the cache, or trained into the cache (announced by plan.py)."""
    found, cache, overrides = sln_where(name, args, epochs)
    if found is not None:
        model, _ = load_checkpoint(found / "checkpoint.safetensors")
        how = "" if found != cache else " (trained earlier by the benchmark)"
        return model, f"checkpoint {found / 'checkpoint.safetensors'}{how}", _ckpt_epochs(found)
    if not train_if_missing:
        return None
    from ..train import RunOptions, train  # only when training: reusing a checkpoint needs no trainer

    print(f"training {name} on {args.dataset} ({epochs} epochs) into {cache}")
    train(get_config(name, **overrides), RunOptions(dataset=args.dataset, out=cache, limit_train=args.limit_train,
                                                    limit_test=args.limit_test, progress=not args.no_progress,
                                                    threads=args.train_threads,
                                                    device=getattr(args, "train_device", "cpu")))
    torch.set_num_threads(1)  # timing is at 1 thread
    model, _ = load_checkpoint(cache / "checkpoint.safetensors")
    return model, f"trained by this run into {cache}", epochs


def _apply_quick(args: argparse.Namespace) -> None:
    """--quick: a small end-to-end run (tests); its numbers are not results."""
    args.model, args.extra_models, args.dense = "sln-tiny", "", "sln-small-dense"
    args.vit_sizes, args.cfc_sizes, args.cnn_sizes = "vit-xs", "cfc-64", "lenet-xs"
    args.limit_train = args.limit_train or 2000
    args.limit_test = args.limit_test or 300
    args.repeats, args.warmup = min(args.repeats, 20), min(args.warmup, 3)
    args.epochs = args.epochs or 1


def _sizes(spec: str, known: dict[str, Any], what: str) -> list[str] | None:
    """'a,b' -> ['a', 'b'], or None (after a message) when one is unknown."""
    names = [v for v in spec.split(",") if v]
    bad = [v for v in names if v not in known]
    if bad:
        print(f"unknown {what} size {bad[0]!r}; known: {', '.join(known)}", file=sys.stderr)
        return None
    return names


def _baselines(args: argparse.Namespace, data: tuple[np.ndarray, ...], epochs: int, cfc_input: int,
               profile: EnergyProfile, items: list[tuple[Timers, dict[str, Any]]],
               int8_jobs: list[tuple[str, str, Any, str]]) -> int:
    """Train (or reuse) and evaluate the ViT, CNN and CfC baselines into items / int8_jobs -> 0, or 2."""
    xtr, ytr, xte, yte = data
    vit_names = _sizes(args.vit_sizes, VIT_SIZES, "ViT")
    cnn_names = _sizes(args.cnn_sizes, CNN_SIZES, "CNN")
    if vit_names is None or cnn_names is None:
        return 2
    def trained(train_fn: Any, cfg: Any, name: str, label: str) -> tuple[Any, dict[str, Any]]:
        """Train (or reuse from the cache) one baseline at the training threads, timing at 1 thread."""
        torch.set_num_threads(args.train_threads)
        model, info = train_fn(cfg, xtr, ytr, xte, yte, epochs,
                               args.cache_dir / f"{args.dataset}-{name}-e{epochs}-n{len(xtr)}",
                               progress=not args.no_progress, device=getattr(args, "train_device", "cpu"))
        torch.set_num_threads(1)
        print(f"evaluating {name} ({label}{'reused' if info['reused'] else 'trained'}, {epochs} epochs)")
        return model, info

    for vs in vit_names:
        cfg = VIT_SIZES[vs]
        model, info = trained(train_vit, cfg, vs, "")
        items.append(evaluate_baseline("vit", vs, cfg, model, model.patches, lambda im, m=model: count_vit(m, im),
                                       info, xte, yte, args, profile))
        int8_jobs.append(("vit", vs, model, ("reused from " if info.get("reused") else "trained by this run into ")
                          + str(args.cache_dir)))
    for ns in cnn_names:
        ncfg = CNN_SIZES[ns]
        model, info = trained(train_cnn, ncfg, ns, "LeNet-class CNN, ")
        items.append(evaluate_baseline("cnn", ns, ncfg, model, model.to_input,
                                       lambda im, m=model: count_cnn(m, im), info, xte, yte, args, profile))
        _cnn_per_position(items[-1][1], model, xte, profile)
        int8_jobs.append(("cnn", ns, model, ("reused from " if info.get("reused") else "trained by this run into ")
                          + str(args.cache_dir)))
    if args.no_cfc or not args.cfc_sizes:
        return 0
    if not ncps_available():
        print("(ncps not installed: the CfC peer is skipped; pip install --no-deps ncps==1.0.1 to include it)")
        return 0
    cfc_names = _sizes(args.cfc_sizes, CFC_SIZES, "CfC")
    if cfc_names is None:
        return 2
    for cs in cfc_names:
        ccfg = dataclasses.replace(CFC_SIZES[cs], input_size=cfc_input)   # the same sequence as the SLN
        cm, cinfo = trained(train_cfc, ccfg, cs, "ncps CfC, ")
        items.append(evaluate_baseline("cfc", cs, ccfg, cm, cm.to_input, lambda im, m=cm: count_cfc(m, im),
                                       cinfo, xte, yte, args, profile))
    return 0


def _cnn_per_position(row: dict[str, Any], model: CNN, xte: np.ndarray, profile: EnergyProfile) -> None:
    """A CNN row's separate no-reuse line (sln.cnn): every conv weight re-read at each output position
    instead of once per image (the estimate's rule, the ViT's); the row's energy is unchanged."""
    c = count_cnn(model, torch.from_numpy(xte[0].copy()))
    ops = {**c.to_ops(), "macs": row["effective_macs"], "weight_bytes": c.weight_bytes_per_position}
    e = energy(ops, row["matrix_footprint_bytes"], row["act_footprint_bytes"], profile, "fp32",
               row["param_footprint_bytes"])
    row["matrix_bytes_read_per_position"] = c.weight_bytes_per_position
    row["energy_uJ_weights_per_position"] = e["total"] * PJ_TO_UJ
    row["how"]["counts"] = row["how"]["counts"].replace("(sln.baselines)", "(sln.cnn: conv weights read once "
                                                        "per image, as the ViT's)")


def cnn_comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every SLN row against the CNN rows of the same table (compare.compare: ratio = CNN / SLN), kept
    apart from the ViT comparisons and the headline."""
    cnns = [r for r in rows if r["family"] == "cnn"]
    return [c for r in rows if r["family"] in SLN_FAMILIES and cnns for c in compare(r, cnns)]


def _headline(rows: list[dict[str, Any]], comparisons: list[dict[str, Any]], args: argparse.Namespace
              ) -> dict[str, Any]:
    head = next(r for r in rows if r["name"] == args.model)
    use = headline_comparison(comparisons, args.model)
    h = {"model": args.model, "precision": "fp32 vs fp32", "method": use["method"] if use else None,
         "energy_ratio": use["energy_ratio"] if use else None,
         "latency_ratio": use["latency_ratio"] if use else None,
         "target_energy_ratio": 100.0, "target_latency_ratio": 3.0,
         "int8": ("see the 'int8' section (int8 vs int8, a table of its own)" if not args.no_int8 else
                  "not compared in this run (--no-int8)"),
         "text": ""}
    if use:
        h["text"] = (f"{args.model} ({100 * head['accuracy']:.2f}%) vs ViT at equal accuracy "
                     f"({use['method']}, {use['baseline']}), fp32 vs fp32: estimated energy ViT/SLN = "
                     f"{ratio_words(use['energy_ratio'])} (target 100x); batch-1 latency ViT/SLN = "
                     f"{ratio_words(use['latency_ratio'])} (target 3x)")
    return h


# --------------------------------------------------------------------------- the run
def run_image_benchmark(args: argparse.Namespace, argv: list[str]) -> int:
    """The whole comparison: evaluate, time, int8 section, print, write JSON / Markdown / plots."""
    if args.quick:
        _apply_quick(args)
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
    epochs = args.epochs or _ckpt_epochs(args.runs_dir / f"{args.dataset}-{args.model}") or 10
    items: list[tuple[Timers, dict[str, Any]]] = []
    int8_jobs: list[tuple[str, str, Any, str]] = []   # (family, name, model, source) for the int8 section
    backends: list[str] = []                          # the engine backend of each SLN row

    head_input = get_config(args.model).input_size
    sln_names = [args.model] + [m for m in args.extra_models.split(",") if m and m != args.model]
    jobs = [(n, "sln", i == 0) for i, n in enumerate(sln_names)] + ([(args.dense, "sln-dense", True)]
                                                                    if args.dense else [])
    args.train_threads = train_threads(args.train_threads)
    plan = build_plan(args, jobs, epochs, head_input, (xtr, ytr, xte, yte))
    if not announce(plan, args.train_threads, no_train=args.no_train, yes=args.yes):
        print("nothing measured: the models above have no checkpoint" + ("" if args.no_train else " (declined)"),
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    for name, fam, must in jobs:
        got = _get_sln(name, args, train_if_missing=must, epochs=epochs)
        if got is None:
            print(f"(skipping {name}: no checkpoint in {args.runs_dir}/{args.dataset}-{name})")
            continue
        model, src, ep = got
        if name == args.model and fam == "sln":
            head_input = model.cfg.input_size  # CfC reads the same sequence as SLN
        print(f"evaluating {name} ({src})")
        items.append(evaluate_sln(name, fam, model, xte, yte, args, profile, meter["source"], src, ep, backends))
        int8_jobs.append((fam, name, model, src))
    if _baselines(args, (xtr, ytr, xte, yte), epochs, head_input, profile, items, int8_jobs):
        return 2
    print(f"timing batch-1 latency: {args.repeats} runs per model after {args.warmup} warm-up, models "
          f"interleaved in blocks of 10, 1 thread")
    time_interleaved([(row, timers) for timers, row in items], args.repeats, args.warmup, meter["source"],
                     progress=not args.no_progress)
    rows = [row for _, row in items]
    int8_sec = None if args.no_int8 else run_int8_section(int8_jobs, args.model, xtr, xte, yte, profile,
                                                          args.int8_calib, args.int8_limit_test,
                                                          evaluators={"cnn": evaluate_cnn_int8})
    if int8_sec is not None:
        int8_sec["comparisons_cnn"] = cnn_comparisons(int8_sec["models"])
    comparisons = compare_all(rows)
    headline = _headline(rows, comparisons, args)
    cpu = cpu_name()
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID, "command": "python benchmark.py " + " ".join(argv),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": args.dataset, "quick": bool(args.quick),
        "machine": {"cpu": cpu, "cores": os.cpu_count() or 1, "threads": 1,
                    "torch": torch.__version__, "engine_backend": ",".join(sorted(set(backends))) or "none"},
        "energy_profile": profile.to_dict(), "measured_energy": meter,
        "models": rows, "comparisons": comparisons, "comparisons_cnn": cnn_comparisons(rows), "headline": headline,
    }
    if int8_sec is not None:
        doc["int8"] = int8_sec
    print_section(rows, comparisons, headline["text"], "fp32",
                  energy_line=f"energy: estimated with {profile.name} ({profile.citation}); "
                              f"measured: {meter['note']}", cnn_comparisons=doc["comparisons_cnn"])
    if int8_sec is not None:
        print_section(int8_sec["models"], int8_sec["comparisons"], int8_sec["headline"]["text"], "int8",
                      cnn_comparisons=int8_sec["comparisons_cnn"])
    args.out.mkdir(parents=True, exist_ok=True)
    js = args.json or args.out / f"{args.dataset}.json"
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(doc, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown_report(doc) + "\n")
    pngs = write_plots(doc, args.out, cpu)
    print(f"wrote {js}, " + ", ".join(str(p) for p in pngs))
    return 0

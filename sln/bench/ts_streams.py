r"""Time-series streams benchmark (issue 9 §3, the time-series half): int8 SLN vs int8 causal transformers
with a KV cache, per event (time step) of a stream, at equal test accuracy.

    python -m sln.bench.ts_streams_train --out runs/ts-streams      # the SLN + transformers (1 thread)
    python benchmark.py --task ts-streams --sln-checkpoint runs/ts-streams/sln/checkpoint.safetensors \
        --gpt-checkpoints runs/ts-streams/gpt-*/checkpoint.safetensors \
        --json bench/ts_streams.json --markdown bench/ts_streams.md --plot bench/ts_streams_energy.png

A classifier reads a series one event at a time and decides after the last one. For each model:
test accuracy (float, and int8), estimated int8 energy per event and measured batch-1 latency per
event, (a) averaged over one whole test series (T events, the task), and (b) for the c-th event of a
longer stream (c = T, 256, 1024, 4096: the transformer attends to c positions, its KV cache holds c;
the SLN's state and step do not grow). Accuracy is measured only at the task's length T; (b) is the
cost of the same models on longer streams of the same events, not an accuracy claim there.

SLN, int8: `quantize_series` (sln.quant's layer quantisation; inputs int16 x_q = round(x 2^X_FRAC)
as input events, their scale folded into M_in; the mean readout's 1/T into M_out), run and counted
by the integer model itself, `sln.intspec.reference_forward` with `IntCounts` on the whole test set
(the same run gives the int8 accuracy), mean per event. Latency: the C runtime's streaming step
(runtime/sln.c `sln_step` on int16 input events + the readout accumulator, timed inside C by
runtime/baselines/sln_stream_time.c; tested equal to the integer model's state and accumulator).
Transformers: `sln.bench.ts_gpt` (counted with the LM GPT's int8 counter and block loop; C latency
with the LM GPT's C decode step on a timing twin, runtime/baselines/gpt_step.c, float32).
Pricing: `sln.bench.lm_streams.price_token`, the LM streams' one pricing function, for both models
and every profile; matching: `sln.bench.lm_streams.match` on the negated int8 accuracy (lower is better).
"""
from __future__ import annotations

import ctypes
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import intspec
from ..cbuild import build_shared, compiler
from ..energy import PROFILES, get_profile
from ..model import SLN
from ..quant import _mults, _per_channel, quantize_layers, record_range
from .int8 import sln_int8_footprint
from .lm_streams import SENS_PROFILES, _uj, match, price_token
from .measure import PJ_TO_UJ, cpu_name, torch_threads

X_FRAC = 10                      # int16 input events: x_q = round(x 2^10), |x| < 32 after normalisation
CONTEXTS = (256, 1024, 4096)     # + the series length T
PLOT_CONTEXTS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# in a checkout: runtime/; in an installed wheel: sln/runtime/ (as sln.bench.gpt_c)
_HERE = Path(__file__).resolve()
RUNTIME = next((p for p in (_HERE.parents[2] / "runtime", _HERE.parents[1] / "runtime") if (p / "sln.c").is_file()),
               _HERE.parents[2] / "runtime")
TIME_SRC = RUNTIME / "baselines" / "sln_stream_time.c"
RUNTIME_SRC = RUNTIME / "sln.c"


# --------------------------------------------------------------------------- SLN: the integer model
@torch.no_grad()
def quantize_series(model: SLN, x_train: torch.Tensor, x_frac: int = X_FRAC) -> intspec.QModel:
    """The int8 classifier of an SLN trained on equal-length series (readout "mean"): calibration on
    the training series x_train (n, T, D) through the float step, int16 input events of scale 2^-x_frac."""
    cfg = model.cfg
    if cfg.readout != "mean" or cfg.task != "classify" or getattr(cfg, "series_norm", "global") != "global":
        raise ValueError("the integer stream needs a classifier with readout 'mean' and the global input scaling "
                         "(train it with python -m sln.bench.ts_streams_train)")
    model.eval()
    n, T, D = x_train.shape
    intspec.check_limits(D, cfg.n_classes, cfg.n_neurons, cfg.n_layers, cfg.k, T)
    stats = [{"a_max": 0.0, "c_max": 0.0} for _ in model.cells]
    state = model.init_state(n)
    for t in range(T):
        _, state, _ = model.step(x_train[:, t], state, 1.0,
                                 observe=lambda li, a: record_range(stats[li], model.cells[li], a))
    layers, report, in_scale = quantize_layers(model, stats, 2.0 ** -x_frac)
    w_out_q, s_out = _per_channel(model.readout.weight)
    out_mult, out_shift = _mults(s_out * in_scale / T * 2.0 ** intspec.LOGIT_FRAC)
    out_bias = np.round(model.readout.bias.detach().double().numpy() * 2.0 ** intspec.LOGIT_FRAC).astype(np.int64)
    report.update({"calibration_series": int(n), "x_frac": x_frac})
    return intspec.QModel(input_size=D, n_classes=cfg.n_classes, n_neurons=cfg.n_neurons, n_layers=cfg.n_layers,
                          k=cfg.k, n_steps=T, layers=layers, w_out=np.ascontiguousarray(w_out_q.T),
                          out_mult=out_mult, out_shift=out_shift, out_bias=out_bias, report=report)


def quantize_inputs(x: torch.Tensor, x_frac: int = X_FRAC) -> np.ndarray:
    """Normalised series (n, T, D) float -> int16 input values (n, T, D) as int64."""
    q = np.round(x.double().numpy() * 2.0 ** x_frac)
    return np.clip(q, -32767, 32767).astype(np.int64)


def sln_int8_run(qm: intspec.QModel, x_q: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The integer classifier on every test series (x_q (n, T, D)), counted -> int8 accuracy, counts per
    event (price_token's keys), logits. The counter's layer-0 input scan charges 1 byte per value (pixels);
    the int16 inputs here are 2: the extra byte per value is added."""
    n, T, D = x_q.shape
    cnt = intspec.IntCounts()
    logits, _ = intspec.reference_forward(qm, x_q.reshape(n, T * D), cnt)
    ev = float(n * T)
    tot = {kk: sum(cnt.terms[t][kk] for t in intspec.COUNT_TERMS) for kk in intspec.COUNTERS}
    ops = {"macs": tot["mac"] / ev, "adds32": tot["adds32"] / ev, "muls32": tot["muls32"] / ev,
           "cmps32": tot["cmps32"] / ev, "weight_bytes": tot["weight_bytes"] / ev,
           "param_bytes": tot["param_bytes"] / ev, "act_bytes": tot["act_bytes"] / ev + D,
           "index_bytes": tot["index_bytes"] / ev, "kv_bytes": 0.0}
    return {"accuracy_int8": float((logits.argmax(1) == y).mean()), "events": int(ev), "ops": ops,
            "logits": logits, "active_fraction": cnt.nz_out / (ev * qm.n_layers * qm.n_neurons)}


def stream_lib() -> ctypes.CDLL | None:
    """runtime/sln.c + runtime/baselines/sln_stream_time.c as one shared library (int8, -O2), or None."""
    if compiler() is None or not TIME_SRC.is_file() or not RUNTIME_SRC.is_file():
        return None
    so = build_shared("slnstream", [TIME_SRC, RUNTIME_SRC], ["-O2", "-shared", "-fPIC", "-std=c99"],
                      headers=[RUNTIME / "sln.h", RUNTIME / "sln_format.h"])
    lib = ctypes.CDLL(str(so))
    lib.sln_stream_time.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_uint32,
                                    ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return lib


def c_stream(model_bytes: bytes, x_q: np.ndarray, repeats: int = 20) -> dict[str, Any]:
    """One series x_q (T, D) through the C runtime, `repeats` timed passes -> us per event (best pass),
    the readout accumulator (N,) and layer 0's state h (N,) after the series."""
    lib = stream_lib()
    if lib is None:
        raise RuntimeError("the C latency needs a C compiler (gcc, or set CC); or pass --no-c")
    from ..fmt import from_bytes
    N = from_bytes(model_bytes).n_neurons
    buf = ctypes.create_string_buffer(model_bytes, len(model_bytes))
    x = np.ascontiguousarray(x_q, np.int16)
    acc, h0, us = np.zeros(N, np.int32), np.zeros(N, np.int16), ctypes.c_double(0.0)
    st = lib.sln_stream_time(buf, len(model_bytes), x.ctypes.data, x.shape[0], repeats, acc.ctypes.data,
                             h0.ctypes.data, ctypes.byref(us))
    if st != 0:
        raise RuntimeError(f"sln_stream_time: status {st} (the model file does not load as an int8 classifier?)")
    return {"us_per_event": us.value, "acc": acc, "h0": h0}


@torch.no_grad()
def sln_torch_latency_ms(model: SLN, x: torch.Tensor, repeats: int = 3) -> float:
    """Batch-1 float SLN in PyTorch eager mode, one model.step per event over the series x (T, D),
    ms per event (best of repeats, wall clock)."""
    model.eval()
    best = float("inf")
    for _ in range(repeats):
        st = model.init_state(1)
        t0 = time.perf_counter()
        acc = 0.0
        for t in range(x.shape[0]):
            y, st, _ = model.step(x[t][None], st, 1.0)
            acc = acc + y
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / x.shape[0]


def sln_entry(path: Path, data: Any, use_c: bool, c_repeats: int) -> dict[str, Any]:
    from ..checkpoint import load_checkpoint
    from ..fmt import to_bytes

    model, state = load_checkpoint(path)
    if not isinstance(model, SLN):
        raise ValueError(f"{path} is not an SLN checkpoint")
    prof = get_profile()
    acc_f = float((model(data.x_test, None, data.len_test).argmax(1) == data.y_test).float().mean())
    qm = quantize_series(model, data.x_train)
    xq = quantize_inputs(data.x_test)
    run = sln_int8_run(qm, xq, data.y_test.numpy())
    fpd = sln_int8_footprint(qm)
    fp = {"matrix_bytes": float(fpd["matrix_bytes"]), "param_bytes": float(fpd["param_bytes"]),
          "act_bytes": float(fpd["act_bytes"]), "kv_bytes": 0.0}
    e = price_token(run["ops"], fp, prof)
    ent: dict[str, Any] = {
        "name": f"sln-N{model.cfg.n_neurons}-k{model.cfg.k}-L{model.cfg.n_layers}", "checkpoint": str(path),
        "params": model.num_params(), "config": {"n_neurons": model.cfg.n_neurons, "k": model.cfg.k,
                                                 "layers": model.cfg.n_layers, "readout": model.cfg.readout},
        "train_seconds": state.get("train_seconds"), "accuracy_float": acc_f,
        "accuracy_int8": run["accuracy_int8"], "events_counted": run["events"],
        "active_fraction": run["active_fraction"], "ops": run["ops"], "footprint_bytes": fp,
        "energy_uj": e["total"] * PJ_TO_UJ, "energy_terms_uj": _uj(e),
        "levels": {k: e[k] for k in ("weight_level", "param_level", "act_level")},
        "energy_uj_by_profile": {p: price_token(run["ops"], fp, PROFILES[p])["total"] * PJ_TO_UJ
                                 for p in SENS_PROFILES},
        "latency_ms_torch": sln_torch_latency_ms(model, data.x_test[0]), "latency_us_c_int8": None,
        "how": {"counts": "sln.intspec.reference_forward with IntCounts on every test series (int16 input "
                          f"events, X_FRAC {X_FRAC}), mean per event; context-independent",
                "accuracy_int8": "the integer model (sln.intspec), quantised by sln.bench.ts_streams.quantize_series "
                                 f"on the {len(data.x_train)} training series"}}
    if use_c:
        blob = to_bytes(qm)
        cs = c_stream(blob, xq[0], c_repeats)
        ent["latency_us_c_int8"] = cs["us_per_event"]
        ent["model_file_bytes"] = len(blob)
    return ent


# --------------------------------------------------------------------------- transformers
def gpt_entry(path: Path, data: Any, contexts: tuple[int, ...], lat_events: int, use_c: bool) -> dict[str, Any]:
    from ..checkpoint import load_checkpoint
    from .gpt_c import GPTStepC
    from .gpt_int8 import GPTInt8Counter, gpt_int8_ops
    from .ts_gpt import build_tsgpt, count_event, counted_event, describe, gpt_name, int8_weight_copy, timing_twin

    g, state = load_checkpoint(path, builders={"ts-gpt": build_tsgpt})
    prof = get_profile()
    T = int(data.x_test.shape[1])
    xt = data.x_test

    def acc(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return float((m(xt, None, data.len_test).argmax(1) == data.y_test).float().mean())

    cfg = g.cfg
    ent: dict[str, Any] = {"name": gpt_name(cfg.d_model, cfg.n_layers, cfg.n_heads), "checkpoint": str(path),
                           "params": g.num_params(), "config": {"d_model": cfg.d_model, "layers": cfg.n_layers,
                                                                "heads": cfg.n_heads},
                           "train_seconds": state.get("train_seconds"), "accuracy_float": acc(g),
                           "accuracy_int8": acc(int8_weight_copy(g)), "per_context": {}, "how": describe()}

    def priced(cnt: GPTInt8Counter, c: int) -> dict[str, Any]:
        ops, fp = gpt_int8_ops(g, cnt, c, prof.nonlin_muls, prof.nonlin_adds)   # the LM GPT's
        e = price_token(ops, fp, prof)
        return {"ops": ops, "footprint_bytes": fp, "energy_uj": e["total"] * PJ_TO_UJ, "energy_terms_uj": _uj(e),
                "levels": {k: e[k] for k in ("weight_level", "param_level", "act_level", "kv_level")},
                "energy_uj_by_profile": {p: price_token(ops, fp, PROFILES[p])["total"] * PJ_TO_UJ
                                         for p in SENS_PROFILES}}

    # (a) the task: every event of test series 0 counted (contexts 1..T), energies averaged
    caches, rows = None, []
    for t in range(T):
        cnt = GPTInt8Counter()
        _, caches = counted_event(g, xt[0, t], caches, t, T, cnt)
        rows.append(priced(cnt, t + 1))
    series = {"energy_uj": float(np.mean([r["energy_uj"] for r in rows])),
              "energy_terms_uj": {k: float(np.mean([r["energy_terms_uj"][k] for r in rows]))
                                  for k in rows[0]["energy_terms_uj"]},
              "energy_uj_by_profile": {p: float(np.mean([r["energy_uj_by_profile"][p] for r in rows]))
                                       for p in SENS_PROFILES},
              "levels": rows[-1]["levels"], "latency_ms_torch": gpt_torch_latency_ms(g, xt[0], 1, T)}
    twin = timing_twin(g) if use_c else None
    gc = GPTStepC(twin, max(contexts) + lat_events + 1) if twin is not None else None
    ids = torch.randint(0, cfg.n_classes, (max(contexts) + lat_events + 1,), generator=torch.Generator().manual_seed(0))
    series["latency_us_c_float"] = gc.decode_latency_us(ids, 1, T) if gc else None
    ent["per_context"]["series"] = series
    # (b) the c-th event of a longer stream
    for c in sorted(set(contexts) | set(PLOT_CONTEXTS)):
        row = priced(count_event(g, xt[0], c, T), c)
        if c in contexts:
            row["latency_ms_torch"] = gpt_torch_latency_ms(g, xt[0], c, lat_events)
            row["latency_us_c_float"] = gc.decode_latency_us(ids, c, lat_events) if gc else None
        ent["per_context"][str(c)] = row
    return ent


@torch.no_grad()
def gpt_torch_latency_ms(model: Any, x: torch.Tensor, c: int, n: int, repeats: int = 3) -> float:
    """Batch-1 event-by-event stream with the KV cache in PyTorch eager mode: the cache primed with the
    first c - 1 events (one forward), then n events timed (positions c-1 .. c+n-2), ms per event, best of
    repeats. x (T, D) is repeated when the stream is longer."""
    from .ts_gpt import prime_caches

    model.eval()
    xs = x[torch.arange(c + n) % x.shape[0]]
    best = float("inf")
    for _ in range(repeats):
        caches = prime_caches(model, xs[: c - 1])
        t0 = time.perf_counter()
        acc = 0.0
        for t in range(c - 1, c - 1 + n):
            z, caches = model.step(xs[t][None], caches, t)
            acc = acc + z
        model.head(acc / n)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / n


# --------------------------------------------------------------------------- the run
def break_even_context(g: dict[str, Any], sln_uj: float) -> float | None:
    """The context at which the transformer's energy per event reaches the SLN's: log-log interpolation
    between the two counted contexts that bracket it (None when it does not cross in the counted range)."""
    cs = sorted(int(c) for c in g["per_context"] if c != "series")
    e = [g["per_context"][str(c)]["energy_uj"] for c in cs]
    if not cs:
        return None
    if e[0] >= sln_uj:                       # already above the SLN at the shortest counted context
        return float(cs[0])
    for (c0, e0), (c1, e1) in zip(zip(cs, e), zip(cs[1:], e[1:]), strict=False):
        if e0 < sln_uj <= e1:
            w = (np.log(sln_uj) - np.log(e0)) / (np.log(e1) - np.log(e0))
            return float(np.exp(np.log(c0) + w * (np.log(c1) - np.log(c0))))
    return None


def compare(doc: dict[str, Any], key: str = "neg_accuracy_int8") -> None:
    """doc["comparison"] and doc["sensitivity"] per context ("series" = the task's mean per event): the
    transformer matched on int8 test accuracy by lm_streams.match (negated: lower is better)."""
    sln, gpts = doc["sln"], doc["gpts"]
    for g in gpts:
        g[key] = -g["accuracy_int8"]
    s_key = -sln["accuracy_int8"]
    for g in gpts:
        g["break_even_context"] = break_even_context(g, sln["energy_uj"]) if "per_context" in g else None
    for cs in ["series", *map(str, doc["contexts"])]:
        if not all(cs in g["per_context"] for g in gpts):
            continue
        m = match(s_key, gpts, key, cs)
        fr = next((g for g in gpts if g["name"] == m["frontier"]), None)
        near = next(g for g in gpts if g["name"] == m["nearest"])
        lat_sc, lat_st = sln["latency_us_c_int8"], sln["latency_ms_torch"]
        out: dict[str, Any] = {"sln_accuracy_int8": sln["accuracy_int8"], "sln_energy_uj": sln["energy_uj"],
                               "nearest": m["nearest"], "nearest_accuracy_int8": -m["nearest_bpc"],
                               "energy_ratio_nearest": m["nearest_energy_uj"] / sln["energy_uj"],
                               "energy_ratio_interpolated": (m["interpolated_energy_uj"] / sln["energy_uj"]
                                                             if m["interpolated_energy_uj"] else None),
                               "bracket": m["bracket"],
                               "nearest_latency_ratio_torch": near["per_context"][cs]["latency_ms_torch"] / lat_st,
                               "frontier": m["frontier"]}
        if fr is not None:
            p = fr["per_context"][cs]
            out.update({"frontier_accuracy_int8": fr["accuracy_int8"],
                        "frontier_energy_uj": m["frontier_energy_uj"],
                        "energy_ratio_frontier": m["frontier_energy_uj"] / sln["energy_uj"],
                        "frontier_latency_ms_torch": p["latency_ms_torch"],
                        "frontier_latency_us_c": p.get("latency_us_c_float"),
                        "frontier_latency_ratio_torch": p["latency_ms_torch"] / lat_st,
                        "frontier_latency_ratio_c": (p["latency_us_c_float"] / lat_sc
                                                     if p.get("latency_us_c_float") and lat_sc else None)})
        doc["comparison"][cs] = out
        doc["sensitivity"][cs] = {}
        for prof in SENS_PROFILES:
            mp = match(s_key, gpts, key, cs, prof)
            e_s = sln["energy_uj_by_profile"][prof]
            doc["sensitivity"][cs][prof] = {
                "ratio_frontier": mp["frontier_energy_uj"] / e_s if mp["frontier_energy_uj"] else None,
                "ratio_nearest": mp["nearest_energy_uj"] / e_s,
                "ratio_interpolated": mp["interpolated_energy_uj"] / e_s if mp["interpolated_energy_uj"] else None}


def run_ts_streams(args: Any) -> dict[str, Any]:
    """args: sln_checkpoint, gpt_checkpoints, ts_stream_dataset, contexts, latency_tokens, no_c,
    c_repeats, json, markdown, plot -> the result document (also written where asked)."""
    from ..timeseries import load_ts_dataset

    data = load_ts_dataset(args.ts_stream_dataset)
    if bool((data.len_train != data.len_train[0]).any()) or bool((data.len_test != data.x_test.shape[1]).any()):
        raise ValueError(f"{args.ts_stream_dataset}: the integer stream classifier needs equal-length series "
                         "(1/T is folded into its readout); use gunpoint, italypowerdemand or basicmotions")
    contexts = tuple(args.contexts or CONTEXTS)
    lat_events = int(args.latency_tokens)
    t0 = time.perf_counter()
    with torch_threads(1):
        sln = sln_entry(Path(args.sln_checkpoint), data, not args.no_c, args.c_repeats)
        print(f"ts-streams: SLN done ({time.perf_counter() - t0:.0f} s)", flush=True)
        gpts = []
        for p in args.gpt_checkpoints:
            gpts.append(gpt_entry(Path(p), data, contexts, lat_events, not args.no_c))
            print(f"ts-streams: {gpts[-1]['name']} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    if len({g["name"] for g in gpts}) != len(gpts):
        raise ValueError("ts-streams: two transformer checkpoints of the same size; give distinct sizes")
    gpts.sort(key=lambda g: g["params"])
    T = int(data.x_test.shape[1])
    doc: dict[str, Any] = {
        "task": "ts-streams", "dataset": args.ts_stream_dataset, "series_length": T,
        "test_series": int(len(data.y_test)), "train_series": int(len(data.y_train)),
        "contexts": list(contexts), "precision": "int8 vs int8", "energy_profile": get_profile().name,
        "sensitivity_profiles": list(SENS_PROFILES), "machine": cpu_name(), "threads": 1,
        "torch": torch.__version__, "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sln": sln, "gpts": gpts, "comparison": {}, "sensitivity": {},
        "targets": {"energy_ratio_at_1024": 100.0, "latency_ratio": 10.0}}
    compare(doc)
    from .ts_streams_report import write_outputs

    write_outputs(doc, args)
    return doc


def add_ts_streams_arguments(p: Any) -> None:
    """--task ts-streams's own flags (it shares --sln-checkpoint, --gpt-checkpoints, --contexts,
    --latency-tokens, --no-c, --plot, --json and --markdown with lm-streams)."""
    p.add_argument("--ts-stream-dataset", default="gunpoint",
                   help="equal-length UCR set of the time-series streams benchmark")
    p.add_argument("--c-repeats", type=int, default=20, help="timed passes of the SLN's C stream (best kept)")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .lm_streams import add_streams_arguments

    p = argparse.ArgumentParser(prog="python -m sln.bench.ts_streams")
    p.add_argument("--sln-checkpoint", type=Path, required=True)
    p.add_argument("--contexts", type=int, nargs="+", default=None)
    p.add_argument("--json", type=Path, default=Path("bench/ts_streams.json"))
    p.add_argument("--markdown", type=Path, default=Path("bench/ts_streams.md"))
    add_streams_arguments(p)
    add_ts_streams_arguments(p)
    a = p.parse_args(argv)
    if not a.gpt_checkpoints:
        p.error("--gpt-checkpoints is required (python -m sln.bench.ts_streams_train makes them)")
    run_ts_streams(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Streams benchmark (issue 9 §3): int8 SLN char-LM vs int8 GPT with a KV cache, per generated token.

    python -m sln.bench.lm_streams --sln-checkpoint S --gpt-checkpoints G1 G2 G3 \
        --json bench/lm_streams.json --markdown bench/lm_streams.md --plot bench/lm_streams_energy.png
    python benchmark.py --task lm-streams ...      (the same flags)

For the SLN and every GPT: validation bits per character (float, and int8: the SLN's integer
model sln.intspec, the GPT's weights quantised per channel), estimated int8 energy per token at
each context c, and measured batch-1 latency per token. The GPT of equal bits per character is
found among the given GPTs (`match`): the nearest in int8 bpc, and, where two GPTs bracket the
SLN, the energy interpolated between them (log-linear in bpc).

Counts: SLN = what the integer engine executes, `sln.intspec.q_step` + `readout` with
`IntCounts` on `streams` parallel streams of the validation text (the same run that gives the
int8 bpc), mean per token; it does not depend on the context. GPT = `sln.bench.gpt_int8`
(one counted decode step at each context, ViTInt8Counter's conventions, KV cache apart).
Pricing: `price_token`, the ONE function for both models: sln.energy.estimate_pj at int8 on the
int8 matrices, the int32/per-channel vectors and the activation working set, each at the memory
level of its own size, plus the KV cache (GPT only; the SLN has none) at the level of ITS size
(2 c d bytes per layer): `profile.memory_level`, the continuous-capacity SRAM model by default.
`sensitivity` re-prices the same counts under every profile of the image benchmark's table.
Latency: C vs C, the SLN's int8 C runtime (runtime/sln_lm_cli, CPU time per token) against the
GPT's float32 C decode step (runtime/baselines/gpt_step.c via sln.bench.gpt_c, CPU time per token,
KV cache; no int8 GPT kernel: float32 C, which biases the latency against the GPT by whatever an int8
kernel would gain), and both models in PyTorch eager mode (1 thread, wall clock, the GPT with its
KV cache after priming with c characters).
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import intspec
from ..energy import PROFILES, EnergyProfile, estimate_pj, get_profile
from .gpt_int8 import count_token, describe, gpt_int8_ops, int8_weight_copy
from .int8 import sln_int8_footprint
from .measure import PJ_TO_UJ, cpu_name, torch_threads

CONTEXTS = (256, 1024, 4096)
PLOT_CONTEXTS = (64, 128, 256, 512, 1024, 2048, 4096)
SENS_PROFILES = ("horowitz45", "horowitz45-steps", "horowitz45-onchip-8mb", "horowitz45-dram-high",
                 "horowitz45-slope-x2", "horowitz45-slope-x0.5")
ROOT = Path(__file__).resolve().parents[2]
LM_CLI = ROOT / "runtime" / "build" / "sln_lm_cli"
LN2 = math.log(2.0)


# --------------------------------------------------------------------------- pricing (both models)
def price_token(ops: dict[str, float], fp: dict[str, float], profile: EnergyProfile) -> dict[str, Any]:
    """pJ of one token by term: estimate_pj at int8 (matrices, vectors, activations each at the
    level of their own footprint) + the KV cache's bytes (ops["kv_bytes"]) at the level of its own
    footprint (fp["kv_bytes"]; 0 = none). The same function prices the SLN and the GPT."""
    e = dict(estimate_pj(ops, fp["matrix_bytes"], fp["act_bytes"], profile, "int8", fp["param_bytes"]))
    kv_fp = float(fp.get("kv_bytes", 0.0))
    kl, kpj = profile.memory_level(kv_fp) if kv_fp > 0 else ("-", 0.0)
    e["kv_mem"] = float(ops.get("kv_bytes", 0.0)) / 8.0 * kpj
    e["kv_level"] = kl
    e["memory"] += e["kv_mem"]
    e["total"] += e["kv_mem"]
    return e


def _uj(e: dict[str, Any]) -> dict[str, float]:
    return {k: e[k] * PJ_TO_UJ for k in ("compute", "mac", "int32_ops", "weight_mem", "param_mem", "act_mem",
                                         "kv_mem", "total")}


# --------------------------------------------------------------------------- SLN: integer engine
def sln_int8_stream(qm: intspec.QModel, ids: np.ndarray, streams: int = 32) -> dict[str, Any]:
    """Run the integer LM (q_step + readout, counted) on `streams` contiguous segments of ids ->
    int8 bpc, counts per token (estimate_pj keys), active fraction."""
    S = max(1, min(streams, (len(ids) - 1) // 2))
    L = (len(ids) - 1) // S
    x = ids[: S * L].reshape(S, L)
    y = ids[1: S * L + 1].reshape(S, L)
    st, cnt = intspec.init_state(qm, S), intspec.IntCounts()
    oh = np.zeros((S, qm.input_size), np.int64)
    rows = np.arange(S)
    nll = 0.0
    for t in range(L):
        oh[:] = 0
        oh[rows, x[:, t]] = 1
        lg = intspec.readout(qm, intspec.q_step(qm, st, oh, cnt), cnt).astype(np.float64) / 2.0 ** intspec.LOGIT_FRAC
        m = lg.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(lg - m).sum(1))
        nll += float((lse - lg[rows, y[:, t]]).sum())
    n = float(S * L)
    tot = {kk: sum(cnt.terms[t][kk] for t in intspec.COUNT_TERMS) for kk in intspec.COUNTERS}
    ops = {"macs": tot["mac"] / n, "adds32": tot["adds32"] / n, "muls32": tot["muls32"] / n,
           "cmps32": tot["cmps32"] / n, "weight_bytes": tot["weight_bytes"] / n, "param_bytes": tot["param_bytes"] / n,
           "act_bytes": tot["act_bytes"] / n, "index_bytes": tot["index_bytes"] / n, "kv_bytes": 0.0}
    return {"bpc_int8": nll / n / LN2, "chars": int(n), "ops": ops,
            "active_fraction": cnt.nz_out / (n * qm.n_layers * qm.n_neurons)}


def c_latency_us(model_sln: Path, prompt: list[int], tokens: int, repeats: int = 3) -> float | None:
    """Host time per token of the int8 C runtime (runtime/sln_lm_cli, greedy), best of `repeats`;
    None when the binary cannot be built."""
    if not LM_CLI.is_file():
        r = subprocess.run(["make", "-C", str(ROOT / "runtime"), "lm-host"], capture_output=True, text=True)
        if r.returncode != 0 or not LM_CLI.is_file():
            print(f"lm-streams: cannot build {LM_CLI}: {r.stderr[-300:]}", file=sys.stderr)
            return None
    best = None
    for _ in range(repeats):
        r = subprocess.run([str(LM_CLI), str(model_sln), str(tokens), "0", "0", "0", *map(str, prompt)],
                           capture_output=True, text=True, check=True)
        mt = re.search(r"([0-9.]+) us/token", r.stderr)
        if mt:
            v = float(mt.group(1))
            best = v if best is None else min(best, v)
    return best


# --------------------------------------------------------------------------- latency in PyTorch
@torch.no_grad()
def torch_latency_ms(model: torch.nn.Module, c: int, n: int, repeats: int = 3) -> float:
    """Batch-1 greedy decode, ms per token after priming with c characters (bench.lm.tokens_per_second)."""
    from .lm import tokens_per_second

    return 1e3 / tokens_per_second(model, c, n=n, repeats=repeats)


# --------------------------------------------------------------------------- matching on bpc
def match(sln_bpc: float, gpts: list[dict[str, Any]], key: str, c: str, profile: str = "horowitz45"
          ) -> dict[str, Any]:
    """The GPT energy at the SLN's bits per character: nearest GPT (by |bpc - sln_bpc|);
    interpolated (log energy linear in bpc) between the two GPTs nearest on either side, if any;
    frontier: the cheapest GPT whose bpc is at least as good as the SLN's (the headline: the GPT
    a user would pick for that quality; None when every GPT is worse than the SLN)."""
    rows = sorted(gpts, key=lambda g: g[key])
    near = min(rows, key=lambda g: abs(g[key] - sln_bpc))
    out: dict[str, Any] = {"nearest": near["name"], "nearest_bpc": near[key],
                           "nearest_energy_uj": near["per_context"][c]["energy_uj_by_profile"][profile],
                           "interpolated_energy_uj": None, "bracket": None,
                           "frontier": None, "frontier_bpc": None, "frontier_energy_uj": None}
    good = [g for g in rows if g[key] <= sln_bpc]    # GPTs at least as good as the SLN: the cheapest of them
    if good:
        fr = min(good, key=lambda g: g["per_context"][c]["energy_uj_by_profile"][profile])
        out.update({"frontier": fr["name"], "frontier_bpc": fr[key],
                    "frontier_energy_uj": fr["per_context"][c]["energy_uj_by_profile"][profile]})
    lo = [g for g in rows if g[key] <= sln_bpc]
    hi = [g for g in rows if g[key] >= sln_bpc]
    if lo and hi:
        a, b = lo[-1], hi[0]               # better (lower bpc) and worse neighbours
        ea = a["per_context"][c]["energy_uj_by_profile"][profile]
        eb = b["per_context"][c]["energy_uj_by_profile"][profile]
        w = 0.0 if b[key] == a[key] else (sln_bpc - a[key]) / (b[key] - a[key])
        out["interpolated_energy_uj"] = math.exp((1 - w) * math.log(ea) + w * math.log(eb))
        out["bracket"] = [a["name"], b["name"]]
    return out


# --------------------------------------------------------------------------- the run
def _gpt_entry(path: Path, val: torch.Tensor, val_bpc_ids: torch.Tensor, contexts: tuple[int, ...],
               lat_tokens: int, use_c: bool) -> dict[str, Any]:
    from ..lm import eval_bpc, load_lm
    from .gpt_c import GPTStepC

    g, _, state = load_lm(path)
    prof = get_profile()
    gc = GPTStepC(g, max(contexts) + lat_tokens + 1) if use_c else None
    ent: dict[str, Any] = {"name": f"gpt-d{g.cfg.d_model}-L{g.cfg.n_layers}", "checkpoint": str(path),
                           "params": g.num_params(), "config": {"d_model": g.cfg.d_model, "layers": g.cfg.n_layers,
                                                                "heads": g.cfg.n_heads, "train_ctx": g.cfg.ctx},
                           "train_seconds": state.get("train_seconds"),
                           "val_bpc": eval_bpc(g, val_bpc_ids)["bpc"],
                           "val_bpc_int8_weights": eval_bpc(int8_weight_copy(g), val_bpc_ids)["bpc"],
                           "per_context": {}, "how": describe()}
    for c in sorted(set(contexts) | set(PLOT_CONTEXTS)):
        if c + 1 > len(val):
            continue
        cnt, _ = count_token(g, val, c)
        ops, fp = gpt_int8_ops(g, cnt, c, prof.nonlin_muls, prof.nonlin_adds)
        e = price_token(ops, fp, prof)
        row = {"ops": ops, "footprint_bytes": fp, "dense_macs": cnt.macs, "energy_uj": e["total"] * PJ_TO_UJ,
               "energy_terms_uj": _uj(e), "levels": {k: e[k] for k in ("weight_level", "param_level", "act_level",
                                                                       "kv_level")},
               "energy_uj_by_profile": {p: price_token(ops, fp, PROFILES[p])["total"] * PJ_TO_UJ
                                        for p in SENS_PROFILES}}
        if c in contexts:
            row["latency_ms_torch"] = torch_latency_ms(g, c, lat_tokens)
            row["latency_us_c_float"] = gc.decode_latency_us(val, c, max(8, lat_tokens // 2)) if gc else None
        ent["per_context"][str(c)] = row
    return ent


def _sln_entry(path: Path, tr: torch.Tensor, val_bpc_ids: torch.Tensor, calib_chars: int, streams: int,
               lat_tokens: int, use_c: bool) -> dict[str, Any]:
    from ..export import export_lm
    from ..fmt import lm_from_bytes
    from ..lm import eval_bpc, load_lm

    s, vocab, state = load_lm(path)
    prof = get_profile()
    ent: dict[str, Any] = {"name": f"sln-N{s.cfg.n_neurons}-k{s.cfg.k}-L{s.cfg.n_layers}", "checkpoint": str(path),
                           "params": s.num_params(), "config": {"n_neurons": s.cfg.n_neurons, "k": s.cfg.k,
                                                                "layers": s.cfg.n_layers},
                           "train_seconds": state.get("train_seconds"), "val_bpc": eval_bpc(s, val_bpc_ids)["bpc"]}
    with tempfile.TemporaryDirectory() as tmp:
        rep = export_lm(s, vocab, tr[:calib_chars], tmp)
        qm = lm_from_bytes((Path(tmp) / "model.sln").read_bytes())
        t0 = time.perf_counter()
        run = sln_int8_stream(qm, val_bpc_ids.numpy().astype(np.int64), streams)
        ent["int8_count_seconds"] = time.perf_counter() - t0
        ent["model_file_bytes"] = rep["model_bytes"]
        prompt = val_bpc_ids[:8].tolist()
        ent["latency_us_c_int8"] = c_latency_us(Path(tmp) / "model.sln", prompt, lat_tokens * 40) if use_c else None
    fpd = sln_int8_footprint(qm)
    fp = {"matrix_bytes": float(fpd["matrix_bytes"]), "param_bytes": float(fpd["param_bytes"]),
          "act_bytes": float(fpd["act_bytes"]), "kv_bytes": 0.0}
    e = price_token(run["ops"], fp, prof)
    ent.update({"val_bpc_int8": run["bpc_int8"], "int8_chars": run["chars"], "active_fraction": run["active_fraction"],
                "ops": run["ops"], "footprint_bytes": fp, "energy_uj": e["total"] * PJ_TO_UJ,
                "energy_terms_uj": _uj(e), "levels": {k: e[k] for k in ("weight_level", "param_level", "act_level")},
                "energy_uj_by_profile": {p: price_token(run["ops"], fp, PROFILES[p])["total"] * PJ_TO_UJ
                                         for p in SENS_PROFILES},
                "latency_ms_torch": torch_latency_ms(s, 256, lat_tokens),
                "how": {"counts": "sln.intspec.q_step + readout with IntCounts, executed on the validation text "
                                  f"({run['chars']} tokens, {streams} streams), mean per token; context-independent",
                        "bpc_int8": "the integer model (bit-exact with the C runtime), quantised by sln.export "
                                    f"on {calib_chars} training characters"}})
    return ent


def run_streams(args: Any) -> dict[str, Any]:
    """args: sln_checkpoint, gpt_checkpoints, contexts, val_chars, calib_chars, streams, latency_tokens,
    no_c, json, markdown, plot -> the result document (also written where asked)."""
    from ..text import prepare

    contexts = tuple(args.contexts or CONTEXTS)
    _, tr, va = prepare()
    val_bpc_ids = va[: args.val_chars]
    need = max(contexts) + 1
    val_ctx = va[:need] if len(va) >= need else va
    with torch_threads(1):
        sln = _sln_entry(Path(args.sln_checkpoint), tr, val_bpc_ids, args.calib_chars, args.streams,
                         args.latency_tokens, not args.no_c)
        gpts = [_gpt_entry(Path(p), val_ctx, val_bpc_ids, contexts, args.latency_tokens, not args.no_c)
                for p in args.gpt_checkpoints]
    names = [g["name"] for g in gpts]
    for g in gpts:                      # the same architecture twice (other recipes): name them by their folder
        if names.count(g["name"]) > 1:
            g["name"] = f"{g['name']}:{Path(g['checkpoint']).parent.name}"
    if len({g["name"] for g in gpts}) != len(gpts):
        raise ValueError("lm-streams: give GPT checkpoints distinct folders")
    doc: dict[str, Any] = {
        "task": "lm-streams", "dataset": "shakespeare (val: hamlet, macbeth, tempest)",
        "val_chars_bpc": int(len(val_bpc_ids)), "contexts": list(contexts), "precision": "int8 vs int8",
        "energy_profile": get_profile().name, "sensitivity_profiles": list(SENS_PROFILES),
        "machine": cpu_name(), "threads": 1, "torch": torch.__version__,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sln": sln, "gpts": gpts, "comparison": {}, "sensitivity": {},
        "targets": {"energy_ratio_at_1024": 100.0, "latency_ratio": 10.0},
    }
    key = "val_bpc_int8_weights"
    for c in contexts:
        cs = str(c)
        if not all(cs in g["per_context"] for g in gpts):
            continue
        m = match(sln["val_bpc_int8"], gpts, key, cs)
        near = next(g for g in gpts if g["name"] == m["nearest"])
        lat_g = near["per_context"][cs]["latency_ms_torch"]
        lat_gc, lat_sc = near["per_context"][cs].get("latency_us_c_float"), sln["latency_us_c_int8"]
        fr = next((g for g in gpts if g["name"] == m["frontier"]), None)
        if fr is not None:
            fpc = fr["per_context"][cs]
            m.update({"energy_ratio_frontier": m["frontier_energy_uj"] / sln["energy_uj"],
                      "frontier_latency_ms_torch": fpc["latency_ms_torch"],
                      "frontier_latency_us_c": fpc.get("latency_us_c_float"),
                      "frontier_latency_ratio_torch": fpc["latency_ms_torch"] / sln["latency_ms_torch"],
                      "frontier_latency_ratio_c": (fpc["latency_us_c_float"] / lat_sc
                                                   if fpc.get("latency_us_c_float") and lat_sc else None)})
        m.update({"sln_bpc_int8": sln["val_bpc_int8"], "sln_energy_uj": sln["energy_uj"],
                  "energy_ratio_nearest": m["nearest_energy_uj"] / sln["energy_uj"],
                  "energy_ratio_interpolated": (m["interpolated_energy_uj"] / sln["energy_uj"]
                                                if m["interpolated_energy_uj"] else None),
                  "latency_ms_gpt_torch": lat_g, "latency_ms_sln_torch": sln["latency_ms_torch"],
                  "latency_ratio_torch_vs_torch": lat_g / sln["latency_ms_torch"],
                  "latency_us_gpt_c": lat_gc, "latency_us_sln_c": lat_sc,
                  "latency_ratio_c_vs_c": lat_gc / lat_sc if lat_gc and lat_sc else None,
                  "latency_ratio_torch_gpt_vs_c_sln": (lat_g / (lat_sc * 1e-3) if lat_sc else None)})
        doc["comparison"][cs] = m
        doc["sensitivity"][cs] = {}
        for p in SENS_PROFILES:
            mp = match(sln["val_bpc_int8"], gpts, key, cs, p)
            e_s = sln["energy_uj_by_profile"][p]
            doc["sensitivity"][cs][p] = {
                "sln_uj": e_s, "gpt_nearest_uj": mp["nearest_energy_uj"],
                "ratio_nearest": mp["nearest_energy_uj"] / e_s,
                "ratio_interpolated": mp["interpolated_energy_uj"] / e_s if mp["interpolated_energy_uj"] else None,
                "ratio_frontier": mp["frontier_energy_uj"] / e_s if mp["frontier_energy_uj"] else None}
    from .lm_streams_report import write_outputs

    write_outputs(doc, args)
    return doc


def add_streams_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--gpt-checkpoints", type=Path, nargs="+", default=None,
                   help="GPT checkpoints of different sizes (the equal-bpc one is matched among them)")
    p.add_argument("--val-chars", type=int, default=100_000, help="validation characters for the bpc")
    p.add_argument("--calib-chars", type=int, default=20_000, help="training characters calibrating the int8 SLN")
    p.add_argument("--streams", type=int, default=32, help="parallel streams of the integer SLN run")
    p.add_argument("--latency-tokens", type=int, default=128, help="decode steps timed per PyTorch measurement "
                                                                   "(the C runtime times 40x as many)")
    p.add_argument("--no-c", action="store_true", help="skip the C runtime's latency")
    p.add_argument("--plot", type=Path, default=None, help="energy per token vs context (PNG)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.bench.lm_streams")
    p.add_argument("--sln-checkpoint", type=Path, required=True)
    p.add_argument("--contexts", type=int, nargs="+", default=None)
    p.add_argument("--json", type=Path, default=Path("bench/lm_streams.json"))
    p.add_argument("--markdown", type=Path, default=Path("bench/lm_streams.md"))
    add_streams_arguments(p)
    a = p.parse_args(argv)
    if not a.gpt_checkpoints:
        p.error("--gpt-checkpoints is required")
    run_streams(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

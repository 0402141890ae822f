"""The headline ratios of a benchmark JSON under each memory model, recomputed WITHOUT retraining.

    python -m sln.bench.sensitivity bench/mnist.json [--markdown PATH] [--json PATH]

Every figure printed is RECOMPUTED from the counts published in the JSON (no model is run
again and nothing is measured): the published rows' operation counts are re-priced under each
variant of the memory model (sln/energy.py) and the equal-accuracy comparisons of
sln/bench/compare.py are redone. Where the JSON predates the matrix / vector split (bench/*.json
of 2026-11-28), the split is DERIVED, not counted:
  * SLN fp32 (event engine): the parameter vectors it reads per inference follow from the
    config alone: per step and layer the bias (2N x 4 B), LayerNorm gain and shift (2 x N x 4 B)
    and, when k < N and boosting is on, the boost (N x 4 B); the readout bias (C x 4 B) once.
  * SLN int8 (sln.intspec): per step and layer in_mult/in_shift (2N x 8 B), bias (2N x 4 B),
    gamma/beta (N x 8 B), two gate-table entries (N x 8 B), boost (N x 4 B); rec_mult/rec_shift
    (2N x 8 B) at every step after the first (ASSUMED: the previous step had a nonzero winner;
    `derivation_check` verifies it against the published per-term energies); readout 12 C B.
  * ViT rows are RECOUNTED from the architecture (their counts do not depend on the trained
    weights), with the published effective MACs (measured on real test images); the int8 rows
    then get the terms of `int8.ViTInt8Counter` (requantisation, per-channel scales, int32
    intermediates).
The published variant re-prices the published counts exactly as published (a check: it must
reproduce the JSON's headline). The "row reuse" variant is HYPOTHETICAL: it charges the SLN's
first layer one W_in row per distinct input index instead of one per event, which the engine
does not execute today (docs/ENERGY.md, "Input-row reuse").
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from ..energy import EnergyProfile, estimate_pj, get_profile
from .compare import compare_all, headline_comparison

PJ_TO_UJ = 1e-6


@dataclasses.dataclass(frozen=True)
class Variant:
    key: str
    label: str
    profile: str              # a name of sln.energy.PROFILES
    split: bool = True        # vectors priced at their own level (else as published: at the weights')
    vit_int8_terms: bool = True
    row_reuse: bool = False   # hypothetical: one W_in row per distinct input index


VARIANTS: tuple[Variant, ...] = (
    Variant("published", "as published: step model, vectors at the weights' level, ViT int8 as published",
            "horowitz45-steps", split=False, vit_int8_terms=False),
    Variant("steps+fixes", "step model; vectors at their own level; ViT int8 requant/scales/int32 terms",
            "horowitz45-steps"),
    Variant("continuous", "continuous fit, 1 MB on chip, DRAM 1.3 nJ (the new default)", "horowitz45"),
    Variant("onchip-8mb", "continuous fit extrapolated to 8 MB on chip", "horowitz45-onchip-8mb"),
    Variant("dram-high", "continuous fit, DRAM 2.6 nJ", "horowitz45-dram-high"),
    Variant("slope-x2", "continuous, SRAM log-log slope x2 (pivot 64 KB)", "horowitz45-slope-x2"),
    Variant("slope-x0.5", "continuous, SRAM log-log slope x0.5 (pivot 64 KB)", "horowitz45-slope-x0.5"),
    Variant("row-reuse", "continuous + SLN W_in rows read once per distinct input index (HYPOTHETICAL)",
            "horowitz45", row_reuse=True),
)


# --------------------------------------------------------------------------- derived splits
def _sln_cfg(row: dict[str, Any]) -> Any:
    from ..config import get_config
    from ..model import SLN

    cfg = get_config(row["name"])
    n = SLN(cfg).num_params()
    if n != row["params"]:
        raise ValueError(f"{row['name']}: the config has {n} parameters, the JSON row {row['params']}")
    return cfg


def sln_fp32_split(row: dict[str, Any]) -> tuple[float, float, float]:
    """-> (parameter-vector bytes read per inference, matrix footprint, vector footprint) of an SLN fp32 row."""
    if "param_bytes_read" in row:
        return row["param_bytes_read"], row["matrix_footprint_bytes"], row["param_footprint_bytes"]
    cfg = _sln_cfg(row)
    N, L, C, T = cfg.n_neurons, cfg.n_layers, cfg.n_classes, row["steps"]
    boost = cfg.k < N and cfg.boost_beta > 0
    per_step = L * 4 * (2 * N + 2 * N + (N if boost else 0))
    vec_fp = 4 * (L * 5 * N + C)
    return T * per_step + 4 * C, row["weight_footprint_bytes"] - vec_fp, vec_fp


def sln_int8_split(row: dict[str, Any], steps: int) -> tuple[float, float, float]:
    """-> (vector bytes read per inference, int8 matrix footprint, int32 vector footprint) of an SLN int8 row."""
    if "param_bytes_read" in row:
        return row["param_bytes_read"], row["matrix_footprint_bytes"], row["param_footprint_bytes"]
    cfg = _sln_cfg(row)
    N, L, C, T = cfg.n_neurons, cfg.n_layers, cfg.n_classes, steps
    per_step = L * (2 * N * 8 + 2 * N * 4 + N * 8 + N * 8 + N * 4)
    rec = (T - 1) * L * 2 * N * 8
    return T * per_step + rec + 12 * C, float(row["int8_weights"]), 4.0 * row["int32_params"]


def derivation_check(doc: dict[str, Any]) -> list[str]:
    """Recover, from the published per-term energies of the int8 SLN rows (priced with the published
    step profile), how many recurrent requantisations ran per inference, and compare it with the
    (T - 1) x L the derivation assumes -> lines to print (empty lists nothing)."""
    prof = get_profile("horowitz45-steps")
    out = []
    fp = {r["name"]: r for r in doc["models"]}
    for r in doc.get("int8", {}).get("models", []):
        if r["family"] not in ("sln", "sln-dense") or "param_bytes_read" in r or r["name"] not in fp:
            continue
        cfg = _sln_cfg(r)
        N2, T, L = 2 * cfg.n_neurons, int(fp[r["name"]]["steps"]), cfg.n_layers
        _, pj = prof.memory_level(r["weight_footprint_bytes"])
        bt = r["energy_breakdown_uJ"]["by_term"]
        rec_bytes = bt["recurrent.weight_mem"] / PJ_TO_UJ / pj * 8          # m 2N + busy 2N 8
        rec_pj = bt["recurrent.compute"] / PJ_TO_UJ                           # 2N (0.3 m + 3.3 busy)
        mac, rq = prof.int8_mul + prof.int32_add, prof.int32_mul + 2 * prof.int32_add
        busy = (rec_pj / N2 - mac * rec_bytes / N2) / (rq - 8 * mac)
        ok = math.isclose(busy, (T - 1) * L, rel_tol=1e-6, abs_tol=1e-6)
        out.append(f"  {r['name']} int8: recurrent requantisations per inference recovered from the published "
                   f"per-term energies = {busy:.4f}, assumed (T-1) x L = {(T - 1) * L}: {'ok' if ok else 'MISMATCH'}")
    return out


def _vit_recount(row: dict[str, Any], cfg_dict: dict[str, Any], profile: EnergyProfile, int8: bool
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """ViT ops and footprints from the architecture (weight-independent), published effective MACs."""
    from ..baselines import ViT, ViTConfig, count_vit, vector_param_count
    from .int8 import count_vit_int8, vit_int8_ops

    m = ViT(ViTConfig(**cfg_dict)).eval()
    img = torch.zeros(28, 28, dtype=torch.uint8)
    if int8:
        ops, fp = vit_int8_ops(m, count_vit_int8(m, img), row["effective_macs"], profile)
        return ops, {"matrix": fp["matrix_bytes"], "param": fp["param_bytes"], "act": fp["act_bytes"]}
    c = count_vit(m, img)
    n, nv = m.num_params(), vector_param_count(m)
    if not math.isclose(c.weight_bytes + c.param_bytes, row["weight_bytes_read"]):
        raise ValueError(f"{row['name']}: recounted weight bytes differ from the published ones")
    return {**c.to_ops(), "macs": row["effective_macs"]}, {"matrix": 4.0 * (n - nv), "param": 4.0 * nv,
                                                           "act": c.peak_act_bytes}


# --------------------------------------------------------------------------- re-pricing
def _published_ops(row: dict[str, Any], precision: str) -> dict[str, float]:
    if precision == "fp32":
        el = row["elementwise"]
        return {"macs": row["effective_macs"], "acs": row["effective_acs"], "adds": el["adds"], "muls": el["muls"],
                "cmps": el["cmps"], "nonlin": el["nonlin"], "weight_bytes": row["weight_bytes_read"],
                "act_bytes": row["act_bytes"]}
    i = row["int32_ops"]
    return {"macs": row["effective_macs"], "adds32": i["adds"], "muls32": i["muls"], "cmps32": i["cmps"],
            "weight_bytes": row["weight_bytes_read"], "act_bytes": row["act_bytes"]}


def reprice_row(row: dict[str, Any], precision: str, v: Variant, ctx: dict[str, Any]) -> dict[str, Any]:
    """One row's estimated energy under variant v -> {name, family, accuracy, energy_uJ, derived}."""
    prof = get_profile(v.profile)
    ops = _published_ops(row, precision)
    fps = {"matrix": row["weight_footprint_bytes"], "param": None, "act": row["act_footprint_bytes"]}
    how = "published counts"
    if row["family"] == "vit" and (v.split or (precision == "int8" and v.vit_int8_terms)):
        ops, fps = _vit_recount(row, ctx["vit_cfg"][row["name"]], prof, precision == "int8" and v.vit_int8_terms)
        how = "recounted from the architecture, published effective MACs"
        if not v.split:
            ops = {**ops, "weight_bytes": ops["weight_bytes"] + ops.pop("param_bytes", 0.0)}
            fps = {**fps, "matrix": fps["matrix"] + fps["param"], "param": None}
    elif row["family"] in ("sln", "sln-dense") and v.split:
        steps = int(ctx["steps"][row["name"]])
        pb, mfp, pfp = sln_fp32_split(row) if precision == "fp32" else sln_int8_split(row, steps)
        ops = {**ops, "weight_bytes": row["weight_bytes_read"] - pb, "param_bytes": pb}
        fps = {**fps, "matrix": mfp, "param": pfp}
        how = "published counts, matrix/vector split " + ("counted" if "param_bytes_read" in row else "derived")
        if v.row_reuse:
            cfg = _sln_cfg(row)
            width = 4 if precision == "fp32" else 1
            saved = (ctx["events"][row["name"]] - ctx["distinct"][row["name"]]) * 2 * cfg.n_neurons * width
            ops["weight_bytes"] -= saved
            how += "; W_in rows once per distinct input index (hypothetical)"
    e = estimate_pj(ops, fps["matrix"], fps["act"], prof, precision, fps["param"])
    return {"name": row["name"], "family": row["family"], "accuracy": row["accuracy"],
            "energy_uJ": e["total"] * PJ_TO_UJ, "weight_level": e["weight_level"], "param_level": e["param_level"],
            "how": how}


def _context(doc: dict[str, Any]) -> dict[str, Any]:
    """Per-model facts the re-pricing needs: ViT configs, SLN steps, input events and distinct rows."""
    ctx: dict[str, Any] = {"vit_cfg": {}, "steps": {}, "events": {}, "distinct": {}}
    need_rows = []
    for r in doc["models"]:
        if r["family"] == "vit":
            ctx["vit_cfg"][r["name"]] = r["config"]
        elif r["family"] in ("sln", "sln-dense"):
            ctx["steps"][r["name"]] = r["steps"]
            ctx["events"][r["name"]] = r["input_events_per_inference"]
            if "input_rows_distinct_per_inference" in r:
                ctx["distinct"][r["name"]] = r["input_rows_distinct_per_inference"]
            else:
                need_rows.append(r)
    if need_rows:   # measured here from the test images (the input events do not depend on the model)
        from ..data import load_split
        from ..model import encode_images
        from .image import distinct_input_rows

        x, _ = load_split(doc["dataset"], "test", limit=need_rows[0]["test_images"])
        for r in need_rows:
            seq = encode_images(torch.from_numpy(x.copy()), _sln_cfg(r)).numpy()
            ctx["distinct"][r["name"]] = distinct_input_rows(seq)
    return ctx


def sensitivity(doc: dict[str, Any], variants: tuple[Variant, ...] = VARIANTS) -> dict[str, Any]:
    """-> {"model", "variants": [{key, label, profile, fp32 {...}, int8 {...}}], "checks": [...]}:
    the headline comparison (the JSON's headline model vs the ViTs at equal accuracy) per variant."""
    head = doc["headline"]["model"]
    ctx = _context(doc)
    out: list[dict[str, Any]] = []
    for v in variants:
        res: dict[str, Any] = {"key": v.key, "label": v.label, "profile": v.profile}
        for prec, rows in (("fp32", doc["models"]), ("int8", doc.get("int8", {}).get("models", []))):
            rr = [reprice_row(r, prec, v, ctx) for r in rows if r["family"] in ("sln", "sln-dense", "vit")]
            comps = compare_all(rr)
            use = headline_comparison(comps, head)
            h = next((r for r in rr if r["name"] == head), None)
            every = {r["name"]: (c["energy_ratio"] if (c := headline_comparison(comps, r["name"])) else None)
                     for r in rr if r["family"] in ("sln", "sln-dense")}
            res[prec] = {"energy_ratio": use["energy_ratio"] if use else None,
                         "method": use["method"] if use else None, "baseline": use["baseline"] if use else None,
                         "sln_uJ": h["energy_uJ"] if h else None, "every_sln": every, "rows": rr}
        out.append(res)
    return {"model": head, "source": doc.get("date"), "variants": out, "checks": derivation_check(doc),
            "distinct_input_rows": ctx["distinct"], "input_events": ctx["events"]}


def _ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:.2f}x (SLN lower)" if r >= 1 else f"{r:.3f}x (SLN {1 / r:.1f}x higher)"


def markdown_table(res: dict[str, Any]) -> str:
    lines = [f"| memory model / accounting | fp32: ViT/SLN ({res['model']}) | SLN fp32 µJ | "
             f"int8: ViT/SLN | SLN int8 µJ |", "| --- | --- | --- | --- | --- |"]
    for v in res["variants"]:
        f, i = v["fp32"], v["int8"]
        lines.append(f"| {v['label']} (`{v['profile']}`) | {_ratio(f['energy_ratio'])} ({f['baseline']}) | "
                     f"{f['sln_uJ']:.2f} | {_ratio(i['energy_ratio'])} ({i['baseline']}) | "
                     f"{i['sln_uJ'] if i['sln_uJ'] is None else round(i['sln_uJ'], 2)} |")
    names = list(res["variants"][0]["fp32"]["every_sln"])
    lines += ["", "| memory model / accounting | " + " | ".join(f"{n} fp32 / int8" for n in names) + " |",
              "| --- |" + " --- |" * len(names)]
    for v in res["variants"]:
        cells = [f"{_short(v['fp32']['every_sln'].get(n))} / {_short(v['int8']['every_sln'].get(n))}" for n in names]
        lines.append(f"| `{v['key']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _short(r: float | None) -> str:
    return "–" if r is None else f"{r:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.bench.sensitivity", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", type=Path, help="a benchmark JSON (bench/mnist.json); it is only read")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    p.add_argument("--json-out", type=Path, default=None, help="write the recomputed figures here")
    args = p.parse_args(argv)
    doc = json.loads(args.json.read_text())
    res = sensitivity(doc)
    table = markdown_table(res)
    print(f"RECOMPUTED from the counts published in {args.json} ({res['source']}); no model was run. "
          f"Estimates, not measurements.")
    print(table)
    for k in res["distinct_input_rows"]:
        print(f"  {k}: {res['input_events'][k]:.2f} input events, {res['distinct_input_rows'][k]:.2f} distinct W_in "
              f"rows per image (measured on the test images)")
    print("derivation checks:\n" + ("\n".join(res["checks"]) or "  (none needed: the split is counted)"))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json_out:
        args.json_out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Outputs of the streams benchmark (sln.bench.lm_streams): JSON, Markdown tables, the energy-vs-context plot."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _ratio(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2f}x (SLN lower)" if x >= 1 else f"{x:.2f}x (SLN {1 / x:.2f}x higher)"


def summary_lines(doc: dict[str, Any]) -> list[str]:
    s = doc["sln"]
    out = [f"SLN {s['name']} ({s['params']:,} params): val bpc float {s['val_bpc']:.3f}, int8 {s['val_bpc_int8']:.3f}; "
           f"int8 energy {s['energy_uj']:.4f} uJ/token (any context); latency C int8 "
           f"{_f(s['latency_us_c_int8'], '.1f')} us, PyTorch float {s['latency_ms_torch']:.3f} ms"]
    for g in doc["gpts"]:
        out.append(f"GPT {g['name']} ({g['params']:,} params): val bpc float {g['val_bpc']:.3f}, int8 weights "
                   f"{g['val_bpc_int8_weights']:.3f}")
    for c, m in doc["comparison"].items():
        if m.get("frontier"):
            out.append(f"HEADLINE context {c}: vs the cheapest GPT at least as good ({m['frontier']}, "
                       f"{m['frontier_bpc']:.3f} vs SLN {m['sln_bpc_int8']:.3f} bpc): int8 energy GPT/SLN = "
                       f"{_ratio(m['energy_ratio_frontier'])} (target 100x at 1024); batch-1 latency C/C "
                       f"{_f(m['frontier_latency_ratio_c'], '.1f')}x, torch/torch "
                       f"{m['frontier_latency_ratio_torch']:.2f}x (target 10x)")
        out.append(f"context {c}: GPT/SLN int8 energy = {_ratio(m['energy_ratio_nearest'])} vs nearest-bpc "
                   f"{m['nearest']} ({m['nearest_bpc']:.3f} vs SLN {m['sln_bpc_int8']:.3f} bpc); interpolated "
                   f"{_ratio(m['energy_ratio_interpolated'])}; latency GPT torch / SLN torch "
                   f"{m['latency_ratio_torch_vs_torch']:.2f}x, GPT C float / SLN C int8 "
                   f"{_f(m['latency_ratio_c_vs_c'], '.1f')}x")
    return out


def markdown(doc: dict[str, Any]) -> str:
    s = doc["sln"]
    L = [f"# Streams: int8 SLN vs int8 GPT with a KV cache, per generated token ({doc['date_utc']})", "",
         f"Machine: {doc['machine']}, 1 thread, torch {doc['torch']}. Energy: estimated (profile "
         f"`{doc['energy_profile']}`), not measured. Validation: first {doc['val_chars_bpc']:,} characters of the "
         "validation plays.", "",
         "| model | params | val bpc float | val bpc int8 | int8 µJ/token @256 | @1024 | @4096 | latency/token |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lat_s = f"C int8 {_f(s['latency_us_c_int8'], '.1f')} µs; PyTorch {s['latency_ms_torch']:.3f} ms"
    L.append(f"| {s['name']} | {s['params']:,} | {s['val_bpc']:.3f} | {s['val_bpc_int8']:.3f} (integer model) | "
             f"{s['energy_uj']:.4f} | {s['energy_uj']:.4f} | {s['energy_uj']:.4f} | {lat_s} |")
    for g in doc["gpts"]:
        pc = g["per_context"]
        e = [_f(pc[str(c)]["energy_uj"], ".4f") if str(c) in pc else "–" for c in (256, 1024, 4096)]
        lat = "; ".join(f"{c}: {pc[str(c)]['latency_ms_torch']:.3f} ms (C "
                        f"{_f(pc[str(c)].get('latency_us_c_float'), '.0f')} µs)" for c in doc["contexts"]
                        if str(c) in pc and "latency_ms_torch" in pc[str(c)])
        L.append(f"| {g['name']} | {g['params']:,} | {g['val_bpc']:.3f} | {g['val_bpc_int8_weights']:.3f} "
                 f"(int8 weights) | {e[0]} | {e[1]} | {e[2]} | PyTorch, KV cache: {lat} |")
    L += ["", "## Headline: the cheapest GPT at least as good as the SLN (int8 bpc)", "",
          "| context | GPT (bpc) | SLN bpc | GPT/SLN energy | GPT/SLN latency, C vs C (µs) | torch vs torch (ms) |",
          "| --- | --- | --- | --- | --- | --- |"]
    for c, m in doc["comparison"].items():
        if not m.get("frontier"):
            L.append(f"| {c} | none: every GPT is worse than the SLN | {m['sln_bpc_int8']:.3f} | – | – | – |")
            continue
        L.append(f"| {c} | {m['frontier']} ({m['frontier_bpc']:.3f}) | {m['sln_bpc_int8']:.3f} | "
                 f"{_ratio(m['energy_ratio_frontier'])} | {_f(m['frontier_latency_ratio_c'], '.1f')}x "
                 f"({_f(m['frontier_latency_us_c'], '.1f')} / {_f(m['latency_us_sln_c'], '.1f')}) | "
                 f"{m['frontier_latency_ratio_torch']:.2f}x ({m['frontier_latency_ms_torch']:.3f} / "
                 f"{m['latency_ms_sln_torch']:.3f}) |")
    L += ["", "## Equal bits per character (matched on int8 bpc)", "",
          "| context | nearest GPT (bpc) | SLN bpc | GPT/SLN energy (nearest) | interpolated (bracket) | "
          "latency GPT torch / SLN torch | GPT C / SLN C (µs) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for c, m in doc["comparison"].items():
        br = (f"{_ratio(m['energy_ratio_interpolated'])} ({', '.join(m['bracket'])})" if m["bracket"]
              else "– (no bracket)")
        L.append(f"| {c} | {m['nearest']} ({m['nearest_bpc']:.3f}) | {m['sln_bpc_int8']:.3f} | "
                 f"{_ratio(m['energy_ratio_nearest'])} | {br} | {m['latency_ratio_torch_vs_torch']:.2f}x | "
                 f"{_f(m['latency_ratio_c_vs_c'], '.1f')}x ({_f(m['latency_us_gpt_c'], '.1f')} / "
                 f"{_f(m['latency_us_sln_c'], '.1f')}) |")
    L += ["", "## Where the energy goes (µJ per token, default profile)", "",
          "| model | context | compute | int8 matrices | vectors | activations | KV cache | total | levels |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    t = s["energy_terms_uj"]
    L.append(f"| {s['name']} | any | {t['compute']:.4f} | {t['weight_mem']:.4f} | {t['param_mem']:.4f} | "
             f"{t['act_mem']:.4f} | 0 | {t['total']:.4f} | {', '.join(s['levels'].values())} |")
    for g in doc["gpts"]:
        for c in doc["contexts"]:
            p = g["per_context"].get(str(c))
            if p is None:
                continue
            t = p["energy_terms_uj"]
            L.append(f"| {g['name']} | {c} | {t['compute']:.4f} | {t['weight_mem']:.4f} | {t['param_mem']:.4f} | "
                     f"{t['act_mem']:.4f} | {t['kv_mem']:.4f} | {t['total']:.4f} | "
                     f"{', '.join(p['levels'].values())} |")
    L += ["", "## Sensitivity to the memory model (GPT/SLN energy: cheapest as-good GPT / nearest-bpc / "
          "interpolated)", "",
          "| profile | " + " | ".join(f"context {c}" for c in doc["sensitivity"]) + " |",
          "| --- |" + " --- |" * len(doc["sensitivity"])]
    for p in doc["sensitivity_profiles"]:
        cells = [f"{_f(v[p]['ratio_frontier'], '.2f')} / {v[p]['ratio_nearest']:.2f} / "
                 f"{_f(v[p]['ratio_interpolated'], '.2f')}"
                 for v in doc["sensitivity"].values()]
        L.append(f"| `{p}` | " + " | ".join(cells) + " |")
    L += ["", "Counts per token:", "",
          f"* SLN: {s['how']['counts']}; {s['how']['bpc_int8']}.",
          f"* GPT: {doc['gpts'][0]['how']['counts']}; bpc: {doc['gpts'][0]['how']['bpc']}." if doc["gpts"] else "",
          "* Latency: SLN C = runtime/sln_lm_cli (int8, greedy, CPU time per token, best of 3); GPT C = "
          "runtime/baselines/gpt_step.c (float32, KV cache, greedy, CPU time per token, best of 3; both -O2 scalar "
          "C, 1 thread). No int8 GPT kernel exists here: the C comparison is int8 SLN vs float32 GPT, which "
          "favours the SLN by what int8 would gain the GPT. PyTorch = eager mode, batch 1, 1 thread, wall "
          "clock, best of 3 (the GPT with its KV cache after priming with c characters).", ""]
    return "\n".join(L)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for g in doc["gpts"]:
        cs = sorted(int(c) for c in g["per_context"])
        ax.plot(cs, [g["per_context"][str(c)]["energy_uj"] for c in cs], "o-",
                label=f"{g['name']} int8 ({g['val_bpc_int8_weights']:.2f} bpc)")
    s = doc["sln"]
    allc = sorted({int(c) for g in doc["gpts"] for c in g["per_context"]}) or doc["contexts"]
    ax.plot(allc, [s["energy_uj"]] * len(allc), "k--", label=f"{s['name']} int8 ({s['val_bpc_int8']:.2f} bpc)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context (characters)")
    ax.set_ylabel("estimated energy per token (µJ)")
    ax.set_title(f"Streams, int8, profile {doc['energy_profile']}")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(doc: dict[str, Any], args: Any) -> None:
    write_report(doc, args, summary_lines, markdown, plot)


def write_report(doc: dict[str, Any], args: Any, summary: Callable[[dict[str, Any]], list[str]],
                 to_markdown: Callable[[dict[str, Any]], str], to_plot: Callable[[dict[str, Any], Path], None]) -> None:
    """Print the summary, then write --json / --markdown / --plot where asked (shared by the LM and the
    time-series stream benchmarks)."""
    for line in summary(doc):
        print(line)
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2))
        print(f"wrote {args.json}")
    if getattr(args, "markdown", None):
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(to_markdown(doc))
        print(f"wrote {args.markdown}")
    if getattr(args, "plot", None):
        to_plot(doc, Path(args.plot))
        print(f"wrote {args.plot}")

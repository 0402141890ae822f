"""Outputs of the time-series streams benchmark (sln.bench.ts_streams): JSON, Markdown tables, the plot."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .lm_streams_report import _f, _ratio, write_report


def _ctx_label(cs: str, T: int) -> str:
    return f"whole series (mean of events 1..{T})" if cs == "series" else f"event {cs} of a stream"


def summary_lines(doc: dict[str, Any]) -> list[str]:
    s, T = doc["sln"], doc["series_length"]
    out = [f"SLN {s['name']} ({s['params']:,} params): test accuracy float {100 * s['accuracy_float']:.2f} %, int8 "
           f"{100 * s['accuracy_int8']:.2f} %; int8 energy {s['energy_uj']:.4f} uJ/event (any context); latency "
           f"C int8 {_f(s['latency_us_c_int8'], '.2f')} us, PyTorch float {s['latency_ms_torch']:.3f} ms"]
    for g in doc["gpts"]:
        out.append(f"transformer {g['name']} ({g['params']:,} params): test accuracy float "
                   f"{100 * g['accuracy_float']:.2f} %, int8 weights {100 * g['accuracy_int8']:.2f} %")
    for cs, m in doc["comparison"].items():
        if m.get("frontier"):
            out.append(f"HEADLINE {_ctx_label(cs, T)}: cheapest transformer at least as accurate ({m['frontier']}, "
                       f"{100 * m['frontier_accuracy_int8']:.2f} vs SLN {100 * m['sln_accuracy_int8']:.2f} %): "
                       f"int8 energy {_ratio(m['energy_ratio_frontier'])}; latency C/C "
                       f"{_f(m['frontier_latency_ratio_c'], '.1f')}x, torch/torch "
                       f"{m['frontier_latency_ratio_torch']:.2f}x")
        else:
            out.append(f"{_ctx_label(cs, T)}: no transformer is as accurate as the SLN; nearest {m['nearest']} "
                       f"({100 * m['nearest_accuracy_int8']:.2f} %): energy {_ratio(m['energy_ratio_nearest'])}")
    return out


def markdown(doc: dict[str, Any]) -> str:
    s, T = doc["sln"], doc["series_length"]
    cols = ["series", *map(str, doc["contexts"])]
    L = [f"# Time-series streams: int8 SLN vs int8 causal transformers with a KV cache, per event "
         f"({doc['date_utc']})", "",
         f"Task: {doc['dataset']} ({doc['train_series']} training / {doc['test_series']} test series of {T} events, "
         "one event per step, a decision after the last event). Machine: "
         f"{doc['machine']}, 1 thread, torch {doc['torch']}. Energy: estimated (profile `{doc['energy_profile']}`), "
         "not measured; latency measured, batch 1. 'series' = the mean over the events of one whole series "
         f"(the task); a number c = the c-th event of a longer stream (the transformer attends to c positions; "
         f"accuracy is measured only at {T}).", "",
         "| model | params | test acc float | test acc int8 | int8 µJ/event: series | "
         + " | ".join(f"@{c}" for c in doc["contexts"]) + " | latency/event |",
         "| --- | --- | --- | --- | --- |" + " --- |" * len(doc["contexts"]) + " --- |"]
    e = f"{s['energy_uj']:.4f}"
    L.append(f"| {s['name']} | {s['params']:,} | {100 * s['accuracy_float']:.2f} % | {100 * s['accuracy_int8']:.2f} % "
             f"(integer model) | {e} | " + " | ".join(e for _ in doc["contexts"])
             + f" | C int8 {_f(s['latency_us_c_int8'], '.2f')} µs; PyTorch {s['latency_ms_torch']:.3f} ms |")
    for g in doc["gpts"]:
        pc = g["per_context"]
        lat = "; ".join(f"{c}: {pc[c]['latency_ms_torch']:.3f} ms (C {_f(pc[c].get('latency_us_c_float'), '.1f')} µs)"
                        for c in cols if c in pc and "latency_ms_torch" in pc[c])
        L.append(f"| {g['name']} | {g['params']:,} | {100 * g['accuracy_float']:.2f} % | "
                 f"{100 * g['accuracy_int8']:.2f} % (int8 weights) | "
                 + " | ".join(_f(pc[c]["energy_uj"], ".4f") if c in pc else "–" for c in cols)
                 + f" | PyTorch, KV cache: {lat} |")
    L += ["", "## Headline: the cheapest transformer at least as accurate as the SLN (int8 test accuracy)", "",
          "| events | transformer (acc) | SLN acc | transformer/SLN energy | latency C vs C (µs) | "
          "torch vs torch (ms) |",
          "| --- | --- | --- | --- | --- | --- |"]
    for cs, m in doc["comparison"].items():
        lab = "series" if cs == "series" else f"@{cs}"
        if not m.get("frontier"):
            L.append(f"| {lab} | none: every transformer is less accurate than the SLN (nearest {m['nearest']}, "
                     f"{100 * m['nearest_accuracy_int8']:.2f} %: {_ratio(m['energy_ratio_nearest'])}) | "
                     f"{100 * m['sln_accuracy_int8']:.2f} % | – | – | – |")
            continue
        L.append(f"| {lab} | {m['frontier']} ({100 * m['frontier_accuracy_int8']:.2f} %) | "
                 f"{100 * m['sln_accuracy_int8']:.2f} % | {_ratio(m['energy_ratio_frontier'])} | "
                 f"{_f(m['frontier_latency_ratio_c'], '.1f')}x ({_f(m['frontier_latency_us_c'], '.1f')} / "
                 f"{_f(s['latency_us_c_int8'], '.2f')}) | {m['frontier_latency_ratio_torch']:.2f}x "
                 f"({m['frontier_latency_ms_torch']:.3f} / {s['latency_ms_torch']:.3f}) |")
    L += ["", "## How the ratio scales with the stream: where each transformer's energy per event reaches the "
          "SLN's", "",
          "| transformer | test acc int8 | µJ/event @" + " | @".join(str(c) for c in doc["contexts"])
          + " | break-even context (events) |", "| --- | --- |" + " --- |" * len(doc["contexts"]) + " --- |"]
    for g in doc["gpts"]:
        pc = g["per_context"]
        be, first = g.get("break_even_context"), min(int(c) for c in pc if c != "series")
        be_s = "beyond the counted range" if be is None else f"≤ {first}" if be <= first else f"{be:,.0f}"
        L.append(f"| {g['name']} | {100 * g['accuracy_int8']:.2f} % | "
                 + " | ".join(_f(pc[str(c)]["energy_uj"], ".4f") if str(c) in pc else "–" for c in doc["contexts"])
                 + f" | {be_s} |")
    L += [f"(SLN: {s['energy_uj']:.4f} µJ/event at every context; break-even by log-log interpolation between "
          "the counted contexts " + ", ".join(str(c) for c in sorted(int(c) for c in doc['gpts'][0]['per_context']
                                                                   if c != 'series')) + ".)" if doc["gpts"] else ""]
    L += ["", "## Nearest in accuracy (and interpolated, log-energy linear in accuracy, where two bracket the SLN)", "",
          "| events | nearest (acc) | energy ratio | interpolated (bracket) | latency torch/torch |",
          "| --- | --- | --- | --- | --- |"]
    for cs, m in doc["comparison"].items():
        br = (f"{_ratio(m['energy_ratio_interpolated'])} ({', '.join(m['bracket'])})" if m["bracket"]
              else "– (no bracket)")
        L.append(f"| {'series' if cs == 'series' else '@' + cs} | {m['nearest']} "
                 f"({100 * m['nearest_accuracy_int8']:.2f} %) | {_ratio(m['energy_ratio_nearest'])} | {br} | "
                 f"{m['nearest_latency_ratio_torch']:.2f}x |")
    L += ["", "## Where the energy goes (µJ per event, default profile)", "",
          "| model | events | compute | int8 matrices | vectors | activations | KV cache | total | levels |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    t = s["energy_terms_uj"]
    L.append(f"| {s['name']} | any | {t['compute']:.4f} | {t['weight_mem']:.4f} | {t['param_mem']:.4f} | "
             f"{t['act_mem']:.4f} | 0 | {t['total']:.4f} | {', '.join(s['levels'].values())} |")
    for g in doc["gpts"]:
        for c in cols:
            p = g["per_context"].get(c)
            if p is None:
                continue
            t = p["energy_terms_uj"]
            L.append(f"| {g['name']} | {c} | {t['compute']:.4f} | {t['weight_mem']:.4f} | {t['param_mem']:.4f} | "
                     f"{t['act_mem']:.4f} | {t['kv_mem']:.4f} | {t['total']:.4f} | "
                     f"{', '.join(p['levels'].values())} |")
    L += ["", "## Sensitivity to the memory model (transformer/SLN energy: cheapest as-accurate / nearest / "
          "interpolated)", "", "| profile | " + " | ".join(doc["sensitivity"]) + " |",
          "| --- |" + " --- |" * len(doc["sensitivity"])]
    for p in doc["sensitivity_profiles"]:
        cells = [f"{_f(v[p]['ratio_frontier'], '.2f')} / {v[p]['ratio_nearest']:.2f} / "
                 f"{_f(v[p]['ratio_interpolated'], '.2f')}" for v in doc["sensitivity"].values()]
        L.append(f"| `{p}` | " + " | ".join(cells) + " |")
    g0 = doc["gpts"][0]["how"] if doc["gpts"] else {"counts": "", "accuracy": ""}
    L += ["", "Counts per event:", "",
          f"* SLN: {s['how']['counts']}; {s['how']['accuracy_int8']}.",
          f"* Transformer: {g0['counts']}; accuracy: {g0['accuracy']}.",
          "* Both priced by `sln.bench.lm_streams.price_token` (the LM streams' pricing function).",
          "* Latency: SLN C = runtime/sln.c `sln_step` on int16 input events + the readout accumulator, timed in C "
          "(runtime/baselines/sln_stream_time.c, CPU time, best of the passes); transformer C = the LM GPT's "
          "runtime/baselines/gpt_step.c on a timing twin (float32, KV cache, CPU time per event, best of 3: the "
          "same blocks, ln_f and a C-row head; the D-input embedding stands as a d-value row read); both -O2 "
          "scalar C, 1 thread. No int8 transformer kernel exists here: int8 SLN vs float32 transformer. PyTorch "
          "= eager mode, batch 1, 1 thread, wall clock, best of 3 (the transformer with its KV cache).", ""]
    return "\n".join(L)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for g in doc["gpts"]:
        cs = sorted(int(c) for c in g["per_context"] if c != "series")
        ax.plot(cs, [g["per_context"][str(c)]["energy_uj"] for c in cs], "o-",
                label=f"{g['name']} int8 ({100 * g['accuracy_int8']:.1f} %)")
    s = doc["sln"]
    allc = sorted({int(c) for g in doc["gpts"] for c in g["per_context"] if c != "series"}) or doc["contexts"]
    ax.plot(allc, [s["energy_uj"]] * len(allc), "k--", label=f"{s['name']} int8 ({100 * s['accuracy_int8']:.1f} %)")
    ax.axvline(doc["series_length"], color="grey", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"events so far (context); {doc['dataset']} series = {doc['series_length']}")
    ax.set_ylabel("estimated energy per event (µJ)")
    ax.set_title(f"Time-series streams, int8, profile {doc['energy_profile']}")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(doc: dict[str, Any], args: Any) -> None:
    write_report(doc, args, summary_lines, markdown, plot)

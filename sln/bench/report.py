"""Output of the image benchmark: console tables, Markdown (bench/<dataset>.md) and plots.

One table, breakdown, comparison and plot path serves both precisions; what differs between the
fp32 table and the int8 section (columns, the compute split of the breakdown, latency or not)
is the `Precision` spec below. The Markdown of a run written by the benchmark is the text of
docs/ENERGY.md's result sections; `markdown_report(doc)` renders any valid document again.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schema import FAMILIES

FAMILY_COLORS = dict(zip(FAMILIES, ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple"), strict=True))
Row = dict[str, Any]


def _pct(v: float | None, none: str) -> str:
    return none if v is None else f"{100 * v:.2f}%"


def _opt(v: Any, fmt: str = "{:.3f}") -> str:
    return "–" if v is None else fmt.format(v)


def _torch_dense_md(r: Row) -> str:
    td = r.get("torch_dense_latency_ms")
    return "–" if td is None else f"{td:.3f} ({r['speedup_vs_torch_dense']:.1f}x)"


def _int32_ops(r: Row) -> float:
    return sum(r["int32_ops"].values())


@dataclass(frozen=True)
class Precision:
    """How one precision's table is printed. text_columns: (header, format spec of the width,
    cell); md_columns: (header, cell); compute_parts: (label, breakdown key) of the compute
    energy in the breakdown's first line; term_width: width of a term name in the breakdown."""
    name: str
    text_columns: tuple[tuple[str, str, Callable[[Row], str]], ...]
    md_columns: tuple[tuple[str, Callable[[Row], str]], ...]
    compute_parts: tuple[tuple[str, str], ...]
    term_width: int
    title: str                  # console title of the section
    md_title: list[str]         # Markdown lines before the table
    md_breakdown_title: str
    md_comparisons_title: str
    acc_label: str              # "SLN <acc_label>" in the comparison table
    latency: bool               # rows carry a measured latency (comparisons have a latency ratio)
    headline_label: str         # Markdown; the console prints it upper-case
    headline_missing: str       # Markdown when there is no headline
    row_suffix: str             # after the model name in the breakdown


FP32 = Precision(
    name="fp32",
    text_columns=(
        ("family", "<9", lambda r: r["family"]), ("model", "<22", lambda r: r["name"]),
        ("params", ">9", lambda r: f"{r['params']:,}"), ("acc %", ">6", lambda r: f"{100 * r['accuracy']:.2f}"),
        ("active", ">7", lambda r: _pct(r["active_fraction"], "-")),
        ("eff MACs", ">10", lambda r: f"{r['effective_macs']:,.0f}"),
        ("eff ACs", ">9", lambda r: f"{r['effective_acs']:,.0f}"),
        ("W read kB", ">9", lambda r: f"{r['weight_bytes_read'] / 1e3:.1f}"),
        ("est uJ", ">8", lambda r: f"{r['energy_uJ']:.2f}"), ("W level", ">11", lambda r: r["weight_memory_level"]),
        ("lat ms", ">7", lambda r: f"{r['latency_ms']:.3f}"),
        ("vs torch", ">8", lambda r: "" if r.get("speedup_vs_torch_dense") is None
         else f"{r['speedup_vs_torch_dense']:.1f}x"),
        ("img/s", ">7", lambda r: f"{r['throughput_per_s']:.0f}")),
    md_columns=(
        ("family", lambda r: r["family"]), ("model", lambda r: r["name"]), ("params", lambda r: f"{r['params']:,}"),
        ("epochs", lambda r: f"{r['epochs']}"), ("test acc", lambda r: f"{100 * r['accuracy']:.2f}%"),
        ("active/step", lambda r: _pct(r["active_fraction"], "–")),
        ("dense MACs", lambda r: f"{r['dense_macs']:,.0f}"), ("eff. MACs", lambda r: f"{r['effective_macs']:,.0f}"),
        ("eff. ACs", lambda r: f"{r['effective_acs']:,.0f}"),
        ("weight bytes read", lambda r: f"{r['weight_bytes_read'] / 1e3:,.1f} kB"),
        ("weights in", lambda r: r["weight_memory_level"]), ("est. energy (µJ)", lambda r: f"{r['energy_uJ']:.3f}"),
        ("batch-1 latency (ms)", lambda r: f"{r['latency_ms']:.3f}"), ("PyTorch dense (ms)", _torch_dense_md),
        ("img/s", lambda r: f"{r['throughput_per_s']:,.0f}")),
    compute_parts=(("compute", "compute"),), term_width=16,
    title="fp32 vs fp32:", md_title=[],
    md_breakdown_title="Estimated energy breakdown per inference:",
    md_comparisons_title="Equal-accuracy comparisons (ratio = ViT / SLN, fp32 vs fp32):",
    acc_label="acc", latency=True, headline_label="**Headline:** ", headline_missing="", row_suffix="")

INT8 = Precision(
    name="int8",
    text_columns=(
        ("family", "<9", lambda r: r["family"]), ("model", "<18", lambda r: r["name"]),
        ("params", ">9", lambda r: f"{r['params']:,}"),
        ("int8 acc %", ">10", lambda r: f"{100 * r['accuracy']:.2f}"),
        ("eff MACs", ">10", lambda r: f"{r['effective_macs']:,.0f}"),
        ("int32 ops", ">10", lambda r: f"{_int32_ops(r):,.0f}"),
        ("W read kB", ">9", lambda r: f"{r['weight_bytes_read'] / 1e3:.1f}"),
        ("W size kB", ">9", lambda r: f"{r['weight_footprint_bytes'] / 1e3:.1f}"),
        ("W level", ">11", lambda r: r["weight_memory_level"]), ("est uJ", ">8", lambda r: f"{r['energy_uJ']:.3f}")),
    md_columns=(
        ("family", lambda r: r["family"]), ("model", lambda r: r["name"]), ("params", lambda r: f"{r['params']:,}"),
        ("int8 test acc", lambda r: f"{100 * r['accuracy']:.2f}% (n={r['test_images']:,})"),
        ("eff. MACs", lambda r: f"{r['effective_macs']:,.0f}"), ("int32 ops", lambda r: f"{_int32_ops(r):,.0f}"),
        ("weight bytes read", lambda r: f"{r['weight_bytes_read'] / 1e3:,.1f} kB"),
        ("int8 model size", lambda r: f"{r['weight_footprint_bytes'] / 1e3:,.1f} kB"),
        ("weights in", lambda r: r["weight_memory_level"]), ("est. energy (µJ)", lambda r: f"{r['energy_uJ']:.3f}")),
    compute_parts=(("MACs", "mac"), ("int32 ops", "int32_ops")), term_width=12,
    title="int8 vs int8 (a separate table; not mixed into the fp32 columns above):",
    md_title=["#### int8 vs int8 (a separate table; never mixed into the fp32 columns)", ""],
    md_breakdown_title="int8 energy breakdown per inference:",
    md_comparisons_title="int8 equal-accuracy comparisons (ratio = int8 ViT / int8 SLN):",
    acc_label="int8 acc", latency=False, headline_label="**int8 headline:** ", headline_missing="n/a",
    row_suffix=" (int8)")
PRECISIONS = {p.name: p for p in (FP32, INT8)}


# --------------------------------------------------------------------------- text
def format_table(rows: list[Row], precision: str = "fp32") -> str:
    """The console table of one precision's rows."""
    cols = PRECISIONS[precision].text_columns
    cells = [[cell(r) for _, _, cell in cols] for r in rows]
    # a column is at least its declared width and grows to its widest cell (memory levels such as
    # "SRAM 1 MB + DRAM 90%" are longer than the old level names): the table always lines up
    widths = [max([int(spec[1:]), len(h)] + [len(c[i]) for c in cells]) for i, (h, spec, _) in enumerate(cols)]
    align = [spec[0] for _, spec, _ in cols]          # specs are "<9", ">10": alignment, then width
    hdr = " ".join(f"{h:{a}{w}}" for (h, _, _), w, a in zip(cols, widths, align, strict=True))
    body = [" ".join(f"{c:{a}{w}}" for c, w, a in zip(row, widths, align, strict=True)) for row in cells]
    return "\n".join([hdr, "-" * len(hdr)] + body)


def format_breakdown(r: Row) -> str:
    """Estimated energy of a row split into compute / weight reads / activations, then one line
    per term with its share (SLN rows: `by_term`; baselines: MAC energy by term)."""
    spec = PRECISIONS[r["precision"]]
    b = r["energy_breakdown_uJ"]
    tot = r["energy_uJ"] or 1.0
    compute = " + ".join(f"{label} {b[key]:.3f}" for label, key in spec.compute_parts)
    vec = (f" + parameter vectors {b['param_mem']:.3f} ({r.get('param_memory_level', '?')})"
           if "param_mem" in b else "")   # files before the matrix / vector split have no param_mem
    lines = [f"{r['name']}{spec.row_suffix}: {r['energy_uJ']:.3f} uJ = {compute} + weight reads "
             f"{b['weight_mem']:.3f} ({r['weight_memory_level']}){vec} + activations {b['act_mem']:.3f} "
             f"({r['act_memory_level']})"]
    if "by_term" in b:
        terms: dict[str, dict[str, float]] = {}
        for k, v in b["by_term"].items():   # "<term>.<compute|weight_mem|param_mem|act_mem>" -> uJ
            t, part = k.rsplit(".", 1)
            terms.setdefault(t, {})[part] = v
        for t, d in terms.items():
            s = sum(d.values())
            pv = f"  vectors {d['param_mem']:.3f}" if "param_mem" in d else ""
            lines.append(f"    {t:<{spec.term_width}} {s:8.3f} uJ ({100 * s / tot:5.1f}%)  compute "
                         f"{d['compute']:.3f}  weights {d['weight_mem']:.3f}{pv}  activations {d['act_mem']:.3f}")
        if r.get("energy_uJ_wide_multiplies") is not None:
            lines.append(f"    [separate line: recurrent + readout MACs priced as int32 multiplies (their "
                         f"activation operand is int16/int32): {r['energy_uJ_wide_multiplies']:.3f} uJ]")
    elif b.get("mac_by_term"):
        lines.append("    MAC energy by term: " + ", ".join(f"{k} {v:.3f}" for k, v in b["mac_by_term"].items()))
    if r.get("energy_uJ_weights_per_position") is not None:   # CNN rows (sln.cnn)
        lines.append(f"    [separate line: every conv weight re-read at each output position instead of once per "
                     f"image: {r['matrix_bytes_read_per_position'] / 1e3:,.1f} kB of weights, "
                     f"{r['energy_uJ_weights_per_position']:.3f} uJ]")
    return "\n".join(lines)


def format_comparison(c: Row, precision: str = "fp32") -> str:
    spec = PRECISIONS[precision]
    prefix = "" if precision == "fp32" else f"{precision} "
    er = "n/a" if c["energy_ratio"] is None else f"{c['energy_ratio']:.2f}x"
    lat = ""
    if spec.latency:
        lat = ", latency " + ("n/a" if c["latency_ratio"] is None else f"{c['latency_ratio']:.2f}x")
    co = c.get("energy_ratio_compute_only")
    co_s = "" if co is None else f" [separate line: compute only, memory excluded {co:.2f}x]"
    return (f"  {prefix}{c['sln']:<{18 - len(prefix)}} vs {str(c['baseline']):<14} [{c['method']}]: energy {er}"
            f"{lat}{co_s}  ({c['note']})")


def print_section(rows: list[Row], comparisons: list[Row], headline_text: str, precision: str = "fp32",
                  energy_line: str | None = None, cnn_comparisons: list[Row] | None = None) -> None:
    """One precision's results on the console: table, breakdowns, comparisons (the ViT's, then the
    CNN's apart), headline."""
    spec = PRECISIONS[precision]
    print()
    print(spec.title)
    print(format_table(rows, precision))
    print()
    print("estimated energy breakdown per inference:")
    for r in rows:
        print("  " + format_breakdown(r))
    print()
    if energy_line:
        print(energy_line)
    for c in comparisons:
        print(format_comparison(c, precision))
    if cnn_comparisons:
        print(f"SLN vs the CNN baseline ({precision}, ratio = CNN / SLN; not in the headline):")
        for c in cnn_comparisons:
            print(format_comparison(c, precision))
    if headline_text:
        print(spec.headline_label.strip("* ").upper() + " " + headline_text)


# --------------------------------------------------------------------------- Markdown
def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_cnn_comparisons(comps: list[Row], spec: Precision) -> list[str]:
    """SLN vs the CNN baseline (ratio = CNN / SLN) as a table of its own."""
    hdr = ["SLN", "method", "CNN", f"SLN {spec.acc_label}", f"CNN {spec.acc_label}", "energy ratio"]
    hdr += ["latency ratio"] if spec.latency else []
    out = ["", f"SLN vs the LeNet-class CNN baseline ({spec.name}; ratio = CNN / SLN, above 1 the SLN is "
               "cheaper; not in the headline):", "", _md_row(hdr + ["note"]), "|" + " --- |" * (len(hdr) + 1)]
    for c in comps:
        cells = [c["sln"], c["method"], c["baseline"] or "–", f"{100 * c['sln_accuracy']:.2f}%",
                 _opt(c["baseline_accuracy"], "{:.2%}"), _opt(c["energy_ratio"])]
        cells += [_opt(c["latency_ratio"])] if spec.latency else []
        out.append(_md_row(cells + [c["note"]]))
    return out


def markdown_section(rows: list[Row], comparisons: list[Row], headline_text: str, precision: str = "fp32",
                     skipped: list[Row] | None = None, note: str | None = None,
                     cnn_comparisons: list[Row] | None = None) -> str:
    """One precision's results as Markdown: table, breakdown, comparisons, headline."""
    spec = PRECISIONS[precision]
    out = list(spec.md_title)
    out += [_md_row([h for h, _ in spec.md_columns]), "|" + " --- |" * len(spec.md_columns)]
    out += [_md_row([cell(r) for _, cell in spec.md_columns]) for r in rows]
    out += ["", spec.md_breakdown_title, "", "```"]
    out += [format_breakdown(r) for r in rows]
    hdr = ["SLN", "method", "ViT", f"SLN {spec.acc_label}", f"ViT {spec.acc_label}", "energy ratio"]
    hdr += ["latency ratio"] if spec.latency else []
    hdr += ["compute-only energy ratio (separate line)", "note"]
    out += ["```", "", spec.md_comparisons_title, "", _md_row(hdr), "|" + " --- |" * len(hdr)]
    for c in comparisons:
        cells = [c["sln"], c["method"], c["baseline"] or "–", f"{100 * c['sln_accuracy']:.2f}%",
                 _opt(c["baseline_accuracy"], "{:.2%}"), _opt(c["energy_ratio"])]
        cells += [_opt(c["latency_ratio"])] if spec.latency else []
        cells += [_opt(c.get("energy_ratio_compute_only")), c["note"]]
        out.append(_md_row(cells))
    if cnn_comparisons:
        out += _md_cnn_comparisons(cnn_comparisons, spec)
    for sk in skipped or []:
        out.append(f"\nNot in the int8 table: {sk['name']} ({sk['reason']}).")
    if note:
        out += ["", f"Note: {note}."]
    out += ["", spec.headline_label + (headline_text or spec.headline_missing)]
    return "\n".join(out)


def markdown_report(doc: dict[str, Any]) -> str:
    """The results of one run as Markdown (tables, breakdowns, comparisons) for docs/ENERGY.md."""
    m = doc["machine"]
    out = [f"`{doc['command']}` — {doc['date']}, {m['cpu']}, {m['cores']} cores (shared), timing at "
           f"{m['threads']} thread, engine backend `{m['engine_backend']}`, energy profile "
           f"`{doc['energy_profile']['name']}`; measured energy: "
           f"{'see column' if doc['measured_energy']['available'] else 'not measured here'}.", "",
           markdown_section(doc["models"], doc["comparisons"], doc["headline"]["text"], "fp32",
                            cnn_comparisons=doc.get("comparisons_cnn"))]
    if doc.get("int8"):
        s = doc["int8"]
        out += ["", markdown_section(s["models"], s["comparisons"], s["headline"]["text"], "int8",
                                     skipped=s.get("skipped", []), note=s["note"],
                                     cnn_comparisons=s.get("comparisons_cnn"))]
    return "\n".join(out)


# --------------------------------------------------------------------------- plots
def plot(rows: list[Row], out_png: Path, key: str, xlabel: str, title: str) -> None:
    """Accuracy against `key` (log x), one colour per family; ViT sizes, and CNN sizes, joined by a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=90)
    for fam, col in FAMILY_COLORS.items():
        pts = sorted((r for r in rows if r["family"] == fam), key=lambda r: r[key])
        if not pts:
            continue
        ax.plot([r[key] for r in pts], [100 * r["accuracy"] for r in pts], "o-" if fam in ("vit", "cnn") else "o",
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


def write_plots(doc: dict[str, Any], out_dir: Path, cpu: str) -> list[Path]:
    """<dataset>_energy.png, <dataset>_latency.png (fp32) and <dataset>_int8_energy.png -> paths."""
    ds, prof = doc["dataset"], doc["energy_profile"]["name"]
    jobs = [(doc["models"], "energy", "energy_uJ", "estimated energy per inference (uJ, fp32)",
             f"{ds}: accuracy vs estimated energy ({prof})"),
            (doc["models"], "latency", "latency_ms", "batch-1 latency (ms, median)",
             f"{ds}: accuracy vs batch-1 latency ({cpu[:40]})")]
    if doc.get("int8") and doc["int8"]["models"]:
        jobs.append((doc["int8"]["models"], "int8_energy", "energy_uJ", "estimated energy per inference (uJ, int8)",
                     f"{ds}: int8 accuracy vs estimated int8 energy ({prof})"))
    paths = []
    for rows, stem, key, xlabel, title in jobs:
        paths.append(out_dir / f"{ds}_{stem}.png")
        plot(rows, paths[-1], key, xlabel, title)
    return paths

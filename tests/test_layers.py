"""Imports point down: every module of `sln` sits on a floor and imports only its own floor or lower,
and the import graph has no cycle. Parsed from the source (ast), so nothing is imported or run.
The floors are drawn in docs/DESIGN.md; a new module must be given one here."""
from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "sln"

# module (glob over dotted names) -> floor. Lower floors never import higher ones.
FLOORS: dict[str, int] = {
    # 0 ground: config and registry, the cell (torch only), the integer spec, the .sln format,
    #   the energy table, the one data-fetch helper
    "sln.config": 0, "sln.cell": 0, "sln.intspec": 0, "sln.fmt": 0, "sln.energy": 0, "sln.fetch": 0,
    "sln.fmt_c": 0,   # C sources generated from the format tables (sln_format.h, firmware model arrays)
    "sln.intspec_seq": 0,   # the integer token models: character LM + sampler, token classifier
    "sln.intspec_events": 0,   # the integer event model (dt-bucket gate tables, per-step readout, residual score)
    "sln.device": 0,   # --device, the torchrun process group, the all-reduced win rates (torch only)
    "sln.cbuild": 0,   # compiles runtime/ C sources into the cache (stdlib only)
    # 1 the model and its checkpoints
    "sln.model": 1, "sln.checkpoint": 1,
    # 2 tasks (data and what a task adds to the model) and baselines
    "sln.data": 2, "sln.timeseries": 2, "sln.text": 2, "sln.gpt": 2, "sln.baselines": 2, "sln.cnn": 2, "sln.tasks*": 2,
    "sln.prune": 2,   # weight-pruning schedule and weight-read counts (uses the model; the image task calls it)
    "sln.series_files": 2,   # user data files (.ts / UCR text / CSV / UTF-8 text) and their checksums
    "sln.ts_baselines": 2,   # majority, 1-NN Euclidean / DTW, MiniRocket (numpy; ridge from scikit-learn)
    "sln.security*": 2,   # security data: sources, parsers, public suffixes, packets, metrics
    # 3 what uses models: the training loop, the engine, quantisation and export, the benchmarks
    "sln.train": 3, "sln.engine": 3, "sln.quant": 3, "sln.export": 3, "sln.lm": 3,
    "sln.onnx_export": 3,   # ONNX graphs of the step and the classifier, onnxruntime parity
    "sln.sequence_tasks": 3, "sln.generate": 3, "sln.bench*": 3,
    "sln.ts_transformer": 3,   # the time-series transformer baseline and its CLI (uses sequence_tasks' task)
    "sln.security.baselines": 3, "sln.security.flows": 3, "sln.security.bench": 3,
    "sln.security.detect": 3,   # the SLN detector's task and trainer (uses the training loop)
    "sln.security.detect_int8": 3,   # the detector's int8 export, C-runtime scoring, energy (quant, engine)
    "sln.security.ids_data": 2, "sln.security.kitnet": 2,   # capture splits + IDS metrics; KitNET (numpy)
    "sln.security.ids_stream": 3,   # per-packet scoring on the engine / the model's Stream
    "sln.security.fastpath": 3,   # detect-net's C block path (runtime/sln_ids.c): parser, featurizer, scoring
    "sln.security.ids_int8": 3,   # the packet detector as an int8 event model: quantiser, C engine, firmware stream
    "sln.security.ids_int8_net": 3,   # sln detect-net on the int8 event .sln: sidecar spec, C block loop, records
    "sln.security.ids_bench_plan": 3,   # ids_bench's model selection, bounds, plan, progress, whole-stream scoring
    "sln.security.ids_energy": 2,   # the fp32 pricing of an IDS model's per-packet counts (ids_bench, fastpath)
    "sln.security.keyed": 3,   # per-host-pair liquid state for the packet detectors (C block + per-packet paths)
    "sln.security.keyed_cli": 4,   # python -m sln.security.keyed_cli calibrate: the keyed states' thresholds
    "sln.security.ids": 3, "sln.security.ids_bench": 3,   # packet detectors' task and trainer; IDS benchmark
    # 4 command lines
    "sln.train_cli": 4, "sln.cli": 4, "sln.evaluate_cli": 4, "sln.bench.cli": 4, "sln.bench.__main__": 4,
    "sln.security.detect_cli": 4,   # sln detect-url
    "sln.security.detect_net_cli": 4,   # sln detect-net
    "sln.plot_cli": 4,   # sln plot RUN_DIR (curves.csv -> curves.png)
    # the package root re-exports the public API of floors 0-1
    "sln": 1,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def floor_of(mod: str) -> int | None:
    exact = [f for pat, f in FLOORS.items() if pat == mod]
    if exact:
        return exact[0]
    hits = [f for pat, f in FLOORS.items() if fnmatch(mod, pat)]
    return max(hits) if hits else None


def package_imports(path: Path, mod: str) -> set[str]:
    """sln modules imported anywhere in the file (also inside functions: a lazy import is still a
    dependency)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "sln"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sln":
                continue
            if node.module is None or target in ("sln",) or target.count(".") == 0:
                # `from . import quant` / `from sln import quant`: the names are modules
                out |= {f"{target}.{a.name}" for a in node.names}
            else:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    g = {}
    for mod, path in files.items():
        g[mod] = {m for m in package_imports(path, mod) if m in files and m != mod}
    return g


def test_every_module_has_a_floor() -> None:
    missing = sorted(m for m in graph() if floor_of(m) is None)
    assert not missing, f"give these modules a floor in tests/test_layers.py FLOORS: {missing}"


def test_imports_point_down() -> None:
    g = graph()
    bad = [f"{m} (floor {floor_of(m)}) imports {d} (floor {floor_of(d)})"
           for m, deps in g.items() for d in deps
           if floor_of(m) is not None and floor_of(d) is not None and floor_of(d) > floor_of(m)]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (cyc := visit(d)):
                return cyc
        stack.pop()
        state[m] = 2
        return None
    for m in sorted(g):
        if m not in state and (cyc := visit(m)):
            raise AssertionError("import cycle: " + " -> ".join(cyc))


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    """The parser must catch relative, absolute and lazy imports, or the tests above prove nothing."""
    f = tmp_path / "probe.py"
    f.write_text("from .model import SLN\nimport sln.train\ndef g():\n    from . import quant\n")
    got = package_imports(f, "sln.probe")
    assert got == {"sln.model", "sln.train", "sln.quant"}
    assert floor_of("sln.config") == 0 and floor_of("sln.bench.cli") == 4 and floor_of("sln.bench.image") == 3

"""sln.bench.frontier: sparse SLN int8 rows against a benchmark JSON's baselines, checked accounting, plot."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sln.bench import frontier as F
from sln.checkpoint import save_checkpoint
from sln.config import get_config
from sln.model import create_model

BENCH = Path(__file__).resolve().parent.parent / "bench" / "mnist.json"


def test_point_labels_name_the_frontier_axes() -> None:
    assert F.point_label(get_config("sln-wide-mcu")) == "N1024 k30 d.10/.02"
    assert F.point_label(get_config("sln-small-p2s10")) == "N512 k15 d.10/.10 pool2"
    assert F.point_label(get_config("sln-base")) == "N1024 k20 dense"
    assert F.point_label(get_config("sln-small", input_threshold=64)) == "N512 k15 dense thr64"
    assert F.point_label(get_config("sln-small-s14-2step-in07")) == "N512 k15 d.07/.14 2 steps"   # 14 rows a step
    assert F.point_label(get_config("sln-small", input_size=56)) == "N512 k15 dense 14 steps"


def test_committed_vit_rows_reprice_exactly_and_a_changed_row_is_refused() -> None:
    doc = json.loads(BENCH.read_text())
    lines = F.check_baselines(doc)
    assert [ln.split(":")[0] for ln in lines] == ["vit-xs", "vit-s"] and all(ln.endswith(": ok") for ln in lines)
    bad = copy.deepcopy(doc)
    vit = next(r for r in bad["int8"]["models"] if r["name"] == "vit-s")
    vit["energy_uJ"] *= 1.001                # as if another accounting had priced it
    with pytest.raises(ValueError, match="accounting changed"):
        F.check_baselines(bad)
    no_vit = {**doc, "int8": {**doc["int8"], "models": [r for r in doc["int8"]["models"] if r["family"] != "vit"]}}
    with pytest.raises(ValueError, match="no int8 ViT rows"):
        F.check_baselines(no_vit)


def _row(name: str, fam: str, acc: float, uj: float, **kw) -> dict:
    return {"name": name, "family": fam, "accuracy": acc, "energy_uJ": uj, "latency_ms": None, **kw}


def test_comparisons_use_each_baseline_family_apart() -> None:
    sln = _row("s", "sln", 0.985, 1.0, config={"label": "x"})
    bases = [_row("v1", "vit", 0.97, 0.5), _row("v2", "vit", 0.99, 4.0), _row("c", "cnn", 0.991, 0.3)]
    comps = F.comparisons([sln], bases)
    vit = F.headline(comps, "s", "vit")
    want = math.exp(0.25 * math.log(0.5) + 0.75 * math.log(4.0))     # f = (0.985 - 0.97) / 0.02
    assert vit["method"] == "interpolated" and vit["energy_ratio"] == pytest.approx(want)
    cnn = F.headline(comps, "s", "cnn")                                   # one CNN size: smallest-matching
    assert cnn["method"] == "smallest-matching" and cnn["baseline"] == "c" and cnn["energy_ratio"] == pytest.approx(0.3)
    assert F.comparisons([sln], [b for b in bases if b["family"] == "vit"]) == [c for c in comps
                                                                               if c["baseline_family"] == "vit"]


def test_baseline_rows_add_a_cnn_json_once() -> None:
    doc = json.loads(BENCH.read_text())
    cnn = {"int8": _row("lenet5", "cnn", 0.9911, 0.325)}
    rows = F.baseline_rows(doc, [cnn, cnn])
    assert [r["name"] for r in rows] == ["vit-xs", "vit-s", "lenet5"]


def test_measured_sparse_run_gets_the_benchmark_int8_row_and_plots(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = create_model("sln-tiny", n_neurons=32, active_frac=0.125, density_in=0.25, density_rec=0.25).eval()
    with torch.no_grad():                                 # the masks of a pruned run: a quarter of each matrix
        for cell in m.cells:
            for lin in (cell.w_in, cell.w_rec):
                w = lin.weight
                thr = w.abs().flatten().kthvalue(w.numel() - w.numel() // 4 + 1).values
                w.mul_((w.abs() >= thr).to(w.dtype))
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.safetensors", m)
    rng = np.random.default_rng(0)
    x = (rng.random((60, 28, 28)) < 0.2).astype(np.uint8) * 200
    y = rng.integers(0, 10, 60)
    (row,) = F.measure_runs([run], x[:40], x[40:], y[40:], "horowitz45", calib=40)
    assert row["config"]["label"] == "N32 k4 d.25/.25" and row["test_images"] == 20
    nz = sum(int((c.w_in.weight != 0).sum() + (c.w_rec.weight != 0).sum()) for c in m.cells)
    assert row["int8_weights"] == pytest.approx(nz + m.readout.weight.numel(), rel=0.05)   # stored entries
    assert row["index_bytes_read"] > 0 and row["energy_uJ"] > 0
    doc = json.loads(BENCH.read_text())
    res = F.build(doc, "bench/mnist.json", [row], [])
    assert row["name"] == "run" and row["model"] == m.cfg.name       # named by its run folder
    assert [r["name"] for r in res["sln"]][-1] == "run"
    assert any(c["sln"] == "run" and c["baseline_family"] == "vit" for c in res["comparisons"])
    out = tmp_path / "res.json"
    out.write_text(json.dumps(res))
    png = tmp_path / "f.png"
    assert F.main(["--replot", str(out), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "N32 k4 d.25/.25" in F.markdown(res)


def test_merge_keeps_prior_measured_and_baseline_rows_and_replaces_a_remeasured_one(tmp_path: Path) -> None:
    doc = json.loads(BENCH.read_text())
    cfg, n = {"label": "N512 k15 d.14/.14"}, {"test_images": 10_000}
    old_a = _row("a", "sln", 0.985, 0.8, config=cfg, origin="measured here (a)", **n)
    old_b = _row("b", "sln", 0.980, 0.7, config=cfg, origin="measured here (b)", **n)
    cnn = _row("lenet5", "cnn", 0.9912, 0.325, **n)
    prior = F.build(doc, "bench/mnist.json", [old_a, old_b], [{"int8": cnn}])
    new_b = _row("b", "sln", 0.986, 0.5, config=cfg, origin="measured here (b)", **n)
    new_c = _row("c", "sln", 0.990, 0.4, config=cfg, origin="measured here (c)", **n)
    res = F.build(doc, "bench/mnist.json", [new_b, new_c], [], prior)
    published = [r["name"] for r in F.published_sln_rows(doc)]
    assert [r["name"] for r in res["sln"]] == published + ["a", "b", "c"]       # bench rows not doubled
    assert next(r for r in res["sln"] if r["name"] == "b")["energy_uJ"] == 0.5    # the new measurement wins
    assert [r["name"] for r in res["baselines"]] == ["vit-xs", "vit-s", "lenet5"]  # the CNN row is carried
    cnn_c = F.headline(res["comparisons"], "c", "cnn")
    assert cnn_c["baseline"] == "lenet5" and cnn_c["energy_ratio"] == pytest.approx(0.325 / 0.4)
    assert F.headline(res["comparisons"], "a", "vit") == F.headline(prior["comparisons"], "a", "vit")
    with pytest.raises(ValueError, match="--merge expects"):
        F.build(doc, "bench/mnist.json", [], [], {"models": []})
    p = tmp_path / "prior.json"
    p.write_text(json.dumps({**prior, "command": "x", "date": "d"}))
    out = tmp_path / "out.json"
    assert F.main(["--merge", str(p), "--json", str(out)]) == 0               # no run: a pure merge
    again = json.loads(out.read_text())
    assert [r["name"] for r in again["sln"]] == published + ["a", "b"] and again["merged_from"]["json"] == str(p)

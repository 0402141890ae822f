"""benchmark.py end to end (--quick), the JSON schema, the report and the equal-accuracy comparison."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sln.bench import cli, plan, report
from sln.bench.compare import compare, headline_comparison
from sln.bench.schema import INT8_SCHEMA, JSON_SCHEMA, SCHEMA_ID, validate
from sln.energy import estimate_pj, get_profile

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def test_quick_end_to_end_writes_valid_json(tmp_path, capsys) -> None:
    js = tmp_path / "out" / "q.json"
    md = tmp_path / "out" / "q.md"
    rc = cli.main(["--compare-energy", "--quick", "--runs-dir", str(tmp_path / "runs"), "--out",
                   str(tmp_path / "out"), "--json", str(js), "--markdown", str(md), "--no-progress",
                   "--repeats", "10"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "HEADLINE" in printed and "not measured here" in printed
    # nothing was cached: the training work is announced, with a timed estimate, before it starts
    plan = printed[printed.index("before measuring"):printed.index("total: ~")]
    for name in ("sln-tiny", "sln-small-dense", "vit-xs", "lenet-xs"):
        assert re.search(rf"{name}: .*, \d[\d,]* steps x \d+ ms = ~[\d.]+ (s|min) \(estimate\)", plan), plan
    doc = json.loads(js.read_text())
    assert doc["schema"] == SCHEMA_ID and validate(doc, JSON_SCHEMA) == []
    assert doc["machine"]["engine_backend"] == "c"
    fams = {r["family"] for r in doc["models"]}
    assert {"sln", "sln-dense", "vit", "cnn"} <= fams
    for r in doc["models"]:
        assert r["measured_energy_uJ"] is None              # no meter here: never a guess
        assert r["latency_ms"] > 0 and r["throughput_per_s"] > 0
        assert r["effective_macs"] <= r["dense_macs"] + 1e-9
    # the energy column is the table applied to the counted figures
    sln = next(r for r in doc["models"] if r["family"] == "sln")
    assert sln["torch_agreement"]["same_prediction"] == 1.0
    ops = {"macs": sln["effective_macs"], "acs": sln["effective_acs"], "adds": sln["elementwise"]["adds"],
           "muls": sln["elementwise"]["muls"], "cmps": sln["elementwise"]["cmps"],
           "nonlin": sln["elementwise"]["nonlin"], "weight_bytes": sln["matrix_bytes_read"],
           "param_bytes": sln["param_bytes_read"], "act_bytes": sln["act_bytes"]}
    assert sln["weight_bytes_read"] == sln["matrix_bytes_read"] + sln["param_bytes_read"]
    e = estimate_pj(ops, sln["matrix_footprint_bytes"], sln["act_footprint_bytes"], get_profile(),
                    param_footprint_bytes=sln["param_footprint_bytes"])
    assert sln["energy_uJ"] == pytest.approx(e["total"] * 1e-6, rel=1e-9)
    assert sum(sln["energy_breakdown_uJ"]["by_term"].values()) == pytest.approx(sln["energy_uJ"], rel=1e-9)
    # --quick: sln-tiny at N = 64, one layer, D = 196, C = 10: every fp32 weight the engine may read
    assert sln["weight_footprint_bytes"] == 4 * (196 * 128 + 64 * 128 + 128 + 3 * 64 + 64 * 10 + 10)
    assert sln["matrix_footprint_bytes"] == 4 * (196 * 128 + 64 * 128 + 64 * 10)
    assert sln["param_footprint_bytes"] == 4 * (128 + 3 * 64 + 10)
    # the bias, LayerNorm gain/shift and boost re-read at each of the 4 steps, the readout bias once
    assert sln["param_bytes_read"] == 4 * (4 * (128 + 3 * 64) + 10)
    assert 0 < sln["input_rows_distinct_per_inference"] <= sln["input_events_per_inference"]
    for stem in ("energy", "latency", "int8_energy"):
        assert (tmp_path / "out" / f"mnist_{stem}.png").stat().st_size > 1000
    # the int8 vs int8 section: its own rows (never in the fp32 models), valid against its schema
    assert all(r["precision"] == "fp32" for r in doc["models"])
    assert validate(doc["int8"], INT8_SCHEMA) == []
    assert {r["family"] for r in doc["int8"]["models"]} >= {"sln", "vit", "cnn"}
    # the CNN baseline (--quick: lenet-xs): every parameter read once per image, its no-reuse line apart,
    # compared with each SLN in a list of its own (ratio = CNN / SLN), never in the ViT headline
    cnn = next(r for r in doc["models"] if r["family"] == "cnn")
    assert cnn["name"] == "lenet-xs" and cnn["dense_macs"] == 165_120 and cnn["params"] == 7674
    assert cnn["weight_bytes_read"] == 4 * 7674 < cnn["matrix_bytes_read_per_position"]
    assert cnn["energy_uJ_weights_per_position"] > cnn["energy_uJ"]
    cnn8 = next(r for r in doc["int8"]["models"] if r["family"] == "cnn")
    assert cnn8["matrix_bytes_read"] == 7674 - (4 + 8 + 32 + 10)        # int8 weights; the biases are vectors
    i8 = doc["int8"]
    for comps, rows in ((doc["comparisons_cnn"], doc["models"]), (i8["comparisons_cnn"], i8["models"])):
        slns = [r for r in rows if r["family"] in ("sln", "sln-dense")]
        assert {c["sln"] for c in comps} == {r["name"] for r in slns} and comps
        for c in comps:
            s = next(r for r in slns if r["name"] == c["sln"])
            if c["method"] == "smallest-matching":
                b = next(r for r in rows if r["name"] == c["baseline"])
                assert b["family"] == "cnn" and c["energy_ratio"] == pytest.approx(b["energy_uJ"] / s["energy_uJ"])
    assert all(c["baseline"] is None or c["baseline"].startswith("vit") for c in doc["comparisons"])
    assert "SLN vs the LeNet-class CNN baseline" in md.read_text()
    assert "INT8 HEADLINE" in printed or doc["int8"]["headline"]["energy_ratio"] is None
    # the Markdown written is the report of the JSON written
    assert md.read_text() == report.markdown_report(doc) + "\n"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_checked_in_results_stay_valid_and_render_unchanged(name: str) -> None:
    """bench/<name>.json was written before the benchmark was split into sln/bench/: it must
    validate against today's schema, and the one report path must render it into the checked-in
    bench/<name>.md byte for byte (fp32 table and int8 section alike)."""
    doc = json.loads((BENCH / f"{name}.json").read_text())
    assert doc["schema"] == SCHEMA_ID
    assert validate(doc, JSON_SCHEMA) == []
    assert report.markdown_report(doc) + "\n" == (BENCH / f"{name}.md").read_text()
    # the validator can fail: a missing field, a value out of range, an fp32 row in the int8 section
    bad = dict(doc)
    del bad["headline"]
    bad["models"] = [dict(doc["models"][0], accuracy=1.5)]
    bad["int8"] = dict(doc["int8"], models=[dict(doc["int8"]["models"][0], precision="fp32")])
    errs = validate(bad, JSON_SCHEMA)
    assert any("headline" in e for e in errs) and any("accuracy" in e for e in errs)
    assert any(e.startswith("$.int8.models[0].precision") for e in errs)
    assert validate(dict(doc, schema="sln-energy-benchmark-v0"), JSON_SCHEMA) == [
        "$.schema: 'sln-energy-benchmark-v0' not in ['sln-energy-benchmark-v1']"]


def test_one_table_path_for_both_precisions() -> None:
    doc = json.loads((BENCH / "mnist.json").read_text())
    for rows, prec in ((doc["models"], "fp32"), (doc["int8"]["models"], "int8")):
        lines = report.format_table(rows, prec).splitlines()
        assert len(lines) == len(rows) + 2 and set(lines[1]) == {"-"}
        assert all(len(line) == len(lines[0]) for line in lines)   # the cells fill their columns
        for r, line in zip(rows, lines[2:], strict=True):
            assert line.split()[:3] == [r["family"], r["name"], f"{r['params']:,}"]
            # the last column: img/s of the fp32 table, estimated uJ of the int8 one
            last = f"{r['throughput_per_s']:.0f}" if prec == "fp32" else f"{r['energy_uJ']:.3f}"
            assert line.split()[-1] == last
    head = report.format_table(doc["int8"]["models"], "int8").splitlines()[0]
    assert "int8 acc %" in head and "lat ms" not in head
    assert "lat ms" in report.format_table(doc["models"], "fp32").splitlines()[0]
    # the breakdown splits the compute energy by precision: fp32 one figure, int8 MACs + int32 ops
    r8 = next(r for r in doc["int8"]["models"] if r["family"] == "sln")
    b8 = report.format_breakdown(r8)
    assert b8.startswith(f"{r8['name']} (int8): {r8['energy_uJ']:.3f} uJ = MACs ")
    assert "[separate line: recurrent + readout MACs priced as int32 multiplies" in b8
    r32 = next(r for r in doc["models"] if r["name"] == r8["name"])
    assert report.format_breakdown(r32).startswith(f"{r32['name']}: {r32['energy_uJ']:.3f} uJ = compute ")


def _row(name: str, acc: float, uj: float, ms: float | None) -> dict:
    return {"name": name, "accuracy": acc, "energy_uJ": uj, "latency_ms": ms}


def test_compare_equal_accuracy_methods() -> None:
    vits = [_row("a", 0.90, 10.0, 1.0), _row("b", 0.96, 40.0, 4.0), _row("c", 0.95, 80.0, 8.0)]  # c dominated
    sln = _row("s", 0.93, 2.0, 0.5)
    sm, ip = compare(sln, vits)
    assert sm["method"] == "smallest-matching" and sm["baseline"] == "b"
    assert sm["energy_ratio"] == pytest.approx(20.0) and sm["latency_ratio"] == pytest.approx(8.0)
    # halfway between a (0.90) and b (0.96) in accuracy: geometric mean of the costs
    assert ip["energy_ratio"] == pytest.approx((10.0 * 40.0) ** 0.5 / 2.0)
    assert ip["latency_ratio"] == pytest.approx((1.0 * 4.0) ** 0.5 / 0.5)
    assert headline_comparison([sm, ip], "s") is ip
    # above every baseline: no match, no extrapolation; the headline falls back to smallest-matching
    sm2, ip2 = compare(_row("s", 0.99, 2.0, 0.5), vits)
    assert sm2["baseline"] == "b" and "no baseline reaches" in sm2["note"]
    assert ip2["energy_ratio"] is None
    assert headline_comparison([sm2, ip2], "s") is sm2
    # int8 rows have no latency: energy is compared, latency ratios stay None
    sm3, ip3 = compare(_row("s", 0.93, 2.0, None), [dict(v, latency_ms=None) for v in vits])
    assert sm3["latency_ratio"] is None and ip3["latency_ratio"] is None
    assert ip3["energy_ratio"] == pytest.approx(ip["energy_ratio"])


def test_task_lm_dispatches_with_its_flags(monkeypatch) -> None:
    import sln.bench.lm as lm

    seen = {}

    def fake(args) -> int:  # noqa: ANN001
        seen.update(contexts=args.contexts, quick=args.quick, sln=args.sln_checkpoint)
        return 0

    monkeypatch.setattr(lm, "run_lm_benchmark", fake)
    assert cli.main(["--task", "lm", "--quick", "--contexts", "8", "16", "--sln-checkpoint", "s.st"]) == 0
    assert seen == {"contexts": [8, 16], "quick": True, "sln": Path("s.st")}


def test_unknown_flag_and_no_mode_rejected() -> None:
    assert cli.main([]) == 2
    with pytest.raises(SystemExit):
        cli.main(["--compare-energy", "--no-such-flag"])
    with pytest.raises(SystemExit):
        cli.main(["--task", "lm", "--no-such-flag"])
    with pytest.raises(SystemExit):            # the numpy twin of the engine is gone
        cli.main(["--compare-energy", "--engine", "numpy"])


def test_wrapper_and_sln_command_point_to_the_package() -> None:
    from sln.cli import COMMANDS

    assert COMMANDS["benchmark"][0] == "sln.bench.cli"
    r = subprocess.run([sys.executable, str(ROOT / "benchmark.py"), "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "--compare-energy" in r.stdout and "--contexts" in r.stdout


def test_vit_counts_equal_hand_computed() -> None:
    """The issue's calibration ViT (7x7 patches, d=64, 4 layers, 4 heads, MLP 2): 139,018 params,
    2,427,008 MACs at batch 1 (17 tokens), counted by the counting forward."""
    import torch

    from sln.baselines import VIT_SIZES, ViT, count_vit

    m = ViT(VIT_SIZES["vit-s"]).eval()
    assert m.num_params() == 139_018
    img = torch.zeros(28, 28, dtype=torch.uint8)
    img[10:14, 7:21] = 255                       # 56 nonzero pixels in 4 patches
    c = count_vit(m, img)
    T, d, H, dh, mlp = 17, 64, 4, 16, 128
    block = T * d * 3 * d + 2 * H * T * T * dh + T * d * d + 2 * T * d * mlp
    assert c.macs == 16 * 49 * d + 4 * block + d * 10 == 2_427_008
    # NeuroBench effective MACs: the patch embedding skips the zero pixels
    assert c.effective_macs == c.macs - (16 * 49 - 56) * d
    assert c.weight_bytes + c.param_bytes == 4 * 139_018        # every parameter read once per inference
    # vectors: embed bias, class token, per block 2 LayerNorms (2 x 2d) + the 4 Linear biases, final LN, head bias
    assert c.param_bytes == 4 * (d + d + 4 * (4 * d + 3 * d + d + mlp + d) + 2 * d + 10) == 4 * 3082
    # softmax: 4 layers x H x T rows of T -> T exps + 1 reciprocal per row; GELU: T x mlp per layer;
    # LayerNorm: 1 per token per LN (2 per block) + 1 final (class token only)
    assert c.nonlin == 4 * (H * T * (T + 1) + T * mlp + 2 * T) + 1


def test_cfc_counts_equal_hand_computed() -> None:
    pytest.importorskip("ncps")
    import torch

    from sln.baselines import CFC_SIZES, CfCClassifier, count_cfc

    m = CfCClassifier(CFC_SIZES["cfc-64"]).eval()
    c = count_cfc(m, torch.zeros(28, 28, dtype=torch.uint8))
    steps, D, U, BU = 4, 196, 64, 128
    per_step = (D + U) * BU + 4 * BU * U          # backbone on [x, h], then ff1, ff2, time_a, time_b
    assert c.macs == steps * per_step + U * 10
    # weights re-read at every step (as in the SLN count), the head once
    assert c.weight_bytes + c.param_bytes == 4 * (steps * ((D + U) * BU + BU + 4 * (BU * U + U)) + U * 10 + 10)
    assert c.param_bytes == 4 * (steps * (BU + 4 * U) + 10)       # the biases


def test_sensitivity_recomputes_the_published_headline_and_derives_the_split() -> None:
    """sln.bench.sensitivity on the checked-in bench/mnist.json: the 'published' variant re-prices the
    published counts as published and must give back the JSON's own headline ratios; the derived
    matrix / vector split of the SLN rows equals the hand-computed one (sln-base: N = 1024, 4 steps)."""
    from sln.bench import sensitivity as S

    doc = json.loads((BENCH / "mnist.json").read_text())
    row = next(r for r in doc["models"] if r["name"] == "sln-base")
    N, C = 1024, 10
    counted = ("param_bytes_read", "matrix_footprint_bytes", "param_footprint_bytes")
    derived = {k: v for k, v in row.items() if k not in counted}        # as in a file before the split
    want = (4 * 4 * (2 * N + 2 * N + N) + 4 * C, row["weight_footprint_bytes"] - 4 * (5 * N + C), 4 * (5 * N + C))
    assert S.sln_fp32_split(derived) == want
    if "param_bytes_read" in row:        # the counted split agrees with the derivation
        assert S.sln_fp32_split(row) == pytest.approx(want)
    r8 = next(r for r in doc["int8"]["models"] if r["name"] == "sln-base")
    vec8 = 4 * (16 * N + 8 * N + 8 * N + 8 * N + 4 * N) + 3 * 16 * N + 12 * C
    assert S.sln_int8_split({k: v for k, v in r8.items() if k not in counted}, 4) == (vec8, 2_508_800, 4 * 13_599)
    assert all(line.endswith(": ok") for line in S.derivation_check(doc))
    res = S.sensitivity(doc, S.VARIANTS[:3])
    # the variant priced with the file's own profile gives back the file's own headline
    own = next(v for v in res["variants"] if v["profile"] == doc["energy_profile"]["name"])
    assert own["fp32"]["energy_ratio"] == pytest.approx(doc["headline"]["energy_ratio"], rel=1e-9)
    assert own["int8"]["energy_ratio"] == pytest.approx(doc["int8"]["headline"]["energy_ratio"], rel=1e-9)
    pub = res["variants"][0]
    # the split moves the vectors out of DRAM: the SLN's own energy can only fall under the step model
    fixed = res["variants"][1]
    assert fixed["fp32"]["sln_uJ"] < pub["fp32"]["sln_uJ"] and fixed["int8"]["sln_uJ"] < pub["int8"]["sln_uJ"]
    md = S.markdown_table(res)
    assert md.count("\n| `") == 3 and "sln-base" in md


def test_no_train_refuses_missing_models_and_names_the_commands(tmp_path, capsys) -> None:
    rc = cli.main(["--compare-energy", "--quick", "--runs-dir", str(tmp_path / "runs"), "--out",
                   str(tmp_path / "out"), "--no-progress", "--no-train"])
    assert rc == 2
    cap = capsys.readouterr()
    from sln.baselines import ncps_available
    n = 5 if ncps_available() else 4                 # sln-tiny, sln-small-dense, vit-xs, lenet-xs (+ cfc-64)
    assert f"--no-train: {n} model(s) have no checkpoint" in cap.out, cap.out
    assert "lenet-xs: CNN baseline (LeNet-class), 1 epoch of 2,000 images" in cap.out
    assert f"python train.py --dataset mnist --model sln-tiny --epochs 1 --out {tmp_path / 'runs'}/mnist-sln-tiny" \
        in cap.out
    assert "nothing measured" in cap.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_announce_asks_on_a_terminal_and_a_no_stops() -> None:
    calls: list[int] = []

    class Task:
        def get_batch(self, i: int) -> int:
            calls.append(i)
            return i

        def loss(self, model, batch):
            return model(torch.ones(1, 2)).sum(), {}

    job = plan.TrainJob("m", "a test model", 1000, lambda: (torch.nn.Linear(2, 2), Task()))
    buf = io.StringIO()
    assert plan.announce([job], 1, no_train=False, yes=False, stream=buf, ask=lambda q: "n") is False
    assert calls == [0, 1, 2, 3]                       # one untimed + 3 timed steps
    assert job.seconds_per_step is not None and job.estimate_s == pytest.approx(1000 * job.seconds_per_step)
    assert "m: a test model, 1,000 steps x" in buf.getvalue() and "(estimate)" in buf.getvalue()
    assert plan.announce([job], 1, no_train=False, yes=False, stream=io.StringIO(), ask=lambda q: "y") is True
    assert plan.announce([job], 1, no_train=False, yes=True, stream=io.StringIO(), ask=lambda q: "n") is True
    assert plan.announce([], 1, no_train=True, yes=False) is True     # nothing to train: nothing to refuse


def test_training_threads_follow_flag_then_sln_then_omp(monkeypatch) -> None:
    monkeypatch.delenv("SLN_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert plan.train_threads(None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert plan.train_threads(None) == 3
    monkeypatch.setenv("SLN_THREADS", "2")
    assert plan.train_threads(None) == 2 and plan.train_threads(5) == 5
    monkeypatch.setenv("SLN_THREADS", "two")
    with pytest.raises(ValueError, match="SLN_THREADS must be a positive whole number"):
        plan.train_threads(None)

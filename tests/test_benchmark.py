"""benchmark.py end to end (--quick) and the equal-accuracy comparison."""
from __future__ import annotations

import json
import sys
import types

import pytest

from sln import benchmark as B
from sln.energy import estimate_pj, get_profile


def test_quick_end_to_end_writes_valid_json(tmp_path, capsys) -> None:
    js = tmp_path / "out" / "q.json"
    rc = B.main(["--compare-energy", "--quick", "--runs-dir", str(tmp_path / "runs"), "--out",
                 str(tmp_path / "out"), "--json", str(js), "--no-progress", "--repeats", "10"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "HEADLINE" in printed and "not measured here" in printed
    doc = json.loads(js.read_text())
    assert B.validate(doc, B.JSON_SCHEMA) == []
    fams = {r["family"] for r in doc["models"]}
    assert {"sln", "sln-dense", "vit"} <= fams
    for r in doc["models"]:
        assert r["measured_energy_uJ"] is None              # no meter here: never a guess
        assert r["latency_ms"] > 0 and r["throughput_per_s"] > 0
        assert r["effective_macs"] <= r["dense_macs"] + 1e-9
    # the energy column is the table applied to the counted figures
    sln = next(r for r in doc["models"] if r["family"] == "sln")
    assert sln["torch_agreement"]["same_prediction"] == 1.0
    ops = {"macs": sln["effective_macs"], "acs": sln["effective_acs"], "adds": sln["elementwise"]["adds"],
           "muls": sln["elementwise"]["muls"], "cmps": sln["elementwise"]["cmps"],
           "nonlin": sln["elementwise"]["nonlin"], "weight_bytes": sln["weight_bytes_read"],
           "act_bytes": sln["act_bytes"]}
    e = estimate_pj(ops, sln["weight_footprint_bytes"], sln["act_footprint_bytes"], get_profile())
    assert sln["energy_uJ"] == pytest.approx(e["total"] * 1e-6, rel=1e-9)
    assert (tmp_path / "out" / "mnist_energy.png").stat().st_size > 1000
    assert (tmp_path / "out" / "mnist_latency.png").stat().st_size > 1000
    # the int8 vs int8 section: its own rows (never in the fp32 models), valid against its schema
    assert all(r["precision"] == "fp32" for r in doc["models"])
    assert B.validate(doc["int8"], B.INT8_SCHEMA) == []
    assert {r["family"] for r in doc["int8"]["models"]} >= {"sln", "vit"}
    assert "INT8 HEADLINE" in printed or doc["int8"]["headline"]["energy_ratio"] is None
    assert (tmp_path / "out" / "mnist_int8_energy.png").stat().st_size > 1000
    # the validator can fail
    bad = dict(doc)
    del bad["headline"]
    bad["models"] = [dict(doc["models"][0], accuracy=1.5)]
    errs = B.validate(bad, B.JSON_SCHEMA)
    assert any("headline" in e for e in errs) and any("accuracy" in e for e in errs)


def _row(name: str, acc: float, uj: float, ms: float) -> dict:
    return {"name": name, "accuracy": acc, "energy_uJ": uj, "latency_ms": ms}


def test_compare_equal_accuracy_methods() -> None:
    vits = [_row("a", 0.90, 10.0, 1.0), _row("b", 0.96, 40.0, 4.0), _row("c", 0.95, 80.0, 8.0)]  # c dominated
    sln = _row("s", 0.93, 2.0, 0.5)
    sm, ip = B.compare(sln, vits)
    assert sm["method"] == "smallest-matching" and sm["baseline"] == "b"
    assert sm["energy_ratio"] == pytest.approx(20.0) and sm["latency_ratio"] == pytest.approx(8.0)
    # halfway between a (0.90) and b (0.96) in accuracy: geometric mean of the costs
    assert ip["energy_ratio"] == pytest.approx((10.0 * 40.0) ** 0.5 / 2.0)
    assert ip["latency_ratio"] == pytest.approx((1.0 * 4.0) ** 0.5 / 0.5)
    # above every baseline: no match, no extrapolation
    sm2, ip2 = B.compare(_row("s", 0.99, 2.0, 0.5), vits)
    assert sm2["baseline"] == "b" and "no baseline reaches" in sm2["note"]
    assert ip2["energy_ratio"] is None


def test_task_lm_is_lazy(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "sln.lm_bench", None)  # as if the module were missing
    assert B.main(["--task", "lm"]) == 2
    assert "sln/lm_bench.py" in capsys.readouterr().err
    seen = {}

    def run_lm_benchmark(args) -> int:  # noqa: ANN001
        seen["argv"] = args.lm_argv
        return 0

    fake = types.ModuleType("sln.lm_bench")
    fake.run_lm_benchmark = run_lm_benchmark
    monkeypatch.setitem(sys.modules, "sln.lm_bench", fake)
    import sln
    monkeypatch.setattr(sln, "lm_bench", fake, raising=False)
    assert B.main(["--task", "lm", "--some-lm-flag", "3"]) == 0
    assert seen["argv"] == ["--some-lm-flag", "3"]


def test_unknown_flag_and_no_mode_rejected(capsys) -> None:
    assert B.main([]) == 2
    with pytest.raises(SystemExit):
        B.main(["--compare-energy", "--no-such-flag"])


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
    assert c.weight_bytes == 4 * 139_018        # every parameter read once per inference
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
    assert c.weight_bytes == 4 * (steps * ((D + U) * BU + BU + 4 * (BU * U + U)) + U * 10 + 10)

"""The int8 vs int8 section of benchmark.py: energy arithmetic, counts, schema (untrained tiny models)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sln import benchmark as B
from sln import quant as Q
from sln.baselines import ViT, ViTConfig
from sln.energy import HOROWITZ_45NM, estimate_pj, get_profile
from sln.model import create_model


def test_int8_known_count_equals_table() -> None:
    # Horowitz 45 nm: int8 mul 0.2, int32 add 0.1, int32 mul 3.1 pJ; SRAM 32 KB 20 pJ, 8 KB 10 pJ per 64 bits
    ops = {"macs": 1000, "adds32": 300, "muls32": 40, "cmps32": 50, "weight_bytes": 800, "act_bytes": 160}
    e = estimate_pj(ops, weight_footprint_bytes=20 * 1024, act_footprint_bytes=4096, precision="int8")
    assert e["mac"] == pytest.approx(1000 * (0.2 + 0.1), rel=1e-12)          # int8 multiply + int32 add
    assert e["int32_ops"] == pytest.approx(300 * 0.1 + 40 * 3.1 + 50 * 0.1, rel=1e-12)
    assert e["weight_mem"] == pytest.approx(800 / 8 * 20.0, rel=1e-12)
    assert e["act_mem"] == pytest.approx(160 / 8 * 10.0, rel=1e-12)
    assert e["total"] == pytest.approx(300 + 30 + 124 + 5 + 2000 + 200, rel=1e-12)
    assert (e["weight_level"], e["act_level"]) == ("SRAM 32 KB", "SRAM 8 KB")
    # int32 ops are priced at the int32 rows whatever the precision argument
    assert estimate_pj({"muls32": 1}, 1, 1, precision="fp32")["int32_ops"] == pytest.approx(HOROWITZ_45NM.int32_mul)
    # an int8 model of 0.75 MB sits in the 1 MB SRAM level, its fp32 twin (3 MB) in DRAM
    assert HOROWITZ_45NM.memory_level(758_284) == ("SRAM 1 MB", 100.0)
    assert HOROWITZ_45NM.memory_level(4 * 758_284)[0] == "DRAM"


def _tiny_sln(xtr: np.ndarray):
    torch.manual_seed(0)
    m = create_model("sln-tiny", n_neurons=32, active_frac=0.125)
    m.eval()
    return m


def test_int8_counting_executor_matches_reference_and_hand_counts(mnist_slice) -> None:
    xtr, _, xte, _ = mnist_slice
    model = _tiny_sln(xtr)
    qm = Q.quantize(model, xtr[:200])
    px = xte[:20]
    ref_l, ref_w = Q.reference_forward(qm, px)
    logits, win, cnt, active = B.int8_sln_counted_forward(qm, px)
    assert np.array_equal(logits, ref_l) and np.array_equal(win, ref_w)
    N2 = 2 * qm.n_neurons
    # input projection: one int8 column of 2N weights per nonzero pixel
    assert cnt["input"]["mac"] == float((px != 0).sum()) * N2
    assert cnt["input"]["dense_mac"] == 20 * qm.n_steps * qm.input_size * N2
    assert 0 < active <= qm.k / qm.n_neurons


def test_int8_section_rows_and_schema(mnist_slice) -> None:
    xtr, _, xte, yte = mnist_slice
    prof = get_profile()
    sln_row = B.evaluate_sln_int8("tiny", "sln", _tiny_sln(xtr), xtr, xte[:40], yte[:40], prof, "test", calib=200,
                                  chunk=20)
    vit = ViT(ViTConfig(name="vit-t", dim=16, depth=1, heads=2))
    vit_row = B.evaluate_vit_int8("vit-t", vit, xtr, xte[:40], yte[:40], prof, "test", calib=200)
    sec = B.int8_section([sln_row, vit_row], "tiny")
    assert B.validate(sec, B.INT8_SCHEMA) == []
    # the energy column is the table applied to the row's own counts, at int8
    for r in (sln_row, vit_row):
        ops = {"macs": r["effective_macs"], "adds32": r["int32_ops"]["adds"], "muls32": r["int32_ops"]["muls"],
               "cmps32": r["int32_ops"]["cmps"], "weight_bytes": r["weight_bytes_read"], "act_bytes": r["act_bytes"]}
        e = estimate_pj(ops, r["weight_footprint_bytes"], r["act_footprint_bytes"], prof, precision="int8")
        assert r["energy_uJ"] == pytest.approx(e["total"] * 1e-6, rel=1e-9)
        assert r["precision"] == "int8" and r["accuracy_measured"]
    # int8 footprint: 1 byte per int8 weight, 4 per other parameter
    n8 = sum(p.numel() for n, p in vit.named_parameters() if n.endswith("weight") and p.dim() == 2)
    assert vit_row["weight_footprint_bytes"] == n8 + 4 * (vit_row["params"] - n8)
    assert sln_row["int8_weights"] + sln_row["int32_params"] * 4 == sln_row["weight_footprint_bytes"]
    # by-term breakdown sums to the total
    bt = sln_row["energy_breakdown_uJ"]["by_term"]
    assert sum(bt.values()) == pytest.approx(sln_row["energy_uJ"], rel=1e-9)
    # the validator catches an fp32 row in the int8 section
    bad = dict(sec, models=[dict(sln_row, precision="fp32")])
    assert any("precision" in e for e in B.validate(bad, B.INT8_SCHEMA))

"""Energy arithmetic against the cited table (Horowitz, ISSCC 2014, 45 nm)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sln.energy import HOROWITZ_45NM, estimate_pj, get_profile


def test_table_values_are_the_cited_ones() -> None:
    p = get_profile()  # default
    assert p is HOROWITZ_45NM
    assert (p.fp32_add, p.fp32_mul, p.int8_add, p.int8_mul, p.int32_add, p.int32_mul) == (0.9, 3.7, 0.03, 0.2, 0.1, 3.1)
    assert p.sram_levels == ((8192, 10.0), (32768, 20.0), (1048576, 100.0))
    assert p.dram_64b == 1300.0
    assert "ISSCC 2014" in p.citation
    assert get_profile("horowitz45-dram-high").dram_64b == 2600.0


def test_memory_level_follows_size() -> None:
    p = HOROWITZ_45NM
    assert p.memory_level(8 * 1024) == ("SRAM 8 KB", 10.0)
    assert p.memory_level(8 * 1024 + 1) == ("SRAM 32 KB", 20.0)
    assert p.memory_level(1024 * 1024) == ("SRAM 1 MB", 100.0)
    assert p.memory_level(1024 * 1024 + 1) == ("DRAM", 1300.0)


def test_known_count_equals_table() -> None:
    ops = {"macs": 1000, "acs": 500, "adds": 100, "muls": 10, "cmps": 20, "nonlin": 2,
           "weight_bytes": 800, "act_bytes": 160}
    # weights 2 MB -> DRAM; activations 4 KB -> 8 KB SRAM
    e = estimate_pj(ops, weight_footprint_bytes=2 * 1024 * 1024, act_footprint_bytes=4096)
    expect = {
        "mac": 1000 * (3.7 + 0.9), "ac": 500 * 0.9, "add": 100 * 0.9, "mul": 10 * 3.7, "cmp": 20 * 0.9,
        "nonlin": 2 * (5 * 3.7 + 5 * 0.9), "weight_mem": 800 / 8 * 1300.0, "act_mem": 160 / 8 * 10.0,
    }
    for k, v in expect.items():
        assert e[k] == pytest.approx(v, rel=1e-12), k
    assert e["total"] == pytest.approx(4600 + 450 + 90 + 37 + 18 + 46 + 130000 + 200, rel=1e-12)
    assert (e["weight_level"], e["act_level"]) == ("DRAM", "SRAM 8 KB")
    # int8: MAC = int8 multiply + 32-bit accumulate; AC = 32-bit add
    e8 = estimate_pj({"macs": 1000, "acs": 100}, 100, 100, precision="int8")
    assert e8["mac"] == pytest.approx(1000 * 0.3) and e8["ac"] == pytest.approx(100 * 0.1)
    with pytest.raises(ValueError):
        estimate_pj(ops, 1, 1, precision="fp16")


def test_profile_swappable_from_json(tmp_path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"name": "toy", "citation": "made up for the test", "fp32_add": 1.0, "fp32_mul": 2.0,
                             "sram_levels": [[100, 1.0]], "dram_64b": 50.0}))
    p = get_profile(str(f))
    e = estimate_pj({"macs": 10, "weight_bytes": 80}, 1000, 10, p)
    assert e["mac"] == pytest.approx(30.0) and e["weight_mem"] == pytest.approx(10 * 50.0)
    assert e["weight_level"] == "DRAM"
    with pytest.raises(ValueError, match="unknown energy profile"):
        get_profile("no-such-profile")


def test_engine_counts_priced_by_term_sum_to_total() -> None:
    """The per-term breakdown the benchmark prints adds up to the total of the summed counts."""
    import torch

    from sln.config import SLNConfig
    from sln.engine import Engine
    from sln.model import SLN

    torch.manual_seed(0)
    m = SLN(SLNConfig(n_neurons=32, active_frac=0.125, input_size=196)).eval()
    x = (np.random.default_rng(0).random((4, 196)) < 0.2).astype(np.float32)  # binary events: ACs
    cnt = Engine(m, "c").run(x).counts
    s = cnt.summary()
    assert s["effective_acs"] > 0
    tot = estimate_pj({"macs": s["effective_macs"], "acs": s["effective_acs"], "adds": s["elementwise_adds"],
                       "muls": s["elementwise_muls"], "cmps": s["compares"], "nonlin": s["nonlinear_ops"],
                       "weight_bytes": s["weight_bytes_read"],
                       "act_bytes": s["act_bytes_read"] + s["act_bytes_written"]}, 2e6, 1e4)["total"]
    parts = 0.0
    for c in cnt.per_term().values():
        parts += estimate_pj({"macs": c["mac"], "acs": c["ac"], "adds": c["add"], "muls": c["mul"],
                              "cmps": c["cmp"], "nonlin": c["nonlin"], "weight_bytes": c["weight_bytes"],
                              "act_bytes": c["act_bytes_read"] + c["act_bytes_written"]}, 2e6, 1e4)["total"]
    assert parts == pytest.approx(tot, rel=1e-9)

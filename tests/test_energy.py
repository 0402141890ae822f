"""Energy arithmetic against the cited table (Horowitz, ISSCC 2014, 45 nm)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sln.energy import HOROWITZ_45NM, HOROWITZ_45NM_STEPS, EnergyProfile, estimate_pj, get_profile


def test_table_values_are_the_cited_ones() -> None:
    p = get_profile()  # default
    assert p is HOROWITZ_45NM and p.memory_model == "continuous" and p.onchip_bytes == 1024 * 1024
    assert (p.fp32_add, p.fp32_mul, p.int8_add, p.int8_mul, p.int32_add, p.int32_mul) == (0.9, 3.7, 0.03, 0.2, 0.1, 3.1)
    assert p.sram_levels == ((8192, 10.0), (32768, 20.0), (1048576, 100.0))
    assert p.dram_64b == 1300.0
    assert "ISSCC 2014" in p.citation
    assert get_profile("horowitz45-dram-high").dram_64b == 2600.0
    steps = get_profile("horowitz45-steps")
    assert steps is HOROWITZ_45NM_STEPS and steps.memory_model == "steps" and steps.sram_levels == p.sram_levels


def test_step_model_is_the_published_one() -> None:
    p = HOROWITZ_45NM_STEPS
    assert p.memory_level(8 * 1024) == ("SRAM 8 KB", 10.0)
    assert p.memory_level(8 * 1024 + 1) == ("SRAM 32 KB", 20.0)
    assert p.memory_level(1024 * 1024) == ("SRAM 1 MB", 100.0)
    assert p.memory_level(1024 * 1024 + 1) == ("DRAM", 1300.0)


# hand-computed least squares in log2-log2 through (2^13 B, 10), (2^15 B, 20), (2^20 B, 100) pJ:
# x - mean(x) = -3, -1, 4 (mean 16, Sxx 26); y = L, 1 + L, 2L with L = log2(10): Sxy = 4L - 1, so
# slope = (4 log2 10 - 1) / 26 = 0.47260; the line passes through the centre 2^16 B at the geometric
# mean of the energies, (10 * 20 * 100)^(1/3) = 20000^(1/3) = 27.144 pJ
SLOPE = (4 * math.log2(10) - 1) / 26
E_C = 20000 ** (1 / 3)


def test_continuous_fit_through_the_cited_points() -> None:
    p = HOROWITZ_45NM
    c, e, b = p.sram_fit()
    assert c == pytest.approx(65536.0, rel=1e-12) and e == pytest.approx(E_C, rel=1e-12)
    assert b == pytest.approx(SLOPE, rel=1e-12) and b == pytest.approx(0.472604, abs=1e-6)
    fitted = {cap: E_C * (cap / 65536) ** SLOPE for cap, _ in p.sram_levels}
    assert fitted[8192] == pytest.approx(10.1595, abs=1e-4)
    assert fitted[32768] == pytest.approx(19.5618, abs=1e-4)
    assert fitted[1048576] == pytest.approx(100.6350, abs=1e-4)
    for cap, cited in p.sram_levels:
        assert p.memory_level(cap)[1] == pytest.approx(fitted[cap], rel=1e-12)
        assert abs(math.log(fitted[cap] / cited)) < 0.03          # within 3% of every cited point
    # least squares with an intercept: the log residuals sum to zero
    assert sum(math.log(fitted[cap] / cited) for cap, cited in p.sram_levels) == pytest.approx(0.0, abs=1e-12)
    assert p.memory_level(54_000)[0] == "SRAM 52.7 KB (fit)"


def test_continuous_model_is_monotone_and_continuous_at_its_boundaries() -> None:
    p = HOROWITZ_45NM
    sizes = np.geomspace(100, 64 * 1024 * 1024, 400)
    price = np.array([p.memory_level(s)[1] for s in sizes])
    assert (np.diff(price) >= 0).all() and (np.diff(price[sizes > 8192]) > 0).all()
    # below the smallest cited capacity the price is held there (no extrapolation downwards)
    assert p.memory_level(100)[1] == p.memory_level(8192)[1] == pytest.approx(E_C * 2 ** (-3 * SLOPE))
    S = p.onchip_bytes
    for edge in (8192, S):                                       # continuous at both edges
        assert p.memory_level(edge + 1)[1] == pytest.approx(p.memory_level(edge)[1], rel=1e-4)
    # beyond the on-chip 1 MB a 2 MB set keeps half of it on chip: (E(1 MB) + DRAM) / 2
    assert p.memory_level(2 * S) == ("SRAM 1 MB + DRAM 50%", pytest.approx((100.6350 + 1300.0) / 2, abs=1e-4))
    assert p.memory_level(4 * S)[1] == pytest.approx(0.25 * 100.6350 + 0.75 * 1300.0, abs=1e-4)
    # a 1% size change moves the price by at most ~12% (the step model: 13x at 1 MB)
    for s in (0.5 * S, S, 2 * S, 2.56e6):
        assert 1.0 <= p.memory_level(1.01 * s)[1] / p.memory_level(s)[1] < 1.13
    assert HOROWITZ_45NM_STEPS.memory_level(1.01 * S)[1] / HOROWITZ_45NM_STEPS.memory_level(S)[1] == 13.0


def test_sensitivity_profiles_pivot_on_the_centre() -> None:
    x2, half, big = get_profile("horowitz45-slope-x2"), get_profile("horowitz45-slope-x0.5"), \
        get_profile("horowitz45-onchip-8mb")
    for p in (x2, half):                                         # the centre stays where it is
        assert p.memory_level(65536)[1] == pytest.approx(E_C, rel=1e-12)
    assert x2.memory_level(1 << 20)[1] == pytest.approx(E_C * 16 ** (2 * SLOPE), rel=1e-12)   # 371.2 pJ
    assert half.memory_level(1 << 20)[1] == pytest.approx(E_C * 16 ** (SLOPE / 2), rel=1e-12)  # 52.3 pJ
    assert big.memory_level(8 << 20)[1] == pytest.approx(E_C * 128 ** SLOPE, rel=1e-12)       # 268.9 pJ
    assert big.memory_level(2 << 20)[0] == "SRAM 2 MB (fit)"


def test_known_count_equals_table() -> None:
    ops = {"macs": 1000, "acs": 500, "adds": 100, "muls": 10, "cmps": 20, "nonlin": 2,
           "weight_bytes": 800, "act_bytes": 160}
    # step model: weights 2 MB -> DRAM; activations 4 KB -> 8 KB SRAM
    e = estimate_pj(ops, weight_footprint_bytes=2 * 1024 * 1024, act_footprint_bytes=4096,
                    profile=HOROWITZ_45NM_STEPS)
    expect = {
        "mac": 1000 * (3.7 + 0.9), "ac": 500 * 0.9, "add": 100 * 0.9, "mul": 10 * 3.7, "cmp": 20 * 0.9,
        "nonlin": 2 * (5 * 3.7 + 5 * 0.9), "weight_mem": 800 / 8 * 1300.0, "act_mem": 160 / 8 * 10.0,
        "param_mem": 0.0,
    }
    for k, v in expect.items():
        assert e[k] == pytest.approx(v, rel=1e-12), k
    assert e["total"] == pytest.approx(4600 + 450 + 90 + 37 + 18 + 46 + 130000 + 200, rel=1e-12)
    assert (e["weight_level"], e["act_level"]) == ("DRAM", "SRAM 8 KB")
    # continuous default: 2 MB of weights half on chip -> (100.635 + 1300) / 2 pJ per 64 bits
    ec = estimate_pj(ops, 2 * 1024 * 1024, 4096)
    assert ec["weight_mem"] == pytest.approx(100 * (100.6350 + 1300.0) / 2, abs=0.01)
    assert ec["act_mem"] == pytest.approx(20 * 10.1595, abs=1e-3)
    # int8: MAC = int8 multiply + 32-bit accumulate; AC = 32-bit add
    e8 = estimate_pj({"macs": 1000, "acs": 100}, 100, 100, precision="int8")
    assert e8["mac"] == pytest.approx(1000 * 0.3) and e8["ac"] == pytest.approx(100 * 0.1)
    with pytest.raises(ValueError):
        estimate_pj(ops, 1, 1, precision="fp16")


def test_parameter_vectors_priced_at_their_own_level() -> None:
    ops = {"weight_bytes": 800, "param_bytes": 1600}
    # step model: matrices 2 MB (DRAM, 1300 pJ), vectors 20 KB (SRAM 32 KB, 20 pJ)
    e = estimate_pj(ops, 2 * 1024 * 1024, 1, HOROWITZ_45NM_STEPS, param_footprint_bytes=20 * 1024)
    assert e["weight_mem"] == pytest.approx(100 * 1300.0) and e["param_mem"] == pytest.approx(200 * 20.0)
    assert (e["weight_level"], e["param_level"]) == ("DRAM", "SRAM 32 KB")
    assert e["memory"] == pytest.approx(130000 + 4000 + e["act_mem"])
    # without a vector footprint they are priced with the matrices (the accounting before the split)
    e0 = estimate_pj(ops, 2 * 1024 * 1024, 1, HOROWITZ_45NM_STEPS)
    assert e0["param_mem"] == pytest.approx(200 * 1300.0) and e0["param_level"] == "DRAM"


def test_profile_swappable_from_json(tmp_path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"name": "toy", "citation": "made up for the test", "fp32_add": 1.0, "fp32_mul": 2.0,
                             "sram_levels": [[100, 1.0]], "dram_64b": 50.0, "memory_model": "steps"}))
    p = get_profile(str(f))
    e = estimate_pj({"macs": 10, "weight_bytes": 80}, 1000, 10, p)
    assert e["mac"] == pytest.approx(30.0) and e["weight_mem"] == pytest.approx(10 * 50.0)
    assert e["weight_level"] == "DRAM"
    with pytest.raises(ValueError, match="unknown energy profile"):
        get_profile("no-such-profile")
    with pytest.raises(ValueError, match="at least two SRAM points"):
        EnergyProfile(name="x", citation="y", sram_levels=((100, 1.0),))
    # a written profile (with its derived fit) loads back as the same profile
    g = tmp_path / "default.json"
    g.write_text(json.dumps(HOROWITZ_45NM.to_dict()))
    assert HOROWITZ_45NM.to_dict()["sram_fit"]["exponent"] == pytest.approx(SLOPE)
    assert get_profile(str(g)) == HOROWITZ_45NM


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
                       "weight_bytes": s["matrix_bytes_read"], "param_bytes": s["param_bytes_read"],
                       "act_bytes": s["act_bytes_read"] + s["act_bytes_written"]}, 2e6, 1e4,
                      param_footprint_bytes=3e4)["total"]
    parts = 0.0
    for c in cnt.per_term().values():
        parts += estimate_pj({"macs": c["mac"], "acs": c["ac"], "adds": c["add"], "muls": c["mul"],
                              "cmps": c["cmp"], "nonlin": c["nonlin"], "weight_bytes": c["weight_bytes"],
                              "param_bytes": c["param_bytes"],
                              "act_bytes": c["act_bytes_read"] + c["act_bytes_written"]}, 2e6, 1e4,
                             param_footprint_bytes=3e4)["total"]
    assert parts == pytest.approx(tot, rel=1e-9)

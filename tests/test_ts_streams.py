"""Time-series streams benchmark (issue 9 §3): the causal TS transformer's stream and counts, the SLN's integer
stream in numpy and in C, one pricing function with the LM streams, accuracy matching, the command."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sln import intspec
from sln.bench import gpt_int8 as G
from sln.bench import lm_streams as LS
from sln.bench import ts_gpt as TG
from sln.bench import ts_streams as TS
from sln.bench.ts_streams_train import SLN_OVERRIDES
from sln.cbuild import compiler
from sln.config import get_config
from sln.energy import PROFILES, get_profile
from sln.model import SLN


def _tiny_tsgpt(d: int = 16, layers: int = 2, d_in: int = 1, classes: int = 2) -> TG.TSGPT:
    torch.manual_seed(0)
    return TG.TSGPT(TG.TSGPTConfig(d_in=d_in, n_classes=classes, d_model=d, n_layers=layers)).eval()


def _tiny_sln(D: int = 2, C: int = 3, N: int = 64) -> SLN:
    torch.manual_seed(0)
    cfg = get_config("sln-ts-small", n_neurons=N, active_frac=0.1, input_size=D, n_classes=C, **SLN_OVERRIDES)
    return SLN(cfg).eval()


def test_tsgpt_stream_with_kv_cache_is_the_forward() -> None:
    m = _tiny_tsgpt(d_in=3, classes=4)
    x = torch.randn(5, 23, 3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(m.stream_logits(x), m(x), atol=1e-5)
    caches = TG.prime_caches(m, x[0, :10])
    z, _ = m.step(x[0, 10][None], caches, 10)                  # primed cache + one step = the step-by-step stream
    c2 = None
    for t in range(11):
        z2, c2 = m.step(x[0, t][None], c2, t)
    assert torch.allclose(z, z2, atol=1e-5)


def test_counted_event_matches_the_formula_and_a_hand_count() -> None:
    m = _tiny_tsgpt()
    x = torch.randn(20, 1, generator=torch.Generator().manual_seed(2))
    for c in (1, 6, 20, 45):                                    # 45 > T: the series repeats as a longer stream
        got = G.counter_totals(TG.count_event(m, x, c, series_len=20))
        assert got == pytest.approx(TG.ts_gpt_formula(16, 2, 4, 1, 2, c, 20), rel=0, abs=1e-6)
    # d=8, L=1, H=4, D=1, C=2, context 10, series 10, by hand:
    # MACs: embed 8 + QKV 192 + scores 80 + values 80 + proj 64 + fc 256 + out 256 + head 16/10 = 937.6
    # int8 weights: embed 8 + 12 d^2 768 + head 16/10 = 777.6; KV: 2 x 10 x 8 read + 16 written = 176
    f = TG.ts_gpt_formula(8, 1, 4, 1, 2, 10, 10)
    assert (f["macs"], f["weight_bytes"], f["kv_bytes"]) == (pytest.approx(937.6), pytest.approx(777.6), 176)


def test_lm_gpt_step_unchanged_by_the_shared_block_loop() -> None:
    torch.manual_seed(0)
    from sln.gpt import GPTLM, GPTConfig
    g = GPTLM(GPTConfig(vocab_size=7, d_model=16, n_layers=2, n_heads=2)).eval()
    ids = torch.randint(0, 7, (30,), generator=torch.Generator().manual_seed(3))
    cnt, logits = G.count_token(g, ids, 12)
    assert torch.allclose(logits, g(ids[:12].view(1, -1))[0][0, -1], atol=1e-5)
    assert G.counter_totals(cnt) == pytest.approx(G.gpt_int8_formula(16, 2, 2, 7, 12), rel=0, abs=1e-6)


def test_pricing_is_the_lm_streams_function() -> None:
    assert TS.price_token is LS.price_token                     # one pricing function, not a copy
    m = _tiny_tsgpt()
    prof = get_profile()
    cnt = TG.count_event(m, torch.randn(30, 1), 30, 30)
    ops, fp = G.gpt_int8_ops(m, cnt, 30, prof.nonlin_muls, prof.nonlin_adds)
    assert fp["kv_bytes"] == 2 * 2 * 30 * 16
    e = LS.price_token(ops, fp, prof)
    no_kv = LS.price_token({**ops, "kv_bytes": 0.0}, {**fp, "kv_bytes": 0.0}, prof)
    level, pj = prof.memory_level(fp["kv_bytes"])
    assert e["total"] - no_kv["total"] == pytest.approx(ops["kv_bytes"] / 8.0 * pj)
    assert e["kv_level"] == level
    for p in TS.SENS_PROFILES:                                  # the same profiles as the LM streams
        assert p in PROFILES


def test_sln_integer_stream_hand_count_and_c_runtime() -> None:
    m = _tiny_sln()
    x = torch.randn(6, 25, 2, generator=torch.Generator().manual_seed(4))
    qm = TS.quantize_series(m, x)
    xq = TS.quantize_inputs(x)
    run = TS.sln_int8_run(qm, xq, np.zeros(6, np.int64))
    assert np.array_equal(run["logits"].argmax(1), m(x).argmax(1).numpy())     # int8 = float decisions here
    # hand count of the MACs: a dense 2N column per nonzero input and per nonzero winner of the previous step,
    # C per neuron that fired at all (the readout once per series)
    N2, macs = 2 * qm.n_neurons, 0
    st = intspec.init_state(qm, 6)
    acc = np.zeros((6, qm.n_neurons), np.int64)
    for t in range(25):
        macs += int((xq[:, t] != 0).sum() + (st.y[0] != 0).sum()) * N2
        acc += intspec.q_step(qm, st, xq[:, t])
    macs += int((acc != 0).sum()) * qm.n_classes
    assert run["ops"]["macs"] * 6 * 25 == pytest.approx(macs)
    assert run["ops"]["kv_bytes"] == 0.0
    if compiler() is None:
        pytest.skip("no C compiler")
    from sln.fmt import to_bytes
    cs = TS.c_stream(to_bytes(qm), xq[2], repeats=2)
    assert np.array_equal(cs["acc"], acc[2]) and np.array_equal(cs["h0"], st.h[0][2])   # bit for bit
    assert cs["us_per_event"] > 0


def test_quantize_series_refuses_the_last_state_readout() -> None:
    cfg = get_config("sln-ts-small", n_neurons=32, input_size=1, n_classes=2, max_series_steps=0)
    with pytest.raises(ValueError, match="readout 'mean'"):
        TS.quantize_series(SLN(cfg), torch.zeros(2, 5, 1))


def _fake(acc: float, e_series: float, e_c: float) -> dict:
    pc = {"energy_uj_by_profile": {p: 0.0 for p in TS.SENS_PROFILES}, "latency_ms_torch": 1.0,
          "latency_us_c_float": 10.0}
    return {"series": {**pc, "energy_uj": e_series, "energy_uj_by_profile": {p: e_series for p in TS.SENS_PROFILES}},
            "256": {**pc, "energy_uj": e_c, "energy_uj_by_profile": {p: e_c for p in TS.SENS_PROFILES}}}


def test_compare_picks_the_cheapest_transformer_at_least_as_accurate() -> None:
    gpts = [{"name": n, "accuracy_int8": a, "per_context": _fake(a, e1, e2)}
            for n, a, e1, e2 in (("small", 0.85, 0.01, 0.02), ("mid", 0.92, 0.05, 0.2), ("big", 0.97, 0.2, 0.8))]
    sln = {"accuracy_int8": 0.90, "energy_uj": 0.1, "latency_us_c_int8": 5.0, "latency_ms_torch": 0.5,
           "energy_uj_by_profile": {p: 0.1 for p in TS.SENS_PROFILES}}
    doc = {"sln": sln, "gpts": gpts, "contexts": [256], "comparison": {}, "sensitivity": {}}
    TS.compare(doc)
    s, c = doc["comparison"]["series"], doc["comparison"]["256"]
    assert s["frontier"] == "mid" and s["energy_ratio_frontier"] == pytest.approx(0.5)
    assert c["energy_ratio_frontier"] == pytest.approx(2.0) and c["frontier_latency_ratio_c"] == pytest.approx(2.0)
    assert s["bracket"] == ["mid", "small"]                      # more accurate first, as lm_streams.match
    sln["accuracy_int8"] = 0.99                                  # no transformer as accurate: no headline
    doc["comparison"] = {}
    TS.compare(doc)
    assert doc["comparison"]["series"]["frontier"] is None


def test_command_needs_checkpoints(capsys: pytest.CaptureFixture[str]) -> None:
    from sln.bench.cli import main
    assert main(["--task", "ts-streams"]) == 2
    assert "ts_streams_train" in capsys.readouterr().err


def test_break_even_context_interpolates_log_log() -> None:
    g = {"per_context": {"series": {"energy_uj": 9.0}, "100": {"energy_uj": 0.1}, "400": {"energy_uj": 0.4},
                         "1600": {"energy_uj": 1.6}}}
    assert TS.break_even_context(g, 0.2) == pytest.approx(200.0)        # energy proportional to c: c = 200
    assert TS.break_even_context(g, 0.05) == 100.0                      # above the SLN from the start
    assert TS.break_even_context(g, 5.0) is None                        # never reaches it in the counted range


def test_size_flag() -> None:
    import argparse

    from sln.bench.ts_streams_train import parse_size
    assert parse_size("32x2") == (32, 2, 4) and parse_size("8x1x1") == (8, 1, 1)
    assert TG.gpt_name(8, 1, 1) == "ts-gpt-d8-L1-H1" and TG.gpt_name(8, 1, 4) == "ts-gpt-d8-L1"
    for bad in ("32", "6x1", "8x0", "axb"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_stream_models_keep_the_recipe_they_were_measured_with() -> None:
    """bench/ts_streams.* were measured with homeostasis on; the offline recipe turned it off (2026-12-03), the
    streams' overrides keep it (and the stream-only settings) until they are re-measured."""
    cfg = get_config("sln-ts-small", **SLN_OVERRIDES)
    assert get_config("sln-ts-small").boost_beta == 0.0 and cfg.boost_beta == 1.0
    assert (cfg.readout, cfg.max_series_steps, cfg.series_norm, cfg.min_steps) == ("mean", 0, "global", 0)

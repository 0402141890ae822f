"""Streams benchmark (issue 9 §3): int8 GPT counts, KV-cache growth, one pricing function, the command."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from sln.bench import gpt_int8 as G
from sln.bench import lm_streams as LS
from sln.energy import PROFILES, get_profile
from sln.gpt import GPTLM, GPTConfig


def _tiny_gpt(d: int = 16, layers: int = 2, heads: int = 2, vocab: int = 11) -> GPTLM:
    torch.manual_seed(0)
    return GPTLM(GPTConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads)).eval()


def test_counted_step_is_the_model_and_matches_the_formula() -> None:
    m = _tiny_gpt()
    ids = torch.randint(0, 11, (40,), generator=torch.Generator().manual_seed(1))
    for c in (1, 5, 17):
        cnt, logits = G.count_token(m, ids, c)
        ref, _ = m(ids[:c].view(1, -1))
        assert torch.allclose(logits, ref[0, -1], atol=1e-5)          # the counted step IS the decode step
        got, want = G.counter_totals(cnt), G.gpt_int8_formula(16, 2, 2, 11, c)
        assert got == pytest.approx(want, rel=0, abs=1e-6)


def test_formula_hand_count_d8_one_layer() -> None:
    # d=8, L=1, H=1, V=3, context 4, counted by hand:
    # MACs: QKV 192 + scores 32 + values 32 + proj 64 + fc 256 + out 256 + head 24 = 856
    # int8 weights: 12 d^2 = 768 + tied head 24 + embedding row 8 = 800
    # KV: read K and V of 4 positions (2 x 4 x 8 = 64) + write the new k, v (16) = 80
    # requantised outputs: qkv 24 + scores 4 + values 8 + proj 8 + fc 32 + out 8 + head 3 = 87
    f = G.gpt_int8_formula(8, 1, 1, 3, 4)
    assert (f["macs"], f["weight_bytes"], f["kv_bytes"], f["requant"]) == (856, 800, 80, 87)
    # vectors: 3 LayerNorm gains 3 x 32 B + multipliers/shifts 8 B x (24 + 8 + 32 + 8 + 3 channels + 2 matmuls)
    assert f["param_bytes"] == 3 * 32 + 8 * (24 + 8 + 32 + 8 + 3 + 2)


def test_kv_term_grows_linearly_in_context() -> None:
    m = _tiny_gpt()
    prof = get_profile()
    ids = torch.randint(0, 11, (400,), generator=torch.Generator().manual_seed(2))
    kv = {}
    for c in (50, 100, 200, 300):
        cnt, _ = G.count_token(m, ids, c)
        ops, fp = G.gpt_int8_ops(m, cnt, c, prof.nonlin_muls, prof.nonlin_adds)
        kv[c] = ops["kv_bytes"]
        assert fp["kv_bytes"] == 2 * 2 * c * 16                        # L * 2 c d
    d1, d2, d3 = kv[100] - kv[50], kv[200] - kv[100], kv[300] - kv[200]
    assert d1 > 0 and d2 == 2 * d1 and d3 == d2                       # exactly linear in c
    assert d1 == 2 * 2 * 50 * 16                                      # L layers x (K + V) x dc x d


def test_price_token_is_one_function_for_both() -> None:
    ops = {"macs": 1000.0, "adds32": 300.0, "muls32": 100.0, "weight_bytes": 5000.0, "param_bytes": 400.0,
           "act_bytes": 200.0, "kv_bytes": 0.0}
    fp = {"matrix_bytes": 3e5, "param_bytes": 2e4, "act_bytes": 2e3, "kv_bytes": 0.0}
    prof = get_profile()
    base = LS.price_token(ops, fp, prof)
    assert base["kv_mem"] == 0 and base["total"] > 0
    # a KV cache read of B bytes from a data set of F bytes costs exactly what the same bytes cost as
    # matrices of footprint F: the same memory_level prices every data set
    ops2, fp2 = dict(ops, kv_bytes=8000.0), dict(fp, kv_bytes=3e6)
    e2 = LS.price_token(ops2, fp2, prof)
    _, pj = prof.memory_level(3e6)
    assert e2["kv_mem"] == pytest.approx(1000 * pj) and e2["total"] == pytest.approx(base["total"] + 1000 * pj)
    assert pj > prof.memory_level(3e5)[1]                             # bigger data set, dearer access
    # different profiles change the price
    assert LS.price_token(ops2, fp2, PROFILES["horowitz45-dram-high"])["total"] > e2["total"]


def test_match_interpolates_between_bracketing_gpts() -> None:
    def g(name: str, bpc: float, e: float) -> dict:
        return {"name": name, "b": bpc, "per_context": {"1": {"energy_uj_by_profile": {"horowitz45": e}}}}
    m = LS.match(2.5, [g("a", 2.0, 4.0), g("b", 3.0, 1.0)], "b", "1")
    assert m["bracket"] == ["a", "b"] and m["interpolated_energy_uj"] == pytest.approx(2.0)   # geometric mean
    assert m["frontier"] == "a" and m["frontier_energy_uj"] == 4.0
    # frontier: the cheapest GPT at least as good as the SLN, not the nearest one
    m = LS.match(2.5, [g("a", 2.0, 4.0), g("c", 2.4, 9.0), g("b", 3.0, 1.0)], "b", "1")
    assert m["nearest"] == "c" and m["frontier"] == "a" and m["bracket"] == ["c", "b"]
    m = LS.match(1.5, [g("a", 2.0, 4.0), g("b", 3.0, 1.0)], "b", "1")
    assert m["bracket"] is None and m["nearest"] == "a" and m["frontier"] is None


def test_command_on_tiny_models(tmp_path: Path) -> None:
    from sln.config import get_config
    from sln.lm import save_lm
    from sln.model import SLN
    from sln.text import prepare

    vocab, _, _ = prepare()
    V = len(vocab)
    torch.manual_seed(0)
    s = SLN(get_config("sln-lm-tiny").replace(input_size=V, n_classes=V, n_neurons=64))
    save_lm(tmp_path / "s.safetensors", s, vocab)
    paths = []
    for d in (8, 16):
        g = GPTLM(GPTConfig(vocab_size=V, d_model=d, n_layers=1, n_heads=2))
        save_lm(tmp_path / f"g{d}.safetensors", g, vocab)
        paths.append(str(tmp_path / f"g{d}.safetensors"))
    t0 = time.perf_counter()
    out = tmp_path / "o.json"
    rc = LS.main(["--sln-checkpoint", str(tmp_path / "s.safetensors"), "--gpt-checkpoints", *paths,
                  "--contexts", "16", "64", "--val-chars", "600", "--calib-chars", "2000", "--streams", "4",
                  "--latency-tokens", "8", "--json", str(out), "--markdown", str(tmp_path / "o.md"),
                  "--plot", str(tmp_path / "o.png")])
    assert rc == 0 and time.perf_counter() - t0 < 30
    doc = json.loads(out.read_text())
    assert set(doc["comparison"]) == {"16", "64"}
    s_ = doc["sln"]
    for k in ("val_bpc", "val_bpc_int8", "energy_uj", "latency_ms_torch"):
        assert s_[k] > 0
    assert s_["latency_us_c_int8"] is None or s_["latency_us_c_int8"] > 0
    for gg in doc["gpts"]:
        e16, e64 = gg["per_context"]["16"]["energy_uj"], gg["per_context"]["64"]["energy_uj"]
        assert 0 < e16 < e64 and gg["per_context"]["64"]["latency_ms_torch"] > 0
    # both sides' energies are price_token of their recorded counts and footprints (one pricing function)
    prof = get_profile()
    assert LS.price_token(s_["ops"], s_["footprint_bytes"], prof)["total"] * 1e-6 == pytest.approx(s_["energy_uj"])
    row = doc["gpts"][0]["per_context"]["64"]
    assert LS.price_token(row["ops"], row["footprint_bytes"], prof)["total"] * 1e-6 == pytest.approx(row["energy_uj"])
    assert row["ops"]["kv_bytes"] > 0 and s_["ops"]["kv_bytes"] == 0
    c = doc["comparison"]["64"]
    assert c["energy_ratio_nearest"] > 0 and c["latency_ratio_torch_vs_torch"] > 0
    assert c["latency_ratio_c_vs_c"] is None or c["latency_ratio_c_vs_c"] > 0
    assert set(doc["sensitivity"]["64"]) == set(LS.SENS_PROFILES)
    assert (tmp_path / "o.png").stat().st_size > 1000 and "Equal bits" in (tmp_path / "o.md").read_text()


def test_c_gpt_step_equals_the_model() -> None:
    from sln.bench.gpt_c import GPTStepC, gpt_c_lib

    if gpt_c_lib() is None:
        pytest.skip("no C compiler")
    m = _tiny_gpt()
    ids = torch.randint(0, 11, (40,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref, _ = m(ids[:30].view(1, -1))
    g = GPTStepC(m, 64)
    for p in range(30):                                   # step by step from an empty cache
        assert abs(g.step(int(ids[p]), p) - ref[0, p].numpy()).max() < 1e-4
    g2 = GPTStepC(m, 64)
    g2.prime(ids[:29])                                    # cache primed from PyTorch: the same next logits
    assert abs(g2.step(int(ids[29]), 29) - ref[0, 29].numpy()).max() < 1e-4
    with pytest.raises(ValueError):
        g2.step(11, 0)                                    # token outside the vocabulary
    assert g2.decode_latency_us(ids, 20, 8, repeats=1) > 0


def test_benchmark_task_lm_streams_dispatches(monkeypatch: pytest.MonkeyPatch) -> None:
    from sln.bench import cli

    seen = {}
    monkeypatch.setattr(LS, "run_streams", lambda a: seen.update(vars(a)) or {})
    assert cli.main(["--task", "lm-streams", "--sln-checkpoint", "s.st", "--gpt-checkpoints", "a.st", "b.st",
                     "--contexts", "8", "16", "--val-chars", "500"]) == 0
    assert seen["gpt_checkpoints"] == [Path("a.st"), Path("b.st")] and seen["contexts"] == [8, 16]
    assert seen["val_chars"] == 500 and str(seen["json"]) == "bench/lm_streams.json"
    assert cli.main(["--task", "lm-streams", "--sln-checkpoint", "s.st"]) == 2      # no GPTs: usage error

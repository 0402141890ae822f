"""The character-LM benchmark (sln/bench/lm.py, `benchmark.py --task lm`): counts, decoding, the run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from conftest import skip_or_fail_in_ci

from sln.bench import lm as B
from sln.config import get_config
from sln.data import DataError
from sln.energy import estimate_pj
from sln.gpt import GPTLM, GPTConfig, gpt_config_for_params
from sln.model import SLN

V = 84


def _sln_lm(n: int = 32) -> SLN:
    torch.manual_seed(0)
    return SLN(get_config("sln-lm-small").replace(input_size=V, n_classes=V, n_neurons=n)).eval()


def _gpt() -> GPTLM:
    torch.manual_seed(0)
    return GPTLM(GPTConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, ctx=32)).eval()


def test_ops_per_token_sln_constant_gpt_grows() -> None:
    cfg = get_config("sln-lm-small").replace(input_size=V, n_classes=V)
    s = SLN(cfg)
    ops = B.sln_ops_per_token(s)
    N, k = cfg.n_neurons, cfg.k
    assert ops["macs"] == 2 * N * k + k * V          # winners' recurrent columns + readout of the winners
    assert ops["acs"] == 2 * N                       # the character's column of W_in
    assert B.total_ops(ops) == 2 * ops["macs"] + ops["acs"] + ops["adds"] + ops["muls"] + ops["cmps"] \
        + ops["nonlin"]
    g = GPTLM(gpt_config_for_params(s.num_params(), V))
    d, L = g.cfg.d_model, g.cfg.n_layers
    m64, m1024 = B.gpt_ops_per_token(g, 64)["macs"], B.gpt_ops_per_token(g, 1024)["macs"]
    assert m1024 - m64 == L * 2 * (1024 - 64) * d      # attention grows linearly with the context
    assert m64 == L * (12 * d * d + 2 * 64 * d) + V * d
    assert B.gpt_ops_per_token(g, 64)["weight_bytes"] == 4 * g.num_params()   # every weight once per token
    # working sets: the SLN's state is fixed, the GPT's KV cache grows with the context
    assert B.act_footprint(s, 64) == B.act_footprint(s, 1024) == 4 * cfg.n_layers * 4 * N
    assert B.act_footprint(g, 1024) == 16 * B.act_footprint(g, 64)


def test_decode_step_is_the_models_own_forward() -> None:
    """The timed SLN decode loop (one step + the readout) gives the logits of SLN.run on the same text."""
    m = _sln_lm()
    ids = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m.run(ids).logits                         # (B, T, V)
        state, outs = m.init_state(2), []
        for t in range(ids.shape[1]):
            logits, state = B.sln_lm_step(m, ids[:, t], state)
            outs.append(logits)
    assert torch.allclose(torch.stack(outs, 1), full, atol=1e-6)
    assert not B.is_gpt(m) and B.is_gpt(_gpt())
    assert B.vocab_size(m) == B.vocab_size(_gpt()) == V
    for model in (m, _gpt()):
        assert B.tokens_per_second(model, 8, n=4, repeats=2) > 0


def test_lm_benchmark_on_tiny_checkpoints(tmp_path: Path, capsys) -> None:
    from sln.lm import save_lm
    from sln.text import prepare

    try:
        vocab, _, _ = prepare()
    except DataError as e:
        skip_or_fail_in_ci(f"Shakespeare texts unavailable: {e}")
    assert len(vocab.chars) == V
    paths = {}
    for name, model in (("sln", _sln_lm()), ("gpt", _gpt())):
        paths[name] = tmp_path / f"{name}.safetensors"
        save_lm(paths[name], model, vocab, {"train_seconds": 0.0, "chars": 0})
    out = tmp_path / "lm.json"
    args = argparse.Namespace(json=out, quick=True, sln_checkpoint=paths["sln"], gpt_checkpoint=paths["gpt"],
                              contexts=[8, 32])
    assert B.run_lm_benchmark(args) == 0
    assert "GPT/SLN ops" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["task"] == "lm" and res["val_chars"] == 20_000 and res["threads"] == 1
    s, g = res["models"]["sln"], res["models"]["gpt"]
    assert s["config"] == {"n_neurons": 32, "k": get_config("sln-lm-small").replace(n_neurons=32).k, "layers": 1}
    assert 0 < s["active_fraction"] <= 1 and s["val_bpc"] > 0 and g["val_bpc"] > 0
    # per token: the SLN's cost does not depend on the context, the GPT's grows
    assert s["per_token"]["8"] == {**s["per_token"]["32"], "tokens_per_s_batch1": s["per_token"]["8"]
                                   ["tokens_per_s_batch1"]}
    assert g["per_token"]["32"]["macs"] - g["per_token"]["8"]["macs"] == 2 * (32 - 8) * 16
    # the energy is the one table applied to the counted ops, memory levels from the fp32 sizes
    for name, model in (("sln", _sln_lm()), ("gpt", _gpt())):
        for c in (8, 32):
            ops = B.gpt_ops_per_token(model, c) if name == "gpt" else B.sln_ops_per_token(model)
            e = estimate_pj(ops, 4 * model.num_params(), B.act_footprint(model, c))
            p = res["models"][name]["per_token"][str(c)]
            assert p["energy_uj"] == pytest.approx(e["total"] * 1e-6, rel=1e-12)
            assert p["ops"] == pytest.approx(B.total_ops(ops))
    r = res["ratios"]["32"]
    assert r["energy_gpt_over_sln"] == pytest.approx(g["per_token"]["32"]["energy_uj"] / s["per_token"]["32"]
                                                     ["energy_uj"])
    assert res["bpc_gap_percent"] == pytest.approx(100 * (s["val_bpc"] - g["val_bpc"]) / g["val_bpc"])


def test_missing_checkpoints_without_quick_is_an_error(tmp_path: Path, capsys) -> None:
    args = argparse.Namespace(json=None, quick=False, sln_checkpoint=tmp_path / "none.st",
                              gpt_checkpoint=tmp_path / "none2.st", contexts=None)
    assert B.run_lm_benchmark(args) == 2
    assert "trained checkpoints missing" in capsys.readouterr().err

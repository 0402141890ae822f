"""ids_bench's selection and bounds (sln/security/ids_bench_plan.py): --models, --types, --max-train-packets,
--max-packets, the time budget, the plan, and the whole-stream scorers the bounded runs use (~15 s)."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from sln.config import get_config
from sln.model import SLN
from sln.security import ids_bench
from sln.security import ids_bench_plan as P
from sln.security import ids_data as D
from sln.security.ids import PacketGRU, residual_weight, score_stream, stream_inputs, stream_outputs

IDS = "tests/fixtures/ids"


@pytest.fixture(scope="module")
def cap() -> D.Capture:
    return P.load_capture(IDS)[0]


def test_parse_models_orders_expands_and_refuses_unknown_names() -> None:
    assert P.parse_models("kitnet10, gru,kitnet10") == ["kitnet10", "gru"]
    assert P.parse_models("sup") == ["sup-sln", "sup-gru", "gbt"]
    assert P.parse_models(None) == list(P.KNOWN)
    with pytest.raises(ValueError, match=r"unknown model 'kitnet5'.*known: sln, gru, kitnet1, kitnet10, iforest"):
        P.parse_models("gru,kitnet5")
    with pytest.raises(ValueError, match="empty"):
        P.parse_models(",")
    with pytest.raises(ValueError, match="unknown attack type.*nope.*this capture has bruteforce_http"):
        P.parse_types("flood_syn,nope", ["bruteforce_http", "flood_syn"])


def test_cli_errors_name_the_known_models(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        ids_bench.main(["--models", "kitnet10,xgboost", "--plan"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'xgboost'" in err and "sup-sln" in err and "iforest" in err
    with pytest.raises(SystemExit):
        ids_bench.main(["--max-train-packets", "0", "--plan"])
    assert "--max-train-packets must be >= 1" in capsys.readouterr().err


def test_limit_train_keeps_blocks_of_the_mask() -> None:
    m = np.zeros(10_000, bool)
    m[100:3100] = True
    m[5000:8000] = True                                   # 6,000 training packets in two runs
    assert P.limit_train(m, None) is m and P.limit_train(m, 6000) is m
    k = P.limit_train(m, 1000, block=100)
    idx = np.flatnonzero(k)
    assert len(idx) == 1000 and not (k & ~m).any()        # a subset of the mask, exactly n
    runs = D.runs(k)
    assert all(b - a == 100 for a, b in runs) and len(runs) == 10      # ten 100-packet blocks
    assert idx.min() < 3100 and idx.max() >= 7000         # spread over both runs, not only the start
    k = P.limit_train(m, 250, block=100)
    assert k.sum() == 200                                  # whole blocks only (n // block of them)


def test_head_cuts_every_array(cap: D.Capture) -> None:
    h = P.head(cap, 5000)
    assert len(h.y) == len(h.kind) == len(h.ev) == len(h.ev.x) == len(h.ev.flow_id) == 5000
    np.testing.assert_array_equal(h.ev.x, cap.ev.x[:5000])
    assert P.head(cap, None) is cap


def test_plan_and_budget_skip_items(cap: D.Capture) -> None:
    out = io.StringIO()
    res = ids_bench.run(IDS, models="iforest,kitnet10,kitnet1", max_train_packets=1024, time_budget_s=1e-3,
                        log=out)
    log = out.getvalue()
    assert "plan: 3 items" in log and "1. iforest" in log and "3. kitnet1" in log
    assert "1,024 unsupervised training packets (capped at 1,024)" in log
    assert [s["item"] for s in res["skipped"]] == ["iforest", "kitnet10", "kitnet1"]
    assert res["unsupervised"] == [] and "Not run" in ids_bench.markdown(res)
    plan = P.plan(["gbt", "kitnet10"], cap, D.unsupervised_split(cap),
                  {t: D.loao_split(cap, t) for t in cap.types()}, ["flood_syn", "slow_http"], 300, False)
    assert [i.key for i in plan] == ["gbt:flood_syn", "gbt:slow_http", "kitnet10"]
    assert plan[2].est_s > 5 * plan[0].est_s > 0          # 10 KitNET passes cost more than one tree fit


def test_bounded_run_gives_rows_in_canonical_order() -> None:
    out = io.StringIO()
    res = ids_bench.run(IDS, models="gbt,kitnet1,iforest", types="flood_syn", max_train_packets=2048, log=out)
    assert [r["model"] for r in res["unsupervised"]] == ["KitNET (m=10, 1 pass)", "Isolation Forest"]
    assert list(res["loao"]) == [t for t in res["loao"]] and set(res["loao"]) == set(D.load_capture(IDS).types())
    assert [r["model"] for r in res["loao"]["flood_syn"]] == ["GBT", "KitNET (m=10, 1 pass) (unsup.)",
                                                              "Isolation Forest (unsup.)"]
    assert [r["model"] for r in res["loao"]["slow_http"]][0] == "KitNET (m=10, 1 pass) (unsup.)"
    assert res["skipped"] == [] and set(res["seconds"]) == {"gbt:flood_syn", "kitnet1", "iforest"}
    assert "done in" in out.getvalue()
    for r in res["unsupervised"]:
        assert r["per_packet"]["roc_auc"] > 0.9
    md = ids_bench.markdown(res)
    assert "| flood_syn | GBT |" in md and "at most training packets 2,048" in md and "Speed" not in md


@torch.no_grad()
def test_whole_stream_scorers_match_the_per_packet_path(cap: D.Capture) -> None:
    """The block scorer (SLN) and the chunked GRU give train_on_split's per-packet / one-pass scores."""
    c = P.head(cap, 4000)
    sp = D.unsupervised_split(c)
    scale = D.fit_scale(c.ev.x[sp.train])
    x, dt = stream_inputs(c, scale)
    torch.manual_seed(0)
    cfg = get_config("sln-ids-small").replace(n_neurons=32, active_frac=0.125)
    m = SLN(cfg).eval()
    tb = sp.train & (c.y == 0)
    out = stream_outputs(m, x, dt)
    w = residual_weight(out[tb], x[tb])
    ref = score_stream(m, x, dt, "reconstruct", weight=w)
    spec = D.IdsSpec("reconstruct", scale.tolist(), 0.0, 1e-3, resid_weight=w.tolist())
    got = P.sln_block_scores(m, spec, c, chunk=700)                    # state carried over 6 chunks
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
    g = PacketGRU(58, 16, 58).eval()
    one = stream_outputs(g, x, dt)
    np.testing.assert_allclose(P.gru_outputs(g, x, chunk=333), one, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(os.environ.get("SLN_SLOW_TESTS") != "1", reason="slow (~1 min): set SLN_SLOW_TESTS=1")
def test_bounded_neural_rows() -> None:
    res = ids_bench.run(IDS, models="sln,sup-sln", types="flood_syn", steps=20, max_train_packets=3000,
                        log=io.StringIO())
    assert res["unsupervised"][0]["model"] == "SLN sln-ids-small"
    assert res["loao"]["flood_syn"][0]["model"] == "SLN sln-ids-sup"
    assert res["unsupervised"][0]["per_packet"]["roc_auc"] > 0.8

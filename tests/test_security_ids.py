"""The packet IDS (issue 11 part 2): splits, metrics, KitNET, the SLN detectors and their counts.

All on the shipped small capture (tests/fixtures/ids); models are tiny and trained for a few steps.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from conftest import FIXTURES, skip_or_fail_in_ci

from sln.config import SLNConfig, get_config
from sln.model import SLN
from sln.security import ids, ids_bench
from sln.security import ids_data as D
from sln.security.ids_stream import LatencyHistogram, StepScorer
from sln.security.kitnet import KitNET, cluster_features, correlation_distance
from sln.security.metrics import roc_auc
from sln.tasks.loop import RunOptions, TrainSpec

IDS = FIXTURES / "ids"
OPTS = RunOptions(out=None, progress=False, threads=1)


@pytest.fixture(scope="module")
def cap() -> D.Capture:
    return D.load_capture(IDS)


def _engine_or_skip() -> None:
    from sln.engine import c_backend_available
    if not c_backend_available():
        skip_or_fail_in_ci("the C runtime does not build here (no C compiler)")


# ------------------------------------------------------------------------------------ splits

def test_unsupervised_split(cap: D.Capture) -> None:
    sp = D.unsupervised_split(cap)
    t = cap.t_rel
    assert not cap.y[sp.train | sp.val].any()                   # benign prefix only
    assert t[sp.train].max() < t[sp.val].min() and t[sp.val].max() < cap.warmup <= t[sp.test].min()
    assert not (sp.train & sp.test).any() and not (sp.val & sp.test).any()
    assert int(cap.y[sp.test].sum()) == int(cap.y.sum()) == 25278   # every attack packet is tested
    assert 2500 < sp.train.sum() < 5000 and sp.val.sum() > 500


def test_leave_one_type_out_never_tests_on_training_packets(cap: D.Capture) -> None:
    reg = D.regions(cap)
    assert sorted(reg) == ["bruteforce_http", "flood_syn", "flood_udp", "scan_syn", "scan_udp", "slow_http"]
    for held in reg:
        sp = D.loao_split(cap, held)
        assert not (sp.train & sp.test).any() and not (sp.val & (sp.train | sp.test)).any()
        atk_test = set(cap.kind[sp.test & (cap.y == 1)].tolist())
        assert atk_test == {held}                                # only the held-out type is tested ...
        assert (sp.test[(cap.kind == held) & (cap.y == 1)]).all()     # ... all of its packets
        assert set(cap.kind[sp.train & (cap.y == 1)].tolist()) == set(reg) - {held}
        assert (cap.y[sp.test] == 0).sum() > 3000               # benign gaps + interleaved benign packets
        for a, b in sp.segments():                              # training windows are real stream runs
            assert sp.train[a:b].all() and (a == 0 or not sp.train[a - 1])
    with pytest.raises(ValueError, match="unknown attack type"):
        D.loao_split(cap, "teleport")


def test_scale_keeps_zeros_and_clips(cap: D.Capture) -> None:
    s = D.fit_scale(cap.ev.x[:3000])
    z = D.apply_scale(cap.ev.x, s)
    assert ((cap.ev.x == 0) == (z == 0)).all()                   # no mean shift: absent features stay events-free
    assert np.abs(z).max() <= D.CLIP and (s >= D.SCALE_FLOOR).all()


# ------------------------------------------------------------------------------------ metrics

def test_eer_and_detection_delay(cap: D.Capture) -> None:
    y = np.r_[np.zeros(100), np.ones(100)]
    assert D.eer(y, y) == 0.0 and D.eer(y, -y) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0, 1, 20000), rng.normal(2, 1, 20000)]       # EER of two unit normals 2 apart: Phi(-1)
    assert D.eer(np.r_[np.zeros(20000), np.ones(20000)], s) == pytest.approx(0.1587, abs=0.01)
    idx = np.flatnonzero((cap.kind == "flood_syn") & (cap.y == 1))
    s = np.zeros(len(cap.y))
    s[idx[10:]] = 1.0                                            # the first 10 flood packets are missed
    d = D.detection_delay(cap, s, 0.5, "flood_syn")
    assert d["packets"] == 10 and d["seconds"] == pytest.approx(cap.ev.ts[idx[10]] - cap.ev.ts[idx[0]])
    assert D.detection_delay(cap, np.zeros(len(cap.y)), 0.5, "flood_syn")["seconds"] is None


def test_flow_view_takes_the_worst_packet(cap: D.Capture) -> None:
    sp = D.unsupervised_split(cap)
    s = cap.y.astype(np.float64) * 0.5
    fy, fs = D.flow_view(cap, s, sp.test)
    _, first = np.unique(cap.ev.flow_id, return_index=True)      # each flow's first packet
    assert len(fy) == int(sp.test[first].sum())
    assert ((fs > 0) == (fy == 1)).all() and roc_auc(fy, fs) == 1.0
    r = D.ids_report(cap, sp, s, 0.25)
    assert r["per_packet"]["roc_auc"] == 1.0 and r["per_packet"]["tpr@thr"] == 1.0 and r["per_packet"]["fpr@thr"] == 0
    assert r["per_flow"]["eer"] == 0.0 and set(r["per_type"]) == set(cap.types())


# ------------------------------------------------------------------------------------ KitNET

def test_feature_mapper_groups_correlated_features() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 3))
    cols = [base[:, g] + 0.05 * rng.normal(size=500) for g in (0, 1, 2) for _ in range(4)]   # 3 groups of 4
    x = np.stack(cols, 1)[:, rng.permutation(12)]
    cl = cluster_features(correlation_distance(x), max_size=4)
    corr = np.corrcoef(x.T)
    assert sorted(i for c in cl for i in c) == list(range(12)) and all(len(c) <= 4 for c in cl)
    assert len(cl) == 3 and all(corr[np.ix_(c, c)].min() > 0.9 for c in cl)
    assert all(len(c) <= 2 for c in cluster_features(correlation_distance(x), max_size=2))


def test_kitnet_scores_anomalies_higher() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 4))
    x = np.c_[z, z @ rng.normal(size=(4, 8))]                      # 12 features, 4 degrees of freedom
    kn = KitNET(max_size=5, epochs=2, seed=0).fit(x[:2000])
    bad = x[2000:2500].copy()
    bad[:, 4:] = rng.normal(size=(500, 8)) * bad[:, 4:].std(0)    # the correlations broken, marginals kept
    s = kn.score(np.r_[x[2500:], bad])
    assert roc_auc(np.r_[np.zeros(500), np.ones(500)], s) > 0.8          # measured 0.885
    assert kn.num_params() > 0 and np.isfinite(kn.score(x[:10] * 1e6)).all()   # far outside: no overflow


def test_kitnet_op_count_by_hand() -> None:
    kn = KitNET(max_size=2, seed=0).fit(np.random.default_rng(0).normal(size=(100, 2)) @ [[1, 0.9], [0, 0.1]])
    assert kn.clusters == [[0, 1]]
    # ensemble AE v=2 h=2 and output AE v=1 h=1: MACs 2vh + v each
    assert kn.ops_per_packet()["macs"] == (2 * 2 * 2 + 2) + (2 * 1 * 1 + 1)
    assert kn.ops_per_packet()["weight_bytes"] == 4 * 2 * (4 + 1)


# ------------------------------------------------------------------------------------ SLN detectors

def test_sln_reconstruction_detector_learns(cap: D.Capture) -> None:
    """60 steps of a small SLN on the benign prefix: the loss falls and attacks score above benign."""
    torch.manual_seed(0)
    cfg = get_config("sln-ids-small").replace(n_neurons=32, active_frac=0.125)
    m = SLN(cfg)
    sp = D.unsupervised_split(cap)
    x, dt = ids.stream_inputs(cap, D.fit_scale(cap.ev.x[sp.train]))
    task = ids.PacketTask(x, dt, cap.y, sp.segments(), "reconstruct", 16, 0)
    with torch.no_grad():
        before = float(task.loss(m, task.get_batch(0))[0])
    t = ids.train_on_split(m, cap, sp, "reconstruct", TrainSpec(lr=1e-2, max_steps=60, warmup_steps=5), OPTS, 16, 0)
    with torch.no_grad():
        after = float(task.loss(m.eval(), task.get_batch(0))[0])
    assert after < 0.5 * before
    r = D.ids_report(cap, sp, t.scores, t.spec.threshold)
    assert r["per_packet"]["roc_auc"] > 0.9 and r["per_flow"]["roc_auc"] > 0.9
    # the stored threshold lets at most 0.1 % of the benign validation packets through
    val = t.scores[sp.val]
    assert (val > t.spec.threshold).mean() <= 1e-3 and t.spec.mode == "reconstruct" and len(t.spec.scale) == 58


def test_supervised_detector_and_gru_train_on_a_held_out_split(cap: D.Capture) -> None:
    sp = D.loao_split(cap, "scan_udp")
    torch.manual_seed(0)
    m = SLN(get_config("sln-ids-sup").replace(n_neurons=32, active_frac=0.125))
    t = ids.train_on_split(m, cap, sp, "classify", TrainSpec(lr=1e-2, max_steps=40, warmup_steps=4), OPTS, 16, 0)
    te = sp.test
    assert roc_auc(cap.y[te], t.scores[te]) > 0.8 and t.spec.held_out == "scan_udp"
    H = ids.gru_hidden_for(m.num_params(), 58, 2)
    g = ids.PacketGRU(58, H, 2)
    assert abs(g.num_params() - m.num_params()) / m.num_params() < 0.03      # H is an integer: 2.4 % at N=32
    tg = ids.train_on_split(g, cap, sp, "classify", TrainSpec(lr=1e-2, max_steps=40, warmup_steps=4), OPTS, 16, 0)
    assert tg.scores.shape == (len(cap.y),) and np.isfinite(tg.scores).all()
    with pytest.raises(ValueError, match="n_classes=2"):
        ids.mode_of(3)


def test_engine_step_scores_equal_the_torch_step(cap: D.Capture) -> None:
    _engine_or_skip()
    torch.manual_seed(3)
    m = SLN(SLNConfig(task="events", input_size=58, n_classes=58, n_neurons=48, active_frac=0.0625)).eval()
    with torch.no_grad():
        for c in m.cells:
            c.boost.uniform_(0.5, 1.5)                           # trained-looking boosts decide the winners
    x, dt = ids.stream_inputs(cap, D.fit_scale(cap.ev.x[:3000]))
    a = ids.score_stream(m, x[:400], dt[:400], "reconstruct", backend="c")
    b = ids.score_stream(m, x[:400], dt[:400], "reconstruct", backend="torch")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the torch stream equals SLN.run over the same packets (the one float step, per-step readout)
    with torch.no_grad():
        out = m.run(torch.from_numpy(x[None, :400]), torch.from_numpy(dt[None, :400])).logits[0].numpy()
    np.testing.assert_allclose(ids.scores_from_outputs("reconstruct", out, x[:400]), b, rtol=1e-5, atol=1e-6)
    assert np.std(b) > 0.01                                      # the scores vary: the comparison means something


def test_sln_op_count_matches_the_engine_counters(cap: D.Capture) -> None:
    """The analytic per-packet count of the benchmark equals what the C runtime counts as it executes."""
    _engine_or_skip()
    torch.manual_seed(0)
    cfg = get_config("sln-ids-small")
    m = SLN(cfg).eval()
    x, dt = ids.stream_inputs(cap, D.fit_scale(cap.ev.x[:3000]))
    sc = StepScorer(m, "reconstruct", backend="c")
    n = 300
    sc.score_all(x[1:n + 1], dt[1:n + 1])
    per = sc.counts.per_term(per_inference=False)
    events = float((x[1:n + 1] != 0).sum(1).mean())
    ops, fp = ids_bench.sln_ops_per_packet(cfg, events)
    counted = (per["L0.input"]["mac"] + per["L0.recurrent"]["mac"] + per["L0.input"]["ac"]) / n
    readout_and_score = cfg.k * cfg.n_classes + cfg.n_classes
    assert counted == pytest.approx(ops["macs"] - readout_and_score, rel=0.01)
    assert fp["matrix"] == 4 * (sum(p.numel() for n_, p in m.named_parameters() if p.dim() == 2))
    e_sln = ids_bench.energy_nj(ops, fp)["total_nj"]
    assert 1 < e_sln < 1e4 and math.isfinite(e_sln)


def test_latency_histogram_quantiles() -> None:
    h = LatencyHistogram()
    for v in np.linspace(1e-6, 100e-6, 1000):
        h.add(float(v))
    assert h.quantile(0.5) == pytest.approx(50e-6, rel=0.03) and h.quantile(0.99) == pytest.approx(99e-6, rel=0.03)
    assert len(h.counts) == 1201 and h.n == 1000


@pytest.mark.skipif(os.environ.get("SLN_SLOW_TESTS") != "1", reason="slow (2-4 min): set SLN_SLOW_TESTS=1")
def test_benchmark_quick_runs_end_to_end() -> None:
    res = ids_bench.run(IDS, quick=True)
    md = ids_bench.markdown(res)
    assert "KitNET" in md and "SLN sln-ids-small" in md and "GBT" in md
    assert all(r["per_packet"]["roc_auc"] > 0.5 for r in res["unsupervised"])

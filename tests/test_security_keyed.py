"""The per-host-pair liquid state (sln.security.keyed, docs/SECURITY_IDS.md part 5): C block path = Python
per-packet path, a pair's scores do not depend on other pairs' packets, the table stays bounded, detect-net's
--state choice and its refusal without a calibrated threshold."""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sln.checkpoint import save_checkpoint
from sln.cli import main as sln_main
from sln.config import SLNConfig
from sln.engine import c_backend_available
from sln.model import SLN
from sln.security import fastpath as fp
from sln.security import keyed
from sln.security import packets as pk
from sln.security.ids_data import IdsSpec, fit_scale
from sln.security.ids_stream import NetDetector
from tests.conftest import FIXTURES

PCAP = FIXTURES / "ids" / "capture.pcap"
pytestmark = pytest.mark.skipif(not c_backend_available(), reason="needs a C compiler for the runtime")


def _head(n: int) -> bytes:
    data = PCAP.read_bytes()
    pos, out = 24, [data[:24]]
    for _ in range(n):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    return b"".join(out)


def _model(n: int = 3000) -> tuple[SLN, IdsSpec, pk.EventBatch]:
    torch.manual_seed(0)
    cfg = SLNConfig(task="events", input_size=58, n_classes=58, n_neurons=32, active_frac=0.125)
    model = SLN(cfg).eval()
    ev = pk.read_events(io.BytesIO(_head(n)))
    spec = IdsSpec("reconstruct", fit_scale(ev.x[:2000]).tolist(), 1.0, 1e-3,
                   resid_weight=np.linspace(0.5, 2.0, 58).tolist())
    return model, spec, ev


def _meta(ev: pk.EventBatch) -> np.ndarray:
    m = np.zeros((len(ev), 8), np.int64)
    m[:, 2], m[:, 3] = ev.src, ev.dst
    return m


def _step_scores(model: SLN, spec: IdsSpec, ev: pk.EventBatch, backend: str, **kw: float | str
                 ) -> tuple[np.ndarray, keyed.KeyedStepScorer]:
    ks = keyed.KeyedStepScorer(model, spec.mode, backend, spec.resid_weight, **kw)   # type: ignore[arg-type]
    inv = (1.0 / np.asarray(spec.scale, np.float64)).astype(np.float32)
    out = np.array([ks.score(np.clip(ev.x[i] * inv, -spec.clip, spec.clip).astype(np.float32), spec.dt_scale,
                             float(ev.ts[i]), int(ev.src[i]), int(ev.dst[i])) for i in range(len(ev))])
    return out, ks


@pytest.mark.parametrize("key", ["pair", "src"])
def test_keyed_block_scores_equal_the_per_packet_paths_with_small_caps_and_expiry(key: str) -> None:
    """KeyedBlockScorer in blocks of 97 = KeyedStepScorer on the C step (and on PyTorch), with a cap of 6 keys and
    a 0.3 s expiry so that evictions and expiries happen: the same scores and the same table counts."""
    model, spec, ev = _model()
    kb = keyed.KeyedBlockScorer(model, spec, cap=6, ttl=0.3, key=key)
    m = _meta(ev)
    got = np.concatenate([kb.scores(ev.x[i:i + 97], ev.ts[i:i + 97], m[i:i + 97]) for i in range(0, len(ev), 97)])
    ref, ks = _step_scores(model, spec, ev, "c", cap=6, ttl=0.3, key=key)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
    t = kb.table()
    assert (t["len"], t["evicted"], t["expired"], t["created"]) == (len(ks.table), ks.table.evicted,
                                                                     ks.table.expired, ks.created)
    assert t["len"] <= 6 and t["evicted"] > 20 and t["expired"] > 5
    ref_t, _ = _step_scores(model, spec, pk.read_events(io.BytesIO(_head(600))), "torch", cap=6, ttl=0.3, key=key)
    np.testing.assert_allclose(got[:600], ref_t, rtol=1e-4, atol=1e-5)
    # the link state is another scoring: the pair scores are not the link scores
    link = fp.BlockScorer(model, spec).scores(ev.x, ev.dt.astype(np.float64))
    assert np.mean(np.abs(link - got) > 1e-3) > 0.5


def test_a_pairs_scores_do_not_depend_on_other_pairs_packets() -> None:
    """The property the pair state is for: interleave a 'flood' of another pair's packets into a benign stream
    (same features, same timestamps): with the pair state every benign packet keeps its score exactly; with
    the link state they change."""
    model, spec, ev = _model(1500)
    rng = np.random.default_rng(0)
    n_fl = 4000
    fl_t = np.sort(rng.uniform(ev.ts[200], ev.ts[-1], n_fl))
    ts = np.r_[ev.ts, fl_t]
    order = np.argsort(ts, kind="stable")
    x = np.r_[ev.x, np.tile(ev.x[5], (n_fl, 1)) * 1.7][order]
    meta = np.r_[_meta(ev), np.tile([0, 0, 0x7F420003, 0x7F0A0002, 0, 0, 0, 0], (n_fl, 1))][order]
    ts = ts[order]
    benign = order < len(ev)
    alone = keyed.pair_scores(model, spec, ev.x, ev.ts, ev.src, ev.dst)
    mixed = keyed.KeyedBlockScorer(model, spec).scores(x, ts, meta)
    assert np.array_equal(mixed[benign], alone)
    link_alone = fp.BlockScorer(model, spec).scores(ev.x, ev.dt.astype(np.float64))
    link_mixed = fp.BlockScorer(model, spec).scores(x, np.r_[0.0, np.diff(ts)])
    assert np.mean(np.abs(link_mixed[benign] - link_alone) > 1e-4) > 0.3


def test_pair_table_stays_bounded_on_ever_new_pairs() -> None:
    """30,000 packets from ever-new host pairs through a cap of 64: the table never holds more, every new pair
    is a fresh state, and a long silence expires them all."""
    model, spec, ev = _model(200)
    kb = keyed.KeyedBlockScorer(model, spec, cap=64, ttl=5.0)
    n = 30_000
    x = np.tile(ev.x[:100], (n // 100, 1))
    ts = 1000.0 + np.arange(n) * 1e-3
    meta = np.zeros((n, 8), np.int64)
    meta[:, 2] = 0x0A000000 + np.arange(n)
    meta[:, 3] = 0x7F0A0002
    for i in range(0, n, 5000):
        kb.scores(x[i:i + 5000], ts[i:i + 5000], meta[i:i + 5000])
        assert kb.table()["len"] <= 64
    t = kb.table()
    assert t["created"] == n and t["evicted"] == n - 64
    kb.scores(x[:1], np.array([ts[-1] + 100.0]), meta[:1])
    assert kb.table()["len"] == 1 and kb.table()["expired"] == 64


def test_detect_net_pair_state_records_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--state pair` on the block path and on the per-packet C step: the same records; the summary names the
    state; a checkpoint without a pair threshold is refused with what to do (exit 2), --threshold overrides;
    a checkpoint whose stored state is pair uses it by default."""
    model, spec, ev = _model(2500)
    s = keyed.pair_scores(model, spec, ev.x, ev.ts, ev.src, ev.dst)
    pcap = tmp_path / "h.pcap"
    pcap.write_bytes(_head(2500))
    old = tmp_path / "old.safetensors"
    spec.threshold = float(np.median(fp.BlockScorer(model, spec).scores(ev.x, ev.dt.astype(np.float64))))
    d = spec.to_dict()
    del d["state"], d["state_thresholds"]                        # a checkpoint written before part 5
    save_checkpoint(old, model, None, {"ids": d})
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(old), "--state", "pair"]) == 2
    err = capsys.readouterr().err
    assert "no threshold calibrated for --state pair" in err and "sln.security.keyed_cli calibrate" in err
    new = tmp_path / "new.safetensors"
    thr = float(np.quantile(s, 0.9))
    st = {"link": spec.threshold, "pair": thr}
    save_checkpoint(new, model, None, {"ids": spec.to_dict() | {"state": "pair", "threshold": thr,
                                                                "state_thresholds": st}})
    outs = {}
    for b in ("c", "c-step"):
        assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(new), "--backend", b, "--block", "300"]) == 0
        cap = capsys.readouterr()
        assert "pair state" in cap.err
        outs[b] = [json.loads(line) for line in cap.out.splitlines()]
    a, c = outs["c"], outs["c-step"]
    assert len(a) == len(c) == 2500 and all(r["threshold"] == thr for r in a)
    assert max(abs(r["score"] - round(float(v), 6)) for r, v in zip(a, s, strict=True)) <= 1e-6
    assert max(abs(r["score"] - q["score"]) for r, q in zip(a, c, strict=True)) <= 2e-6
    assert 200 < sum(r["alert"] for r in a) < 300
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(new), "--state", "link", "--quiet"]) == 0
    link = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert link[0]["threshold"] == spec.threshold and sum(r["alert"] for r in link) in range(1150, 1351)
    # the default (--state auto) of a pre-part-5 checkpoint stays the link state with its stored threshold
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(old), "--quiet"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == link
    # a checkpoint calibrated for link that also holds a pair threshold (train.py since part 5): auto = pair
    both = tmp_path / "both.safetensors"
    save_checkpoint(both, model, None, {"ids": spec.to_dict() | {"state_thresholds": st}})
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(both), "--quiet"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == a
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(old), "--state", "pair", "--threshold",
                     str(thr), "--quiet"]) == 0
    assert [json.loads(line)["alert"] for line in capsys.readouterr().out.splitlines()] == [r["alert"] for r in a]
    # the per-packet path's memory count includes the pair table
    det = keyed.make_detector(model, spec, 1.0, "pair", fast=False, backend="c")
    assert isinstance(det, NetDetector)
    list(det.run(pk.iter_packets(io.BytesIO(_head(300)))))
    assert det.memory_items() >= len(det.keyed.table) > 0


def test_detect_net_refuses_pair_state_with_an_int8_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The int8 event model (.sln) runs one link state: --state pair is refused with what to do."""
    pcap = tmp_path / "h.pcap"
    pcap.write_bytes(_head(10))
    (tmp_path / "model.sln").write_bytes(b"\0" * 64)
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(tmp_path / "model.sln"), "--state", "pair"]) == 2
    assert "--state pair needs a float checkpoint" in capsys.readouterr().err
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(tmp_path / "model.sln"), "--state", "src"]) == 2


def test_calibrate_adds_the_pair_threshold_to_an_old_checkpoint(tmp_path: Path) -> None:
    """`python -m sln.security.keyed_cli calibrate`: the pair threshold at FPR 1e-3 of the pair-state scores of the
    capture's benign validation packets, added beside the link threshold; the link threshold is kept."""
    from sln.security.ids import load_ids
    from sln.security.ids_data import load_capture, unsupervised_split
    from sln.security.metrics import calibrate_threshold

    model, spec, _ = _model(200)
    old, new = tmp_path / "old.safetensors", tmp_path / "new.safetensors"
    save_checkpoint(old, model, None, {"ids": spec.to_dict()})
    from sln.security.keyed_cli import main as keyed_cli

    assert keyed_cli(["calibrate", "--model", str(old), "--capture", str(FIXTURES / "ids"), "--out", str(new)]) == 0
    _, got = load_ids(new)
    cap = load_capture(FIXTURES / "ids")
    sp = unsupervised_split(cap)
    s = keyed.pair_scores(model, spec, cap.ev.x, cap.ev.ts, cap.ev.src, cap.ev.dst)
    want = calibrate_threshold(s[sp.val], 1e-3)
    s2 = keyed.pair_scores(model, spec, cap.ev.x, cap.ev.ts, cap.ev.src, cap.ev.dst, key="src")
    assert got.state_thresholds == {"link": spec.threshold, "pair": want, "src": calibrate_threshold(s2[sp.val], 1e-3)}
    assert got.threshold == spec.threshold
    assert keyed.default_state(got) == "pair" and keyed.default_state(spec) == "link"
    assert abs(want - calibrate_threshold(s[sp.train], 1e-3)) > 1e-6     # the validation packets, not others

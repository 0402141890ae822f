"""The C block path of `sln detect-net` (sln.security.fastpath, runtime/sln_ids.c) against the per-packet path."""
from __future__ import annotations

import io
import json
import struct
import sys
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
from sln.security import ids_bench
from sln.security import packets as pk
from sln.security.ids_data import IdsSpec, fit_scale
from sln.security.ids_stream import NetDetector, StepScorer
from tests.conftest import FIXTURES

IDS = FIXTURES / "ids"
PCAP = IDS / "capture.pcap"
pytestmark = pytest.mark.skipif(not c_backend_available(), reason="needs a C compiler for the runtime")

FIELDS = ("x", "dt", "ts", "index", "flow_id", "src", "dst", "sport", "dport", "proto", "length")


def _head(n: int) -> bytes:
    data = PCAP.read_bytes()
    pos, out = 24, [data[:24]]
    for _ in range(n):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    return b"".join(out)


def _same(a: pk.EventBatch, b: pk.EventBatch) -> None:
    for f in FIELDS:
        va, vb = getattr(a, f), getattr(b, f)
        assert va.dtype == vb.dtype and np.array_equal(va, vb), f
    assert a.stats == b.stats


def test_block_features_equal_per_packet_features_on_the_shipped_capture() -> None:
    """Every feature of every packet bit for bit (float32), the identifiers, dt and the reader counts."""
    a, b = pk.read_events(PCAP), fp.read_events_fast(PCAP)
    assert len(a) == len(b) == 39_700
    _same(a, b)
    assert b.x[:, 0].sum() > 0 and b.flow_id.max() > 1000           # real content, not zeros on both sides


def test_block_boundaries_small_caps_and_expiry_match_python() -> None:
    """Tiny blocks and chunks (records split across reads), caps far below the capture's hosts and flows and
    short idle expiries: the same features, the same table sizes and eviction / expiry counts."""
    data = _head(6000)
    kw = {"host_cap": 8, "chan_cap": 16, "flow_cap": 32, "host_ttl": 0.5, "flow_ttl": 0.2}
    pyfz, cfz = pk.Featurizer(**kw), fp.CFeaturizer(**kw)
    a = pk.read_events(io.BytesIO(data), pyfz)
    stats = pk.ReaderStats()
    blocks = list(fp.iter_blocks(io.BytesIO(data), cfz, stats, block=97, chunk=3001))
    assert len(blocks) > 60 and sum(map(len, blocks)) == len(a) == 6000
    x = np.concatenate([blk.x for blk in blocks])
    assert np.array_equal(x, a.x) and np.array_equal(np.concatenate([blk.meta[:, 1] for blk in blocks]), a.flow_id)
    t = cfz.tables()
    for name, tab in (("hosts", pyfz.hosts), ("chans", pyfz.chans), ("flows", pyfz.flows)):
        assert (t[name]["len"], t[name]["evicted"], t[name]["expired"]) == (len(tab), tab.evicted, tab.expired), name
    assert t["flows"]["evicted"] > 100 and t["flows"]["expired"] > 100 and t["hosts"]["len"] <= 8
    assert stats == a.stats


def _pkt(src: bytes, proto: int, l4: bytes, total: int | None = None, ihl: int = 5, version: int = 4) -> bytes:
    tot = 4 * ihl + len(l4) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, tot, 1, 0, 64, proto, 0, src, b"\x7f\x02\x00\x01")
    return b"\x00" * 12 + b"\x08\x00" + hdr + b"\x00" * (4 * ihl - 20) + l4


def test_malformed_records_are_counted_the_same_way() -> None:
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x12, 1024, 0, 0)
    good = _pkt(b"\x7f\x01\x00\x01", 6, tcp)
    frames = [good, b"\x00" * 10, b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28, _pkt(b"\x7f\x01\x00\x01", 6, tcp)[:29],
              _pkt(b"\x7f\x01\x00\x01", 6, tcp, ihl=4), _pkt(b"\x7f\x01\x00\x01", 6, tcp, total=10),
              _pkt(b"\x7f\x01\x00\x01", 6, tcp)[:40], _pkt(b"\x7f\x01\x00\x01", 6, tcp, version=6),
              _pkt(b"\x7f\x01\x00\x01", 47, b"\x00" * 8),
              _pkt(b"\x7f\x01\x00\x02", 17, struct.pack("!HHHH", 5, 53, 8, 0)), good]
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1000, 1000 * i, len(f), len(f)) + f
    for data in (out + b"\x01\x02\x03", out + struct.pack("<IIII", 1, 0, 1 << 30, 1 << 30) + good):
        a, b = pk.read_events(io.BytesIO(data)), fp.read_events_fast(io.BytesIO(data))
        _same(a, b)
        assert b.stats.events == 4 and b.stats.skipped() >= 8
    with pytest.raises(pk.PcapError):
        fp.read_events_fast(io.BytesIO(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40))


def _model(n_classes: int) -> tuple[SLN, IdsSpec, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    cfg = SLNConfig(task="events", input_size=58, n_classes=n_classes, n_neurons=32, active_frac=0.125)
    model = SLN(cfg).eval()
    ev = pk.read_events(io.BytesIO(_head(2500)))
    scale = fit_scale(ev.x[:2000])
    mode = "reconstruct" if n_classes == 58 else "classify"
    w = (np.linspace(0.5, 2.0, 58)).tolist() if mode == "reconstruct" else None
    return model, IdsSpec(mode, scale.tolist(), 1.0, 1e-3, resid_weight=w), ev.x, ev.dt.astype(np.float64)


@pytest.mark.parametrize("n_classes", [58, 2])
def test_block_scores_equal_the_per_packet_c_step(n_classes: int) -> None:
    """BlockScorer over blocks of 700 = NetDetector's per-packet scores (StepScorer on the C runtime)."""
    model, spec, x, dt = _model(n_classes)
    det = NetDetector(model, spec, backend="c")
    ref = np.array([det.score_features(x[i], float(dt[i])) for i in range(len(x))])
    bs = fp.BlockScorer(model, spec)
    got = np.concatenate([bs.scores(x[i:i + 700], dt[i:i + 700]) for i in range(0, len(x), 700)])
    assert np.allclose(got, ref, rtol=2e-5, atol=1e-6) and np.ptp(ref) > 1e-3
    bs.reset()                                             # a fresh state gives the same scores again
    assert np.array_equal(bs.scores(x, dt), got)


def test_counted_energy_follows_the_runtime_counters() -> None:
    """The per-packet counts of the C step agree with ids_bench's analytic count for a dense model, and
    a model with 3/4 of its W_in zeroed (stored column-sparse) counts fewer MACs and less energy."""
    model, spec, x, dt = _model(58)
    sc = StepScorer(model, "reconstruct", backend="c")
    e = fp.counted_energy(model, spec, x, dt)
    events = e["input_events"]
    xs = np.clip(x * np.float32(1 / np.asarray(spec.scale)), -10, 10)
    assert events == pytest.approx(float((xs != 0).sum(1).mean()), rel=1e-6)
    ops, fpr = ids_bench.sln_ops_per_packet(model.cfg, events)
    assert e["ops"]["macs"] + e["ops"]["acs"] == pytest.approx(ops["macs"], rel=0.02)
    assert e["total_nj"] == pytest.approx(ids_bench.energy_nj(ops, fpr)["total_nj"], rel=0.15)
    with torch.no_grad():
        w = model.cells[0].w_in.weight
        w[torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) < 0.75] = 0.0
    e2 = fp.counted_energy(model, spec, x, dt)
    assert e2["ops"]["macs"] < 0.6 * e["ops"]["macs"] and e2["total_nj"] < e["total_nj"]
    assert e2["ops"]["index_bytes"] > 0 and sc.backend == "c"


def test_detect_net_block_path_writes_the_per_packet_records(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`--backend c` (blocks, default) and `--backend c-step` (per packet): the same JSON records, scores to
    1e-6 (their printed rounding); stdin gives the same; --alerts-only keeps the alerts."""
    model, spec, x, _ = _model(58)
    ck = tmp_path / "m.safetensors"
    spec.threshold = float(np.median(fp.BlockScorer(model, spec).scores(x, np.zeros(len(x)))))
    save_checkpoint(ck, model, None, {"ids": spec.to_dict()})
    pcap = tmp_path / "h.pcap"
    pcap.write_bytes(_head(2500))
    outs = {}
    for b in ("c", "c-step"):
        assert sln_main(["detect-net", "--pcap", str(pcap), "--model", str(ck), "--backend", b, "--block", "300"]) == 0
        cap = capsys.readouterr()
        outs[b] = [json.loads(line) for line in cap.out.splitlines()]
        assert "2,500 packets" in cap.err and "p99" in cap.err
    a, s = outs["c"], outs["c-step"]
    assert len(a) == len(s) == 2500
    assert all({k: v for k, v in r.items() if k != "score"} == {k: v for k, v in q.items() if k != "score"}
               for r, q in zip(a, s, strict=True) if r["alert"] == q["alert"])
    assert max(abs(r["score"] - q["score"]) for r, q in zip(a, s, strict=True)) <= 2e-6
    assert sum(r["alert"] != q["alert"] for r, q in zip(a, s, strict=True)) <= 2
    assert 0 < sum(r["alert"] for r in a) < 2500
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(pcap.read_bytes())})())
    assert sln_main(["detect-net", "--pcap", "-", "--model", str(ck), "--quiet", "--alerts-only"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alerts == [r for r in a if r["alert"]]


def test_records_are_the_json_values_of_the_per_packet_path() -> None:
    """format_records: every field of json.dumps({...round(ts, 6)..., round(score, 6)...}) as a value,
    including ties of the 6th decimal, large, non-finite and negative scores; --alerts-only filtering."""
    meta = np.array([[0, 0, 0x7F000001, 0xC0A80A0B, 65535, 0, 255, 40], [1, 3, 0xFFFFFFFF, 0, 1, 2, 6, 60]] * 4,
                    np.int64)
    ts = np.array([1796159863.803327, 0.0, 1.5, 1e16 + 2, 12.0000005, 3.25e-7, 7.0, 8.0])
    sc = np.array([8.2350224, -1.0, 1.0000005, np.nan, np.inf, -np.inf, 1e300, 0.1 + 0.2])
    blk = fp.Block(np.zeros((8, 58), np.float32), ts, np.zeros(8), meta)
    thr = 1.0000001
    got = [json.loads(line) for line in fp.format_records(blk, sc, thr).splitlines()]
    want = [json.loads(json.dumps({
        "ts": round(float(ts[i]), 6), "src": pk.ip_str(int(meta[i, 2])), "dst": pk.ip_str(int(meta[i, 3])),
        "sport": int(meta[i, 4]), "dport": int(meta[i, 5]), "proto": int(meta[i, 6]),
        "score": round(float(sc[i]), 6), "alert": bool(sc[i] > thr), "threshold": thr})) for i in range(8)]
    assert len(got) == 8
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys() and all(g[k] == w[k] or (g[k] != g[k] and w[k] != w[k]) for k in g), (g, w)
    alerts = [json.loads(line) for line in fp.format_records(blk, sc, thr, alerts_only=True).splitlines()]
    assert [a["score"] for a in alerts] == [w["score"] for w in want if w["alert"]] and len(alerts) == 4


def test_sparse_packet_detector_trains_pruned_and_scores_on_the_block_path(tmp_path: Path) -> None:
    """train.py --dataset packets with --density-in/--density-rec runs the pruning schedule (the loop refuses a
    sparse config without one): the stored W_in / W_rec keep that density, and the block path scores the
    column-sparse model like the per-packet C step, with fewer counted MACs than the dense analytic count."""
    from sln.cli import run
    from sln.security.ids import load_ids
    from sln.train_cli import main as train_main

    out = tmp_path / "sparse"
    rc = run(train_main, ["--dataset", "packets", "--model", "sln-ids-small", "--n-neurons", "16", "--active-frac",
                          "0.125", "--density-in", "0.25", "--density-rec", "0.25", "--epochs", "3", "--threads", "1",
                          "--no-progress", "--out", str(out)])
    assert rc == 0
    model, spec = load_ids(out / "checkpoint.safetensors")
    cell = model.cells[0]
    assert float((cell.w_in.weight != 0).float().mean()) == pytest.approx(0.25, abs=0.01)
    assert float((cell.w_rec.weight != 0).float().mean()) == pytest.approx(0.25, abs=0.02)
    ev = pk.read_events(io.BytesIO(_head(1500)))
    x, dt = ev.x, ev.dt.astype(np.float64)
    det = NetDetector(model, spec, backend="c")
    ref = np.array([det.score_features(x[i], float(dt[i])) for i in range(len(x))])
    assert np.allclose(fp.BlockScorer(model, spec).scores(x, dt), ref, rtol=2e-5, atol=1e-6)
    e = fp.counted_energy(model, spec, x, dt)
    dense, _ = ids_bench.sln_ops_per_packet(model.cfg, e["input_events"])
    assert e["ops"]["macs"] + e["ops"]["acs"] < 0.5 * dense["macs"] and e["ops"]["index_bytes"] > 0


class _Endless:
    """A raw-IPv4 pcap generated on read: every packet a new flow from a new host, 1 ms apart (constant memory)."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0
        self.buf = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)

    def read1(self, n: int = -1) -> bytes:
        parts = [self.buf]
        size = len(self.buf)
        while size < max(n, 1) and self.i < self.n:
            i = self.i
            l4 = struct.pack("!HHHH", 1024 + i % 60000, 53, 28, 0) + b"q" * 20
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, 17, 0,
                             struct.pack("!I", 0x7F000000 | ((i * 7919) % 0xFFFFFF)), b"\x7f\x0a\x00\x01") + l4
            t = 1000.0 + i * 1e-3
            fr = struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)) % 1000000, len(ip), len(ip)) + ip
            parts.append(fr)
            size += len(fr)
            self.i += 1
        data = b"".join(parts)
        out, self.buf = data[:n], data[n:]
        return out

    read = read1


def test_endless_stream_stays_within_the_caps_and_flat_memory() -> None:
    model, spec, _, _ = _model(58)
    fz = fp.CFeaturizer(host_cap=64, chan_cap=128, flow_cap=256)
    det = fp.FastNetDetector(model, spec, featurizer=fz, block=1024)

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    before, seen = 0, 0
    for blk, s in det.run(_Endless(60_000)):
        seen += len(blk)
        if before == 0 and seen >= 15_000:
            before = rss()
        t = fz.tables()
        assert t["hosts"]["len"] <= 64 and t["chans"]["len"] <= 128 and t["flows"]["len"] <= 256
        assert np.isfinite(s).all()
    assert seen == det.packets == 60_000 and fz.tables()["flows"]["evicted"] > 55_000
    assert rss() - before < 4 * 2 ** 20

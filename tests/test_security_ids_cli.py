"""`train.py --dataset packets` and `sln detect-net`: the stored threshold, JSON Lines, stdin, errors, flat memory."""
from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from sln.checkpoint import save_checkpoint
from sln.cli import main as sln_main
from sln.cli import run
from sln.config import SLNConfig
from sln.model import SLN
from sln.security.ids import load_ids
from sln.security.ids_stream import NetDetector
from sln.security.packets import Featurizer, iter_packets, read_events
from sln.train_cli import main as train_main

IDS = FIXTURES / "ids"


def _head(n: int) -> bytes:
    """The shipped capture's first n records (a valid pcap)."""
    data = (IDS / "capture.pcap").read_bytes()
    pos, out = 24, [data[:24]]
    for _ in range(n):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    return b"".join(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ids-run")
    rc = run(train_main, ["--dataset", "packets", "--model", "sln-ids-small", "--n-neurons", "32",
                          "--active-frac", "0.125", "--epochs", "4", "--lr", "0.01", "--threads", "1", "--no-progress",
                          "--out", str(out)])
    assert rc == 0
    return out


def test_trainer_stores_model_threshold_and_metrics(trained: Path) -> None:
    model, spec = load_ids(trained / "checkpoint.safetensors")
    m = json.loads((trained / "metrics.json").read_text())
    assert spec.mode == "reconstruct" and spec.threshold == m["ids"]["threshold"] and len(spec.resid_weight) == 58
    assert model.cfg.n_neurons == 32 and m["steps"] == 4 * 3        # 3632 prefix packets / (56 x 32) -> 3 per epoch
    p = m["test"]["per_packet"]
    assert 0.5 < p["roc_auc"] <= 1.0 and 0 <= p["eer"] <= 1 and p["n_pos"] == 25278
    # part 5: both states' thresholds stored (threshold stays the link state's), the pair state's report too
    st = spec.state_thresholds
    assert spec.state == "link" and set(st) == {"link", "pair", "src"} and st["link"] == spec.threshold
    assert st["pair"] > 0 and st["src"] > 0
    q = m["test_pair_state"]["per_packet"]
    assert 0.5 < q["roc_auc"] <= 1.0 and q["n_pos"] == 25278 and q["roc_auc"] != p["roc_auc"]


def test_detect_net_writes_one_record_per_packet(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pcap = tmp_path / "head.pcap"
    pcap.write_bytes(_head(1500))
    ckpt = str(trained / "checkpoint.safetensors")
    assert sln_main(["detect-net", "--pcap", str(pcap), "--model", ckpt]) == 0
    cap = capsys.readouterr()
    recs = [json.loads(line) for line in cap.out.splitlines()]
    _, spec = load_ids(ckpt)
    thr = spec.state_thresholds["pair"]     # --state auto: a checkpoint with a pair threshold is scored per pair
    ev = read_events(pcap)
    assert len(recs) == len(ev) == 1500 and "pair state" in cap.err
    assert set(recs[0]) == {"ts", "src", "dst", "sport", "dport", "proto", "score", "alert", "threshold"}
    assert all(r["alert"] == (r["score"] > thr) and r["threshold"] == thr for r in recs)
    assert [r["dport"] for r in recs] == ev.dport.tolist() and recs[0]["src"].startswith("127.")
    assert "packets/s" in cap.err and "p50" in cap.err and "p99" in cap.err and "1,500 packets" in cap.err
    # the same stream on stdin gives the same records; --alerts-only keeps only the alerts
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(pcap.read_bytes())})())
    assert sln_main(["detect-net", "--pcap", "-", "--model", ckpt, "--quiet", "--threshold", "0.5"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["score"] for r in again] == [r["score"] for r in recs]
    assert all(r["threshold"] == 0.5 and r["alert"] == (r["score"] > 0.5) for r in again)
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(pcap.read_bytes())})())
    assert sln_main(["detect-net", "--pcap", "-", "--model", ckpt, "--quiet", "--alerts-only", "--threshold",
                     "0.5"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(alerts) == sum(r["alert"] for r in again) and all(r["alert"] for r in alerts)


def test_detect_net_errors_are_one_line(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "not.pcap"
    bad.write_bytes(b"this is not a capture at all, just text\n" * 4)
    ckpt = str(trained / "checkpoint.safetensors")
    assert sln_main(["detect-net", "--pcap", str(bad), "--model", ckpt]) == 3          # data error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a pcap" in err[0]
    assert sln_main(["detect-net", "--pcap", str(bad), "--model", str(tmp_path / "none.safetensors")]) == 4
    plain = tmp_path / "plain.safetensors"
    save_checkpoint(plain, SLN(SLNConfig(input_size=58, n_classes=2, n_neurons=16)))
    assert sln_main(["detect-net", "--pcap", str(bad), "--model", str(plain)]) == 4     # no packet detector in it
    assert "no packet detector" in capsys.readouterr().err
    assert sln_main(["detect-net", "--pcap", str(tmp_path / "missing.pcap"), "--model", ckpt]) == 2
    capsys.readouterr()


class EndlessPcap:
    """A pcap byte stream generated on the fly: TCP/UDP packets from ever-new hosts and ports (every
    packet opens a new flow), 1 ms apart. Only the bytes asked for are built (constant memory)."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0
        self.buf = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)   # raw IPv4 link type

    def _frame(self, i: int) -> bytes:
        src = 0x7F000000 | ((i * 7919) % 0xFFFFFF)
        proto = 6 if i % 3 else 17
        l4 = (struct.pack("!HHIIBBHHH", 1024 + i % 60000, 80, 0, 0, 0x50, 0x02, 1024, 0, 0) if proto == 6
              else struct.pack("!HHHH", 1024 + i % 60000, 53, 8 + 20, 0) + b"q" * 20)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, struct.pack("!I", src),
                         struct.pack("!I", 0x7F0A0001)) + l4
        t = 1000.0 + i * 1e-3
        return struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)), len(ip), len(ip)) + ip

    def read1(self, n: int = -1) -> bytes:
        while len(self.buf) < max(n, 1) and self.i < self.n:
            self.buf += self._frame(self.i)
            self.i += 1
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    read = read1


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_endless_stream_keeps_memory_flat(trained: Path) -> None:
    torch.set_num_threads(1)
    model, spec = load_ids(trained / "checkpoint.safetensors")
    fz = Featurizer(host_cap=64, chan_cap=128, flow_cap=256)
    det = NetDetector(model, spec, featurizer=fz)
    recs = det.run(iter_packets(EndlessPcap(40_000)))
    sizes, scores = [], []
    for i, r in enumerate(recs):
        if i == 10_000:
            before = _rss()
        if i % 1000 == 0:
            sizes.append((len(fz.hosts), len(fz.chans), len(fz.flows)))
            scores.append(r["score"])
    grown = _rss() - before
    assert det.packets == 40_000 and det.latency.n == 40_000 and len(det.latency.counts) == 1201
    assert max(s[0] for s in sizes) <= 64 and max(s[1] for s in sizes) <= 128 and max(s[2] for s in sizes) <= 256
    assert fz.flows.evicted > 35_000                       # the caps were what held it, not a short stream
    assert grown < 4 * 2 ** 20, f"memory grew by {grown / 2 ** 20:.1f} MiB over 30,000 packets"
    assert np.isfinite(scores).all()


def test_trains_on_a_bare_benign_pcap(tmp_path: Path) -> None:
    """A site's own known-clean capture (no labels, no manifest): every packet benign, the whole span is the
    prefix; the trainer stores a calibrated threshold and writes no test metrics it cannot have."""
    pcap = tmp_path / "benign.pcap"
    pcap.write_bytes(_head(3000))
    out = tmp_path / "site"
    assert run(train_main, ["--dataset", "packets", "--data-dir", str(pcap), "--n-neurons", "16", "--active-frac",
                            "0.25", "--epochs", "1", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    _, spec = load_ids(out / "checkpoint.safetensors")
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(spec.threshold) and m["test"]["per_packet"]["n_pos"] == 0

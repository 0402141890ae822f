"""Packet stream reader (sln.security.packets) and the lab capture (sln.security.capture), issue 11."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sln.security import packets as pk
from tests.conftest import FIXTURES, skip_or_fail_in_ci

IDS = FIXTURES / "ids"


# ------------------------------------------------------------------------------------ crafted pcaps

def _ip(src: str, dst: str, proto: int, l4: bytes, total: int | None = None, ihl: int = 5,
        version: int = 4) -> bytes:
    s = bytes(int(o) for o in src.split("."))
    d = bytes(int(o) for o in dst.split("."))
    tot = 4 * ihl + len(l4) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, tot, 1, 0, 64, proto, 0, s, d)
    return hdr + b"\x00" * (4 * ihl - 20) + l4


def _tcp(sport: int, dport: int, flags: int = 0x02, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0) + payload


def _udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _eth(ip: bytes, etype: int = 0x0800) -> bytes:
    return b"\x00" * 12 + struct.pack("!H", etype) + ip


def _pcap(frames: list[bytes], link: int = 1, endian: str = "<", nano: bool = False,
          t0: float = 1000.0, step: float = 0.001) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, link)
    for i, fr in enumerate(frames):
        t = t0 + i * step
        frac = round((t % 1) * (1e9 if nano else 1e6))
        out += struct.pack(endian + "IIII", int(t), frac, len(fr), len(fr)) + fr
    return out


GOOD = _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(40000, 80)))


def _read(data: bytes) -> pk.EventBatch:
    return pk.read_events(io.BytesIO(data))


# ------------------------------------------------------------------------------------ shipped capture

@pytest.fixture(scope="module")
def small() -> tuple[dict, pk.EventBatch, np.ndarray, np.ndarray]:
    man = json.loads((IDS / "manifest.json").read_text())
    return man, pk.read_events(IDS / man["pcap"]), *pk.load_labels(IDS / man["labels"])


def test_small_capture_matches_manifest(small: tuple) -> None:
    man, ev, lab, typ = small
    for name, key in ((man["pcap"], "pcap"), (man["labels"], "labels")):
        assert hashlib.sha256((IDS / name).read_bytes()).hexdigest() == man["sha256"][key]
    assert ev.stats.records == man["packets"] == len(lab)
    assert ev.stats.events + ev.stats.skipped() == ev.stats.records
    assert ev.stats.events >= 0.99 * man["packets"]  # tcpdump filter "ip": nearly all are IPv4
    assert dict(Counter(typ.tolist())) == man["per_type"]
    assert int(lab.sum()) == man["attack_packets"]
    assert set(man["per_type"]) >= set(man["attackers"]) | {"benign"}  # every attack type is present
    assert man["non_loopback_packets"] == 0 and man["attack_outside_window"] == 0
    flows = {(p, *sorted([(s, sp), (d, dp)])) for p, s, sp, d, dp in
             zip(ev.proto.tolist(), ev.src.tolist(), ev.sport.tolist(), ev.dst.tolist(), ev.dport.tolist())}
    assert len(flows) == man["flows_5tuple"]


def test_small_capture_features_and_alignment(small: tuple) -> None:
    man, ev, lab, typ = small
    assert ev.x.shape == (len(ev), pk.N_FEATURES) and ev.x.dtype == np.float32
    assert np.isfinite(ev.x).all() and np.isfinite(ev.dt).all()
    assert (ev.dt >= 0).all() and ev.dt.max() < 60
    assert (np.diff(ev.index) > 0).all() and ev.index[-1] < len(lab)
    assert abs(float(ev.dt.sum()) - float(ev.ts[-1] - ev.ts[0])) < 1e-2  # dt is the inter-arrival time
    # the label file lines up with the pcap: attack rows are exactly those touching an attacker address
    attackers = {int.from_bytes(bytes(int(o) for o in a.split(".")), "big"): k for k, a in man["attackers"].items()}
    kinds = typ[ev.index]
    for s, d, k in zip(ev.src.tolist(), ev.dst.tolist(), kinds.tolist()):
        assert k == attackers.get(s, attackers.get(d, "benign"))
    assert ((ev.src >> 24) == 127).all() and ((ev.dst >> 24) == 127).all()
    # flow ids: bounded by the packet count, the same flow keeps the same endpoints
    assert ev.flow_id.max() < len(ev)
    first = {}
    for f, s, d in zip(ev.flow_id.tolist(), ev.src.tolist(), ev.dst.tolist()):
        assert {s, d} == first.setdefault(f, {s, d})


def test_features_are_deterministic_and_streamable(small: tuple) -> None:
    man = small[0]
    data = (IDS / man["pcap"]).read_bytes()[: 200_000]  # cut mid-record: a truncated last record

    class Trickle(io.RawIOBase):  # a pipe that hands out at most 7 bytes per read1
        def __init__(self, b: bytes) -> None:
            self.b, self.pos = b, 0

        def read1(self, n: int = -1) -> bytes:
            out = self.b[self.pos: self.pos + min(7, n if n > 0 else 7)]
            self.pos += len(out)
            return out

    a = _read(data)
    b = pk.read_events(Trickle(data))  # type: ignore[arg-type]
    assert len(a) > 1000 and np.array_equal(a.x, b.x) and np.array_equal(a.dt, b.dt)
    assert a.stats == b.stats and a.stats.truncated_record == 1
    np.testing.assert_array_equal(a.x, small[1].x[: len(a)])


def test_flow_view(small: tuple) -> None:
    from sln.security.flows import FLOW_FEATURE_NAMES, flow_features, flow_labels
    man, ev, lab, typ = small
    fl = flow_features(ev)
    assert fl.X.shape == (len(np.unique(ev.flow_id)), len(FLOW_FEATURE_NAMES)) and np.isfinite(fl.X).all()
    assert fl.n_packets.sum() == len(ev) and (fl.n_packets >= 1).all()
    kinds = flow_labels(ev, typ[ev.index], fl)
    per_type = Counter(kinds.tolist())
    assert set(per_type) == set(man["attackers"]) | {"benign"}
    assert per_type["scan_syn"] >= man["config"]["scan_ports"]  # one flow per probed port and target
    # a flow's label is attack iff one of its packets is
    pkt_attack = {f for f, k in zip(ev.flow_id.tolist(), typ[ev.index].tolist()) if k not in ("benign", "other")}
    assert {int(f) for f, k in zip(fl.ids, kinds) if k != "benign"} == pkt_attack


# ------------------------------------------------------------------------------------ malformed input

def test_malformed_packets_are_counted_and_skipped() -> None:
    frames = [
        GOOD,
        b"\x00" * 10,                                                        # shorter than Ethernet
        _eth(b"\x00" * 28, etype=0x0806),                                    # ARP
        _eth(b"\x60" + b"\x00" * 39, etype=0x86DD),                          # IPv6
        _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(1, 2))[:15]),             # IPv4 header cut
        _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(1, 2), ihl=4)),           # IHL < 5
        _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(1, 2), total=10)),        # total length < header
        _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(1, 2))[:30]),             # TCP header cut
        _eth(_ip("127.1.0.1", "127.2.0.1", 17, _udp(5, 6), total=24)),       # IP length cuts UDP header
        _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(1, 2), version=6)),       # version 6 on ethertype IPv4
        _eth(_ip("127.1.0.1", "127.2.0.1", 47, b"\x00" * 8)),                # GRE: unknown L4, still an event
        GOOD,
    ]
    ev = _read(_pcap(frames) + b"\x01\x02\x03")  # plus a truncated final record header
    s = ev.stats
    assert (s.records, s.events) == (13, 3)
    assert (s.bad_link, s.non_ipv4, s.bad_ip, s.truncated_l4, s.truncated_record) == (1, 3, 3, 2, 1)
    assert ev.index.tolist() == [0, 10, 11] and ev.proto.tolist() == [6, 47, 6]
    assert np.isfinite(ev.x).all()


def test_bad_record_length_and_non_pcap() -> None:
    data = _pcap([GOOD, GOOD])
    bad = data[:24 + 16 + len(GOOD)] + struct.pack("<IIII", 1, 0, 1 << 30, 1 << 30) + GOOD
    ev = _read(bad)
    assert (ev.stats.records, ev.stats.events, ev.stats.bad_record) == (2, 1, 1)
    with pytest.raises(pk.PcapError):
        _read(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)  # pcapng
    with pytest.raises(pk.PcapError):
        _read(b"\xd4\xc3")
    assert len(_read(_pcap([]))) == 0


def test_link_types_endianness_and_nanoseconds() -> None:
    ip = _ip("127.1.0.1", "127.2.0.1", 17, _udp(5353, 53, b"q" * 10))
    variants = {
        "raw": _pcap([ip], link=pk.LINK_RAW),
        "null": _pcap([struct.pack("<I", 2) + ip], link=pk.LINK_NULL),
        "sll": _pcap([b"\x00" * 14 + b"\x08\x00" + ip], link=pk.LINK_LINUX_SLL),
        "sll2": _pcap([b"\x08\x00" + b"\x00" * 18 + ip], link=pk.LINK_LINUX_SLL2),
        "vlan": _pcap([b"\x00" * 12 + b"\x81\x00\x00\x05\x08\x00" + ip]),
        "big-endian": _pcap([_eth(ip)], endian=">"),
        "nano": _pcap([_eth(ip)], nano=True),
    }
    for name, data in variants.items():
        ev = _read(data)
        assert len(ev) == 1, name
        assert (ev.sport[0], ev.dport[0], ev.proto[0], pk.ip_str(int(ev.src[0]))) == (5353, 53, 17, "127.1.0.1")
        assert abs(ev.ts[0] - 1000.0) < 1e-6, name
    ev = _read(_pcap([_eth(ip)], link=105))  # 802.11: not a link type we strip
    assert (ev.stats.records, ev.stats.events, ev.stats.non_ipv4) == (1, 0, 1)


def test_header_features() -> None:
    syn = _eth(_ip("127.1.0.1", "127.2.0.1", 6, _tcp(50000, 22, flags=0x02)))
    synack = _eth(_ip("127.2.0.1", "127.1.0.1", 6, _tcp(22, 50000, flags=0x12, payload=b"x" * 100)))
    ev = _read(_pcap([syn, synack], step=0.25))
    f = {n: i for i, n in enumerate(pk.FEATURE_NAMES)}
    a, b = ev.x
    assert a[f["proto_tcp"]] == 1 and a[f["tcp_syn"]] == 1 and a[f["tcp_ack"]] == 0
    assert a[f["sport_ephemeral"]] == 1 and a[f["dport_wellknown"]] == 1
    assert a[f["flow_first"]] == 1 and a[f["from_initiator"]] == 1
    assert b[f["tcp_ack"]] == 1 and b[f["flow_first"]] == 0 and b[f["from_initiator"]] == 0
    assert b[f["log_payload_len"]] > 0 == a[f["log_payload_len"]]
    assert ev.dt.tolist() == pytest.approx([0.0, 0.25]) and ev.flow_id.tolist() == [0, 0]


# ------------------------------------------------------------------------------------ bounded state

def test_state_stays_bounded_on_a_long_stream() -> None:
    """200k packets of ever-new hosts and flows through tiny caps: no table ever exceeds its cap."""
    fz = pk.Featurizer(host_cap=8, chan_cap=16, flow_cap=32, host_ttl=5.0, flow_ttl=2.0)
    biggest = 0
    for i in range(20_000):
        p = pk.Packet(i, 100.0 + i * 1e-3, (127 << 24) + i, (127 << 24) + 1, 6, 1024 + i % 60000, 80,
                      0x02, 64, 40, 0)
        fz.step(p)
        biggest = max(biggest, len(fz.hosts), len(fz.chans), len(fz.flows))
        assert len(fz.hosts) <= 8 and len(fz.chans) <= 16 and len(fz.flows) <= 32
    assert biggest == 32 and fz.flows.evicted > 19_000
    # idle expiry: after a long silence one packet finds every old entry expired
    fz.step(pk.Packet(0, 1e6, 1, 2, 17, 1, 2, 0, 64, 28, 0))
    assert fz.state_size() == 3 and fz.flows.expired > 0


def test_expired_flow_gets_a_new_id() -> None:
    frame = _eth(_ip("127.1.0.1", "127.2.0.1", 17, _udp(1000, 53)))
    ev = pk.read_events(io.BytesIO(_pcap([frame, frame, frame], step=100.0)),
                        featurizer=pk.Featurizer(flow_ttl=150.0, host_ttl=150.0))
    assert ev.flow_id.tolist() == [0, 0, 0]
    ev = pk.read_events(io.BytesIO(_pcap([frame, frame], step=100.0)), featurizer=pk.Featurizer(flow_ttl=50.0))
    assert ev.flow_id.tolist() == [0, 1]


# ------------------------------------------------------------------------------------ the capture itself

def test_capture_safety_checks_refuse_outside_a_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    from sln.security import capture
    for bad in ("10.0.0.1", "192.168.1.1", "8.8.8.8", "::1", "128.0.0.1"):
        with pytest.raises((SystemExit, ValueError)):
            capture.check_loopback(bad)
    assert capture.check_loopback("127.66.0.1") == "127.66.0.1"
    monkeypatch.delenv(capture._ENV_PARENT_NS, raising=False)
    with pytest.raises(SystemExit, match="fresh network namespace"):
        capture.assert_private_namespace()
    monkeypatch.setenv(capture._ENV_PARENT_NS, str(capture.netns_inode()))  # "parent" == this namespace
    with pytest.raises(SystemExit, match="fresh network namespace"):
        capture.assert_private_namespace()
    assert all(capture.check_loopback(a) for a in capture.ATTACKERS.values())


def _namespace_reason() -> str | None:
    from sln.security.capture import TOOLS
    if os.geteuid() != 0:
        return "regenerating the capture needs root (network namespace)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"capture tools missing: {' '.join(missing)} (bash scripts/setup.sh --capture)"
    r = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if r.returncode != 0:
        return f"network/PID namespaces not permitted here: {r.stderr.decode().strip()[:200]}"
    return None


def test_regenerate_tiny_capture_in_a_namespace(tmp_path: Path) -> None:
    reason = _namespace_reason()
    if reason:
        skip_or_fail_in_ci(reason)
    r = subprocess.run([sys.executable, "-m", "sln.security.capture", "--size", "tiny", "--seed", "3",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=150,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    man = json.loads((tmp_path / "manifest.json").read_text())
    ev = pk.read_events(tmp_path / "capture.pcap")
    assert ev.stats.records == man["packets"] > 500
    assert man["non_loopback_packets"] == 0 and man["attack_outside_window"] == 0
    # the safety property, checked on the packets themselves: only 127.0.0.0/8 on either side
    assert ((ev.src >> 24) == 127).all() and ((ev.dst >> 24) == 127).all()
    lab, typ = pk.load_labels(tmp_path / "labels.csv.gz")
    assert len(lab) == man["packets"]
    kinds = Counter(typ.tolist())
    assert all(kinds[k] > 0 for k in man["attackers"]) and kinds["benign"] > 100, kinds
    assert hashlib.sha256((tmp_path / "capture.pcap").read_bytes()).hexdigest() == man["sha256"]["pcap"]

"""Packet stream reader: pcap (file or stdin) -> per-packet events for a streaming detector.

(About 500 lines on purpose: the pcap framing, the IPv4/TCP/UDP parser and the bounded feature
state are one hot loop; splitting them would add a call per packet to the 50k packets/s path.)

Each IPv4 packet becomes one event: a fixed-size float32 feature vector (header fields plus
per-host / per-channel / per-flow context from damped incremental statistics, in the spirit of
Kitsune, Mirsky et al. NDSS 2018), ``dt`` = seconds since the previous packet, and identifiers
(record index into the pcap, flow id, addresses, ports) that label files and flow views align on.

Own minimal pcap/Ethernet/IPv4/TCP/UDP parser (``struct.unpack_from`` on one buffer) rather than
dpkt: it builds no per-layer objects, so it parses several times faster (measured numbers in
docs/SECURITY_IDS.md), needs no dependency, and it can count *why* a packet was skipped.

State is bounded: every context table is an LRU with an idle expiry and a hard cap (``BoundedTable``),
so memory does not grow with stream length. Malformed, truncated or unknown packets are counted in
``ReaderStats`` and skipped, never fatal.
"""
from __future__ import annotations

import array
import gzip
import math
import struct
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

# link types (pcap LINKTYPE_*) we can strip to an IP header
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LINUX_SLL, LINK_LINUX_SLL2 = 0, 1, 101, 113, 276
_RAW_ALIASES = (12, 14)  # old DLT_RAW values some writers still use
_MAX_SNAP = 1 << 18  # records claiming more than this are corrupt (pcap's own upper bound)

# damped-statistics decay rates (1/s): half-lives ln2/lambda ~ 0.14 s, 1.4 s, 14 s
LAMBDAS = (5.0, 0.5, 0.05)

_HEADER_NAMES = [
    "proto_tcp", "proto_udp", "proto_icmp", "proto_other",
    "tcp_fin", "tcp_syn", "tcp_rst", "tcp_psh", "tcp_ack", "tcp_urg",
    "sport_wellknown", "sport_registered", "sport_ephemeral",
    "dport_wellknown", "dport_registered", "dport_ephemeral",
    "ttl", "log_ip_len", "log_payload_len", "from_initiator", "flow_first",
]
# context blocks, each over the three decay rates: damped weight (log1p), mean and std of the packet
# size (log-scaled), per source host / per (src, dst) channel / per flow; flows opened by the host
# and the mean gap within the channel. Shape: 3 * (3 + 1 + 3 + 1 + 3) = 33 features.
_CTX_NAMES = ([f"host_{k}_l{lam:g}" for lam in LAMBDAS for k in ("w", "mean", "std")]
              + [f"host_newflow_w_l{lam:g}" for lam in LAMBDAS]
              + [f"chan_{k}_l{lam:g}" for lam in LAMBDAS for k in ("w", "mean", "std")]
              + [f"chan_gap_l{lam:g}" for lam in LAMBDAS]
              + [f"flow_{k}_l{lam:g}" for lam in LAMBDAS for k in ("w", "mean", "std")])
_TAIL_NAMES = ["flow_log_pkts", "flow_log_age", "flow_log_gap", "log_dt"]
FEATURE_NAMES: list[str] = _HEADER_NAMES + _CTX_NAMES + _TAIL_NAMES
N_FEATURES = len(FEATURE_NAMES)  # 58
_LOG_LEN = 1.0 / math.log1p(65535.0)  # scales log1p(length) into [0, 1]


@dataclass
class ReaderStats:
    """What happened to every pcap record; ``events`` + the skip counts = ``records``."""
    records: int = 0
    events: int = 0
    truncated_record: int = 0   # final record cut short (capture stopped mid-write)
    bad_record: int = 0         # record header with impossible lengths (stream stops there)
    bad_link: int = 0           # link header shorter than it must be
    non_ipv4: int = 0           # ARP, IPv6, unknown ethertype / link type
    bad_ip: int = 0             # IPv4 header truncated, wrong version/IHL or total length
    truncated_l4: int = 0       # TCP/UDP/ICMP header cut by the snap length or the IP length

    def skipped(self) -> int:
        return self.records - self.events


@dataclass
class Packet:
    """Parsed header of one IPv4 packet (addresses as host-order ints)."""
    index: int        # record number in the pcap, counting skipped records too
    ts: float
    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    flags: int        # TCP flags byte, 0 otherwise
    ttl: int
    ip_len: int       # IPv4 total length (from the header, not the snap length)
    payload_len: int  # L4 payload bytes according to the IP header


class PcapError(ValueError):
    """The stream is not a pcap at all (bad global header)."""


def _read_exact_or_less(f: BinaryIO, n: int) -> bytes:
    """Read up to n bytes; on pipes use read1 so a live stream is not held back for a full block."""
    reader = getattr(f, "read1", None)
    return reader(n) if reader is not None else f.read(n)


def read_pcap_header(f: BinaryIO) -> tuple[str, float, int]:
    """The 24-byte pcap global header of stream f -> (struct byte order "<" or ">", seconds per timestamp
    fraction unit (1e-6, or 1e-9 for the nanosecond magic), link type). Not pcap -> PcapError."""
    buf = b""
    while len(buf) < 24:
        more = _read_exact_or_less(f, 24 - len(buf))
        if not more:
            raise PcapError("not a pcap stream: shorter than the 24-byte global header")
        buf += more
    magic = buf[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise PcapError(f"not a pcap stream (magic {magic.hex()}; pcapng is not supported)")
    frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    return endian, frac, struct.unpack_from(endian + "I", buf, 20)[0] & 0xFFFF


def iter_records(f: BinaryIO, stats: ReaderStats | None = None,
                 chunk: int = 1 << 20) -> Iterator[tuple[int, float, int, bytes]]:
    """Yield (linktype, ts, orig_len, frame bytes) for every complete record of a pcap stream.

    Works on files and pipes (pcap, not pcapng). A truncated last record is counted, not raised.
    """
    stats = stats if stats is not None else ReaderStats()
    endian, frac, linktype = read_pcap_header(f)
    rec = struct.Struct(endian + "IIII")
    buf, pos, eof = b"", 0, False
    while True:
        have = len(buf) - pos
        if have >= 16:
            sec, usec, caplen, origlen = rec.unpack_from(buf, pos)
            if caplen > _MAX_SNAP:  # lengths are garbage: nothing after this can be framed
                stats.records += 1
                stats.bad_record += 1
                return
            if have >= 16 + caplen:
                start = pos + 16
                pos = start + caplen
                stats.records += 1
                yield linktype, sec + usec * frac, origlen, buf[start:pos]
                continue
        if eof:
            break
        more = _read_exact_or_less(f, chunk)
        eof = not more
        buf = buf[pos:] + more
        pos = 0
    if len(buf) - pos > 0:
        stats.records += 1
        stats.truncated_record += 1


def parse_frame(linktype: int, frame: bytes, index: int, ts: float, stats: ReaderStats) -> Packet | None:
    """Strip the link header and parse IPv4 + TCP/UDP/ICMP; None (and a count) when impossible."""
    n = len(frame)
    if linktype == LINK_ETHERNET:
        if n < 14:
            stats.bad_link += 1
            return None
        etype, off = (frame[12] << 8) | frame[13], 14
        while etype in (0x8100, 0x88A8) and n >= off + 4:  # VLAN tags
            etype, off = (frame[off + 2] << 8) | frame[off + 3], off + 4
        if etype != 0x0800:
            stats.non_ipv4 += 1
            return None
    elif linktype == LINK_RAW or linktype in _RAW_ALIASES:
        off = 0
    elif linktype == LINK_NULL:
        if n < 4:
            stats.bad_link += 1
            return None
        fam = frame[0] | (frame[1] << 8) if frame[0] else (frame[3] | (frame[2] << 8))
        if fam != 2:
            stats.non_ipv4 += 1
            return None
        off = 4
    elif linktype == LINK_LINUX_SLL:
        if n < 16:
            stats.bad_link += 1
            return None
        if ((frame[14] << 8) | frame[15]) != 0x0800:
            stats.non_ipv4 += 1
            return None
        off = 16
    elif linktype == LINK_LINUX_SLL2:
        if n < 20:
            stats.bad_link += 1
            return None
        if ((frame[0] << 8) | frame[1]) != 0x0800:
            stats.non_ipv4 += 1
            return None
        off = 20
    else:
        stats.non_ipv4 += 1
        return None
    if n - off < 20:
        stats.bad_ip += 1
        return None
    vihl = frame[off]
    ihl = (vihl & 0x0F) * 4
    total = (frame[off + 2] << 8) | frame[off + 3]
    if vihl >> 4 != 4:
        stats.non_ipv4 += 1
        return None
    if ihl < 20 or total < ihl or n - off < ihl:
        stats.bad_ip += 1
        return None
    ttl, proto = frame[off + 8], frame[off + 9]
    src, dst = struct.unpack_from("!II", frame, off + 12)
    frag_off = ((frame[off + 6] & 0x1F) << 8) | frame[off + 7]
    l4 = off + ihl
    avail = min(n, off + total) - l4  # L4 bytes present: bounded by snap length and IP length
    sport = dport = flags = 0
    hdr = 0
    if frag_off == 0:  # non-first fragments carry no L4 header: ports stay 0
        if proto == 6:
            if avail < 20:
                stats.truncated_l4 += 1
                return None
            sport, dport = struct.unpack_from("!HH", frame, l4)
            hdr, flags = (frame[l4 + 12] >> 4) * 4, frame[l4 + 13]
            if hdr < 20:
                stats.truncated_l4 += 1
                return None
        elif proto == 17:
            if avail < 8:
                stats.truncated_l4 += 1
                return None
            sport, dport = struct.unpack_from("!HH", frame, l4)
            hdr = 8
        elif proto == 1:
            if avail < 4:
                stats.truncated_l4 += 1
                return None
            sport, dport, hdr = frame[l4], frame[l4 + 1], 8  # ICMP type/code stand in for ports
    payload = max(total - ihl - hdr, 0)
    return Packet(index, ts, src, dst, proto, sport, dport, flags, ttl, total, payload)


def iter_packets(source: str | Path | BinaryIO, stats: ReaderStats | None = None) -> Iterator[Packet]:
    """Parsed IPv4 packets of a pcap file path, '-' (stdin) or binary file object."""
    stats = stats if stats is not None else ReaderStats()
    if isinstance(source, (str, Path)):
        if str(source) == "-":
            yield from iter_packets(sys.stdin.buffer, stats)
            return
        with open(source, "rb") as f:
            yield from iter_packets(f, stats)
        return
    for i, (link, ts, _orig, frame) in enumerate(iter_records(source, stats)):
        p = parse_frame(link, frame, i, ts, stats)
        if p is not None:
            stats.events += 1
            yield p


class BoundedTable:
    """Key -> state map with idle expiry and an LRU cap; touching moves a key to the back.

    Packet timestamps are (nearly) monotone, so LRU order is also last-seen order: expiring is
    popping from the front while the front is idle longer than ``ttl``. O(1) amortised per packet,
    and ``len()`` never exceeds ``cap``.
    """

    def __init__(self, cap: int, ttl: float) -> None:
        self.cap, self.ttl = int(cap), float(ttl)
        self._d: OrderedDict = OrderedDict()
        self._swept = -math.inf
        self.evicted = 0  # removed by the cap (not by expiry)
        self.expired = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: object, now: float) -> list | None:
        """State for key (moved to the back), or None when absent or idle longer than ttl.

        The sweep of idle entries from the front runs every ttl/16 of stream time (not per packet):
        an entry outlives its expiry by at most that before its memory is freed; the cap holds always.
        """
        d = self._d
        if now - self._swept > self.ttl * 0.0625:
            self._swept = now
            while d:
                k0 = next(iter(d))
                if now - d[k0][0] <= self.ttl:
                    break
                del d[k0]
                self.expired += 1
        v = d.get(key)
        if v is not None:
            if now - v[0] > self.ttl:  # idle too long: that flow / host has ended
                del d[key]
                self.expired += 1
                return None
            d.move_to_end(key)
        return v

    def put(self, key: object, value: list) -> None:
        """Insert a new state (its element 0 must be the last-seen time), evicting LRU past the cap."""
        d = self._d
        d[key] = value
        while len(d) > self.cap:
            d.popitem(last=False)
            self.evicted += 1


def _new_stats() -> list[float]:
    return [0.0] * 9  # per lambda: weight, linear sum, square sum


_L0, _L1, _L2 = LAMBDAS
_exp, _log1p, _sqrt = math.exp, math.log1p, math.sqrt


def _stat3(st: list[float], gap: float, v: float) -> list[float]:
    """Decay damped (w, LS, SS) for the 3 rates by exp(-lambda * gap), add v, and return
    [log1p(w), scaled log1p(mean), scaled log1p(std)] per rate (9 floats). Unrolled: the hot path."""
    out = []
    vv = v * v
    for j, lam in ((0, _L0), (3, _L1), (6, _L2)):
        d = _exp(-lam * gap)
        w = st[j] * d + 1.0
        ls = st[j + 1] * d + v
        ss = st[j + 2] * d + vv
        st[j], st[j + 1], st[j + 2] = w, ls, ss
        m = ls / w
        var = ss / w - m * m
        out += (_log1p(w), _log1p(m) * _LOG_LEN, _log1p(_sqrt(var)) * _LOG_LEN if var > 0.0 else 0.0)
    return out


def _port_bucket(p: int) -> int:
    return 0 if p < 1024 else (1 if p < 49152 else 2)


@dataclass
class Event:
    """One packet as a streaming model sees it: features x (N_FEATURES floats), dt, identifiers."""
    index: int
    ts: float
    dt: float
    x: list[float]
    flow_id: int
    src: int
    dst: int
    sport: int
    dport: int
    proto: int
    length: int  # IPv4 total length, bytes


@dataclass
class Featurizer:
    """Streaming packet -> Event with bounded per-host, per-channel and per-flow state.

    host = source address; channel = (src, dst); flow = bidirectional 5-tuple (TCP/UDP flows also
    end at idle expiry, so a reused tuple after ``flow_ttl`` seconds is a new flow id).
    """
    host_cap: int = 4096
    chan_cap: int = 16384
    flow_cap: int = 65536
    host_ttl: float = 120.0
    flow_ttl: float = 60.0
    last_ts: float | None = None
    next_flow_id: int = 0
    hosts: BoundedTable = field(init=False)
    chans: BoundedTable = field(init=False)
    flows: BoundedTable = field(init=False)

    def __post_init__(self) -> None:
        self.hosts = BoundedTable(self.host_cap, self.host_ttl)
        self.chans = BoundedTable(self.chan_cap, self.host_ttl)
        self.flows = BoundedTable(self.flow_cap, self.flow_ttl)

    def state_size(self) -> int:
        return len(self.hosts) + len(self.chans) + len(self.flows)

    def step(self, p: Packet) -> Event:
        now = p.ts
        last = self.last_ts
        if last is None or now >= last:
            dt = 0.0 if last is None else now - last
            self.last_ts = now
        else:  # out-of-order timestamp (multi-queue capture): no negative dt, no clock rewind
            dt = 0.0
        proto, f = p.proto, p.flags
        # header block: layout as _HEADER_NAMES (21)
        x = [0.0] * 21
        x[0 if proto == 6 else 1 if proto == 17 else 2 if proto == 1 else 3] = 1.0
        if proto == 6:
            x[4], x[5], x[6] = float(f & 1), float((f >> 1) & 1), float((f >> 2) & 1)
            x[7], x[8], x[9] = float((f >> 3) & 1), float((f >> 4) & 1), float((f >> 5) & 1)
        if proto == 6 or proto == 17:
            sp, dp = p.sport, p.dport
            x[10 if sp < 1024 else 11 if sp < 49152 else 12] = 1.0
            x[13 if dp < 1024 else 14 if dp < 49152 else 15] = 1.0
        x[16] = p.ttl / 255.0
        x[17] = _log1p(p.ip_len) * _LOG_LEN
        x[18] = _log1p(p.payload_len) * _LOG_LEN
        size = float(p.ip_len)
        # flow (bidirectional): key with the smaller endpoint first
        a, b = (p.src, p.sport), (p.dst, p.dport)
        fkey = (proto, a, b) if a <= b else (proto, b, a)
        fl = self.flows.get(fkey, now)
        first = fl is None
        if first:  # [last_t, first_t, n_pkts, initiator (src, sport), flow_id, stats]
            fl = [now, now, 0, a, self.next_flow_id, _new_stats()]
            self.next_flow_id += 1
            self.flows.put(fkey, fl)
        x[19] = 1.0 if fl[3] == a else 0.0
        x[20] = 1.0 if first else 0.0
        h = self.hosts.get(p.src, now)
        if h is None:  # [last_t, size stats, flows-opened weights per lambda]
            h = [now, _new_stats(), [0.0, 0.0, 0.0]]
            self.hosts.put(p.src, h)
        hgap = now - h[0] if now > h[0] else 0.0
        x += _stat3(h[1], hgap, size)
        nf, inc = h[2], 1.0 if first else 0.0  # damped count of flows this host opened: scans light up
        nf[0] = nf[0] * _exp(-_L0 * hgap) + inc
        nf[1] = nf[1] * _exp(-_L1 * hgap) + inc
        nf[2] = nf[2] * _exp(-_L2 * hgap) + inc
        x += (_log1p(nf[0]), _log1p(nf[1]), _log1p(nf[2]))
        h[0] = now
        ckey = (p.src, p.dst)
        c = self.chans.get(ckey, now)
        if c is None:  # [last_t, size stats, gap stats]
            c = [now, _new_stats(), _new_stats()]
            self.chans.put(ckey, c)
        cgap = now - c[0] if now > c[0] else 0.0
        x += _stat3(c[1], cgap, size)
        g = _stat3(c[2], cgap, cgap)  # mean gap between packets of the channel, log-seconds
        x += (g[1] / _LOG_LEN, g[4] / _LOG_LEN, g[7] / _LOG_LEN)
        c[0] = now
        fgap = now - fl[0] if now > fl[0] else 0.0
        x += _stat3(fl[5], fgap, size)
        fl[0], fl[2] = now, fl[2] + 1
        x += (_log1p(fl[2]), _log1p(now - fl[1]), _log1p(fgap), _log1p(dt))
        return Event(p.index, now, dt, x, fl[4], p.src, p.dst, p.sport, p.dport, proto, p.ip_len)


def iter_events(source: str | Path | BinaryIO, featurizer: Featurizer | None = None,
                stats: ReaderStats | None = None) -> Iterator[Event]:
    """Stream events from a pcap path, '-' or file object; state bounded by the featurizer caps."""
    fz = featurizer if featurizer is not None else Featurizer()
    for p in iter_packets(source, stats):
        yield fz.step(p)


@dataclass
class EventBatch:
    """A whole capture as arrays: x [N, N_FEATURES] float32, dt [N] float32 seconds, the rest [N]."""
    x: np.ndarray
    dt: np.ndarray
    ts: np.ndarray
    index: np.ndarray
    flow_id: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    proto: np.ndarray
    length: np.ndarray
    stats: ReaderStats

    def __len__(self) -> int:
        return len(self.dt)


def read_events(source: str | Path | BinaryIO, featurizer: Featurizer | None = None,
                limit: int | None = None) -> EventBatch:
    """All (or the first ``limit``) events of a capture as arrays."""
    stats = ReaderStats()
    evs: Iterable[Event] = iter_events(source, featurizer, stats)
    xs = array.array("f")  # flat [N * N_FEATURES] float32, filled at C speed
    meta: list[tuple] = []
    for e in evs:
        xs.extend(e.x)
        meta.append((e.dt, e.ts, e.index, e.flow_id, e.src, e.dst, e.sport, e.dport, e.proto, e.length))
        if limit is not None and len(meta) >= limit:
            break
    cols = list(zip(*meta)) if meta else [()] * 10
    x = np.frombuffer(xs, dtype=np.float32).reshape(len(meta), N_FEATURES).copy()
    return EventBatch(x=x, dt=np.asarray(cols[0], np.float32), ts=np.asarray(cols[1], np.float64),
                      index=np.asarray(cols[2], np.int64), flow_id=np.asarray(cols[3], np.int64),
                      src=np.asarray(cols[4], np.uint32), dst=np.asarray(cols[5], np.uint32),
                      sport=np.asarray(cols[6], np.int32), dport=np.asarray(cols[7], np.int32),
                      proto=np.asarray(cols[8], np.uint8), length=np.asarray(cols[9], np.int32), stats=stats)


def load_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(label [R] int8 with 1 = attack, attack_type [R] str) for every pcap record, by record index."""
    lab: list[int] = []
    typ: list[str] = []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        head = f.readline().strip().split(",")
        if head[:4] != ["index", "ts", "label", "attack_type"]:
            raise ValueError(f"{path}: unexpected label header {head}")
        for i, line in enumerate(f):
            idx, _ts, label, kind = line.rstrip("\n").split(",")
            if int(idx) != i:
                raise ValueError(f"{path}: row {i} has index {idx}")
            lab.append(1 if label == "attack" else 0)
            typ.append(kind)
    return np.asarray(lab, np.int8), np.asarray(typ)


def ip_str(a: int) -> str:
    return f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"

"""The fast host path of `sln detect-net`: pcap bytes -> parsed packets -> features -> scores, in C, a block at a time.

    fz = CFeaturizer()                                    # the same caps and expiries as packets.Featurizer
    for blk in iter_blocks("capture.pcap", fz):           # or '-' / a binary file object (tcpdump -w -)
        ...                                               # blk.x (n, 58) float32, blk.ts, blk.dt, blk.index, ...
    det = FastNetDetector(model, spec)                    # from sln.security.ids.load_ids(path)
    for blk, scores in det.run("capture.pcap"): ...

Why: the per-packet Python path (packets.iter_packets -> Featurizer.step -> ids_stream.StepScorer) ran at 3-5k
packets/s on the shared machine (struct unpacking, list arithmetic, one ctypes call and a numpy readout per
packet in the interpreter; docs/SECURITY_IDS.md, Part 3). Here the record framing, the IPv4/TCP/UDP parser, the
bounded per-host / per-channel / per-flow tables, the model step and the per-step readout run in
runtime/sln_ids.c over a block of up to `block` packets per call (one ctypes call per block). Streaming
semantics are unchanged: the packets of a block are processed in stream order with the same state updates as the
per-packet code, so the features are the same float32 values as packets.Featurizer's
(tests/test_security_fastpath.py checks every one on the shipped capture) and the scores equal StepScorer's (to
float32 rounding of the readout sum). On a pipe a block is whatever `read1` returned (at most `chunk` bytes), so
a live stream is not held back for a full block. Memory: one chunk, one block of arrays, and the tables,
allocated once at their caps.

runtime/sln_ids.c is compiled together with runtime/sln.c (the engine's float32 + counters flags) into
one shared library in the engine's cache ($SLN_CACHE), keyed by the sources; it needs a C compiler.
"""
from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import fmt
from ..cbuild import build_shared
from ..engine import CFLAGS, HOST_HDRS, HOST_SRC, RUNTIME, EngineBuildError
from ..model import SLN
from .ids_data import IdsSpec
from .packets import N_FEATURES, EventBatch, ReaderStats, _read_exact_or_less, read_pcap_header

IDS_SRC = RUNTIME / "sln_ids.c"
_STAT_FIELDS = ("records", "events", "truncated_record", "bad_record", "bad_link", "non_ipv4", "bad_ip",
                "truncated_l4")
_LIB: ctypes.CDLL | None = None
_MODEL_BYTES = 0


def build_library(force: bool = False) -> Path:
    """Compile runtime/sln_ids.c + runtime/sln.c into the cache (keyed by sources and flags) -> .so path."""
    return build_shared("sln-ids", [IDS_SRC, HOST_SRC], CFLAGS, headers=HOST_HDRS, error=EngineBuildError,
                        force=force, no_compiler="the fast packet path needs one; or use --backend torch")


def load_library() -> ctypes.CDLL:
    """The compiled fast path (built on first use)."""
    global _LIB, _MODEL_BYTES
    if _LIB is not None:
        return _LIB
    path = build_library()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise EngineBuildError(f"cannot load {path}: {e}") from e
    vp, sz, u32, i32, f64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_int, ctypes.c_double
    lib.ids_fz_new.argtypes = [u32, u32, u32, f64, f64]
    lib.ids_fz_new.restype = vp
    lib.ids_fz_free.argtypes = [vp]
    lib.ids_fz_free.restype = None
    lib.ids_fz_sizes.argtypes = [vp, vp]
    lib.ids_fz_sizes.restype = None
    lib.ids_process.argtypes = [vp, vp, sz, i32, f64, u32, i32, u32, vp, vp, vp, vp, ctypes.POINTER(sz),
                                ctypes.POINTER(u32)]
    lib.ids_process.restype = i32
    lib.ids_score.argtypes = [vp, vp, sz, vp, vp, u32, vp, ctypes.c_float, f64, vp, vp, vp, i32, vp, vp]
    lib.ids_score.restype = i32
    lib.ids_format.argtypes = [vp, vp, vp, u32, f64, ctypes.c_char_p, i32, vp, sz, ctypes.POINTER(sz)]
    lib.ids_format.restype = i32
    lib.sln_build_info.argtypes = [ctypes.POINTER(u32), ctypes.POINTER(sz)]
    lib.sln_load.argtypes = [vp, vp, sz, u32]
    lib.sln_state_size.argtypes = [vp, ctypes.POINTER(sz)]
    lib.sln_status_name.argtypes = [i32]
    lib.sln_status_name.restype = ctypes.c_char_p
    flags, msize = u32(0), sz(0)
    lib.sln_build_info(ctypes.byref(flags), ctypes.byref(msize))
    _LIB, _MODEL_BYTES = lib, int(msize.value)
    return lib


class CFeaturizer:
    """packets.Featurizer's state (host, channel and flow tables with caps and idle expiry) held in C."""

    def __init__(self, host_cap: int = 4096, chan_cap: int = 16384, flow_cap: int = 65536,
                 host_ttl: float = 120.0, flow_ttl: float = 60.0) -> None:
        self._lib = load_library()
        if not all(0 <= c <= 1 << 26 for c in (host_cap, chan_cap, flow_cap)):
            raise ValueError("table caps must be in 0..2**26")
        self._p = self._lib.ids_fz_new(host_cap, chan_cap, flow_cap, host_ttl, flow_ttl)
        if not self._p:
            raise MemoryError("ids_fz_new: cannot allocate the featurizer tables")
        self.caps = (host_cap, chan_cap, flow_cap)

    def __del__(self) -> None:
        p, self._p = getattr(self, "_p", None), None
        if p:
            self._lib.ids_fz_free(p)

    def tables(self) -> dict[str, dict[str, int]]:
        """len / evicted / expired of the hosts, chans and flows tables."""
        out = np.zeros(11, np.uint64)
        self._lib.ids_fz_sizes(self._p, out.ctypes.data)
        return {name: {"len": int(out[3 * i]), "evicted": int(out[3 * i + 1]), "expired": int(out[3 * i + 2])}
                for i, name in enumerate(("hosts", "chans", "flows"))}

    def state_size(self) -> int:
        return sum(t["len"] for t in self.tables().values())


@dataclass
class Block:
    """Consecutive events: x (n, 58) float32 raw features, ts / dt (n,) float64 s, meta (n, 8) int64 columns
    index, flow_id, src, dst, sport, dport, proto, length."""
    x: np.ndarray
    ts: np.ndarray
    dt: np.ndarray
    meta: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


def _pcap_header(f: BinaryIO) -> tuple[int, float, int]:
    """(big_endian, timestamp fraction, link type) from the 24-byte global header (packets.read_pcap_header)."""
    endian, frac, linktype = read_pcap_header(f)
    return int(endian == ">"), frac, linktype


def iter_blocks(source: str | Path | BinaryIO, fz: CFeaturizer | None = None, stats: ReaderStats | None = None,
                block: int = 4096, chunk: int = 1 << 20, featurize: bool = True) -> Iterator[Block]:
    """Blocks of events of a pcap path, '-' (stdin) or binary file object, in stream order.

    featurize=False: parse only (x is zeros, dt and flow_id are 0 / -1). Skipped records are counted in stats.
    """
    stats = stats if stats is not None else ReaderStats()
    if isinstance(source, (str, Path)):
        if str(source) == "-":
            yield from iter_blocks(sys.stdin.buffer, fz, stats, block, chunk, featurize)
            return
        with open(source, "rb") as f:
            yield from iter_blocks(f, fz, stats, block, chunk, featurize)
        return
    fz = fz if fz is not None else CFeaturizer()
    lib = fz._lib
    big, frac, link = _pcap_header(source)
    x = np.zeros((block, N_FEATURES), np.float32)
    tsdt = np.zeros((block, 2), np.float64)
    meta = np.zeros((block, 8), np.int64)
    cnt = np.zeros(8, np.uint64)
    used, n_out = ctypes.c_size_t(0), ctypes.c_uint32(0)
    buf, pos, eof = b"", 0, False
    base = 0
    while True:
        if len(buf) - pos >= 16:
            cnt[:] = 0
            rc = lib.ids_process(fz._p, base + pos, len(buf) - pos, big, frac, link, int(featurize), block,
                                 x.ctypes.data, tsdt.ctypes.data, meta.ctypes.data, cnt.ctypes.data,
                                 ctypes.byref(used), ctypes.byref(n_out))
            for name, v in zip(_STAT_FIELDS, cnt.tolist(), strict=True):
                if v:
                    setattr(stats, name, getattr(stats, name) + v)
            pos += used.value
            n = n_out.value
            if n:
                yield Block(x[:n].copy(), tsdt[:n, 0].copy(), tsdt[:n, 1].copy(), meta[:n].copy())
            if rc:               # a corrupt record header: framing is lost, stop as packets.iter_records does
                return
            if n == block:       # stopped at the block size: more complete records may be there
                continue
        if eof:
            break
        more = _read_exact_or_less(source, chunk)
        eof = not more
        buf, pos = buf[pos:] + more, 0
        base = np.frombuffer(buf, np.uint8).ctypes.data if buf else 0
    if len(buf) - pos > 0:
        stats.records += 1
        stats.truncated_record += 1


def read_events_fast(source: str | Path | BinaryIO, fz: CFeaturizer | None = None) -> EventBatch:
    """packets.read_events through the C path: the whole capture as arrays (the same values)."""
    stats = ReaderStats()
    blocks = list(iter_blocks(source, fz, stats))
    cat = (lambda f: np.concatenate([f(b) for b in blocks])) if blocks else (lambda f: f(Block(
        np.zeros((0, N_FEATURES), np.float32), np.zeros(0), np.zeros(0), np.zeros((0, 8), np.int64))))
    m = cat(lambda b: b.meta)
    return EventBatch(x=cat(lambda b: b.x), dt=cat(lambda b: b.dt).astype(np.float32), ts=cat(lambda b: b.ts),
                      index=m[:, 0].copy(), flow_id=m[:, 1].copy(), src=m[:, 2].astype(np.uint32),
                      dst=m[:, 3].astype(np.uint32), sport=m[:, 4].astype(np.int32), dport=m[:, 5].astype(np.int32),
                      proto=m[:, 6].astype(np.uint8), length=m[:, 7].astype(np.int32), stats=stats)


class BlockScorer:
    """ids_stream.StepScorer over a block of packets in one C call (float32 model step + per-step readout)."""

    def __init__(self, model: SLN, spec: IdsSpec, layout: str = "auto") -> None:
        model = model.eval()
        lib = load_library()
        self._lib = lib
        data = fmt.float_model_bytes(model, layout)
        self._data = np.frombuffer(data, np.uint8).copy()
        self._model = np.zeros((_MODEL_BYTES + 7) // 8, np.uint64)
        rc = lib.sln_load(self._model.ctypes.data, self._data.ctypes.data, len(data), fmt.MODEL_KINDS["classifier"])
        if rc:
            raise ValueError(f"sln_load: {lib.sln_status_name(rc).decode()}")
        n = ctypes.c_size_t(0)
        lib.sln_state_size(self._model.ctypes.data, ctypes.byref(n))
        self.state = np.zeros((int(n.value) + 3) // 4, np.uint32)
        self.recon = spec.mode == "reconstruct"
        self.inv_scale = (1.0 / np.asarray(spec.scale, np.float64)).astype(np.float32)
        self.clip, self.dt_scale = float(spec.clip), float(spec.dt_scale)
        self.w_out = np.ascontiguousarray(model.readout.weight.detach().numpy(), np.float32)
        self.b_out = np.ascontiguousarray(model.readout.bias.detach().numpy(), np.float32)
        self.weight = None if spec.resid_weight is None else np.asarray(spec.resid_weight, np.float64)
        self.counts: np.ndarray | None = None     # set to Engine.new_counts().rows to count operations

    def reset(self) -> None:
        self.state[:] = 0

    def scores(self, x: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """x (n, D) raw features, dt (n,) seconds -> (n,) scores; the state carries over to the next call."""
        x = np.ascontiguousarray(x, np.float32)
        dt = np.ascontiguousarray(dt, np.float64)
        out = np.empty(len(x), np.float64)
        rc = self._lib.ids_score(self._model.ctypes.data, self.state.ctypes.data, self.state.nbytes, x.ctypes.data,
                                 dt.ctypes.data, len(x), self.inv_scale.ctypes.data, self.clip, self.dt_scale,
                                 self.w_out.ctypes.data, self.b_out.ctypes.data,
                                 None if self.weight is None else self.weight.ctypes.data, int(self.recon),
                                 out.ctypes.data, None if self.counts is None else self.counts.ctypes.data)
        if rc:
            raise ValueError(f"ids_score: {self._lib.sln_status_name(rc).decode()}")
        return out


LINE_MAX = 320    # runtime/sln_ids.c IDS_LINE_MAX


def format_records(blk: Block, scores: np.ndarray, threshold: float, alerts_only: bool = False) -> str:
    """The JSON Lines records of a block (sln detect-net's format: ts, src, dst, sport, dport, proto, score,
    alert, threshold; ts and score with 6 decimals, the threshold as Python writes it), built in C."""
    lib = load_library()
    n = len(blk)
    out = np.empty(LINE_MAX * max(n, 1), np.uint8)
    ts, sc = np.ascontiguousarray(blk.ts, np.float64), np.ascontiguousarray(scores, np.float64)
    meta = np.ascontiguousarray(blk.meta, np.int64)
    used = ctypes.c_size_t(0)
    lib.ids_format(ts.ctypes.data, sc.ctypes.data, meta.ctypes.data, n, float(threshold),
                   repr(float(threshold)).encode(), int(alerts_only), out.ctypes.data, out.nbytes, ctypes.byref(used))
    return out[:used.value].tobytes().decode("ascii")


class FastNetDetector:
    """ids_stream.NetDetector on the C path: featurizer, model step and readout a block at a time."""

    def __init__(self, model: SLN, spec: IdsSpec, threshold: float | None = None,
                 featurizer: CFeaturizer | None = None, block: int = 4096, scorer: Any = None) -> None:
        self.spec = spec
        self.threshold = spec.threshold if threshold is None else float(threshold)
        self.fz = featurizer or CFeaturizer()
        # default: the link state; sln.security.keyed passes a KeyedBlockScorer (one state per host pair / source)
        self.scorer = scorer if scorer is not None else BlockScorer(model, spec)
        self.keyed = bool(getattr(self.scorer, "keyed", False))
        self.block = block
        self.backend = "c-block"
        self.packets = self.alerts = 0

    def run(self, source: str | Path | BinaryIO, stats: ReaderStats | None = None
            ) -> Iterator[tuple[Block, np.ndarray]]:
        """(block, its scores) in stream order."""
        for blk in iter_blocks(source, self.fz, stats, self.block):
            s = (self.scorer.scores(blk.x, blk.ts, blk.meta) if self.keyed
                 else self.scorer.scores(blk.x, blk.dt))
            self.packets += len(blk)
            self.alerts += int(np.count_nonzero(s > self.threshold))
            yield blk, s


def counted_energy(model: SLN, spec: IdsSpec, x: np.ndarray, dt: np.ndarray) -> dict[str, Any]:
    """Estimated energy per packet from the C runtime's own operation counters over a packet stream
    (the steps as executed: nonzero inputs, winners, stored weights only when column-sparse), plus the
    per-step readout over the nonzero winners and the score, priced like ids_energy.energy_nj (fp32,
    the default profile; memory levels from the model's stored sizes: sln.bench.image.sln_footprints).
    -> {"ops": per packet, "total_nj", "compute_nj", "memory_nj", "weight_level", "footprint_bytes"}."""
    from ..bench.image import sln_footprints
    from .ids_energy import energy_nj

    cfg = model.cfg
    N, C, D = cfg.n_neurons, cfg.n_classes, cfg.input_size
    sc = BlockScorer(model, spec)
    rows = np.zeros((3 * cfg.n_layers + 1, len(fmt.COUNTER_NAMES)), np.uint64)
    sc.counts = rows
    sc.scores(x, dt)
    n = max(1, len(x))
    c = {name: float(rows[:, j].sum()) / n for j, name in enumerate(fmt.COUNTER_NAMES)}
    winners = float(rows[3 * (cfg.n_layers - 1) + 2, fmt.COUNTER_NAMES.index("nz_out")]) / n
    ops = {"macs": c["mac"] + winners * C, "acs": c["ac"], "adds": c["add"] + C, "muls": c["mul"], "cmps": c["cmp"],
           "nonlin": c["nonlin"], "weight_bytes": c["weight_bytes"] + 4 * winners * C,
           "param_bytes": c["param_bytes"] + 4 * C, "index_bytes": c["index_bytes"],
           "act_bytes": c["act_bytes_read"] + c["act_bytes_written"] + 4 * (winners * 2 + C)}
    if sc.recon:                    # residual, weight, square-sum, mean, sqrt
        ops["adds"] += C
        ops["macs"] += C
        ops["muls"] += C + 1
        ops["nonlin"] += 1
    else:
        ops["adds"] += 1
    mat, par = sln_footprints(model)
    e = energy_nj(ops, {"matrix": float(mat), "param": float(par), "act": 4.0 * (4 * N + D)})
    events = float(rows[0, fmt.COUNTER_NAMES.index("events")]) / n       # layer 0's nonzero inputs
    return {"ops": ops, "input_events": events, "winners": winners, "footprint_bytes": mat + par, **e}

"""`sln detect-net --model DIR/model.sln`: the int8 event model (model_kind 3, sln/intspec_events.py) on the host.

    python -m sln.security.ids_int8 export --checkpoint RUN/checkpoint.safetensors --out DIR  # + DIR/model.ids.json
    python -m sln.security.ids_int8_net calibrate --model DIR/model.sln --checkpoint CKPT      # for an older export
    sln detect-net --pcap capture.pcap --model DIR/model.sln > alerts.jsonl
    sln detect-net --pcap capture.pcap --model DIR/model.sln --dump-stream packets.bin         # the firmware's input

The `.sln` file holds the integer model; what it does not hold is beside it in `model.ids.json`
(`sidecar_path`): the detector's per-feature scale and clip (the firmware reads features already scaled
and encoded), the model file's SHA-256 (a sidecar is refused for another file) and the threshold **in the
int8 score domain**: `threshold_sq`, an integer bound on S = sum e_c^2 of the event step, calibrated at
the detector's false-positive rate (1e-3) on the int8 scores of the benign validation packets (the last
20 % of the capture's benign prefix; `calibrate`). A packet alerts when S > threshold_sq. The records
print score = sqrt(S / C) 2^-e_frac (`intspec_events.real_score`, the float detector's weighted RMSE)
and threshold = the same map of threshold_sq; sqrt is monotone and distinct S < 2^46 stay distinct
doubles, so `score > threshold` in a record is exactly `S > threshold_sq`.

Path of a packet (the same encoding as the firmware's stream, `ids_int8.int_inputs`, by construction:
the same functions): the C block featurizer (sln.security.fastpath; features bit for bit the Python
featurizer's) -> scale, clip, x_q = round(x 2^x_frac) int16, dt as float32 seconds (the capture arrays'
type) -> integer microseconds -> runtime/sln_ids_events.c, which calls runtime/sln.c `sln_events_step`
for each packet of a block with one state carried (the firmware's calls) -> S -> the JSON Lines
records (fastpath.format_records). Without a C compiler: the Python featurizer and the Python integer
reference (`intspec_events.events_step`, bit for bit the C step; slow). tests/test_ids_int8_net.py checks
the records against the Python integer reference and the firmware's stream encoding on the shipped capture.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import math
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from .. import fmt, intspec_events
from ..cbuild import build_shared
from ..checkpoint import CheckpointError
from ..engine import CFLAGS, HOST_HDRS, HOST_SRC, RUNTIME, EngineBuildError
from .ids_data import Capture, IdsSpec, load_capture, unsupervised_split
from .ids_stream import LatencyHistogram
from .metrics import calibrate_threshold
from .packets import FEATURE_NAMES, N_FEATURES, ReaderStats, ip_str, iter_events

EV_SRC = RUNTIME / "sln_ids_events.c"
SIDE_SUFFIX = ".ids.json"
_LIB: ctypes.CDLL | None = None
_MODEL_BYTES = 0


def sidecar_path(model: str | Path) -> Path:
    """DIR/model.sln -> DIR/model.ids.json."""
    p = Path(model)
    return p.with_name(p.stem + SIDE_SUFFIX)


@dataclass
class Int8Spec:
    """What model.ids.json holds: the input encoding and the threshold in the int8 score domain."""
    scale: list[float]
    clip: float
    x_frac: int
    threshold_sq: int
    threshold: float
    target_fpr: float
    model_sha256: str
    features: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    calibration: dict[str, Any] = field(default_factory=dict)
    kind: str = "sln-ids-int8-event"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_spec(qe: intspec_events.QEvents, data: bytes, spec: IdsSpec, S_val: np.ndarray,
              **calibration: Any) -> Int8Spec:
    """Calibrate the int8 threshold on the int8 scores S of benign validation packets (at spec.target_fpr)."""
    S_val = np.asarray(S_val, np.int64)
    thr = int(round(calibrate_threshold(S_val.astype(np.float64), spec.target_fpr)))
    if not np.any(S_val == thr):
        raise AssertionError("calibrate_threshold must return one of the scores")
    return Int8Spec(scale=[float(v) for v in spec.scale], clip=float(spec.clip), x_frac=int(qe.x_frac),
                    threshold_sq=thr, threshold=float(intspec_events.real_score(qe, np.array([thr]))[0]),
                    target_fpr=float(spec.target_fpr), model_sha256=hashlib.sha256(data).hexdigest(),
                    features=list(spec.features),
                    calibration={"benign_packets": int(len(S_val)), "alerts_at_threshold": int((S_val > thr).sum()),
                                 **calibration})


def write_spec(model_path: str | Path, s: Int8Spec) -> Path:
    p = sidecar_path(model_path)
    p.write_text(json.dumps(s.to_dict(), indent=1) + "\n")
    return p


def encode(qe: intspec_events.QEvents, s: Int8Spec, x: np.ndarray, dt_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw features (n, D) and dt seconds (n,) -> x_q (n, D) int16 and dt_us (n,) uint32: ids_int8.int_inputs
    with dt taken as float32 seconds (the capture arrays' and the Python featurizer's batches' type), i.e. the
    firmware's stream (ids_int8.write_stream) of the same packets."""
    xs = np.clip(np.asarray(x, np.float32) / np.asarray(s.scale, np.float32), -s.clip, s.clip)
    xq = intspec_events.quantize_x(xs, qe.x_frac).astype(np.int16)
    dus = intspec_events.dt_to_us(np.asarray(dt_s, np.float32).astype(np.float64)).astype(np.uint32)
    return xq, dus


# --------------------------------------------------------------------------- the C loop
def build_library(force: bool = False) -> Path:
    return build_shared("sln-ids-events", [EV_SRC, HOST_SRC], CFLAGS, headers=HOST_HDRS, error=EngineBuildError,
                        force=force, no_compiler="the int8 detector then runs on the Python integer reference")


def load_library() -> ctypes.CDLL:
    global _LIB, _MODEL_BYTES
    if _LIB is not None:
        return _LIB
    path = build_library()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise EngineBuildError(f"cannot load {path}: {e}") from e
    vp, sz, u32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32
    lib.ids_events_run.argtypes = [vp, vp, sz, vp, vp, u32, vp, vp, ctypes.POINTER(u32)]
    lib.ids_events_run.restype = ctypes.c_int
    lib.sln_build_info.argtypes = [ctypes.POINTER(u32), ctypes.POINTER(sz)]
    lib.sln_load.argtypes = [vp, vp, sz, u32]
    lib.sln_load.restype = ctypes.c_int
    lib.sln_state_size.argtypes = [vp, ctypes.POINTER(sz)]
    lib.sln_status_name.argtypes = [ctypes.c_int]
    lib.sln_status_name.restype = ctypes.c_char_p
    flags, msize = u32(0), sz(0)
    lib.sln_build_info(ctypes.byref(flags), ctypes.byref(msize))
    _LIB, _MODEL_BYTES = lib, int(msize.value)
    return lib


class EventLoop:
    """An event-model .sln on the C runtime: blocks of encoded packets -> S (n,), bucket (n,); state carried."""

    backend = "c (sln_events_step)"

    def __init__(self, data: bytes) -> None:
        lib = load_library()
        self._lib = lib
        self._data = np.frombuffer(data, np.uint8).copy()
        self._model = np.zeros((_MODEL_BYTES + 7) // 8, np.uint64)
        rc = lib.sln_load(self._model.ctypes.data, self._data.ctypes.data, len(data), fmt.MODEL_KINDS["event_model"])
        if rc:
            raise ValueError(f"sln_load: {lib.sln_status_name(rc).decode()}")
        n = ctypes.c_size_t(0)
        lib.sln_state_size(self._model.ctypes.data, ctypes.byref(n))
        self.state = np.zeros((int(n.value) + 3) // 4, np.uint32)

    def reset(self) -> None:
        self.state[:] = 0

    def run(self, xq: np.ndarray, dus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xq, dus = np.ascontiguousarray(xq, np.int16), np.ascontiguousarray(dus, np.uint32)
        n = len(dus)
        S, B = np.zeros(n, np.uint64), np.zeros(n, np.uint8)
        done = ctypes.c_uint32(0)
        rc = self._lib.ids_events_run(self._model.ctypes.data, self.state.ctypes.data, self.state.nbytes,
                                      xq.ctypes.data, dus.ctypes.data, n, S.ctypes.data, B.ctypes.data,
                                      ctypes.byref(done))
        if rc:
            raise ValueError(f"sln_events_step refused packet {done.value} of the block: "
                             f"{self._lib.sln_status_name(rc).decode()}")
        return S.astype(np.int64), B.astype(np.int64)


class RefLoop:
    """The same on the Python integer reference (intspec_events.events_step): no compiler needed."""

    backend = "python integer reference"

    def __init__(self, qe: intspec_events.QEvents) -> None:
        from .. import intspec as Q
        self.qe, self._Q = qe, Q
        self.reset()

    def reset(self) -> None:
        self.st = self._Q.init_state(self.qe.qm, 1)

    def run(self, xq: np.ndarray, dus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        S, B = np.zeros(len(dus), np.int64), np.zeros(len(dus), np.int64)
        for i in range(len(dus)):
            _, S[i], B[i] = intspec_events.events_step(self.qe, self.st, xq[i], int(dus[i]))
        return S, B


# --------------------------------------------------------------------------- loading and calibration
def load_int8_detector(path: str | Path, backend: str = "auto"
                       ) -> tuple[intspec_events.QEvents, Int8Spec, EventLoop | RefLoop]:
    """model.sln + model.ids.json -> (integer model, spec, its step loop); CheckpointError if either is wrong.
    backend: auto (C when it builds, else the reference) | c | ref."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise CheckpointError(f"no model file {path}")
    data = path.read_bytes()
    try:
        qe = intspec_events.from_bytes(data)
    except (ValueError, KeyError, struct.error) as e:      # fmt's parser: struct.error on a cut file
        raise CheckpointError(f"{path}: not an int8 event model (model_kind 3; python -m sln.security.ids_int8 "
                              f"export): {e}") from e
    if not side.is_file():
        raise CheckpointError(f"{side} is missing (the scale and the int8 threshold): python -m "
                              f"sln.security.ids_int8_net calibrate --model {path} --checkpoint CKPT")
    try:
        s = Int8Spec(**json.loads(side.read_text()))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{side}: not an int8 detector spec ({e})") from e
    if s.model_sha256 != hashlib.sha256(data).hexdigest():
        raise CheckpointError(f"{side} was written for another model file than {path}; calibrate it again")
    if s.features != list(FEATURE_NAMES) or len(s.scale) != N_FEATURES or qe.qm.input_size != N_FEATURES \
            or s.x_frac != qe.x_frac:
        raise CheckpointError(f"{path}: trained on other packet features than this sln's reader computes")
    if backend not in ("auto", "c", "ref"):
        raise ValueError(f"backend must be auto, c or ref, not {backend!r}")
    loop: EventLoop | RefLoop
    if backend == "ref":
        loop = RefLoop(qe)
    else:
        try:
            loop = EventLoop(data)
        except EngineBuildError:
            if backend == "c":
                raise
            loop = RefLoop(qe)
    return qe, s, loop


def calibrate(model: str | Path, checkpoint: str | Path, data_dir: str | Path = "tests/fixtures/ids",
              cap: Capture | None = None) -> Int8Spec:
    """Write model.ids.json for an exported model.sln: the scale from the checkpoint, the int8 threshold from
    the C (or reference) scores of the capture's benign validation packets, streamed from its first packet."""
    from .ids import load_ids
    data = Path(model).read_bytes()
    qe = intspec_events.from_bytes(data)
    _, spec = load_ids(checkpoint)
    cap = cap if cap is not None else load_capture(data_dir)
    sp = unsupervised_split(cap)
    vb = sp.val & (cap.y == 0)
    end = int(np.flatnonzero(vb).max()) + 1
    s0 = Int8Spec(spec.scale, spec.clip, qe.x_frac, 0, 0.0, spec.target_fpr, "")
    xq, dus = encode(qe, s0, cap.ev.x[:end], cap.ev.dt[:end])
    try:
        loop: EventLoop | RefLoop = EventLoop(data)
    except EngineBuildError:
        loop = RefLoop(qe)
    S, _ = loop.run(xq, dus)
    s = make_spec(qe, data, spec, S[vb[:end]], capture_sha256=cap.sha256, checkpoint=str(checkpoint),
                  split="benign validation packets: the last 20 % of the capture's benign prefix")
    write_spec(model, s)
    return s


# --------------------------------------------------------------------------- detect-net
@dataclass
class _PyBlock:
    x: np.ndarray
    ts: np.ndarray
    dt: np.ndarray
    meta: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


def _py_blocks(source: str | Path | BinaryIO, stats: ReaderStats, block: int) -> Iterator[_PyBlock]:
    """The Python featurizer's events in blocks (the no-compiler path)."""
    buf: list[Any] = []

    def mk() -> _PyBlock:
        return _PyBlock(np.array([e.x for e in buf], np.float32).reshape(-1, N_FEATURES),
                        np.array([e.ts for e in buf], np.float64), np.array([e.dt for e in buf], np.float64),
                        np.array([[e.index, e.flow_id, e.src, e.dst, e.sport, e.dport, e.proto, e.length]
                                  for e in buf], np.int64).reshape(-1, 8))
    for e in iter_events(source, stats=stats):
        buf.append(e)
        if len(buf) >= block:
            yield mk()
            buf = []
    if buf:
        yield mk()


def _py_records(blk: Any, scores: np.ndarray, thr: float, alerts_only: bool) -> str:
    out = []
    for i in range(len(blk)):
        a = bool(scores[i] > thr)
        if a or not alerts_only:
            m = blk.meta[i]
            out.append(json.dumps({"ts": round(float(blk.ts[i]), 6), "src": ip_str(int(m[2])), "dst": ip_str(int(m[3])),
                                   "sport": int(m[4]), "dport": int(m[5]), "proto": int(m[6]),
                                   "score": round(float(scores[i]), 6), "alert": a, "threshold": thr}) + "\n")
    return "".join(out)


class Int8NetDetector:
    """Featurizer -> encoding -> int8 event step -> records, a block of packets at a time."""

    def __init__(self, path: str | Path, threshold: float | None = None, backend: str = "auto",
                 block: int = 4096) -> None:
        self.qe, self.spec, self.loop = load_int8_detector(path, backend)
        self.threshold_sq = self.spec.threshold_sq
        self.threshold = self.spec.threshold
        if threshold is not None:                  # given in the records' score units: the same map back to S
            self.threshold = float(threshold)
            C, ef = self.qe.qm.n_classes, self.qe.e_frac
            self.threshold_sq = math.floor(C * (max(self.threshold, 0.0) * 2.0 ** ef) ** 2)
        self.block = block
        self.c_front = isinstance(self.loop, EventLoop)
        self.backend = f"int8 event model, {self.loop.backend}"
        self.packets = self.alerts = 0

    def run(self, source: str | Path | BinaryIO, stats: ReaderStats, dump: IO[bytes] | None = None
            ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """(block, S, real scores) in stream order; dump: the firmware's stream of the same packets."""
        if self.c_front:
            from .fastpath import iter_blocks
            blocks: Iterator[Any] = iter_blocks(source, None, stats, self.block)
        else:
            blocks = _py_blocks(source, stats, self.block)
        for blk in blocks:
            xq, dus = encode(self.qe, self.spec, blk.x, blk.dt)
            if dump is not None:
                rec = np.zeros(len(dus), np.dtype([("dt", "<u4"), ("x", "<i2", (xq.shape[1],))]))
                rec["dt"], rec["x"] = dus, xq
                dump.write(rec.tobytes())
            S, _ = self.loop.run(xq, dus)
            sc = intspec_events.real_score(self.qe, S)
            self.packets += len(S)
            self.alerts += int(np.count_nonzero(sc > self.threshold))     # = S > threshold_sq (module doc)
            yield blk, S, sc

    def records(self, blk: Any, S: np.ndarray, scores: np.ndarray, alerts_only: bool) -> str:
        if self.c_front:
            from .fastpath import format_records
            return format_records(blk, scores, self.threshold, alerts_only)
        return _py_records(blk, scores, self.threshold, alerts_only)


def detect_int8(det: Int8NetDetector, source: str | Path | BinaryIO, fout: IO[str], alerts_only: bool = False,
                dump: IO[bytes] | None = None) -> tuple[ReaderStats, float, LatencyHistogram]:
    """detect_net_cli.detect_fast for the int8 model: the same records and summary inputs."""
    from ..fetch import DataError
    from .packets import PcapError
    stats, hist = ReaderStats(), LatencyHistogram()
    pc = time.perf_counter
    t0 = pc()
    try:
        it = det.run(source, stats, dump)
        while True:
            tb = pc()
            try:
                blk, S, sc = next(it)
            except StopIteration:
                break
            hist.add((pc() - tb) / len(blk), len(blk))
            fout.write(det.records(blk, S, sc, alerts_only))
    except PcapError as e:
        raise DataError(f"--pcap {source if isinstance(source, (str, Path)) else '-'}: {e}") from e
    fout.flush()
    return stats, pc() - t0, hist


def main_int8(a: argparse.Namespace) -> int:
    """sln detect-net with --model X.sln (called by detect_net_cli.main)."""
    import os
    if getattr(a, "state", "link") not in ("stored", "auto", "link"):
        raise ValueError("an int8 .sln event model carries one state through the link: --state link (or stored)")
    if a.backend in ("c-step", "torch"):
        raise ValueError(f"--backend {a.backend} is for float checkpoints; an int8 .sln runs with --backend auto "
                         "or c (the C runtime's sln_events_step)")
    det = Int8NetDetector(a.model, a.threshold, "c" if a.backend == "c" else "auto", max(1, a.block))
    dump_path = getattr(a, "dump_stream", None)
    dump = open(dump_path, "wb") if dump_path else None
    try:
        stats, secs, hist = detect_int8(det, a.pcap, sys.stdout, a.alerts_only, dump)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if dump is not None:
            dump.close()
    if not a.quiet:
        skipped = {k: v for k, v in vars(stats).items() if k not in ("records", "events") and v}
        secs = max(secs, 1e-9)
        print(f"detect-net: {det.packets:,} packets ({det.alerts:,} alerts, {stats.skipped():,} records skipped"
              f"{' ' + json.dumps(skipped) if skipped else ''}) in {secs:.2f} s, {det.packets / secs:,.0f} packets/s, "
              f"latency p50 {hist.quantile(0.5) * 1e6:.1f} us p99 {hist.quantile(0.99) * 1e6:.1f} us "
              f"(per packet, blocks of <= {det.block}), threshold {det.threshold:.6g} (S > {det.threshold_sq}), "
              f"{det.backend}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.security.ids_int8_net", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate", help="write model.ids.json (scale + int8 threshold) for an exported model.sln")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--checkpoint", type=Path, required=True, help="the float checkpoint it was exported from")
    c.add_argument("--data-dir", default="tests/fixtures/ids", help="the capture it was trained on")
    a = p.parse_args(argv)
    s = calibrate(a.model, a.checkpoint, a.data_dir)
    print(f"wrote {sidecar_path(a.model)}: threshold S > {s.threshold_sq} (score {s.threshold:.6g}) on "
          f"{s.calibration['benign_packets']} benign validation packets")
    return 0


if __name__ == "__main__":
    sys.exit(main())


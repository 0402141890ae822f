"""`sln detect-net`: score every packet of a pcap file or a live stream with a trained packet detector.

    sln detect-net --pcap capture.pcap --model runs/packets/checkpoint.safetensors > alerts.jsonl
    tcpdump -i eth0 -U -w - | sln detect-net --pcap - --alerts-only

Output: JSON Lines, one record per packet (`--alerts-only`: only the alerted ones), in stream order:
    {"ts": ..., "src": "a.b.c.d", "dst": ..., "sport": ..., "dport": ..., "proto": 6, "score": ..., "alert": ...,
     "threshold": ...}
`alert` is score > threshold, the threshold calibrated at FPR 1e-3 on benign validation traffic when the
model was trained and stored with it (`--threshold` overrides). Summary on stderr at the end: packets,
alerts, skipped records by reason, packets/s and the p50/p99 per-packet latency (featurize + score).

Bounded memory on an endless stream: the reader keeps one chunk, the featurizer's host/channel/flow
tables have caps and idle expiry, the model state is fixed-size, latencies go into a fixed histogram.
Errors (a missing or wrong checkpoint, input that is not a pcap) end in one line and an exit code via
sln.cli.run; malformed packets are counted and skipped, never fatal.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import IO

import torch

from ..engine import EngineBuildError
from ..fetch import DataError
from .fastpath import FastNetDetector, format_records, load_library
from .ids import load_ids
from .ids_stream import LatencyHistogram, NetDetector
from .keyed import default_state, make_detector, threshold_for
from .packets import PcapError, ReaderStats, iter_packets

DEFAULT_MODEL = Path("runs/packets-sln-ids-small/checkpoint.safetensors")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sln detect-net", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pcap", required=True, help="pcap file, or '-' for a pcap stream on stdin (tcpdump -w -)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="detector checkpoint (train.py --dataset packets), or an int8 event model DIR/model.sln "
                        "(+ DIR/model.ids.json; sln.security.ids_int8_net)")
    p.add_argument("--threshold", type=float, default=None, help="alert above this score (default: the stored one)")
    p.add_argument("--alerts-only", action="store_true", help="write only the alerted packets")
    p.add_argument("--backend", choices=["auto", "c", "c-step", "torch"], default="auto",
                   help="c: parser, featurizer and model step in C a block of packets per call (sln.security."
                        "fastpath; auto: when it builds, else torch); c-step: the Python featurizer and one C "
                        "step per packet; torch: the Python featurizer and the PyTorch step")
    p.add_argument("--block", type=int, default=4096, help="packets per C call (backend c)")
    p.add_argument("--dump-stream", type=Path, default=None,
                   help="int8 .sln model only: also write the packets as the firmware reads them (u32 dt_us + "
                        "int16 features each; runtime/mcu/firmware_events.c)")
    p.add_argument("--state", choices=["auto", "link", "pair", "src"], default="auto",
                   help="the model state a packet is scored with: link = one state through the whole link (part 2); "
                        "pair = one state per host pair, src = one per source host, in a bounded expiring table "
                        "(docs/SECURITY_IDS.md part 5); auto = pair when the checkpoint holds a pair threshold "
                        "(train.py since part 5), else link")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    return p


def detect(det: NetDetector, source: str | Path | IO[bytes], fout: IO[str], alerts_only: bool = False
           ) -> tuple[ReaderStats, float]:
    """Write the records of every packet of `source` to fout -> (reader stats, seconds)."""
    stats = ReaderStats()
    t0 = time.perf_counter()
    try:
        for rec in det.run(iter_packets(source, stats)):
            if rec["alert"] or not alerts_only:
                fout.write(json.dumps(rec) + "\n")
    except PcapError as e:
        raise DataError(f"--pcap {source if isinstance(source, (str, Path)) else '-'}: {e}") from e
    fout.flush()
    return stats, time.perf_counter() - t0


def detect_fast(det: FastNetDetector, source: str | Path | IO[bytes], fout: IO[str], alerts_only: bool = False
                ) -> tuple[ReaderStats, float, LatencyHistogram]:
    """detect() on the block path: the same records (ts and score printed with 6 decimals, the values of
    detect()'s round(., 6)), a block of packets per C call (parse, featurize, score, format: sln.security.fastpath).
    Latency histogram: each block's compute time per packet (parse + featurize + score), weighted by its size."""
    stats, hist = ReaderStats(), LatencyHistogram()
    pc = time.perf_counter
    t0 = pc()
    try:
        it = det.run(source, stats)
        while True:
            tb = pc()
            try:
                blk, sc = next(it)
            except StopIteration:
                break
            hist.add((pc() - tb) / len(blk), len(blk))
            fout.write(format_records(blk, sc, det.threshold, alerts_only))
    except PcapError as e:
        raise DataError(f"--pcap {source if isinstance(source, (str, Path)) else '-'}: {e}") from e
    fout.flush()
    return stats, pc() - t0, hist


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.threshold is not None and a.threshold != a.threshold:
        raise ValueError("--threshold must be a number, not nan")
    if a.pcap != "-" and not Path(a.pcap).is_file():
        raise ValueError(f"no pcap file {a.pcap}")
    if a.model.suffix == ".sln" and a.state in ("pair", "src"):
        raise ValueError(f"--state {a.state} needs a float checkpoint (.safetensors): the int8 event model runs one "
                         "link state (runtime/sln_ids_events.c); drop --state or give the float checkpoint")
    if a.model.suffix == ".sln":                     # an int8 event model + model.ids.json beside it
        from .ids_int8_net import main_int8
        return main_int8(a)
    torch.set_num_threads(max(1, a.threads))
    model, spec = load_ids(a.model)                  # missing / wrong checkpoint: exit 4 via sln.cli.run
    fast = a.backend == "c"
    if a.backend == "auto":
        try:
            load_library()
            fast = True
        except EngineBuildError:                     # no compiler: the per-packet PyTorch path
            a.backend = "torch"
    state = default_state(spec) if a.state == "auto" else a.state
    thr = threshold_for(spec, state, a.threshold)     # no threshold for that state: exit 2 with what to do
    det = make_detector(model, spec, thr, state, fast, "c" if a.backend == "c-step" else a.backend, max(1, a.block))
    try:
        if isinstance(det, FastNetDetector):
            stats, secs, hist = detect_fast(det, a.pcap, sys.stdout, a.alerts_only)
        else:
            stats, secs = detect(det, a.pcap, sys.stdout, a.alerts_only)
            hist = det.latency
    except BrokenPipeError:                          # `| head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not a.quiet:
        skipped = {k: v for k, v in vars(stats).items() if k not in ("records", "events") and v}
        secs = max(secs, 1e-9)
        print(f"detect-net: {det.packets:,} packets ({det.alerts:,} alerts, {stats.skipped():,} records skipped"
              f"{' ' + json.dumps(skipped) if skipped else ''}) in {secs:.2f} s, {det.packets / secs:,.0f} packets/s, "
              f"latency p50 {hist.quantile(0.5) * 1e6:.1f} us p99 {hist.quantile(0.99) * 1e6:.1f} us"
              f"{' (per packet, blocks of <= ' + str(det.block) + ')' if fast else ''}, "
              f"threshold {det.threshold:.6g}, {det.backend} step, {state} state", file=sys.stderr)
    return 0

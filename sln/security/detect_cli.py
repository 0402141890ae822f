"""`sln detect-url`: score domains / URLs, one per line, with a trained SLN detector (streaming).

    tshark -l -T fields -e dns.qry.name -r capture.pcap | sln detect-url --model run/checkpoint.safetensors
    sln detect-url --model CKPT hosts.txt --format tsv > scores.tsv

Output, one record per input line, in input order (JSON Lines by default):
    {"input": ..., "normalized": ..., "score": ..., "alert": ..., "threshold": ...}
    {"input": ..., "error": "..."}          # a line that is not a host / URL (empty, binary, too long, bad IDN)
TSV (`--format tsv`): input, normalized, score, alert, threshold, error (tabs and newlines escaped).
`score` is the model's log-odds of "malicious"; `alert` is score > threshold, the threshold calibrated
at the stored FPR on benign validation data (`--threshold` overrides it).

Bounded memory: input is read in 64 kB chunks, a line is kept up to MAX_LINE_BYTES (the rest is
skipped and the line reported as too long), and at most --batch lines are held; a batch is scored and
flushed when it is full or when the input has nothing more ready (so a live pipe gets its answers
without waiting for a full batch). Progress every PROGRESS_S seconds and a summary go to stderr.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from . import parse
from .detect import DetectorSpec, ids_and_lengths, load_detector, score_ids
from .detect_int8 import TokenEngine, load_int8_detector

MAX_LINE_BYTES = 4 * parse.MAX_LINE       # a 4096-character line is at most 16 kB of UTF-8
CHUNK = 1 << 16
PROGRESS_S = 10.0
SHOW = 200                                # characters of a bad input echoed back in its error record
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_MODEL = Path("runs/domains-sln-domains-small/checkpoint.safetensors")


def read_lines(fh: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[tuple[bytes, int, bool]]:
    """-> (line without its end of line, full length in bytes, ready): lines longer than `limit` yield
    their first `limit` bytes and their true length (the rest is skipped, never stored). `ready` is
    False when the next line is not available yet (a live pipe): the caller may flush first."""
    fd = _fileno(fh)
    buf, skipping, skipped = bytearray(), False, 0
    while True:
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            if skipping:
                yield b"", skipped + len(line), True      # the kept prefix was yielded already
                skipping, skipped = False, 0
            else:
                yield line.rstrip(b"\r"), len(line), True
        if len(buf) > limit and not skipping:              # an overlong line: keep its prefix only
            yield bytes(buf[:limit]), -1, True
            skipping, skipped = True, len(buf)
            buf.clear()
        elif skipping:
            skipped += len(buf)
            buf.clear()
        if fd is not None and not select.select([fd], [], [], 0)[0]:
            yield b"", 0, False                             # nothing ready now: a chance to flush
        chunk = os.read(fd, CHUNK) if fd is not None else fh.read(CHUNK)
        if not chunk:
            if skipping:
                yield b"", skipped, True
            elif buf:
                yield bytes(buf).rstrip(b"\r"), len(buf), True
            return
        buf += chunk


def _fileno(fh: IO[bytes]) -> int | None:
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    try:
        select.select([fd], [], [], 0)                      # regular files, pipes, ttys: fine; others not
    except (OSError, ValueError):
        return None
    return fd


def _show(raw: bytes) -> str:
    text = raw[:SHOW * 4].decode("utf-8", errors="backslashreplace")
    return text[:SHOW] + ("..." if len(text) > SHOW or len(raw) > SHOW * 4 else "")


class Detector:
    """A loaded model + spec scoring batches of raw lines -> records (dicts)."""

    def __init__(self, model: torch.nn.Module | TokenEngine, spec: DetectorSpec, threshold: float | None = None
                 ) -> None:
        self.model, self.spec = model, spec
        self.threshold = spec.threshold if threshold is None else threshold
        self.host_only = spec.dataset != "urls"              # domains and urls-hostname score the host

    def prepare(self, raw: bytes, length: int) -> tuple[dict[str, Any], str | None]:
        """One input line -> (its record so far, the text to score or None for an error record)."""
        if length < 0:
            raise AssertionError("prepare() gets the full length of an overlong line")
        if length > MAX_LINE_BYTES:
            return {"input": _show(raw), "error": f"line is {length} bytes (limit {MAX_LINE_BYTES})"}, None
        try:
            p = parse.normalize(raw)
        except parse.InputError as e:
            return {"input": _show(raw), "error": str(e)}, None
        text = p.host if self.host_only else p.url
        return {"input": _show(raw), "normalized": text}, text

    def score(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        ids, L = ids_and_lengths(texts, self.spec.max_len, self.spec.tail)
        if isinstance(self.model, TokenEngine):            # an int8 .sln on the C runtime
            return [float(s) for s in self.model.score_ids(ids, L)]
        return [float(s) for s in score_ids(self.model, ids, L)]

    def finish(self, pending: list[tuple[dict[str, Any], str | None]]) -> list[dict[str, Any]]:
        scores = iter(self.score([t for _, t in pending if t is not None]))
        out = []
        for rec, t in pending:
            if t is not None:
                s = next(scores)
                rec.update(score=round(s, 6), alert=s > self.threshold, threshold=self.threshold)
            out.append(rec)
        return out


def format_record(rec: dict[str, Any], fmt: str) -> str:
    if fmt == "jsonl":
        return json.dumps(rec, ensure_ascii=True)
    def esc(v: Any) -> str:
        s = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)      # NUL, ESC, ... never reach a terminal raw
    return "\t".join(esc(rec.get(k)) for k in ("input", "normalized", "score", "alert", "threshold", "error"))


TSV_HEADER = "input\tnormalized\tscore\talert\tthreshold\terror"


def detect_stream(det: Detector, fin: IO[bytes], fout: IO[str], fmt: str = "jsonl", batch: int = 256,
                  progress: IO[str] | None = None) -> dict[str, float]:
    """Score every line of fin into fout; -> counts {lines, alerts, errors, seconds}."""
    counts = {"lines": 0, "alerts": 0, "errors": 0}
    pending: list[tuple[dict[str, Any], str | None]] = []
    t0 = last = time.monotonic()
    held: tuple[bytes, int] | None = None                    # an overlong line's prefix, until its length is known

    def flush() -> None:
        nonlocal last
        for rec in det.finish(pending):
            fout.write(format_record(rec, fmt) + "\n")
            counts["alerts"] += bool(rec.get("alert"))
            counts["errors"] += "error" in rec
        fout.flush()
        counts["lines"] += len(pending)
        pending.clear()
        if progress is not None and time.monotonic() - last > PROGRESS_S:
            el = time.monotonic() - t0
            print(f"detect-url: {counts['lines']:,} lines, {counts['lines'] / el:,.0f} lines/s", file=progress,
                  flush=True)
            last = time.monotonic()

    if fmt == "tsv":
        fout.write(TSV_HEADER + "\n")
    for raw, length, ready in read_lines(fin):
        if not ready:
            if pending:
                flush()
            continue
        if length < 0:
            held = (raw, length)
            continue
        if held is not None:
            raw, held = held[0], None
        pending.append(det.prepare(raw, length))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    fout.flush()
    counts["seconds"] = time.monotonic() - t0
    return counts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sln detect-url", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input", nargs="?", default="-", help="file with one domain or URL per line ('-' = stdin)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="detector checkpoint (train.py --dataset domains), or an int8 model.sln "
                        "(python -m sln.security.detect_int8 export; scored by the C runtime)")
    p.add_argument("--threshold", type=float, default=None, help="alert above this score (default: the stored one)")
    p.add_argument("--format", choices=["jsonl", "tsv"], default="jsonl")
    p.add_argument("--batch", type=int, default=256, help="lines scored together (bounds memory and latency)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not 1 <= a.batch <= 1 << 16:
        raise ValueError(f"--batch must be in [1, 65536], got {a.batch}")
    if a.threshold is not None and a.threshold != a.threshold:
        raise ValueError("--threshold must be a number, not nan")
    torch.set_num_threads(max(1, a.threads))
    if a.model.suffix == ".sln":                            # int8 export (+ detector.json): the C runtime
        model, spec = load_int8_detector(a.model)
    else:
        model, spec = load_detector(a.model)               # missing / bad checkpoint: exit 4 via sln.cli.run
    det = Detector(model, spec, a.threshold)
    if a.input != "-" and not Path(a.input).is_file():
        raise ValueError(f"no input file {a.input}")       # a usage error (exit 2), not a model error
    fin = sys.stdin.buffer if a.input == "-" else open(a.input, "rb")   # noqa: SIM115 (closed below)
    try:
        counts = detect_stream(det, fin, sys.stdout, a.format, a.batch, None if a.quiet else sys.stderr)
    except BrokenPipeError:                                 # `| head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return 0
    finally:
        if fin is not sys.stdin.buffer:
            fin.close()
    if not a.quiet:
        s = max(counts["seconds"], 1e-9)
        print(f"detect-url: {counts['lines']:,} lines ({counts['alerts']:,} alerts, {counts['errors']:,} errors) "
              f"in {s:.2f} s, {counts['lines'] / s:,.0f} lines/s, threshold {det.threshold:.6g}", file=sys.stderr)
    return 0

"""Packets/s of the packet detector's host path, stage by stage (docs/SECURITY_IDS.md, "Speed").

    python scripts/ids_speed.py --model runs/packets-sln-ids-small/checkpoint.safetensors [--pcap FILE] [--repeats 3]

From the pcap bytes in memory, one thread, best of --repeats runs of each stage:
  parse          C block path, framing + IPv4/TCP/UDP headers only (fastpath.iter_blocks, featurize=False)
  featurize      C block path, parse + the 58 features (the bounded tables)
  model_only     C block scorer alone over precomputed features (step + readout + score)
  end_to_end     sln detect-net's block path writing every JSON record to /dev/null (parse, featurize, score, format)
  end_to_end_alerts_only   the same with --alerts-only
  python_parse / python_featurize / python_c_step   the per-packet Python path (packets.py, ids_stream) for comparison
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from sln.security import fastpath as fp
from sln.security import packets as pk
from sln.security.detect_net_cli import detect_fast
from sln.security.ids import load_ids
from sln.security.ids_stream import NetDetector


def best(fn, repeats: int) -> tuple[float, int]:  # noqa: ANN001
    rates, n = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return max(rates), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--pcap", type=Path, default=Path("tests/fixtures/ids/capture.pcap"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--python-limit", type=int, default=10000, help="packets for the slow per-packet Python rows")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = a.pcap.read_bytes()
    model, spec = load_ids(a.model)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    r: dict = {"pcap": str(a.pcap), "checkpoint": str(a.model), "date": now,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, 1 thread, torch {torch.__version__}",
               "load_avg_1m": os.getloadavg()[0], "repeats": a.repeats}
    r["parse"], n = best(lambda: sum(map(len, fp.iter_blocks(io.BytesIO(data), featurize=False))), a.repeats)
    r["featurize"], _ = best(lambda: sum(map(len, fp.iter_blocks(io.BytesIO(data)))), a.repeats)
    ev = fp.read_events_fast(io.BytesIO(data))
    x, dt = ev.x, ev.dt.astype(np.float64)

    def model_only() -> int:
        bs = fp.BlockScorer(model, spec)
        for i in range(0, len(x), 4096):
            bs.scores(x[i:i + 4096], dt[i:i + 4096])
        return len(x)
    r["model_only"], _ = best(model_only, a.repeats)
    with open(os.devnull, "w") as null:
        for key, only in (("end_to_end", False), ("end_to_end_alerts_only", True)):
            def e2e(only: bool = only) -> int:
                det = fp.FastNetDetector(model, spec)
                detect_fast(det, io.BytesIO(data), null, only)
                return det.packets
            r[key], _ = best(e2e, a.repeats)
        lim = a.python_limit
        r["python_parse"], _ = best(lambda: sum(1 for _ in zip(range(lim), pk.iter_packets(io.BytesIO(data)))), 1)
        r["python_featurize"], _ = best(lambda: len(pk.read_events(io.BytesIO(data), limit=lim)), 1)

        def py_step() -> int:      # what detect() does per packet, on the first `lim` packets
            det = NetDetector(model, spec, backend="c")
            for _, rec in zip(range(lim), det.run(pk.iter_packets(io.BytesIO(data)))):
                null.write(json.dumps(rec) + "\n")
            return det.packets
        r["python_c_step"], _ = best(py_step, 1)
    r["packets"] = n
    r["load_avg_1m_end"] = os.getloadavg()[0]
    print(json.dumps({k: round(v) if isinstance(v, float) and v > 100 else v for k, v in r.items()}, indent=1))


if __name__ == "__main__":
    main()

"""`python -m sln.security.keyed_cli calibrate`: add the per-host-pair and per-source state thresholds
(sln.security.keyed, docs/SECURITY_IDS.md part 5) to a packet-detector checkpoint trained before them.

    python -m sln.security.keyed_cli calibrate --model runs/s10/checkpoint.safetensors --capture CAPTURE --out NEW

The thresholds are calibrated as train.py calibrates the link one: FPR 1e-3 on the capture's benign validation
packets (the last 20 % of its benign prefix), the states run from the capture's first packet.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..checkpoint import read_checkpoint, save_checkpoint
from .fastpath import read_events_fast
from .ids import CAL_FPR, load_ids
from .ids_data import IdsSpec, load_capture, unsupervised_split
from .keyed import pair_scores
from .metrics import calibrate_threshold


def calibrate(argv: list[str] | None = None) -> int:
    """Pair and src thresholds at FPR 1e-3 on the capture's benign validation packets (the capture the model was
    trained on), stored beside the link threshold in a copy of the checkpoint."""

    p = argparse.ArgumentParser(prog="python -m sln.security.keyed_cli calibrate", description=calibrate.__doc__)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--capture", type=Path, required=True, help="the make_capture.sh directory it was trained on")
    p.add_argument("--out", type=Path, required=True, help="the new checkpoint (may equal --model)")
    a = p.parse_args(argv)
    model, spec = load_ids(a.model)
    cap = load_capture(a.capture, reader=read_events_fast)
    if spec.capture_sha256 and cap.sha256 != spec.capture_sha256:
        raise SystemExit(f"{a.capture}: not the capture {a.model} was trained on (its pcap SHA-256 differs)")
    ev = cap.ev
    sp = unsupervised_split(cap)
    end = int(np.flatnonzero(sp.val)[-1]) + 1          # the prefix is all the calibration needs
    st = dict(spec.state_thresholds or {}) | {spec.state: float(spec.threshold)}
    for key in ("pair", "src"):
        s = pair_scores(model, spec, ev.x[:end], ev.ts[:end], ev.src[:end], ev.dst[:end], key=key)
        st[key] = float(calibrate_threshold(s[sp.val[:end] & (cap.y[:end] == 0)], CAL_FPR))
    new = IdsSpec(**(spec.to_dict() | {"state_thresholds": st}))       # detect-net --state auto then uses pair
    meta, _ = read_checkpoint(a.model)
    state = {k: v for k, v in json.loads(meta["train"]).items() if k != "optimizer_groups"}
    save_checkpoint(a.out, model, None, state | {"ids": new.to_dict()})
    print(json.dumps({"out": str(a.out), "state": new.state, "thresholds": st, "val_packets": int(sp.val.sum())}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "calibrate":
        print("usage: python -m sln.security.keyed_cli calibrate --model CKPT --capture DIR --out NEW",
              file=sys.stderr)
        return 2
    return calibrate(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

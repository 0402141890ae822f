"""Estimated energy per packet of trained packet detectors against KitNET, under one account (docs/SECURITY_IDS.md).

    python scripts/ids_energy.py CHECKPOINT [CHECKPOINT ...] [--data-dir tests/fixtures/ids]

SLN: the C runtime's own operation counters over every packet of the capture (sln.security.fastpath.
counted_energy: nonzero inputs, winners, stored weights only), plus the per-step readout and score.
KitNET (m = 10, 1 pass over the benign prefix, the split of sln.security.ids_bench): its operation count per
packet (KitNET.ops_per_packet). Both priced by ids_bench.energy_nj (fp32, the default energy profile, memory
levels from each model's footprint). Prints one JSON object with the counts, footprints and nJ per packet.
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sln.security import ids_bench
from sln.security.fastpath import counted_energy
from sln.security.ids import load_ids
from sln.security.ids_data import load_capture, unsupervised_split
from sln.security.kitnet import KitNET


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--data-dir", default="tests/fixtures/ids")
    a = ap.parse_args()
    cap = load_capture(a.data_dir)
    x, dt = cap.ev.x, cap.ev.dt.astype(np.float64)
    out: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "packets": len(x)}
    kn = KitNET(epochs=1, seed=0).fit(x[unsupervised_split(cap).train])
    ops, fp = kn.ops_per_packet(), kn.footprints()
    out[kn.name] = {"ops": ops, "footprints": fp, **ids_bench.energy_nj(ops, fp)}
    for ck in a.checkpoints:
        model, spec = load_ids(ck)
        e = counted_energy(model, spec, x, dt)
        e["params_nonzero"] = int(sum(int((p != 0).sum()) for p in model.parameters()))
        e["config"] = {k: getattr(model.cfg, k) for k in ("n_neurons", "k", "density_in", "density_rec")}
        out[str(ck)] = e
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()

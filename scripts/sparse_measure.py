# ruff: noqa: E402, B023  (imports after the sys.path lines for tests/_int8_helper; helpers defined per model in the loop)
"""Dense vs magnitude-pruned (or learned-sparse) MNIST models on the host engine (float32 C runtime with
counters) and as int8 (integer model, C runtime): accuracy, file bytes, reads, index bytes, latency, the
energy split, bit-exactness of C against the Python reference (docs/ENERGY.md and docs/MCU.md, sparse
sections). Writes JSON and, per KEEP, a model folder (model.sln, sln_model_data.[ch]) that
scripts/sparse_mcu.sh runs on the Cortex-M4 under QEMU.

usage: python scripts/sparse_measure.py CHECKPOINT OUT_JSON KEEP [KEEP ...]
       KEEP 1.0 = the model as it is; 0.1 keeps the 10 % largest weights of W_in and W_rec (no fine-tuning)
"""

import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers: prune_top, write_idx, parse_dump
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)
from _int8_helper import prune_top, write_idx

from sln import fmt, fmt_c, intspec, quant
from sln.bench import int8 as I8
from sln.checkpoint import load_checkpoint
from sln.data import load_split
from sln.energy import estimate_pj, get_profile
from sln.engine import Engine
from sln.model import encode_images

ck, out_json, keeps = sys.argv[1], Path(sys.argv[2]), [float(k) for k in sys.argv[3:]]
work = out_json.parent / (out_json.stem + "_files")
work.mkdir(parents=True, exist_ok=True)
base, _ = load_checkpoint(ck)
base.eval()
xtr, _ = load_split("mnist", "train", limit=2000)
xte, yte = load_split("mnist", "test")
write_idx(work / "test.idx", xte)
write_idx(work / "labels.idx", yte)
seq = encode_images(torch.from_numpy(xte.copy()), base.cfg).numpy()
prof = get_profile()
build = out_json.parent / (out_json.stem + "_build")
subprocess.run(["make", "-s", "-C", str(ROOT / "runtime"), f"BUILD={build.resolve()}", "host"], check=True)
cli = str(build.resolve() / "sln_cli")
res = {"checkpoint": ck, "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "models": []}
engines = {}
for keep in keeps:
    m = copy.deepcopy(base)
    if keep < 1.0:
        prune_top(m, keep)
    dens = [float((c.w_in.weight != 0).float().mean()) for c in m.cells] + [
        float((c.w_rec.weight != 0).float().mean()) for c in m.cells
    ]
    eng = Engine(m)
    engines[keep] = eng
    t0 = time.perf_counter()
    logits, cnt = eng.run_batch(seq)
    tb = time.perf_counter() - t0
    s = cnt.summary()
    row = {
        "keep": keep,
        "density_w_in_w_rec": dens,
        "float_accuracy": float((logits.argmax(1) == yte).mean()),
        "float_file_bytes": len(fmt.float_model_bytes(m)),
        "float_file_version": fmt.header_of(fmt.float_model_bytes(m))["version"],
        "engine_batch_s": tb,
        "engine_summary": s,
        "engine_terms": cnt.per_term(),
    }
    # int8
    qm = quant.quantize(m, xtr)
    data = fmt.to_bytes(qm)
    (work / f"k{keep}.sln").write_bytes(data)
    dd = fmt.to_bytes(qm, layout="dense")
    (work / f"k{keep}_dense.sln").write_bytes(dd)
    (work / f"k{keep}").mkdir(exist_ok=True)
    (work / f"k{keep}" / "model.sln").write_bytes(data)
    (work / f"k{keep}" / "sln_model_data.c").write_text(fmt_c.to_c_array(data))
    (work / f"k{keep}" / "sln_model_data.h").write_text(fmt_c.c_array_header(qm, fmt.workspace_bytes(qm)))
    q2 = fmt.from_bytes(data)
    run = I8.count_sln_int8(q2, xte, yte)
    r8 = I8.sln_int8_row(f"keep{keep}", "sln", m.num_params(), q2, run, prof, "s2", 2000)
    t = run.counts.terms
    n = run.images

    # energy parts: per term, split compute/memory; the dense per-neuron work = elementwise term +
    # the requantisation / bias of the 2N outputs in the input and recurrent terms
    def pj(ops):
        return estimate_pj(
            ops, r8["matrix_footprint_bytes"], r8["act_footprint_bytes"], prof, "int8", r8["param_footprint_bytes"]
        )["total"]

    def ops_of(c, keys):
        return {k2: c[k1] / n for k1, k2 in keys}

    W = [("mac", "macs"), ("weight_bytes", "weight_bytes"), ("index_bytes", "index_bytes"), ("act_bytes", "act_bytes")]
    P = [("muls32", "muls32"), ("adds32", "adds32"), ("cmps32", "cmps32"), ("param_bytes", "param_bytes")]
    parts = {}
    for term in ("input", "recurrent"):
        parts[f"{term}.weights"] = pj(ops_of(t[term], W))
        parts[f"{term}.requant"] = pj(ops_of(t[term], P))
    parts["elementwise"] = pj(ops_of(t["elementwise"], W + P))
    parts["readout"] = pj(ops_of(t["readout"], W + P))
    tot = sum(parts.values())
    ops_total = {k: sum(t[tt][k] for tt in intspec.COUNT_TERMS) / n for k in intspec.COUNTERS}
    def int_ops(c):
        return c["mac"] + c["adds32"] + c["muls32"] + c["cmps32"]
    dense_ops = (
        int_ops(t["elementwise"])
        + sum(t[x]["adds32"] + t[x]["muls32"] + t[x]["cmps32"] for x in ("input", "recurrent"))
    ) / n
    # C int8 host latency (min of 3 runs over the 10k images), and bit-exactness vs the reference
    lat = {}
    for name, f in (("sparse_auto", work / f"k{keep}.sln"), ("dense_layout", work / f"k{keep}_dense.sln")):
        us = []
        for _ in range(3):
            r = subprocess.run(
                [cli, str(f), str(work / "test.idx"), str(work / "labels.idx")], capture_output=True, text=True
            )
            us.append(float(re.search(r"([\d.]+) us/image", r.stderr).group(1)))
            acc = re.search(r"accuracy (\d+)/(\d+)", r.stdout).group(0)
        lat[name] = {"us_per_image_min": min(us), "all": us, "accuracy_line": acc}
    rl, rw = intspec.reference_forward(q2, xte[:1000])
    r = subprocess.run(
        [cli, str(work / f"k{keep}.sln"), str(work / "test.idx"), "--limit", "1000", "--dump"],
        capture_output=True,
        text=True,
    )
    from _int8_helper import parse_dump

    _, cl, cw = parse_dump(r.stdout)
    row.update(
        {
            "int8_file_bytes": len(data),
            "int8_dense_layout_bytes": len(dd),
            "int8_version": fmt.header_of(data)["version"],
            "storage": [L.storage for L in q2.layers],
            "int8_accuracy": run.correct / n,
            "int8_ops_per_image": ops_total,
            "int8_energy_uJ": r8["energy_uJ"],
            "int8_energy_parts_pJ": parts,
            "int8_energy_parts_total_pJ": tot,
            "dense_per_neuron_share_energy": (
                parts["elementwise"] + parts["input.requant"] + parts["recurrent.requant"]
            )
            / tot,
            "elementwise_share_energy": parts["elementwise"] / tot,
            "dense_per_neuron_share_int_ops": dense_ops
            / (ops_total["mac"] + ops_total["adds32"] + ops_total["muls32"] + ops_total["cmps32"]),
            "int8_footprint": I8.sln_int8_footprint(q2),
            "c_host_latency": lat,
            "c_equals_reference_1000": bool(np.array_equal(cl, rl) and np.array_equal(cw, rw.reshape(1000, -1))),
            "workspace_bytes": fmt.workspace_bytes(q2),
        }
    )
    res["models"].append(row)
    print(
        json.dumps(
            {
                k: row[k]
                for k in ("keep", "float_accuracy", "int8_accuracy", "int8_file_bytes", "c_equals_reference_1000")
            }
        ),
        flush=True,
    )
# float engine latency, batch 1, interleaved in blocks of 10 images, 2 untimed warm-up calls
n_lat = 2000
times = {k: [] for k in engines}
for e in engines.values():
    e.run(seq[0], record_winners=False)
    e.run(seq[1], record_winners=False)
for b in range(0, n_lat, 10):
    for k, e in engines.items():
        for i in range(b, b + 10):
            t0 = time.perf_counter()
            e.run(seq[i], record_winners=False)
            times[k].append(time.perf_counter() - t0)
for row in res["models"]:
    ts = np.array(times[row["keep"]]) * 1e6
    row["engine_latency_us"] = {
        "median": float(np.median(ts)),
        "p10": float(np.percentile(ts, 10)),
        "mean": float(ts.mean()),
        "n": n_lat,
    }
out_json.write_text(json.dumps(res, indent=1))
print("wrote", out_json)

"""Train (or reuse) LeNet-5 on full MNIST and measure it exactly as the image benchmark measures its
baselines, then compare it with the SLN rows of a published benchmark JSON (default bench/mnist.json).

Why a script and not `benchmark.py --compare-energy`: the benchmark measures the SLN checkpoints in
runs/, which a fresh machine does not have (it would train them first, ~1 h on 2 cores). This measures
only the CNN side; the SLN side is read from the published JSON, which used the same energy profile and
counting rules. With SLN checkpoints in runs/, `benchmark.py --compare-energy` gives the same CNN rows.

    python scripts/cnn_vs_published.py [--cache runs/bench-cache] [--out runs/lenet5.json] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sln.baselines import VIT_SIZES, ViT
from sln.bench.cnn_int8 import evaluate_cnn_int8
from sln.bench.compare import compare
from sln.bench.image import _cnn_per_position, evaluate_baseline
from sln.bench.measure import time_interleaved
from sln.cnn import CNN_SIZES, count_cnn, train_cnn
from sln.data import load_split
from sln.energy import get_profile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path("runs/bench-cache"), help="where LeNet-5 is trained/reused")
    p.add_argument("--published", type=Path, default=Path("bench/mnist.json"), help="benchmark JSON with SLN rows")
    p.add_argument("--out", type=Path, default=Path("runs/lenet5.json"))
    p.add_argument("--threads", type=int, default=1, help="training threads (timing is at 1 thread)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--device", default="cpu", help="where LeNet-5 trains (auto|cpu|cuda); it is timed on the CPU")
    a = p.parse_args(argv)
    xtr, ytr = load_split("mnist", "train")
    xte, yte = load_split("mnist", "test")
    cfg = CNN_SIZES["lenet5"]
    torch.set_num_threads(a.threads)
    model, info = train_cnn(cfg, xtr, ytr, xte, yte, a.epochs, a.cache / f"mnist-lenet5-e{a.epochs}-n{len(xtr)}",
                            progress=True, device=a.device)
    torch.set_num_threads(1)
    profile = get_profile("horowitz45")
    args = argparse.Namespace(repeats=200, warmup=20, cache_dir=a.cache)
    timers, row = evaluate_baseline("cnn", "lenet5", cfg, model, model.to_input, lambda im: count_cnn(model, im),
                                    info, xte, yte, args, profile)
    _cnn_per_position(row, model, xte, profile)
    # a same-load latency reference: untrained ViTs (a dense forward's time does not depend on the weights),
    # since the published ViT latencies were timed on another day's load
    refs = []
    for v in ("vit-xs", "vit-s"):
        torch.manual_seed(0)
        vm = ViT(VIT_SIZES[v]).eval()
        xs = vm.patches(torch.from_numpy(xte[:1000].copy()))

        def timer(i: int, m: ViT = vm, xs: torch.Tensor = xs) -> None:
            with torch.inference_mode():
                m(xs[i % len(xs)][None])
        refs.append(({"name": f"{v} (untrained, latency reference)"}, {"latency_ms": timer}))
    time_interleaved([(row, timers)] + refs, args.repeats, args.warmup, None, progress=False)
    row8 = evaluate_cnn_int8("lenet5", model, xtr, xte, yte, profile, row["source"], 2000)
    pub = json.loads(a.published.read_text())
    slns = [r for r in pub["models"] if r["family"] in ("sln", "sln-dense")]
    slns8 = [r for r in pub["int8"]["models"] if r["family"] in ("sln", "sln-dense")]
    out = {"command": "python " + " ".join(sys.argv), "fp32": row, "int8": row8,
           "latency_reference_ms": {r["name"]: r["latency_ms"] for r, _ in refs},
           "vs_published_sln_fp32": [c for s in slns for c in compare(s, [row])],
           "vs_published_sln_int8": [c for s in slns8 for c in compare(s, [row8])],
           "published": {"command": pub["command"], "date": pub["date"], "file": str(a.published)}}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    for r in (row, row8):
        print(f"{r['precision']}: accuracy {100 * r['accuracy']:.2f} %, {r['energy_uJ']:.3f} uJ/inference "
              f"(weights re-read per output position: {r['energy_uJ_weights_per_position']:.3f} uJ), "
              f"latency {r['latency_ms']} ms")
    for n, ms in out["latency_reference_ms"].items():
        print(f"{n}: {ms:.3f} ms")
    for c in out["vs_published_sln_fp32"] + out["vs_published_sln_int8"]:
        print(f"{c['sln']} vs lenet5 ({c['method']}): energy SLN/CNN x{1 / c['energy_ratio']:.1f}"
              if c["energy_ratio"] else f"{c['sln']}: no comparison")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

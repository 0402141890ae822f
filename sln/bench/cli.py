"""`python benchmark.py` / `sln benchmark`: the argument parser and main(argv).

`--compare-energy` runs the image benchmark (sln/bench/image.py: SLN vs ViT / CNN / CfC, fp32 and
int8 vs int8); `--task lm` the character-LM benchmark (sln/bench/lm.py). Method and JSON
schema: docs/ENERGY.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = "`python benchmark.py --compare-energy --model sln-base`: SLN vs transformers, counted honestly."


def build_parser() -> argparse.ArgumentParser:
    from ..baselines import CFC_SIZES, VIT_SIZES
    from ..cnn import CNN_SIZES
    from ..config import list_models
    from .lm import add_lm_arguments
    from .ts import add_ts_arguments
    from .ts_sln import add_ts_sln_arguments

    p = argparse.ArgumentParser(prog="benchmark.py", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=["image", "lm", "lm-streams", "ts-baselines", "ts-sln", "ts-streams"],
                   default="image",
                   help="image: MNIST/Fashion-MNIST energy comparison; lm: the character-LM benchmark "
                        "(sln.bench.lm); lm-streams: int8 SLN vs int8 GPTs with a KV cache per token at equal "
                        "bits/char (sln.bench.lm_streams); ts-baselines: majority / 1-NN ED / 1-NN DTW / "
                        "MiniRocket on every "
                        "UCR set of the sktime wheel (sln.bench.ts); ts-sln: the SLN's default recipe on "
                        "the same sets, several seeds, a time budget per run (sln.bench.ts_sln); ts-streams: "
                        "int8 SLN vs int8 causal transformers with a KV cache per event of a time series at equal "
                        "test accuracy (sln.bench.ts_streams)")
    p.add_argument("--compare-energy", action="store_true", help="run the SLN vs baselines comparison")
    p.add_argument("--model", default="sln-base", help="headline SLN model: " + ", ".join(list_models()))
    p.add_argument("--extra-models", default="sln-tiny,sln-small,sln-base",
                   help="more SLN models, included when their checkpoint exists (never trained here)")
    p.add_argument("--dense", default="sln-small-dense", help="dense SLN reference (k = N); '' to skip")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where SLN checkpoints are looked up "
                   "(<runs-dir>/<dataset>-<model>/checkpoint.safetensors)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where baselines/missing SLNs are trained and reused (default <runs-dir>/bench-cache)")
    p.add_argument("--out", type=Path, default=None, help="folder of the PNG plots and default JSON "
                   "(default bench/, or runs/bench-quick/ with --quick so a quick run never overwrites results)")
    p.add_argument("--json", type=Path, default=None, help="write the results JSON here "
                   "(default <out>/<dataset>.json)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the results as Markdown here")
    p.add_argument("--energy-profile", default=None, help="energy table and memory model: horowitz45 (default: "
                   "SRAM energy continuous in size, 1 MB on chip), horowitz45-steps (the step model of the "
                   "2026-11-28 results), horowitz45-dram-high, horowitz45-onchip-8mb, horowitz45-slope-x2, "
                   "horowitz45-slope-x0.5, or a JSON file (docs/ENERGY.md)")
    p.add_argument("--vit-sizes", default="vit-xs,vit-s", help="ViT sizes (vit-m adds ~17-37 min of training "
                   "on 2 cores, beyond the 25-min budget): " + ", ".join(VIT_SIZES))
    p.add_argument("--cnn-sizes", default="lenet5", help="LeNet-class CNN baselines (sln.cnn; '' to "
                   "skip): " + ", ".join(CNN_SIZES))
    p.add_argument("--epochs", type=int, default=None, help="epochs for models trained here (default: the "
                   "headline SLN checkpoint's epochs, else 10)")
    p.add_argument("--train-threads", type=int, default=None, help="threads for the models this run trains "
                   "(default $SLN_THREADS, else $OMP_NUM_THREADS, else 1: on a shared 2-core machine 1 thread "
                   "trained the ViT ~10x faster than 2); timing is always at 1 thread")
    p.add_argument("--no-train", action="store_true", help="never train: exit 2 listing the models without a "
                   "checkpoint and the commands that make them")
    p.add_argument("--yes", action="store_true", help="train missing models without asking (the question is "
                   "asked only on a terminal; the plan and its time estimate are always printed)")
    p.add_argument("--repeats", type=int, default=200, help="timed batch-1 runs per model")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up runs per model")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--engine", choices=["auto", "c"], default="auto",
                   help="SLN engine backend (sln.engine.Engine): c, or auto")
    p.add_argument("--cfc-sizes", default=",".join(CFC_SIZES), help="ncps CfC peers (when ncps is installed): "
                   + ", ".join(CFC_SIZES))
    p.add_argument("--no-cfc", action="store_true", help="skip ncps's CfC even when installed")
    p.add_argument("--quick", action="store_true", help="small end-to-end run (tests): sln-tiny, 1 epoch, "
                   "2000 train / 300 test images, vit-xs; numbers are not results")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 vs int8 section (SLN through "
                   "sln.intspec's integer model, ViTs with int8 weights and activations)")
    p.add_argument("--int8-calib", type=int, default=2000, help="training images calibrating the int8 models")
    p.add_argument("--int8-limit-test", type=int, default=None, help="int8 accuracy/counts on the first N test "
                   "images only (default: all the test images used)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--train-device", default="cpu", metavar="auto|cpu|cuda[:N]",
                   help="where the models this run trains (SLNs, ViT, CNN, CfC) train; every measurement is on "
                        "the CPU regardless, and cpu keeps their seconds-per-epoch figures comparable")
    add_lm_arguments(p.add_argument_group("--task lm (with --json and --quick; sln.bench.lm.run_lm_benchmark)"))
    from .lm_streams import add_streams_arguments
    add_streams_arguments(p.add_argument_group("--task lm-streams (with --sln-checkpoint, --contexts, --json, "
                                               "--markdown; sln.bench.lm_streams): int8 SLN vs int8 GPTs"))
    add_ts_arguments(p.add_argument_group("--task ts-baselines (with --json and --markdown; sln.bench.ts)"))
    add_ts_sln_arguments(p.add_argument_group("--task ts-sln (with --json, --markdown, --train-threads; "
                                              "sln.bench.ts_sln)"))
    from .ts_streams import add_ts_streams_arguments
    add_ts_streams_arguments(p.add_argument_group("--task ts-streams (with --sln-checkpoint, --gpt-checkpoints, "
                                                  "--contexts, --latency-tokens, --no-c, --plot, --json, --markdown; "
                                                  "sln.bench.ts_streams)"))
    return p


def main(argv: list[str] | None = None) -> int:
    """-> exit status: 0 done, 2 bad usage or missing inputs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.task == "lm":
        from .lm import run_lm_benchmark
        return int(run_lm_benchmark(args))
    if args.task == "lm-streams":
        from .lm_streams import run_streams
        if not (args.sln_checkpoint and args.gpt_checkpoints):
            print("--task lm-streams needs --sln-checkpoint and --gpt-checkpoints", file=sys.stderr)
            return 2
        args.json = args.json or Path("bench/lm_streams.json")
        args.markdown = args.markdown or Path("bench/lm_streams.md")
        run_streams(args)
        return 0
    if args.task == "ts-streams":
        from .ts_streams import run_ts_streams
        if not (args.sln_checkpoint and args.gpt_checkpoints):
            print("--task ts-streams needs --sln-checkpoint and --gpt-checkpoints (python -m "
                  "sln.bench.ts_streams_train --out runs/ts-streams makes them)", file=sys.stderr)
            return 2
        args.json = args.json or Path("bench/ts_streams.json")
        args.markdown = args.markdown or Path("bench/ts_streams.md")
        run_ts_streams(args)
        return 0
    if args.task == "ts-baselines":
        from .ts import run_ts_baselines
        return run_ts_baselines(args)
    if args.task == "ts-sln":
        from .ts_sln import run_ts_sln
        return run_ts_sln(args)
    if not args.compare_energy:
        print("nothing to do: add --compare-energy (e.g. python benchmark.py --compare-energy --model sln-base)",
              file=sys.stderr)
        return 2
    import torch

    from .image import run_image_benchmark

    threads = torch.get_num_threads()
    try:
        return run_image_benchmark(args, argv)
    finally:
        torch.set_num_threads(threads)  # the benchmark times at 1 thread; leave the caller's setting


if __name__ == "__main__":
    sys.exit(main())

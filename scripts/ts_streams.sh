#!/usr/bin/env bash
# Time-series streams benchmark of issue 9 §3 (docs/ENERGY.md, "Time-series streams"): train the SLN (the
# time-series recipe with readout mean, no patches) and a causal-transformer size sweep on GunPoint, one
# 1-thread job at a time, then compare them per event at equal test accuracy.
#   bash scripts/ts_streams.sh [OUT_DIR]        (default /tmp/runs_ts_streams; ~15 min of training)
# The runs of 2026-12-02 (docs/ENERGY.md) were these commands, in this order.
set -euo pipefail
OUT=${1:-/tmp/runs_ts_streams}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 SLN_THREADS=1
mkdir -p "$OUT"
$PY -m sln.bench.ts_streams_train --out "$OUT" --sln-budget 300 --sln-neurons 512 \
    --gpt-sizes 8x1 16x1 16x2 32x2 64x2 --gpt-budget 60
$PY -m sln.bench.ts_streams_train --out "$OUT" --sln-budget 0 --gpt-sizes 4x1 --gpt-budget 60
$PY -m sln.bench.ts_streams_train --out "$OUT" --sln-budget 0 --gpt-sizes 8x1x1 4x1x1 --gpt-budget 60
$PY -m sln.bench.ts_streams_train --out "$OUT" --sln-budget 240 --sln-neurons 128 --gpt-sizes
G=()
for n in 4-L1 4-L1-H1 8-L1 8-L1-H1 16-L1 16-L2 32-L2 64-L2; do G+=("$OUT/gpt-d$n/checkpoint.safetensors"); done
$PY benchmark.py --task ts-streams --sln-checkpoint "$OUT/sln-N512/checkpoint.safetensors" --gpt-checkpoints "${G[@]}" \
    --contexts 256 1024 4096 --json bench/ts_streams.json --markdown bench/ts_streams.md \
    --plot bench/ts_streams_energy.png
$PY benchmark.py --task ts-streams --sln-checkpoint "$OUT/sln-N128/checkpoint.safetensors" --gpt-checkpoints "${G[@]}" \
    --contexts 256 1024 4096 --json bench/ts_streams_n128.json --markdown bench/ts_streams_n128.md

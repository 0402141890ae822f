#!/usr/bin/env bash
# Streams benchmark of issue 9 §3 (docs/ENERGY.md, "Streams"): train the SLN char-LM and a GPT size sweep
# on the same split with short budgets (1 thread each), then compare them per token at equal bits/char.
#   bash scripts/lm_streams.sh [OUT_DIR]        (default /tmp/runs_lm; 6 min per model; ~20 min in all)
# The runs of 2026-12-02 (docs/ENERGY.md) were these commands, launched in the same groups.
set -euo pipefail
OUT=${1:-/tmp/runs_lm}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 SLN_THREADS=1
mkdir -p "$OUT"
$PY train.py --dataset shakespeare --model sln-lm-small --threads 1 --time-budget-s 360 --out "$OUT/sln-small" --no-progress &
for d in 48 64 96; do $PY -m sln.lm gpt --d-model $d --layers 4 --seconds 360 --threads 1 --out "$OUT/gpt-d$d" --no-progress & done
wait
for d in 48 64 96; do $PY -m sln.lm gpt --d-model $d --layers 4 --batch-size 8 --seconds 360 --threads 1 --out "$OUT/gpt-d$d-b8" --no-progress & done
wait
G=()
for n in gpt-d48 gpt-d64 gpt-d96 gpt-d48-b8 gpt-d64-b8 gpt-d96-b8; do G+=("$OUT/$n/checkpoint.safetensors"); done
$PY benchmark.py --task lm-streams --sln-checkpoint "$OUT/sln-small/checkpoint.safetensors" --gpt-checkpoints "${G[@]}" \
    --contexts 256 1024 4096 --json bench/lm_streams.json --markdown bench/lm_streams.md --plot bench/lm_streams_energy.png

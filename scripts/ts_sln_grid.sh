#!/usr/bin/env bash
# The SLN's default time-series recipe (sln-ts-small) on the nine sktime classification sets, 3 seeds, a
# training budget per run, as two processes of one thread side by side (the 2-core machine), each stopped
# after TOTAL seconds (no new run starts after that; what finished is kept), then merged beside the
# baselines into bench/ts_sln.json / bench/ts_sln.md (docs/SEQUENCES.md).
#   bash scripts/ts_sln_grid.sh [BUDGET_S=90] [TOTAL_S=2700]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-90}; total=${2:-2700}
out=${SLN_TS_OUT:-bench}
export OMP_NUM_THREADS=1 SLN_THREADS=1
py=.venv/bin/python
common=(--task ts-sln --ts-budget "$budget" --train-threads 1 --total-budget "$total")
timeout $((total + 900)) $py benchmark.py "${common[@]}" --ts-sets gunpoint,italypowerdemand,basicmotions,unittest,japanesevowels \
  --json "$out/ts_sln_a.json" > "$out/ts_sln_a.log" 2>&1 &
a=$!
timeout $((total + 900)) $py benchmark.py "${common[@]}" --ts-sets arrowhead,osuleaf,acsf1,plaid \
  --transformer-sets gunpoint,italypowerdemand,basicmotions,unittest,japanesevowels,arrowhead \
  --json "$out/ts_sln_b.json" > "$out/ts_sln_b.log" 2>&1 &
b=$!
wait $a || echo "half a exited with $?"
wait $b || echo "half b exited with $?"
$py benchmark.py --task ts-sln --ts-merge "$out/ts_sln_a.json,$out/ts_sln_b.json" --json "$out/ts_sln.json" \
  --markdown "$out/ts_sln.md"

#!/usr/bin/env bash
# The prepared GPU check of issue 13 (docs/DEPLOY.md, "GPU check"): a thin wrapper of scripts/gpu_check.py.
# Run from the repository root on a machine with CUDA; MNIST is read from runs/gpu_data when that folder
# exists (copy ~/.cache/sln/mnist there first: a device machine cannot fetch), else $SLN_DATA / ~/.cache/sln.
# Writes $OUT/gpu_check.json (else runs/gpu_check/). Without CUDA: exit code 3 and one line, nothing measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
args=()
if [[ -d runs/gpu_data/mnist ]]; then args+=(--data-dir runs/gpu_data); fi
PYTHONUNBUFFERED=1 PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" scripts/gpu_check.py "${args[@]}" "$@"

#!/usr/bin/env bash
# usage: scripts/sparse_mcu.sh MODEL_DIR N
# MODEL_DIR: a model folder written by scripts/sparse_measure.py (model.sln, sln_model_data.[ch]); its parent
# holds test.idx / labels.idx. Builds the Cortex-M4 firmware for it, records its size, runs N test images under
# QEMU and compares the predictions with the host C runtime's (docs/MCU.md, "Sparse models on the Cortex-M4").
set -euo pipefail
D=$(cd "$1" && pwd); N=${2:-10000}; R=$(cd "$(dirname "$0")/../runtime" && pwd); W=$(dirname "$D")
make -s -C "$R" BUILD="$D/build" MODEL_DIR="$D" mcu host > /dev/null
arm-none-eabi-size -A "$D/build/mcu/firmware.elf" > "$D/size_A.txt"
arm-none-eabi-size "$D/build/mcu/firmware.elf" > "$D/size.txt"
make -s -C "$R" BUILD="$D/build" MODEL_DIR="$D" run-mcu IMAGES="$W/test.idx" N="$N" QEMU_OUT="$D/build/mcu/out.txt" > "$D/mcu.txt"
"$D/build/sln_cli" "$D/model.sln" "$W/test.idx" "$W/labels.idx" --limit "$N" > "$D/host.txt" 2> "$D/host_err.txt"
if cmp -s <(grep -E '^[0-9]+ [0-9]+$' "$D/mcu.txt") <(grep -E '^[0-9]+ [0-9]+$' "$D/host.txt"); then
  echo "identical $N" > "$D/cmp.txt"
else
  echo "DIFFER" > "$D/cmp.txt"
fi
cat "$D/cmp.txt" "$D/size.txt"
grep -E "insn|stack|workspace|calib" "$D/mcu.txt" || true
tail -1 "$D/host.txt"

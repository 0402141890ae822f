#!/usr/bin/env bash
# usage: scripts/domains_int8.sh CHECKPOINT OUT_DIR [N]
# The domain detector's deployable path (docs/SECURITY_APPS.md, "int8, C runtime and Cortex-M4"):
# int8 export of a `train.py --dataset domains` checkpoint (float and int8 test metrics), the host C engine
# benchmark (domains/s, batch-1 latency, bit-exactness on all test hosts, estimated energy of the SLN and the
# char-CNN), then N real test hosts (default 500) on the Cortex-M4 firmware under QEMU, compared with the
# Python integer reference; flash/RAM from arm-none-eabi-size. 1 thread throughout.
set -euo pipefail
CK=$1; O=$(mkdir -p "$2" && cd "$2" && pwd); N=${3:-500}; R=$(cd "$(dirname "$0")/../runtime" && pwd)
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1 SLN_THREADS=1
"$PY" -m sln.security.detect_int8 export --checkpoint "$CK" --out "$O/int8" > "$O/export.txt"
"$PY" -m sln.security.detect_int8 bench --model "$O/int8/model.sln" --json "$O/bench.json" > /dev/null
"$PY" -m sln.security.detect_int8 tokens --model "$O/int8/model.sln" --n "$N" --out "$O/mcu"
make -s -C "$R" BUILD="$O/mcu/build" MODEL_DIR="$O/int8" TOKENS="$O/mcu/tokens.bin" N="$N" \
  TOK_QEMU_OUT="$O/mcu/out.txt" run-mcu-tokens > "$O/mcu/mcu.txt"
arm-none-eabi-size -A "$O/mcu/build/mcu_tokens/firmware_tokens.elf" > "$O/mcu/size_A.txt"
arm-none-eabi-size "$O/mcu/build/mcu_tokens/firmware_tokens.elf" > "$O/mcu/size.txt"
if cmp -s <(grep -E '^[0-9]+ -?[0-9]+ -?[0-9]+$' "$O/mcu/mcu.txt") "$O/mcu/reference.txt"; then
  echo "identical $N" > "$O/mcu/cmp.txt"
else
  echo "DIFFER" > "$O/mcu/cmp.txt"
fi
cat "$O/export.txt" "$O/mcu/cmp.txt" "$O/mcu/size.txt"
grep -E "insn|stack|workspace|calib" "$O/mcu/mcu.txt" || true
"$PY" -c "import json,sys; b=json.load(open(sys.argv[1])); print({k: b[k] for k in ('per_s','latency_us','bit_exact')}, \
'SLN nJ', round(b['sln_energy']['nJ'], 1), 'char-CNN nJ int8/fp32', round(b['char_cnn_energy']['int8_nJ'], 1), \
round(b['char_cnn_energy']['fp32_nJ'], 1))" "$O/bench.json"

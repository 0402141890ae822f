#!/usr/bin/env bash
# Set up a virtual environment in .venv with sln installed (editable) and fetch MNIST.
#   bash scripts/setup.sh          - Python packages only (enough to train on MNIST)
#   bash scripts/setup.sh --test   - also the test tools and the system packages the tests use:
#                                    gcc/make, the Cortex-M toolchain + QEMU, Fashion-MNIST, clang
#                                    (libFuzzer), the lab-capture tools (tcpdump, nmap, hping3, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$want_test" = 1 ]; then
  # clang + libclang-rt: the libFuzzer harness of the loader (tests/test_fuzz.py);
  # tcpdump ... slowhttptest: the lab capture regenerated in a network namespace (tests/test_security_packets.py)
  apt_pkgs="gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm dataset-fashion-mnist clang libclang-rt-14-dev"
  apt_pkgs="$apt_pkgs tcpdump nmap hping3 mosquitto mosquitto-clients hydra slowhttptest iproute2 util-linux"
  missing=""
  for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# torch==2.13.0 (CPU) is pinned in pyproject.toml / requirements.txt
if [ "$want_test" = 1 ]; then
  .venv/bin/pip install -q -e ".[test]"
else
  .venv/bin/pip install -q -e .
fi
# the reference liquid-network library, as the benchmark's CfC peer. --no-deps: its declared
# dependencies would replace torch==2.13.0; it imports with what is already installed.
.venv/bin/pip install -q --no-deps ncps==1.0.1
# fetch + checksum MNIST into the cache now, so the first run does not stall on it
.venv/bin/python -c "from sln.data import ensure_dataset; print('MNIST ready in', ensure_dataset('mnist'))"

#!/usr/bin/env bash
# Make the labelled lab capture (issue 11) in a private network namespace, loopback only.
#   sudo bash scripts/make_capture.sh --size small --seed 0 --out tests/fixtures/ids
#   sudo bash scripts/make_capture.sh --size full  --seed 0 --out /tmp/ids-full   (>= 1e6 packets; not committed)
# Needs root and: tcpdump nmap hping3 mosquitto hydra slowhttptest iproute2 (Debian packages).
# The Python driver re-executes itself under `unshare --net --pid`, refuses to run unless its only
# interface is lo with no routes, checks every address is in 127.0.0.0/8, and bounds every tool.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python; [ -x "$py" ] || py=python3
exec "$py" -m sln.security.capture "$@"

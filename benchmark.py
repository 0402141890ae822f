"""Thin wrapper: `python benchmark.py --compare-energy --model sln-base` (see sln/bench/)."""
import sys

from sln.bench.cli import main
from sln.cli import run

if __name__ == "__main__":
    sys.exit(run(main, prog="benchmark.py"))

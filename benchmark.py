"""Thin wrapper: `python benchmark.py --compare-energy --model sln-base` (see sln/benchmark.py)."""
import sys

from sln.benchmark import main

if __name__ == "__main__":
    sys.exit(main())

"""python export.py --checkpoint PATH --out DIR  (int8 export for the C runtime; see `python export.py -h`)."""
import sys

from sln.cli import run
from sln.export import main

if __name__ == "__main__":
    sys.exit(run(main, prog="export.py"))

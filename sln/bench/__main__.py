"""`python -m sln.bench ...` = `python benchmark.py ...`."""
import sys

from .cli import main

sys.exit(main())

"""python train.py --dataset mnist --model sln-small --epochs 10  (see `python train.py -h`)."""
import sys

from sln.cli import run
from sln.train_cli import main

if __name__ == "__main__":
    sys.exit(run(main, prog="train.py"))

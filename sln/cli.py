"""`sln <command>`: one entry point; each command lives in its own module with main(argv).

Commands are looked up lazily so `sln train` does not import the benchmark's plotting stack.
"""
from __future__ import annotations

import importlib
import sys

# command -> (module, one-line help). Modules expose `main(argv: list[str] | None) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sln.train_cli", "train a model (python train.py)"),
    "benchmark": ("sln.benchmark", "energy / latency comparison against baselines (python benchmark.py)"),
    "export": ("sln.export", "int8 export for the C runtime (python export.py)"),
    "generate": ("sln.generate", "sample text from a character language model checkpoint"),
    "models": ("sln.train_cli", "list registered models"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: sln <command> [options]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<10} {text}")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"sln: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    if cmd == "models":
        return module.list_main(rest)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

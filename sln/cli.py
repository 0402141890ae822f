"""`sln <command>`: one entry point; each command lives in its own module with main(argv).

Commands are looked up lazily so `sln train` does not import the benchmark's plotting stack.
Every command (and the `train.py` / `export.py` / `benchmark.py` wrappers) runs through `run`,
the one error path: a user mistake ends in one line on stderr saying what to do and a
documented exit code, never a traceback (`--debug` shows it).

Exit codes: 0 success; 1 the command ran and reports a failure; 2 bad arguments or config;
3 data missing or corrupt (DataError); 4 a model file that does not load (CheckpointError,
missing checkpoint); 5 the system refused (read-only or full disk, permissions); 130 interrupted.
"""
from __future__ import annotations

import errno
import importlib
import sys
import traceback
from collections.abc import Callable

from .checkpoint import CheckpointError
from .fetch import DataError

EXIT_USAGE, EXIT_DATA, EXIT_MODEL, EXIT_SYSTEM, EXIT_INTERRUPTED = 2, 3, 4, 5, 130

# command -> (module, one-line help). Modules expose `main(argv: list[str] | None) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sln.train_cli", "train a model (python train.py)"),
    "benchmark": ("sln.bench.cli", "energy / latency comparison against baselines (python benchmark.py)"),
    "export": ("sln.export", "int8 export for the C runtime (python export.py)"),
    "generate": ("sln.generate", "sample text from a character language model checkpoint"),
    "evaluate": ("sln.evaluate_cli", "accuracy of a time-series checkpoint on a test file"),
    "models": ("sln.train_cli", "list registered models"),
    "detect-url": ("sln.security.detect_cli", "score domains / URLs, one per line, with a trained detector"),
    "detect-net": ("sln.security.detect_net_cli", "score the packets of a pcap file or stream with a packet detector"),
    "plot": ("sln.plot_cli", "draw a run folder's training curves (curves.csv) to RUN_DIR/curves.png"),
}


def _exit_code(e: BaseException) -> int:
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(e, DataError):
        return EXIT_DATA
    if isinstance(e, (CheckpointError, FileNotFoundError)):
        return EXIT_MODEL
    if isinstance(e, OSError):
        return EXIT_SYSTEM
    return EXIT_USAGE


# what to do about the system errors a user can cause (an --out that is a file, a read-only or full disk)
OS_HINTS = {
    errno.EEXIST: "that path exists and is not a folder: choose another --out",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another --out",
    errno.EISDIR: "that path is a folder: give a file name",
    errno.EACCES: "no permission to write there: choose a writable --out",
    errno.EPERM: "not permitted to write there: choose a writable --out",
    errno.EROFS: "the filesystem is read-only: choose a writable --out",
    errno.ENOSPC: "the disk is full: free space and rerun with --resume (the last complete checkpoint is kept)",
    errno.EDQUOT: "the disk quota is exhausted: free space and rerun with --resume",
}

USER_ERRORS = (DataError, CheckpointError, ValueError, KeyError, OSError, KeyboardInterrupt)


def run(main_fn: Callable[[list[str]], int | None], argv: list[str] | None = None, prog: str = "sln") -> int:
    """Call main_fn(argv) behind the one error path (see the module docstring for the exit codes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return int(main_fn(argv) or 0)
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        msg = "interrupted" if isinstance(e, KeyboardInterrupt) else (e.args[0] if isinstance(e, KeyError)
                                                                      and e.args else str(e))
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.errno in OS_HINTS:
            msg = f"{e.strerror}: {e.filename}; {OS_HINTS[e.errno]}" if e.filename else f"{msg}; {OS_HINTS[e.errno]}"
        hint = "" if debug else "  (--debug shows the traceback)"
        print(f"{prog}: error: {msg}{hint}", file=sys.stderr)
        return _exit_code(e)


def main(argv: list[str] | None = None) -> int:
    return run(_dispatch, argv, "sln")


def version() -> str:
    """The installed distribution's version (a wheel, sdist or editable install), else the package's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version
    try:
        return dist_version("sparse-liquid-networks")
    except PackageNotFoundError:        # run from a checkout that was never installed
        from . import __version__
        return __version__


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in ("--version", "-V"):
        import torch
        print(f"sln {version()} (torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'})")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: sln <command> [options]   (sln --version)\n\ncommands:")
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

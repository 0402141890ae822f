"""Compile the project's C sources (runtime/) into a shared library in the cache, once per sources,
compiler, flags and CPU: the one build step behind the host engine (sln/engine.py), the packet fast
path (sln/security/fastpath.py) and the C baselines (DTW, the GPT decode step). Imports nothing of
the package, so the numpy-only modules can use it."""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


def cache_dir() -> Path:
    """$SLN_CACHE/host (default ~/.cache/sln/host): where compiled libraries live."""
    return Path(os.environ.get("SLN_CACHE", Path.home() / ".cache" / "sln")) / "host"


def compiler() -> str | None:
    """$CC (default gcc) if it is on PATH, else None."""
    cc = os.environ.get("CC", "gcc")
    return cc if shutil.which(cc) is not None else None


def cpu_model() -> str:
    """The CPU's model name / flags line: part of the key of -march=native builds, so a shared cache
    never serves a library built for another CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def build_shared(stem: str, sources: Sequence[Path], flags: Sequence[str], *, headers: Sequence[Path] = (),
                 error: type[Exception] = RuntimeError, no_compiler: str = "", force: bool = False) -> Path:
    """Compile `sources` (and their `headers`, part of the key) with `flags` into
    cache_dir()/lib<stem>-<key>.so and return its path; an existing one is reused unless `force`.
    Raises `error` when a source is missing, no compiler exists (message + `no_compiler`, what the
    user can do instead) or the build fails (with the compiler's output). The library appears
    atomically, so concurrent builders never load half of one."""
    files = [*sources, *headers]
    if not all(p.is_file() for p in files):
        missing = ", ".join(str(p) for p in files if not p.is_file())
        raise error(f"C sources missing (incomplete checkout or installation?): {missing}")
    cc = os.environ.get("CC", "gcc")
    key = hashlib.sha256(b"".join(p.read_bytes() for p in files)
                         + " ".join([cc, *flags, platform.machine(), cpu_model()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"lib{stem}-{key}.so"
    if out.is_file() and not force:
        return out
    if shutil.which(cc) is None:
        raise error(f"no C compiler ({cc!r} not on PATH): apt-get install gcc, or set CC" +
                    (f"; {no_compiler}" if no_compiler else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_so = Path(tmp) / out.name
        includes = sorted({str(p.parent) for p in files})
        cmd = [cc, *flags, *(a for d in includes for a in ("-I", d)), "-o", str(tmp_so), *map(str, sources), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise error(f"building {', '.join(p.name for p in sources)} failed:\n{proc.stderr.strip()}")
        os.replace(tmp_so, out)
    return out

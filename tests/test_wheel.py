"""A real wheel: `python -m build` gives a wheel and an sdist carrying the C runtime; the wheel, installed
into a fresh venv, runs `sln --version`, `sln models` and the engine (compiled from the installed
sources on first use) from outside the checkout, a one-epoch `sln train` on a small MNIST slice and
`sln export` of its checkpoint; without a C compiler the engine says so.

The fresh venv has no pip and no packages of its own: torch, numpy, ... come from this venv's
site-packages through a .pth line (not its .pth files, so the editable checkout of sln stays out),
and the wheel is installed with --no-deps --no-index. 61-71 s here (build ~10 s, interpreter starts
with torch, one C compile); under SLN_SLOW_TESTS like the other slow tests.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import skip_or_fail_in_ci

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.environ.get("SLN_SLOW_TESTS") != "1",
                                reason="slow (~1 min: builds and installs a wheel): set SLN_SLOW_TESTS=1")

ENGINE_CALL = """
import numpy as np, torch, sln, sln.engine as e
from sln.config import get_config
from sln.model import SLN
assert "site-packages" in str(e.RUNTIME), e.RUNTIME       # the wheel's sources, not the checkout's
torch.manual_seed(0)
m = SLN(get_config("sln-small", n_neurons=32, active_frac=0.1)).eval()
x = torch.rand(4, 196)
r = e.Engine(m).run(x.numpy().astype(np.float32))
with torch.no_grad():
    ref = m(x[None])[0].numpy()
print("engine max diff", float(np.abs(r.logits - ref).max()), sln.__file__)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    if importlib.util.find_spec("build") is None:
        skip_or_fail_in_ci("the `build` package is not installed (pip install build==1.6.1)")
    # --no-isolation: build with this venv's setuptools (an isolated build would download it)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel = next((tmp / "dist").glob("*.whl"))
    sdist = next((tmp / "dist").glob("*.tar.gz"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "host_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-3000:]
    return {"tmp": tmp, "wheel": wheel, "sdist": sdist, "venv": venv}


def _run(built: dict[str, Path], *cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "SLN_CACHE": str(built["tmp"] / "cache"), "PYTHONPATH": "", **(env or {})}
    return subprocess.run(list(cmd), cwd=built["tmp"], env=full, capture_output=True, text=True, timeout=300)


def test_wheel_and_sdist_carry_the_package_and_the_c_runtime(built: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    for f in ("sln.c", "sln.h", "sln_format.h", "Makefile", "mcu/firmware.c"):
        assert f"sln/runtime/{f}" in names, f
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "sln").rglob("*.py")}
    assert modules <= names, f"not in the wheel (add the subpackage to pyproject.toml): {sorted(modules - names)}"
    with tarfile.open(built["sdist"]) as t:
        sd = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"runtime/sln.c", "runtime/sln.h", "pyproject.toml", "sln/engine.py"} <= sd


def test_installed_wheel_runs_outside_the_checkout(built: dict[str, Path]) -> None:
    sln = str(built["venv"] / "bin" / "sln")
    v = _run(built, sln, "--version")
    assert v.returncode == 0 and v.stdout.startswith("sln 0.1.0"), v.stderr
    m = _run(built, sln, "models")
    assert m.returncode == 0 and "sln-small" in m.stdout
    e = _run(built, str(built["venv"] / "bin" / "python"), "-c", ENGINE_CALL)
    assert e.returncode == 0, e.stderr[-3000:]
    diff, where = e.stdout.split()[-2:]
    assert float(diff) < 1e-4 and "site-packages" in where and str(ROOT) not in where
    assert list((built["tmp"] / "cache" / "host").glob("libsln-*.so"))     # compiled on first use


def test_installed_wheel_trains_and_exports(built: dict[str, Path]) -> None:
    # the CI path of a user: one epoch on a small slice of MNIST (already cached by setup, read through
    # --data-dir: SLN_CACHE points at the test's own folder), then the int8 export for the C runtime
    mnist = Path(os.environ.get("SLN_DATA") or Path.home() / ".cache" / "sln")
    if not (mnist / "mnist").is_dir():
        skip_or_fail_in_ci(f"MNIST is not cached in {mnist / 'mnist'} (bash scripts/setup.sh fetches it)")
    sln, run = str(built["venv"] / "bin" / "sln"), built["tmp"] / "run"
    t = _run(built, sln, "train", "--dataset", "mnist", "--model", "sln-tiny", "--epochs", "1",
             "--limit-train", "256", "--limit-test", "100", "--n-neurons", "32", "--threads", "1",
             "--no-progress", "--data-dir", str(mnist), "--out", str(run))
    assert t.returncode == 0, t.stdout[-2000:] + t.stderr[-3000:]
    assert (run / "checkpoint.safetensors").is_file() and (run / "curves.csv").is_file()
    x = _run(built, sln, "export", "--checkpoint", str(run / "checkpoint.safetensors"), "--out", str(run / "exp"),
             "--calib", "100", "--eval-limit", "50", "--data-dir", str(mnist))
    assert x.returncode == 0, x.stdout[-2000:] + x.stderr[-3000:]
    assert (run / "exp" / "model.sln").read_bytes()[:4] == b"SLNQ"


def test_no_compiler_is_a_clear_message(built: dict[str, Path]) -> None:
    code = ("import sln.engine as e\ntry:\n    e.build_host_library(force=True)\n"
            "except e.EngineBuildError as x:\n    print(x)\n")
    r = _run(built, str(built["venv"] / "bin" / "python"), "-c", code, env={"CC": "no-such-cc"})
    assert r.returncode == 0 and "no C compiler ('no-such-cc' not on PATH)" in r.stdout

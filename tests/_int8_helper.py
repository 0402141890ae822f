"""Shared, cached artefacts for the int8 / C runtime / MCU tests (no conftest needed).

One small sln-tiny-shaped model is trained on a real MNIST slice, exported, and the C
programs are built once per pytest process (functools caches); everything lives in a temp
folder removed at exit. Nothing here depends on runs/ existing.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
N_TRAIN, EPOCHS, N_CALIB, N_TEST = 6000, 2, 1000, 1000


@dataclass
class Artifacts:
    root: Path                 # temp folder
    checkpoint: Path
    export_dir: Path           # model.sln, sln_model_data.[ch], export_report.json
    model_file: Path
    report: dict
    images: np.ndarray         # uint8 (N_TEST, 28, 28) real MNIST test images
    labels: np.ndarray
    images_idx: Path           # the same as uncompressed IDX files (for the C programs)
    labels_idx: Path


def write_idx(path: Path, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    path.write_bytes(bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


@contextlib.contextmanager
def deterministic_torch():
    """One thread and deterministic algorithms while a test fixture trains (restored after):
    float training otherwise differs with the thread count, and so would every artefact."""
    import torch

    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det)
        torch.set_num_threads(threads)


@functools.cache
def artifacts() -> Artifacts:
    import torch

    from sln.config import SLNConfig
    from sln.data import load_split
    from sln.export import export
    from sln.train_cli import main as train_main

    root = Path(tempfile.mkdtemp(prefix="sln-int8-test-"))
    atexit.register(shutil.rmtree, root, True)
    run = root / "run"
    # --threads 1 and deterministic algorithms: the same weights on every machine, so everything
    # downstream (the exported file, the MCU's instruction counts) is the same everywhere
    args = ["--model", "sln-tiny", "--epochs", str(EPOCHS), "--limit-train", str(N_TRAIN),
            "--limit-test", "200", "--out", str(run), "--no-progress", "--threads", "1"]
    if "augment_shift" in {f.name for f in dataclasses.fields(SLNConfig)}:
        args += ["--augment-shift", "0"]   # learns faster in 2 short epochs; irrelevant to int8
    with deterministic_torch():
        torch.manual_seed(0)
        rc = train_main(args)
    assert rc in (0, None), f"training the test model failed ({rc})"
    ckpt = run / "checkpoint.safetensors"
    exp = root / "export"
    report = export(ckpt, exp, calib=N_CALIB, eval_limit=N_TEST)
    images, labels = load_split("mnist", "test", limit=N_TEST)
    write_idx(root / "images.idx", images)
    write_idx(root / "labels.idx", labels)
    return Artifacts(root, ckpt, exp, exp / "model.sln", report, images, labels,
                     root / "images.idx", root / "labels.idx")


SPARSE_KEEP = 0.10     # share of W_in / W_rec weights the sparse test model keeps


def prune_top(model, keep: float = SPARSE_KEEP) -> None:
    """Zero all but the `keep` largest-magnitude weights of every layer's W_in and W_rec (ties at
    the threshold kept): the sparse models of the tests, made here, not by the training code."""
    import torch

    with torch.no_grad():
        for cell in model.cells:
            for w in (cell.w_in.weight, cell.w_rec.weight):
                n_keep = max(1, int(round(keep * w.numel())))
                thr = w.abs().flatten().kthvalue(w.numel() - n_keep + 1).values
                w.mul_((w.abs() >= thr).to(w.dtype))


@dataclass
class SparseArtifacts:
    export_dir: Path           # model.sln (column-sparse, version 2), sln_model_data.[ch]
    model_file: Path
    dense_file: Path           # the same integer model with dense matrices (version 1)
    qm: object                 # intspec.QModel parsed back from model.sln
    model: object              # the pruned float model


@functools.cache
def sparse_artifacts() -> SparseArtifacts:
    """The trained test model pruned to SPARSE_KEEP of its W_in / W_rec weights (no fine-tuning:
    the tests check exactness, not accuracy), quantised and exported column-sparse."""
    from sln import fmt, fmt_c, quant
    from sln.checkpoint import load_checkpoint
    from sln.data import load_split

    a = artifacts()
    model, _ = load_checkpoint(a.checkpoint)
    model.eval()
    prune_top(model)
    xtr, _ = load_split("mnist", "train", limit=N_CALIB)
    qm = quant.quantize(model, xtr)
    out = a.root / "export_sparse"
    out.mkdir(exist_ok=True)
    data = fmt.to_bytes(qm)
    (out / "model.sln").write_bytes(data)
    (out / "sln_model_data.c").write_text(fmt_c.to_c_array(data))
    (out / "sln_model_data.h").write_text(fmt_c.c_array_header(qm, fmt.workspace_bytes(qm)))
    (out / "dense.sln").write_bytes(fmt.to_bytes(qm, layout="dense"))
    return SparseArtifacts(out, out / "model.sln", out / "dense.sln", fmt.from_bytes(data), model)


@functools.cache
def build(target: str) -> Path:
    """`make <target>` of runtime/ into a private build folder -> path of the program."""
    out = artifacts().root / "build"
    r = subprocess.run(["make", "-C", str(RUNTIME), f"BUILD={out}", target], capture_output=True, text=True)
    assert r.returncode == 0, f"make {target} failed:\n{r.stdout}\n{r.stderr}"
    return out / {"host": "sln_cli", "asan": "sln_cli_asan", "lm-host": "sln_lm_cli", "lm-asan": "sln_lm_cli_asan",
                  "fuzz": "fuzz_load"}[target]


# exit statuses of the sanitizers in the *_asan programs (ASan and LeakSanitizer share `exitcode`)
ASAN_EXIT, UBSAN_EXIT = 99, 98
SANITIZER_ENV = {"ASAN_OPTIONS": f"detect_leaks=1:abort_on_error=0:exitcode={ASAN_EXIT}",
                 "UBSAN_OPTIONS": f"halt_on_error=1:exitcode={UBSAN_EXIT}:print_stacktrace=1"}


@functools.cache
def lsan_problem() -> str | None:
    """None if LeakSanitizer works here, else why not. Probed once with a program that leaks on
    purpose: LSan stops the process with ptrace, which some sandboxes and debuggers forbid."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return f"no C compiler ({cc}) to probe LeakSanitizer"
    d = Path(tempfile.mkdtemp(prefix="sln-lsan-probe-"))
    try:
        (d / "leak.c").write_text("#include <stdlib.h>\nvoid *p;\nint main(void) { p = malloc(7); p = 0; return 0; }\n")
        b = subprocess.run([cc, "-fsanitize=address", "-g", "-o", str(d / "leak"), str(d / "leak.c")],
                           capture_output=True, text=True)
        if b.returncode != 0:
            return f"cannot build with -fsanitize=address: {b.stderr[-300:]}"
        r = subprocess.run([str(d / "leak")], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
        if "detected memory leaks" in r.stderr:
            return None
        return ("LeakSanitizer cannot run in this environment (it needs ptrace; sandboxes and debuggers "
                f"may forbid it): {r.stderr.strip()[-300:] or f'exit {r.returncode}, no report'}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def require_lsan() -> None:
    """Skip a leak test where LSan cannot run, but fail under CI=true (a skip there hides leaks)."""
    import pytest

    why = lsan_problem()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"required in CI: {why}")
        pytest.skip(why)


def run_cli(program: Path, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run a C program with the sanitizer settings (LSan on where it works)."""
    env = dict(os.environ, **SANITIZER_ENV)
    if lsan_problem() is not None:
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
    return subprocess.run([str(program), *args], capture_output=True, text=True, env=env, timeout=timeout, **kw)


def parse_dump(stdout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sln_cli --dump output -> predictions (n,), logits (n, C), winners (n, L*T*k)."""
    preds, logits, winners = [], [], []
    for line in stdout.splitlines():
        f = line.split()
        if f[0] == "logits":
            logits.append([int(v) for v in f[2:]])
        elif f[0] == "winners":
            winners.append([int(v) for v in f[2:]])
        elif f[0].isdigit():
            preds.append(int(f[1]))
    return np.array(preds), np.array(logits, np.int64), np.array(winners, np.int64)

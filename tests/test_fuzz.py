"""libFuzzer (clang -fsanitize=fuzzer,address,undefined) on the `.sln` loader and one inference
step (runtime/fuzz/fuzz_load.c, `make -C runtime fuzz`), for a bounded time, with the corpus
seeded from real exports: the trained int8 classifier of _int8_helper, a 2-layer int8
classifier, an int8 character LM, two float32 files (sln.fmt.float_model_bytes), and column-sparse
(format version 2) int8 and float32 files, so the fuzzer mutates the sparse pointers and row steps
that the loader validates once for the step's unchecked column walks.

Time: $SLN_FUZZ_SECONDS, else 60 s under CI=true, else 10 s. Any crash, sanitizer report,
timeout or harness assertion fails the test and names the saved crash input. Skipped (failed
under CI) where clang's libFuzzer is not installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _int8_helper import RUNTIME, artifacts, prune_top, sparse_artifacts  # noqa: E402
from conftest import skip_or_fail_in_ci  # noqa: E402

from sln import fmt, quant  # noqa: E402


def fuzz_seconds() -> int:
    v = os.environ.get("SLN_FUZZ_SECONDS")
    if v is not None:
        assert v.isdigit() and int(v) > 0, f"SLN_FUZZ_SECONDS must be a positive integer, got {v!r}"
        return int(v)
    return 60 if os.environ.get("CI") else 10


def _seeds(folder: Path) -> list[Path]:
    import torch

    from sln.config import SLNConfig, get_config
    from sln.model import SLN, create_model

    a = artifacts()
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {"int8_classifier.sln": a.model_file.read_bytes()}
    torch.manual_seed(0)
    two = create_model("sln-tiny", n_layers=2, n_neurons=64, active_frac=0.1).eval()
    seeds["int8_two_layer.sln"] = fmt.to_bytes(quant.quantize(two, a.images[:200]))
    lm = SLN(get_config("sln-lm-tiny").replace(input_size=40, n_classes=40)).eval()
    seeds["int8_lm.sln"] = fmt.lm_to_bytes(quant.quantize(lm, torch.randint(0, 40, (2000,))))
    seeds["float32_two_layer.sln"] = fmt.float_model_bytes(
        SLN(SLNConfig(n_neurons=32, active_frac=0.125, input_size=196, n_layers=2)).eval())
    seeds["float32_one_layer.sln"] = fmt.float_model_bytes(
        SLN(SLNConfig(n_neurons=16, active_frac=0.25, input_size=28, n_layers=1)).eval())
    seeds["int8_sparse.sln"] = sparse_artifacts().model_file.read_bytes()
    # small sparse files: mutations reach the indices instead of being spent on big dense blobs;
    # N = 160 gives 2N = 320 > 255 rows, so padding entries occur
    sp2 = create_model("sln-tiny", n_layers=2, n_neurons=160, active_frac=0.05).eval()
    prune_top(sp2, 0.02)
    seeds["int8_sparse_two_layer.sln"] = fmt.to_bytes(quant.quantize(sp2, a.images[:100]))
    fsp = SLN(SLNConfig(n_neurons=24, active_frac=0.125, input_size=49, n_layers=2)).eval()
    prune_top(fsp, 0.1)
    seeds["float32_sparse.sln"] = fmt.float_model_bytes(fsp)
    from sln.intspec_events import to_bytes as events_to_bytes
    from sln.security.ids_data import IdsSpec
    from sln.security.ids_int8 import quantize_events
    ev = SLN(get_config("sln-ids-small", n_neurons=16, active_frac=0.125)).eval()     # event model (kind 3)
    rng = np.random.default_rng(0)
    xe, dte = rng.exponential(1.0, (300, 58)), rng.exponential(2e-3, 300)
    spec = IdsSpec("reconstruct", [1.0] * 58, 1.0, 1e-3, resid_weight=[1.0] * 58)
    seeds["int8_events.sln"] = events_to_bytes(quantize_events(ev, spec, xe, dte, 1e-5, 1e-1))
    tk = SLN(get_config("sln-domains-tiny", n_neurons=16, active_frac=0.125)).eval()   # token classifier (kind 2)
    ids = torch.randint(1, 61, (50, 48))
    lens = torch.randint(1, 49, (50,))
    seeds["int8_tokens.sln"] = fmt.token_to_bytes(quant.quantize(tk, ids.numpy(), token_lengths=lens.numpy()))
    paths = []
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def _build(out: Path) -> Path:
    cc = os.environ.get("FUZZ_CC", "clang")
    if shutil.which(cc) is None:
        skip_or_fail_in_ci(f"{cc} not installed (apt-get install clang): no libFuzzer")
    r = subprocess.run(["make", "-C", str(RUNTIME), f"BUILD={out}", f"FUZZ_CC={cc}", "fuzz"],
                       capture_output=True, text=True)
    if r.returncode != 0 and "fuzzer" in r.stderr and ("unsupported" in r.stderr or "cannot find" in r.stderr
                                                      or "not found" in r.stderr):
        skip_or_fail_in_ci(f"{cc} has no libFuzzer runtime: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stdout + r.stderr
    return out / "fuzz_load"


def test_seeds_load_in_the_harness(tmp_path: Path) -> None:
    """Every seed is a valid file that the harness loads and runs (so the fuzzer starts from
    deep inside the loader, not from the magic check)."""
    exe = _build(artifacts().root / "build")
    seeds = _seeds(tmp_path / "seeds")
    r = subprocess.run([str(exe), "-runs=0", *map(str, seeds)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    for s in seeds:    # the files are valid: the int8 ones in the CLI, the float ones in the engine
        h = fmt.header_of(s.read_bytes())
        assert h["numeric"] == (1 if s.name.startswith("float32") else 0), s.name
        assert h["version"] == (2 if "sparse" in s.name else 1), s.name


def test_libfuzzer_finds_no_crash_in_the_loader_and_one_step(tmp_path: Path) -> None:
    exe = _build(artifacts().root / "build")
    corpus = tmp_path / "corpus"
    _seeds(corpus)
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    seconds = fuzz_seconds()
    r = subprocess.run([str(exe), f"-max_total_time={seconds}", "-timeout=20", "-rss_limit_mb=2048",
                        "-print_final_stats=1", "-max_len=262144", f"-artifact_prefix={crashes}/", str(corpus)],
                       capture_output=True, text=True, timeout=seconds + 300)
    found = sorted(p.name for p in crashes.iterdir())
    assert r.returncode == 0 and not found, (f"libFuzzer exit {r.returncode}, saved inputs {found} in {crashes}:\n"
                                             + r.stderr[-4000:])
    execs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", r.stderr).group(1))
    cov = [int(v) for v in re.findall(r"\bcov: (\d+)", r.stderr)]
    print(f"\nlibFuzzer: {execs} executions in {seconds} s, {max(cov, default=0)} coverage edges, "
          f"corpus {len(list(corpus.iterdir()))} files")
    assert execs >= 50 * seconds, execs          # it really ran (thousands per second here)
    assert cov and max(cov) > 300, cov[-1:]      # and got past the header checks
    assert np.all(np.array(cov[1:]) >= np.array(cov[:-1]))

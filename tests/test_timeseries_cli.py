"""Your own data from the command line: .ts / UCR text / CSV series, `sln evaluate`, text:PATH for the LM,
checksums recorded, mismatches refused, and length bucketing (less padding, same loss on equal lengths)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sln.fetch import DataError
from sln.series_files import parse_csv, parse_ucr_text, read_series_file
from sln.timeseries import TSFormatError, TSSplits, make_splits, parse_ts, read_ts

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "ts"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "SLN_THREADS": "1"})


def _series(n: int, seed: int, dims: int = 1, variable: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """Two separable classes (sine vs. ramp), lengths 8-15 (or all 12); values rounded so text is exact."""
    rng = np.random.default_rng(seed)
    out, labels = [], []
    for i in range(n):
        T = int(rng.integers(8, 16)) if variable else 12
        t = np.arange(T) / 3.0
        cls = i % 2
        base = np.sin(t) if cls == 0 else t / 3.0 - 1.0
        s = np.stack([base * (d + 1) + rng.normal(0, 0.1, T) for d in range(dims)]).round(4).astype(np.float32)
        out.append(s)
        labels.append(["up", "down"][cls])
    return out, labels


def _write_ts(path: Path, series: list[np.ndarray], labels: list[str], classes: str = "up down") -> Path:
    dims = series[0].shape[0]
    equal = len({s.shape[1] for s in series}) == 1
    head = (f"@problemName toy\n@timeStamps false\n@missing false\n@univariate {str(dims == 1).lower()}\n"
            f"@dimensions {dims}\n@equalLength {str(equal).lower()}\n@classLabel true {classes}\n@data\n")
    rows = [":".join(",".join(f"{v:g}" for v in d) for d in s) + f":{lab}" for s, lab in zip(series, labels)]
    path.write_text(head + "\n".join(rows) + "\n")
    return path


# --- each format reads to the same tensors as the equivalent .ts --------------------------------

def _splits(tr, te) -> TSSplits:  # noqa: ANN001
    return make_splits(tr, te, "test")


def test_formats_load_to_the_same_tensors_as_ts(tmp_path: Path) -> None:
    ser, lab = _series(10, 0)
    tser, tlab = _series(6, 1)
    ref = _splits(read_ts(_write_ts(tmp_path / "a.ts", ser, lab)),
                  read_ts(_write_ts(tmp_path / "b.ts", tser, tlab), class_names=["up", "down"]))
    assert (ref.len_train != ref.len_train[0]).any()          # variable length really exercised

    def rows(ss: list[np.ndarray], ll: list[str], sep: str, width: int) -> str:
        # UCR style: label first, rows padded with NaN to a common width (variable-length sets)
        return "".join(sep.join([lb] + [f"{v:g}" for v in s[0]] + ["NaN"] * (width - s.shape[1])) + "\n"
                       for s, lb in zip(ss, ll))

    W = 15
    for name, sep in (("tsv", "\t"), ("txt", "  "), ("comma.txt", ",")):
        a, b = tmp_path / f"a.{name}", tmp_path / f"b.{name}"
        a.write_text(rows(ser, lab, sep, W))
        b.write_text(rows(tser, tlab, sep, W))
        tr = read_series_file(a)
        got = _splits(tr, read_series_file(b, class_names=tr.class_names))
        # class order of text files = sorted labels ("down", "up"); map to the .ts order to compare
        perm = torch.tensor([tr.class_names.index(c) for c in ref.class_names])
        for k in ("x_train", "len_train", "x_test", "len_test"):
            assert torch.equal(getattr(got, k), getattr(ref, k)), (name, k)
        assert torch.equal(perm[ref.y_train], got.y_train) and torch.equal(perm[ref.y_test], got.y_test)
    # CSV: header with a named label column that is not the first one; empty trailing fields
    header = ",".join(f"t{i}" for i in range(W)) + ",label\n"
    body = "".join(",".join([f"{v:g}" for v in s[0]] + [""] * (W - s.shape[1]) + [lb]) + "\n"
                   for s, lb in zip(ser, lab))
    (tmp_path / "a.csv").write_text(header + body)
    tr = read_series_file(tmp_path / "a.csv")
    assert tr.meta["format"] == "csv" and [s.shape for s in tr.series] == [s.shape for s in ser]
    for s, r in zip(tr.series, ser):
        assert np.array_equal(s, r)
    assert [tr.class_names[i] for i in tr.labels] == lab


def test_text_format_rules() -> None:
    old = parse_ucr_text("1.0000000e+00  0.5 0.25\n2.0000000e+00 1 2 3\n", "old.txt")
    assert old.class_names == ["1", "2"] and old.lengths.tolist() == [2, 3]
    mid = parse_ucr_text("a,1,,3,NaN\n", "m.txt")                 # inside: missing; trailing: trimmed
    assert mid.lengths.tolist() == [3] and np.isnan(mid.series[0][0, 1])
    headerless = parse_csv("3,1,2\n10,4,5\n", "h.csv")           # numeric header-less CSV: label first
    assert headerless.class_names == ["3", "10"] and headerless.series[1].tolist() == [[4.0, 5.0]]
    with pytest.raises(TSFormatError, match="not among the training classes"):
        parse_csv("label,x\nc,1\n", "t.csv", class_names=["a", "b"])
    with pytest.raises(TSFormatError, match="not a finite number"):
        parse_ucr_text("1 inf 2\n", "bad.txt")


def test_regression_file_gets_a_clear_error(tmp_path: Path) -> None:
    text = "@problemName R\n@timeStamps false\n@univariate true\n@targetLabel true\n@data\n1,2,3:0.5\n"
    with pytest.raises(TSFormatError, match=r"regression is not supported; this is a regression file \(@targetLabel\)"):
        parse_ts(text, "r.ts")
    p = tmp_path / "r_TRAIN.ts"
    p.write_text(text)
    r = _run("train.py", "--dataset", str(p), "--test", str(p), "--out", str(tmp_path / "o"))
    assert r.returncode == 3 and "regression is not supported" in r.stderr and "Traceback" not in r.stderr


# --- train + evaluate on a user .ts pair through the CLI ---------------------------------------

TINY = ["--epochs", "2", "--n-neurons", "32", "--active-frac", "0.0625", "--batch-size", "4", "--threads", "1",
        "--no-progress"]


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict]:
    d = tmp_path_factory.mktemp("user")
    ser, lab = _series(12, 0, dims=2)
    tser, tlab = _series(8, 1, dims=2)
    tr, te = _write_ts(d / "toy_TRAIN.ts", ser, lab), _write_ts(d / "toy_TEST.ts", tser, tlab)
    sha = hashlib.sha256(tr.read_bytes()).hexdigest()
    r = _run("train.py", "--dataset", str(tr), "--test", str(te), "--train-sha256", sha, "--out", str(d / "run"), *TINY)
    assert r.returncode == 0, r.stderr
    return tr, te, d / "run", json.loads((d / "run" / "metrics.json").read_text())


def test_user_ts_trains_and_records_checksums(user_run: tuple[Path, Path, Path, dict]) -> None:
    from sln.checkpoint import load_checkpoint
    tr, te, run, m = user_run
    for split, p in (("train", tr), ("test", te)):
        rec = m["files"][split]
        assert rec == {"path": str(p.resolve()), "size": p.stat().st_size,
                       "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    # 2 channels + their per-series mean and log-scale (the recipe's series_norm "series")
    assert m["config"]["input_size"] == 2 + 4 and m["config"]["n_classes"] == 2 and m["model"] == "sln-ts-small"
    assert m["steps_per_epoch_needed"] <= m["steps_per_epoch_computed"]
    _, state = load_checkpoint(run / "checkpoint.safetensors")
    assert state["files"] == m["files"]
    assert state["series"]["class_names"] == ["up", "down"] and len(state["series"]["mean"]) == 2
    from sln.timeseries import channel_stats
    mean, std = channel_stats(read_ts(tr))                         # the TRAINING file's statistics, stored
    assert np.array_equal(np.asarray(state["series"]["mean"], np.float32), mean)
    assert np.array_equal(np.asarray(state["series"]["std"], np.float32), std)


def test_evaluate_reproduces_the_training_runs_test_accuracy(user_run: tuple[Path, Path, Path, dict]) -> None:
    tr, te, run, m = user_run
    out = run / "eval.json"
    r = _run("-m", "sln.cli", "evaluate", "--checkpoint", str(run / "checkpoint.safetensors"), "--test", str(te),
             "--dropped", "--no-progress", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    ev = json.loads(out.read_text())
    assert ev["accuracy"] == m["test_accuracy"] and "accuracy" in r.stdout
    assert ev["irregular"] == m["irregular"]                       # the same stored normalisation and draws


def test_wrong_checksum_channels_and_labels_are_refused(user_run: tuple[Path, Path, Path, dict],
                                                        tmp_path: Path) -> None:
    tr, te, run, _ = user_run
    ck = str(run / "checkpoint.safetensors")
    r = _run("train.py", "--dataset", str(tr), "--test", str(te), "--train-sha256", "0" * 64, "--out",
             str(tmp_path / "o"), *TINY)
    assert r.returncode == 3 and "checksum mismatch" in r.stderr
    ser, lab = _series(4, 2, dims=3)
    r = _run("-m", "sln.cli", "evaluate", "--checkpoint", ck, "--test", str(_write_ts(tmp_path / "d3.ts", ser, lab)))
    assert r.returncode == 3 and "3 channel(s)" in r.stderr and "Traceback" not in r.stderr, r.stderr
    ser, _ = _series(4, 2, dims=2)
    bad = _write_ts(tmp_path / "lab.ts", ser, ["up", "sideways"] * 2, classes="up sideways")
    r = _run("-m", "sln.cli", "evaluate", "--checkpoint", ck, "--test", str(bad))
    assert r.returncode == 3 and "not among the training classes" in r.stderr, r.stderr
    r = _run("train.py", "--dataset", str(tr), "--out", str(tmp_path / "o"), *TINY)      # no --test
    assert r.returncode == 2 and "--test" in r.stderr


# --- length bucketing --------------------------------------------------------------------------

def _task_data(variable: bool) -> TSSplits:
    ser, lab = _series(24, 3, variable=variable)
    tr = parse_ts(_ts_text(ser, lab), "tr.ts")
    return make_splits(tr, tr, "bucket")


def _ts_text(ser: list[np.ndarray], lab: list[str]) -> str:
    equal = len({s.shape[1] for s in ser}) == 1
    head = f"@problemName t\n@univariate true\n@equalLength {str(equal).lower()}\n@classLabel true up down\n@data\n"
    return head + "".join(",".join(f"{v:g}" for v in s[0]) + f":{lb}\n" for s, lb in zip(ser, lab))


def test_bucketing_pads_less_on_variable_lengths() -> None:
    from sln.sequence_tasks import SeriesTask, epoch_padding
    data = _task_data(variable=True)
    plain, bucketed = SeriesTask(data, 4, 0, 0.0, bucket=False), SeriesTask(data, 4, 0, 0.0)
    p0, p1 = epoch_padding(plain), epoch_padding(bucketed)
    assert p0["needed"] == p1["needed"] == int(data.len_train.sum())
    assert p1["computed"] < p0["computed"] < len(data.x_train) * data.x_train.shape[1]
    # every series once per epoch, and the same epoch twice (resume is a pure function of (seed, epoch))
    batches = [bucketed.get_batch(s) for s in range(bucketed.steps_per_epoch)]
    assert sum(len(bt[-1]) for bt in batches) == len(data.x_train)
    assert all(bt[0].shape[1] == int(bt[2].max()) for bt in batches)      # each cut to its longest series
    a, _ = bucketed.epoch_batches(1)
    b, _ = SeriesTask(data, 4, 0, 0.0).epoch_batches(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and sorted(torch.cat(a).tolist()) == list(range(24))


def test_bucketing_gives_the_same_loss_on_equal_lengths() -> None:
    """Equal lengths: the batches (and the dropped steps drawn after them) are exactly the pre-bucketing
    ones -- a reference written out here: one permutation per epoch from (seed, epoch), cut in order."""
    from sln.config import SLNConfig
    from sln.model import SLN
    from sln.sequence_tasks import SeriesTask
    from sln.timeseries import drop_steps
    data = _task_data(variable=False)
    torch.manual_seed(0)
    model = SLN(SLNConfig(input_size=1, n_classes=2, n_neurons=32, active_frac=0.125)).eval()
    task = SeriesTask(data, 4, 0, 0.5)
    for epoch in range(2):
        g = torch.Generator().manual_seed(0 * 100003 + epoch)
        perm = torch.randperm(len(data.x_train), generator=g)
        for b in range(task.steps_per_epoch):
            idx = perm[b * 4:(b + 1) * 4]
            share = float(torch.rand(1, generator=g)) * 0.5
            x, dt, ln, _ = drop_steps(data.x_train[idx], data.len_train[idx], share, g)
            want = torch.nn.functional.cross_entropy(model(x, dt, ln), data.y_train[idx])
            got, _ = task.loss(model, task.get_batch(epoch * task.steps_per_epoch + b))
            assert torch.equal(got, want), (epoch, b)


# --- the character LM on a user's text ----------------------------------------------------------

def test_text_path_lm_trains_a_few_steps(tmp_path: Path) -> None:
    from sln.lm import load_lm
    from sln.text import UNKNOWN
    text = ("the quick brown fox jumps over the lazy dog. " * 80) + "Zebra ±"     # 'Z', '±': validation only
    p = tmp_path / "corpus.txt"
    p.write_text(text, encoding="utf-8")
    out = tmp_path / "lm"
    r = _run("train.py", "--dataset", f"text:{p}", "--model", "sln-lm-tiny", "--n-neurons", "64",
             "--time-budget-s", "0", "--epochs", "1", "--batch-size", "4", "--out", str(out), "--threads", "1",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] >= 1 and m["val_unknown_chars"] >= 2 and m["files"]["train"]["size"] == p.stat().st_size
    assert m["val_chars"] > 0 and m["seconds_per_epoch"] > 0
    _, vocab, state = load_lm(out / "checkpoint.safetensors")
    assert UNKNOWN in vocab.chars and "Z" not in vocab.chars and state["dataset"] == f"text:{p}"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 " * 100)
    r = _run("train.py", "--dataset", f"text:{bad}", "--model", "sln-lm-tiny", "--out", str(tmp_path / "x"))
    assert r.returncode == 3 and "not UTF-8" in r.stderr


def test_unknown_file_suffix_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_series_file(tmp_path / "missing.ts")
    r = _run("train.py", "--dataset", str(tmp_path / "nope.csv"), "--test", str(tmp_path / "nope.csv"),
             "--out", str(tmp_path / "o"))
    assert r.returncode == 3 and "no such file" in r.stderr


def test_bucketed_resume_equals_uninterrupted_run_on_variable_lengths(tmp_path: Path) -> None:
    """A user file with variable lengths (bucketing on, train_drop on): 3 epochs in one go == 1 epoch,
    stop, --resume, bit for bit (weights and Adam moments)."""
    from sln.checkpoint import read_checkpoint
    from sln.config import get_config
    from sln.sequence_tasks import train_timeseries
    from sln.series_files import DataFiles
    from sln.train import RunOptions
    ser, lab = _series(12, 0)
    tr, te = _write_ts(tmp_path / "v_TRAIN.ts", ser, lab), _write_ts(tmp_path / "v_TEST.ts", *_series(6, 1))
    cfg = get_config("sln-ts-small", epochs=3, n_neurons=32, active_frac=0.0625, batch_size=4)
    files = DataFiles(test=te)

    def opts(out: Path, **kw) -> RunOptions:  # noqa: ANN003
        return RunOptions(dataset=str(tr), out=out, progress=False, threads=1, **kw)
    train_timeseries(cfg, opts(tmp_path / "a"), files)
    train_timeseries(cfg, opts(tmp_path / "b", stop_after_epoch=1), files)
    train_timeseries(cfg, opts(tmp_path / "b", resume=True), files)
    _, ta = read_checkpoint(tmp_path / "a" / "checkpoint.safetensors")
    _, tb = read_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    tr.write_text(tr.read_text() + "\n% changed\n")                      # another training file: refused
    with pytest.raises(DataError, match="not the file the checkpoint was trained on"):
        train_timeseries(cfg, opts(tmp_path / "b", resume=True), files)

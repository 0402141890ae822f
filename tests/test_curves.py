"""Logs people look at: curves.csv beside metrics.json, `sln plot RUN_DIR`, line-mode progress off a terminal."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from tqdm import tqdm

from sln import get_config
from sln.cli import main as sln_main
from sln.plot_cli import read_curves
from sln.tasks.loop import bar_kwargs
from sln.train import RunOptions, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = get_config("sln-tiny", epochs=2, n_neurons=64, active_frac=0.05, batch_size=32, lr=4e-3)
    train(cfg, RunOptions(out=out, progress=False, threads=1, limit_train=256, limit_test=100))
    return out


def test_curves_csv_holds_the_history_of_metrics_json(run_dir: Path) -> None:
    hist = json.loads((run_dir / "metrics.json").read_text())["history"]
    with (run_dir / "curves.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(hist) == 2
    assert list(rows[0])[:2] == ["epoch", "train_loss"]
    for cols in (["accuracy", "seconds"], ["active_fraction_l0", "dead_fraction_l0"]):
        assert set(cols) <= set(rows[0]), list(rows[0])
    for r, h in zip(rows, hist):
        assert int(r["epoch"]) == h["epoch"]
        for k in ("train_loss", "accuracy", "seconds"):
            assert float(r[k]) == h[k], k          # repr() round-trips a float exactly
        for i, a in enumerate(h["active_fraction"]):
            assert float(r[f"active_fraction_l{i}"]) == a
        assert float(r["dead_fraction_l0"]) == h["dead_fraction"][0]
    assert not list(run_dir.glob("*.tmp"))


def test_sln_plot_writes_a_png(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sln_main(["plot", str(run_dir)]) == 0
    png = run_dir / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert f"wrote {png}" in capsys.readouterr().out


def test_sln_plot_reads_metrics_json_without_curves_csv(run_dir: Path, tmp_path: Path) -> None:
    # a run folder written before curves.csv existed: the history of metrics.json gives the same curves
    (tmp_path / "metrics.json").write_text((run_dir / "metrics.json").read_text())
    a, b = read_curves(run_dir), read_curves(tmp_path)
    assert list(a) == list(b)
    assert all(x == y or (math.isnan(x) and math.isnan(y)) for c in a for x, y in zip(a[c], b[c]))
    assert sln_main(["plot", str(tmp_path)]) == 0 and (tmp_path / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("what", ["no-folder", "empty-folder"])
def test_sln_plot_refuses_a_folder_without_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 what: str) -> None:
    target = tmp_path / "nope" if what == "no-folder" else tmp_path
    assert sln_main(["plot", str(target)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sln: error: ") and str(target) in err, err
    assert not (tmp_path / "curves.png").exists()


def test_progress_off_a_terminal_is_line_mode(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SLN_PROGRESS", raising=False)
    bar = tqdm(total=1000, desc="x", **bar_kwargs(True))       # stderr is captured: not a TTY
    for _ in range(1000):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    lines = err.splitlines()
    # the first frame and the last one, not a frame per update (mininterval = 30 s)
    assert "\r" not in err and len(lines) == 2 and "1000/1000" in lines[-1], repr(err)
    assert bar_kwargs(False) == {"disable": True}
    monkeypatch.setenv("SLN_PROGRESS", "0")
    assert bar_kwargs(True) == {"disable": True}
    monkeypatch.setenv("SLN_PROGRESS", "1")                     # force the terminal bar
    assert bar_kwargs(True) == {"disable": False}
    buf = io.StringIO()
    b = tqdm(total=3, file=buf, **bar_kwargs(True))
    b.update(3)
    b.close()
    assert "\r" in buf.getvalue()

"""The time-series baselines (sln/ts_baselines.py): DTW against a plain dynamic programme, MiniRocket's
construction, and the figures on a real UCR set."""
from __future__ import annotations

import numpy as np
import pytest

from sln import ts_baselines as tb
from sln.timeseries import TSData, ensure_ts, read_ts


def naive_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """a (D, Ta), b (D, Tb): the textbook O(Ta Tb) recurrence, cost = squared Euclidean per step pair."""
    Ta, Tb = a.shape[1], b.shape[1]
    D = np.full((Ta + 1, Tb + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, Ta + 1):
        for j in range(1, Tb + 1):
            c = float(((a[:, i - 1] - b[:, j - 1]) ** 2).sum())
            D[i, j] = c + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return float(D[Ta, Tb])


def test_dtw_equals_the_textbook_recurrence_on_variable_lengths() -> None:
    rng = np.random.default_rng(0)
    qs = [rng.normal(size=(2, int(t))) for t in rng.integers(1, 12, size=5)]
    rs = [rng.normal(size=(2, int(t))) for t in rng.integers(1, 12, size=4)]
    want = np.array([[naive_dtw(q, r) for r in rs] for q in qs])
    # numpy with a block size that splits the pairs unevenly, and the C version
    np.testing.assert_allclose(tb.dtw_distances(qs, rs, block=7, backend="numpy"), want, rtol=1e-12)
    np.testing.assert_allclose(tb.dtw_distances(qs, rs, backend="c"), want, rtol=1e-12)


def test_dtw_properties() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 20))
    y = rng.normal(size=(1, 20))
    stretched = np.repeat(x, 2, axis=1)                 # every step twice: a warp DTW undoes exactly
    d = tb.dtw_distances([x], [x, y, stretched], backend="numpy")[0]
    np.testing.assert_allclose(tb.dtw_distances([x], [x, y, stretched], backend="c")[0], d, rtol=1e-12)
    assert d[0] == 0.0 and d[2] == 0.0
    assert 0 < d[1] <= float(((x - y) ** 2).sum())     # the diagonal is one of the paths


def _data(series: list[np.ndarray], labels: list[int]) -> TSData:
    return TSData([s.astype(np.float32) for s in series], np.array(labels), ["a", "b"])


def test_majority_and_euclidean_by_hand() -> None:
    tr = _data([np.array([[0.0, 0.0]]), np.array([[5.0, 5.0]]), np.array([[6.0, 6.0]])], [0, 1, 1])
    te = _data([np.array([[0.5, 0.0]]), np.array([[4.0, 4.0]]), np.array([[1.0, 1.0]])], [0, 0, 0])
    assert tb.majority_accuracy(tr, te) == 0.0          # majority class 1, every test label 0
    assert tb.euclidean_accuracy(tr, te) == pytest.approx(2 / 3)


def test_minirocket_construction() -> None:
    assert tb.COMBOS.shape == (84, 3)
    for length in (24, 150, 1460):
        dil, feats = tb._dilations(length)
        assert feats.sum() == 119 and dil[0] == 1 and (np.diff(dil) > 0).all()
        assert dil[-1] <= max(1, (length - 1) // 8)
    # one kernel by hand: weights -1 except 2 at taps (0, 1, 2), dilation 1, zero padding
    x = np.arange(12, dtype=np.float64)[None]
    out = tb._conv(x, 1, pad=True)                     # (1, 84, 12)
    w = -np.ones(9)
    w[[0, 1, 2]] = 2.0
    want = np.correlate(np.pad(x[0], 4), w, mode="valid")
    np.testing.assert_allclose(out[0, 0], want)
    assert tb._conv(x, 1, pad=False).shape == (1, 84, 4)


def test_minirocket_separates_an_easy_problem_and_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    t = np.linspace(0, 4 * np.pi, 64)

    def make(n: int) -> TSData:
        ys = rng.integers(0, 2, size=n)
        xs = [np.sin(t + rng.uniform(0, 6.3))[None] if y == 0 else np.sign(np.sin(t + rng.uniform(0, 6.3)))[None]
              for y in ys]
        return _data([x + 0.1 * rng.normal(size=x.shape) for x in xs], list(ys))

    tr, te = make(40), make(100)
    a = tb.MiniRocket(seed=3).fit(tr)
    f = a.transform(tb._series(te))
    assert f.shape == (100, 9996) and f.min() >= 0.0 and f.max() <= 1.0
    assert np.array_equal(f, tb.MiniRocket(seed=3).fit(tr).transform(tb._series(te)))
    assert tb.minirocket_accuracy(tr, te) >= 0.95


def test_real_gunpoint_figures() -> None:
    """GunPoint (50 train / 150 test, length 150). Measured here: majority 49.33 %, 1-NN ED 91.33 % (the UCR
    archive lists 0.913), 1-NN DTW full window 90.67 % (the archive lists 0.907 for DTW with a full window)."""
    paths = ensure_ts("gunpoint")
    tr = read_ts(paths["TRAIN"])
    te = read_ts(paths["TEST"], class_names=tr.class_names)
    assert tb.majority_accuracy(tr, te) == pytest.approx(74 / 150)
    assert tb.euclidean_accuracy(tr, te) == pytest.approx(137 / 150)
    assert tb.dtw_accuracy(tr, te) == pytest.approx(136 / 150)


def test_benchmark_task_writes_the_table_and_says_when_dtw_is_skipped(tmp_path) -> None:
    import json

    from sln.bench import cli
    js, md = tmp_path / "t.json", tmp_path / "t.md"
    assert cli.main(["--task", "ts-baselines", "--sets", "unittest", "--seeds", "2", "--json", str(js),
                     "--markdown", str(md)]) == 0
    row = json.loads(js.read_text())["rows"][0]
    assert row["set"] == "UnitTest" and row["classes"] == 2 and row["length_min"] == row["length_max"] == 24
    assert all(0.0 <= row[m] <= 1.0 for m in ("majority", "euclidean", "dtw", "minirocket"))
    assert len(row["minirocket_seeds"]) == 2 and row["minirocket"] == pytest.approx(np.mean(row["minirocket_seeds"]))
    assert row["dtw"] >= row["majority"] and "| UnitTest |" in md.read_text()
    assert cli.main(["--task", "ts-baselines", "--sets", "unittest", "--methods", "dtw", "--dtw-max-cells", "10",
                     "--json", str(js)]) == 0
    row = json.loads(js.read_text())["rows"][0]
    assert row["dtw"] is None and "not computed" in row["dtw_note"]

r"""User data files for the command line: time series in `.ts`, UCR text or CSV, text for the LM.

`python train.py --dataset TRAIN_FILE --test TEST_FILE` trains on any file whose name ends in

    .ts                the UEA/sktime format (sln.timeseries.parse_ts): uni- or multivariate,
                       equal or variable length, '?' = missing. Regression files are refused.
    .txt / .tsv        the UCR archive's own text formats: one series per line, the class label
                       first, then the values, separated by whitespace, tabs or commas (the 2018
                       archive's GunPoint_TRAIN.tsv, the older GunPoint_TRAIN.txt with labels like
                       1.0000000e+00). Univariate.
    .csv               plain CSV (Python's csv module: quoting allowed), one series per row,
                       univariate. The first row is a header when the first field is
                       label/class/target (any case) or any other field is not a number; with a
                       header the label column is the one named label/class/target, else the
                       first column; every other column is one time step, in order.

Rules shared by the text formats: 'NaN', 'nan', '?' or an empty field is a missing value;
missing values at the END of a row are trimmed, which is how the UCR archive writes variable-length
sets (padded with NaN), so each series keeps its own length; missing values inside a row stay
missing (0 after normalisation, as in .ts). Lines starting with '#' or '%' and blank lines are
skipped. Labels are strings; a label that is an integer-valued number is written as that
integer ('1.0000000e+00' and '1' are the same class '1'). Class order: the training file's
`@classLabel` list for .ts, else the sorted labels of the training file (numerically when all are
numbers). A test file whose labels are not among the training classes, or whose number of
channels differs, is refused (TSFormatError, exit code 3).

Checksums: every user file of a run is recorded as {path, size, sha256} in metrics.json and in the
checkpoint's training state; `--train-sha256` / `--test-sha256` / `--val-sha256` (optional) make the run
refuse a file whose SHA-256 differs (a changed or wrong file).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fetch import DataError, sha256_file
from .timeseries import TSData, TSFormatError, _parse_value, parse_ts

SERIES_SUFFIXES = (".ts", ".txt", ".tsv", ".csv")
TEXT_PREFIX = "text:"
LABEL_NAMES = ("label", "class", "target")
MISSING = ("", "?", "nan")


@dataclass
class DataFiles:
    """The user files of a run beyond --dataset (train_cli's --test / --val and optional checksums)."""
    test: Path | None = None            # time series: the test split (required for a series file)
    val: Path | None = None             # character LM: the validation text (default: the last 10 %)
    train_sha256: str | None = None
    test_sha256: str | None = None
    val_sha256: str | None = None


def is_series_file(dataset: str) -> bool:
    return Path(dataset).suffix.lower() in SERIES_SUFFIXES and not dataset.startswith(TEXT_PREFIX)


def is_text_dataset(dataset: str) -> bool:
    return dataset.startswith(TEXT_PREFIX)


def run_label(dataset: str) -> str:
    """A folder-safe name for runs/<label>-<model>: the file's stem for user files."""
    if is_text_dataset(dataset):
        return "text-" + Path(dataset[len(TEXT_PREFIX):]).stem
    if is_series_file(dataset):
        return Path(dataset).stem
    return dataset


def file_record(path: str | Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """-> {path (absolute), size (bytes), sha256}; DataError if missing or not the expected checksum."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file; pass the path of an existing data file")
    digest = sha256_file(p)
    if expected_sha256 is not None and digest != expected_sha256.strip().lower():
        raise DataError(f"{p}: checksum mismatch (sha256 {digest}, expected {expected_sha256}); "
                        "the file changed or is the wrong one")
    return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": digest}


def read_utf8(path: str | Path) -> str:
    """The file's text (a UTF-8 byte-order mark is dropped); DataError when it is not UTF-8."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file; pass the path of an existing data file")
    try:
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e}); convert it to UTF-8 first") from None


# --- UCR text and CSV ---------------------------------------------------------------------------

def _label(tok: str) -> str:
    """'1.0000000e+00' -> '1' (the old UCR .txt files write labels as floats); others unchanged."""
    tok = tok.strip().strip('"')
    try:
        v = float(tok)
    except ValueError:
        return tok
    return str(int(v)) if math.isfinite(v) and v == int(v) else tok


def _value(tok: str, where: str) -> float:
    tok = tok.strip()
    return math.nan if tok.lower() in MISSING else _parse_value(tok, where)


def _row_series(vals: list[str], where: str) -> np.ndarray:
    """Value fields -> (1, T) float32, trailing missing values trimmed (variable-length rows)."""
    v = [_value(t, where) for t in vals]
    while v and math.isnan(v[-1]):
        v.pop()
    if not v:
        raise TSFormatError(f"{where}: a row with a label but no values")
    return np.asarray(v, dtype=np.float32)[None, :]


def _numeric(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return tok.strip().lower() in MISSING


def _finish(name: str, series: list[np.ndarray], raw: list[str], class_names: list[str] | None,
            fmt: str) -> TSData:
    """Index the labels: training classes given (a test file) or the sorted labels of this file."""
    if not series:
        raise TSFormatError(f"{name}: no series found (empty file?)")
    if class_names is None:
        uniq = sorted(set(raw))
        try:
            class_names = sorted(uniq, key=float)
        except ValueError:
            class_names = uniq
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise TSFormatError(f"{name}: class labels {unknown[:5]} are not among the training classes "
                            f"{class_names}; the test file must use the training file's labels")
    labels = np.array([index[r] for r in raw], dtype=np.int64)
    return TSData(series, labels, list(class_names), {"format": fmt})


def parse_ucr_text(text: str, name: str = "<ucr>", class_names: list[str] | None = None) -> TSData:
    """UCR text (.txt / .tsv): 'label v v v ...' per line, whitespace-, tab- or comma-separated."""
    series, raw = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#%":
            continue
        toks = re.split(r"\s*,\s*|\s+", line)          # commas keep empty fields (= missing)
        where = f"{name}:{lineno}"
        if len(toks) < 2:
            raise TSFormatError(f"{where}: a line needs a class label and at least one value")
        raw.append(_label(toks[0]))
        series.append(_row_series(toks[1:], where))
    return _finish(name, series, raw, class_names, "ucr-text")


def parse_csv(text: str, name: str = "<csv>", class_names: list[str] | None = None) -> TSData:
    """Plain CSV: one series per row; header and label column as in the module docstring."""
    rows = [r for r in csv.reader(io.StringIO(text)) if any(f.strip() for f in r)]
    rows = [r for r in rows if not r[0].lstrip().startswith(("#", "%"))]
    if not rows:
        raise TSFormatError(f"{name}: no rows (empty CSV file?)")
    first = [f.strip() for f in rows[0]]
    header = first[0].lower() in LABEL_NAMES or not all(_numeric(f) for f in first[1:])
    col, start = 0, 1
    if header:
        named = [i for i, f in enumerate(first) if f.lower() in LABEL_NAMES]
        col, start = (named[0] if named else 0), 2
        rows = rows[1:]
    series, raw = [], []
    for lineno, r in enumerate(rows, start):
        where = f"{name}:{lineno}"
        if len(r) <= col or len(r) < 2:
            raise TSFormatError(f"{where}: a row needs a class label (column {col + 1}) and at least one value")
        raw.append(_label(r[col]))
        series.append(_row_series(r[:col] + r[col + 1:], where))
    return _finish(name, series, raw, class_names, "csv")


def read_series_file(path: str | Path, class_names: list[str] | None = None) -> TSData:
    """Any supported series file (by its suffix) -> TSData; `class_names` are the training file's."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SERIES_SUFFIXES:
        raise DataError(f"{p}: unknown series format {suffix!r}; use one of {', '.join(SERIES_SUFFIXES)}")
    text = read_utf8(p)
    if suffix == ".ts":
        return parse_ts(text, str(p), class_names)
    if suffix == ".csv":
        return parse_csv(text, str(p), class_names)
    return parse_ucr_text(text, str(p), class_names)

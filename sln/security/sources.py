"""Pinned registry sources of real domain/URL lists, fetched offline-safely through `sln.fetch`.

Every archive is pinned by version and SHA-256 (npm tarballs also by the registry's sha512
integrity) and verified before it is opened; nothing is installed or executed (no `npm install`,
no pip build, no dpkg). Each extracted member is pinned by its own SHA-256 too, so a corrupt cache
is detected when the data is read.

key          pinned file (registry)                                       members read -> licence
eth-1.2.0    eth-phishing-detect-1.2.0.tgz (npm)                          src/config.json -> DBAD 1.1
             sha256 bce28fa76d324c29d3fc675d584d4bff523654f3a67447adea326657ee383258
eth-1.1.16   eth-phishing-detect-1.1.16.tgz (npm)                         src/config.json -> DBAD 1.1
             sha256 014d60a8a5901f126b9b46ec277798d5ea8da775b7d71525117c879a4fcdb560
ublock       webext-ublock-origin-firefox_1.67.0+dfsg-1~deb12u1_all.deb (Debian bookworm), under
             usr/share/mozilla/extensions/{ec8030f7-...}/uBlock0@raymondhill.net/assets/:
               thirdparties/urlhaus-filter/urlhaus-filter-online.txt -> CC0 1.0 (URLhaus / malware-filter)
               ublock/badware.min.txt -> GPL-3.0 (uBlockOrigin/uAssets)
               thirdparties/publicsuffix.org/list/effective_tld_names.dat -> MPL 2.0 (public suffix list)
             sha256 9e9449b2ed66eca001a1effe7d3b98eedd5293e6ffca0d6cd7792ba14b570039
hstspreload  hstspreload-2025.1.1-py3-none-any.whl (PyPI)                 hstspreload/hstspreload.bin
             -> BSD-3-Clause (package); the list itself is Chromium's HSTS preload list (BSD-style)
             sha256 02bd5b0885b62f0d5239ca6c6876ffcad8d9c08dc97cee54292598141a16e9dc
top-sites    top-sites-1.1.222.tgz (npm)                                  top-sites.json -> MIT (package;
             the ranking is Moz's top 500, whose own terms are not stated in the package)
             sha256 20c436c91c192dd8b2a91dfe927095ba845ad4617413ab639ee3193b5d6caabb

Full checksums are in `SOURCES` below and in docs/SECURITY_APPS.md. The cache lives under
`$SLN_DATA/security/<source>/` (default ~/.cache/sln); an archive copied by hand into
`$SLN_DATA/security/downloads/` is used instead of the network after the same checks.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..fetch import Archive, DataError, default_data_dir, fetch_members, sha256_file

_UBO = "usr/share/mozilla/extensions/{ec8030f7-c20a-464f-9b0e-13a3a9e97384}/uBlock0@raymondhill.net/"


@dataclass(frozen=True)
class Source:
    """One pinned archive and the members taken from it: {member path: (local name, sha256)}."""
    key: str
    archive: Archive
    members: dict[str, tuple[str, str]]
    licence: str
    url: str             # where a person can see the package

    def want(self) -> Callable[[str], str | None]:
        def pick(name: str) -> str | None:
            name = name.removeprefix("./")
            return self.members[name][0] if name in self.members else None
        return pick


SOURCES: dict[str, Source] = {s.key: s for s in [
    Source("eth-1.2.0", Archive(
        "eth-phishing-detect", "eth-phishing-detect-1.2.0.tgz",
        "bce28fa76d324c29d3fc675d584d4bff523654f3a67447adea326657ee383258", source="npm", version="1.2.0",
        integrity="sha512-+M7D4dhu5tkSA9b5eiBwDeJCjwy+7Lv49nuTEw8fNZIZUAVZC3d2XHatBq1MOW7J8kxNGbBdgBuIf65opI7Tkg=="),
        {"package/src/config.json": ("config.json",
                                     "6dd1fe4ded6d241b599d36135f65e5f8aeed2e6ce5b74f7360e37c2d08738436"),
         "package/LICENSE": ("LICENSE", "0e9b3b30e23a17d99676043187224bf7fa6f47eb57a0ee2181d31f6385df4e43")},
        "DBAD 1.1", "https://www.npmjs.com/package/eth-phishing-detect/v/1.2.0"),
    Source("eth-1.1.16", Archive(
        "eth-phishing-detect", "eth-phishing-detect-1.1.16.tgz",
        "014d60a8a5901f126b9b46ec277798d5ea8da775b7d71525117c879a4fcdb560", source="npm", version="1.1.16",
        integrity="sha512-/o9arK5qFOKVdfZK9hJVAQP0eKXjAvImIKNBMfF9Nj1HGicD3wfsVuXDu1OHrxuEi6+4kYtD9wyAn/3G7g7VrA=="),
        {"package/src/config.json": ("config.json",
                                     "cd19c0e2320b747bdbc0ac9eb82c0edc599c5e250d94a87659e5b4285a224951")},
        "DBAD 1.1", "https://www.npmjs.com/package/eth-phishing-detect/v/1.1.16"),
    Source("ublock", Archive(
        "webext-ublock-origin-firefox", "webext-ublock-origin-firefox_1.67.0+dfsg-1~deb12u1_all.deb",
        "9e9449b2ed66eca001a1effe7d3b98eedd5293e6ffca0d6cd7792ba14b570039", source="debian",
        path="pool/main/u/ublock-origin/webext-ublock-origin-firefox_1.67.0%2bdfsg-1%7edeb12u1_all.deb"),
        {_UBO + "assets/thirdparties/urlhaus-filter/urlhaus-filter-online.txt": (
            "urlhaus-filter-online.txt", "eb135248aaa83c87348dee3e183c36d83cb63c141e536a613446184c47ccbde2"),
         _UBO + "assets/ublock/badware.min.txt": (
            "badware.min.txt", "5b72ca86a484fbd96b4da89d3d3e4983fe7b915d93241b4f1347468c2b9dd852"),
         _UBO + "assets/thirdparties/publicsuffix.org/list/effective_tld_names.dat": (
            "effective_tld_names.dat", "6b0674c5d52e2fbfd529ded1d2c73361c79cb13d28fb118116a3c384f27d3486")},
        "URLhaus filter CC0-1.0; uAssets badware GPL-3.0; public suffix list MPL-2.0",
        "https://packages.debian.org/bookworm/webext-ublock-origin-firefox"),
    Source("hstspreload", Archive(
        "hstspreload", "hstspreload-2025.1.1-py3-none-any.whl",
        "02bd5b0885b62f0d5239ca6c6876ffcad8d9c08dc97cee54292598141a16e9dc"),
        {"hstspreload/hstspreload.bin": ("hstspreload.bin",
                                         "a56eaba1da95d49aa2eee14bb24aaaccd4bd86fca1841eac67a23b74d5c4093f")},
        "BSD-3-Clause (package; the list is Chromium's HSTS preload list)", "https://pypi.org/project/hstspreload/"),
    Source("top-sites", Archive(
        "top-sites", "top-sites-1.1.222.tgz",
        "20c436c91c192dd8b2a91dfe927095ba845ad4617413ab639ee3193b5d6caabb", source="npm", version="1.1.222",
        integrity="sha512-HEvgDGRn/jqS5tUsLy98Ku6Mq+a2Rk15TMXwGzuOYbtd5yu+lfVpB2ii8pbZ4PTisFTK/VaO4GBpm80qTn5D/w=="),
        {"package/top-sites.json": ("top-sites.json",
                                    "cf5f40ce7b4b3ffc34397034ca75242d57d2f5e83758cad2b47cb2ddb1147079")},
        "MIT (package)", "https://www.npmjs.com/package/top-sites/v/1.1.222"),
]}


def security_dir(data_dir: Path | None = None) -> Path:
    return (data_dir or default_data_dir()) / "security"


def _missing_message(s: Source, folder: Path, err: Exception) -> str:
    names = ", ".join(n for n, _ in s.members.values())
    return (f"source {s.key!r} is missing and could not be fetched ({err}). Either put the pinned archive "
            f"{s.archive.filename} (sha256 {s.archive.sha256}, from {s.url}) into "
            f"{folder.parent / 'downloads'}/, or its files {names} (with the pinned sha256s in "
            f"sln/security/sources.py) into {folder}/, and run again.")


def source_file(key: str, name: str, data_dir: Path | None = None, fetch: bool = True) -> Path:
    """Path of one pinned member of source `key` in the cache, fetching the archive if needed.

    The member's SHA-256 is checked on every call (cheap: the files are < 3 MB)."""
    s = SOURCES[key]
    pins = {local: sha for local, sha in s.members.values()}
    if name not in pins:
        raise KeyError(f"{key} has no member {name!r} (has {sorted(pins)})")
    folder = security_dir(data_dir) / key
    if not all((folder / n).is_file() for n in pins):
        if not fetch:
            raise DataError(_missing_message(s, folder, FileNotFoundError("fetching disabled")))
        try:
            fetch_members(s.archive, s.want(), folder, pins, local=folder.parent / "downloads")
        except DataError as e:
            raise DataError(_missing_message(s, folder, e)) from e
    path = folder / name
    got = sha256_file(path)
    if got != pins[name]:
        raise DataError(f"{path}: sha256 {got} differs from the pinned {pins[name]}. "
                        "Delete the folder and run again to re-fetch it.")
    return path


def fetch_all(data_dir: Path | None = None) -> dict[str, list[Path]]:
    """Fetch (or verify) every source -> {key: member paths}."""
    return {k: [source_file(k, n, data_dir) for n, _ in s.members.values()] for k, s in SOURCES.items()}

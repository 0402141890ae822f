"""Parsers for the lists and a normaliser for one input line; none of them raises on garbage.

A host is normalised to its ASCII (IDNA/punycode) form, lower case, with no trailing dot, no port,
no user info; labels of 1-63 characters from [a-z0-9-_] and at most 253 characters in all (`_` is
tolerated because real lists contain it, e.g. `_dmarc`-style labels and CDN names).
`normalize` returns a `Parsed` (host, path) or raises `InputError` with a reason a CLI can print
per line (empty, too long, binary, bad IDN, IP address, ...).
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_LINE = 4096          # longer inputs are refused (a 100 kB "domain" is an attack, not a domain)
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


class InputError(ValueError):
    """A line that is not a usable host or URL (the message says why)."""


@dataclass(frozen=True)
class Parsed:
    host: str            # ASCII host name, e.g. "xn--bcher-kva.example"
    path: str = ""       # everything after the host (path, query), "" for a bare host

    @property
    def url(self) -> str:
        return self.host + self.path


def _to_text(line: str | bytes) -> str:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text (byte {e.start})") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in line.strip()):
        raise InputError("contains control characters (binary data?)")
    return line


def _label_to_ascii(label: str) -> str:
    """A Unicode label -> its ACE form. Python's idna codec (IDNA 2003, with nameprep mapping) first;
    names it refuses (e.g. emoji, newer scripts) get plain punycode of the lower-cased label."""
    if label.isascii():
        return label
    try:
        return label.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    # the fallback takes only letters, marks, digits and '-' (roughly IDNA 2008's PVALID), so that
    # replacement characters and symbols from binary garbage are refused instead of punycoded
    if not all(c == "-" or unicodedata.category(c)[0] in "LMN" for c in label):
        raise InputError(f"invalid internationalised label {label[:20]!r}")
    return "xn--" + label.lower().encode("punycode").decode("ascii")


def normalize_host(text: str) -> str:
    """ASCII form of a host name, or InputError. IP addresses are refused (they are not domains)."""
    host = text.strip().rstrip(".").lower()
    if not host:
        raise InputError("empty host")
    if host.startswith("[") or _IPV4.match(host):
        raise InputError(f"{host[:40]!r} is an IP address, not a domain")
    if not host.isascii():
        host = ".".join(_label_to_ascii(lab) for lab in host.split("."))
    for lab in host.split("."):
        if lab.startswith("xn--"):
            try:                # must be decodable punycode (no IDNA 2003 round trip: that would
                lab[4:].encode("ascii").decode("punycode")  # refuse valid IDNA 2008 names with ß)
            except UnicodeError as e:
                raise InputError(f"invalid punycode label {lab[:40]!r} ({e})") from None
    if len(host) > 253:
        raise InputError(f"host is {len(host)} characters (DNS allows 253)")
    labels = host.split(".")
    if not all(_LABEL.match(lab) for lab in labels):
        bad = next(lab for lab in labels if not _LABEL.match(lab))
        raise InputError(f"invalid label {bad[:40]!r}")
    return host


def normalize(line: str | bytes) -> Parsed:
    """One input line (a domain, a host+path, or a URL with scheme) -> Parsed, or InputError."""
    text = _to_text(line).strip()
    if not text:
        raise InputError("empty line")
    if len(text) > MAX_LINE:
        raise InputError(f"line is {len(text)} characters (limit {MAX_LINE})")
    text = _SCHEME.sub("", text)
    cut = min((i for i in (text.find("/"), text.find("?"), text.find("#")) if i >= 0), default=len(text))
    authority, rest = text[:cut], text[cut:]
    authority = authority.rsplit("@", 1)[-1]                # drop user:password@
    if authority.startswith("["):
        raise InputError("an IPv6 address, not a domain")
    if ":" in authority:
        authority, port = authority.rsplit(":", 1)
        if not port.isdigit():
            raise InputError(f"invalid port {port[:20]!r}")
    return Parsed(normalize_host(authority), rest)


def try_normalize(line: str | bytes) -> Parsed | None:
    try:
        return normalize(line)
    except InputError:
        return None


# ---- the lists ---------------------------------------------------------------------------------

def parse_hosts_lines(lines: list[str]) -> list[str]:
    """Plain host lists (one per line; `#`/`!` comments) -> normalised hosts, invalid ones dropped."""
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("!") and (p := try_normalize(line)) is not None and not p.path:
            out.append(p.host)
    return out


def parse_eth_config(path: Path) -> tuple[list[str], list[str]]:
    """eth-phishing-detect src/config.json -> (blacklist hosts, whitelist hosts), normalised."""
    cfg = json.loads(path.read_text(encoding="utf-8"))
    return parse_hosts_lines(cfg.get("blacklist", [])), parse_hosts_lines(cfg.get("whitelist", []))


def parse_filter_line(line: str) -> tuple[str, Parsed | None]:
    """One uBlock/ABP filter-list line -> (kind, parsed).

    kind: "comment" (`!`, `[Adblock`), "cosmetic" (`##`, `#@#`, ...), "exception" (`@@`),
    "regex" (`/.../`), "ip", "host" (a whole site: `||host^`, `||host^$opts` or a bare host),
    "url" (host plus a path), "pattern" (wildcards or partial hosts we do not expand), "invalid".
    Options after `$` are ignored, except that rules restricted to some sites (`domain=`) or
    inverted (`denyallow=`) are not a verdict on the host and count as "pattern"."""
    s = line.strip()
    if not s or s.startswith("!") or s.startswith("[") or s.startswith("# "):
        return "comment", None
    if "##" in s or "#@#" in s or "#?#" in s or "#$#" in s or "#%#" in s:
        return "cosmetic", None
    if s.startswith("@@"):
        return "exception", None
    if s.startswith("/") and len(s) > 1 and s.rstrip("$").endswith("/"):
        return "regex", None
    body, _, opts = s.partition("$")
    if "domain=" in opts or "denyallow=" in opts:
        return "pattern", None
    anchored = body.startswith("||")
    body = body.removeprefix("||").removeprefix("|").rstrip("|")
    if "*" in body or body.endswith(".") or not body or body[0] in "/.?":
        return "pattern", None
    host_part = re.split(r"[/^?]", body, maxsplit=1)[0]
    rest = body[len(host_part):]
    if rest.startswith("^"):
        rest = rest[1:]
    rest = rest.rstrip("^")
    if not anchored and not rest and "." not in host_part:
        return "pattern", None
    if _IPV4.match(host_part.split(":")[0]):
        return "ip", None
    parsed = try_normalize(host_part + rest)
    if parsed is None:
        return "invalid", None
    return ("url" if parsed.path.strip("/") else "host"), Parsed(parsed.host, parsed.path if
                                                              parsed.path.strip("/") else "")


def parse_filter_list(path: Path) -> dict[str, list[Parsed]]:
    """A filter list file -> {"host": [...], "url": [...]} (the other kinds: `filter_counts`)."""
    out: dict[str, list[Parsed]] = {"host": [], "url": []}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        kind, p = parse_filter_line(line)
        if p is not None:
            out[kind].append(p)
    return out


def filter_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        kind, _ = parse_filter_line(line)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def decode_hstspreload(blob: bytes) -> list[tuple[str, bool]]:
    """hstspreload.bin -> [(host, include_subdomains)] for every leaf entry.

    Format (read from the package's lookup code, not executed): the file is a concatenation of
    entries `flags:u8, n:u8, label:n bytes`. Flag 0x80 marks a leaf, whose label is a complete
    preloaded host name; 0x40 marks include-subdomains; non-leaf entries are the intermediate
    labels of the CRC-8 jump table's trie and are skipped here. A truncated entry raises ValueError."""
    out, i = [], 0
    while i < len(blob):
        if i + 2 > len(blob) or i + 2 + blob[i + 1] > len(blob):
            raise ValueError(f"hstspreload.bin: truncated entry at byte {i}")
        flags, n = blob[i], blob[i + 1]
        if flags & 0x80:
            out.append((blob[i + 2:i + 2 + n].decode("ascii", "replace"), bool(flags & 0x40)))
        i += 2 + n
    return out


def parse_top_sites(path: Path) -> list[str]:
    """top-sites.json ([{"rank", "rootDomain", ...}]) -> normalised hosts in rank order."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return parse_hosts_lines([str(r.get("rootDomain", "")) for r in rows])

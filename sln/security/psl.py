"""Registrable domain (eTLD+1) from the public suffix list, implemented from the PSL's rules.

The algorithm (https://publicsuffix.org/list/, "Formal algorithm"):
  * a rule is a list of labels; `*` matches any one label; a rule starting with `!` is an exception;
  * a domain matches a rule when the rule's labels equal the domain's rightmost labels;
  * if an exception rule matches, the public suffix is that rule minus its leftmost label;
  * otherwise the matching rule with the most labels wins; if none matches, the rule is `*`
    (the last label is the public suffix);
  * the registrable domain is the public suffix plus one more label, or None when the domain is
    itself a public suffix.
Rules are stored with their labels punycoded, so hosts are matched in their ASCII (IDNA) form.
Both sections (ICANN and PRIVATE) are used by default: `a.github.io` and `b.github.io` belong to
different owners, so grouping by a PRIVATE-aware eTLD+1 keeps them apart, as it should.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def _ascii_label(label: str) -> str:
    """One label in ASCII: IDNA (punycode) for non-ASCII, lower case otherwise."""
    if label.isascii():
        return label.lower()
    try:
        return label.encode("idna").decode("ascii")
    except UnicodeError:
        return label.lower()        # such a rule can never match an ASCII host; keep it harmless


class PublicSuffixList:
    """Parsed rules: normal and wildcard rules in `rules`, exceptions in `exceptions` (as label tuples,
    rightmost label first, so a lookup walks from the TLD leftwards)."""

    def __init__(self, lines: Iterable[str], private: bool = True) -> None:
        self.rules: set[tuple[str, ...]] = set()
        self.exceptions: set[tuple[str, ...]] = set()
        in_private = False
        for raw in lines:
            line = raw.strip()
            if line.startswith("//"):
                if "===BEGIN PRIVATE DOMAINS===" in line:
                    in_private = True
                continue
            if not line or (in_private and not private):
                continue
            rule = line.split()[0]          # the rule ends at the first white space
            exception = rule.startswith("!")
            labels = tuple(_ascii_label(x) for x in reversed(rule.lstrip("!").strip(".").split(".")))
            (self.exceptions if exception else self.rules).add(labels)
        self.max_depth = max((len(r) for r in self.rules | self.exceptions), default=1)

    @classmethod
    def from_file(cls, path: Path, private: bool = True) -> PublicSuffixList:
        return cls(path.read_text(encoding="utf-8").splitlines(), private)

    def suffix_len(self, labels_rev: list[str]) -> int:
        """Number of labels of the public suffix of a domain given as labels, rightmost first."""
        best = 1                                            # the implicit rule "*"
        for n in range(1, min(len(labels_rev), self.max_depth) + 1):
            head = tuple(labels_rev[:n])
            if head in self.exceptions:
                return n - 1                                # an exception beats every other rule
            if head in self.rules or (head[:-1] + ("*",)) in self.rules:
                best = n
        return best

    def public_suffix(self, host: str) -> str:
        labels = host.lower().removesuffix(".").split(".")
        n = self.suffix_len(labels[::-1])
        return ".".join(labels[len(labels) - n:])

    def registrable(self, host: str) -> str | None:
        """eTLD+1 of an ASCII host name (lower case, no trailing dot) or None if it is a public suffix."""
        labels = host.lower().removesuffix(".").split(".")     # a trailing dot is the DNS root, a leading one
        if not all(labels):                                   # leaves an empty label: not a host
            return None
        n = self.suffix_len(labels[::-1])
        if n >= len(labels):
            return None
        return ".".join(labels[len(labels) - n - 1:])

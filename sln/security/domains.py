"""Labelled domain / URL sets from the pinned lists, grouped and temporal splits, a character encoder.

Labels: malicious = 1, benign = 0. Sources (see `sln.security.sources` for pins and licences):
  domains  malicious: eth-phishing-detect 1.2.0 blacklist, URLhaus host entries, uAssets badware host
           rules (`||host^`); benign: HSTS preload hosts, top-sites, and the eth-phishing-detect
           whitelist as hard negatives (look-alikes of crypto sites that were reviewed as legitimate).
  urls     malicious: URLhaus host and host+path entries, badware host+path rules; benign: the same
           benign hosts (there are no benign URLs with paths in these registries, which is exactly
           why the hostname-only view `hostname_only=True` must be reported next to the full one).
Cleaning: every entry is normalised by `parse.normalize` (IDNA, case, trailing dot, port, scheme);
IP addresses are dropped (not domains); a text listed with both labels is dropped from both (counted
in `info["conflicts"]`); the Freenom TLDs .tk/.ml/.ga/.cf/.gq are removed from both classes by default
(29,321 HSTS-preload hosts against 227 malicious ones: left in, "ends in .tk" would be learnt as a
sign of a benign site, the opposite of the world; `drop_tlds=()` keeps them).
Splits: every sample's group is its registrable domain (eTLD+1, `psl.PublicSuffixList`, PRIVATE
section included); a group goes wholly to train, val or test by a seeded hash of its name, so no
eTLD+1 is in two splits and the split of a group does not depend on which other samples exist.
Temporal: hosts first listed in eth-phishing-detect 1.2.0 (absent from 1.1.16); their groups are
removed from train/val/test, so the temporal set holds only registrants never seen in training.
It has positives only: evaluate it with the test split's benign samples (`temporal_eval`).
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import parse
from .psl import PublicSuffixList
from .sources import source_file

FREENOM = ("tk", "ml", "ga", "cf", "gq")
# fixed character vocabulary: 0 = padding, 1 = any other character; hosts use only the first 39
VOCAB = "abcdefghijklmnopqrstuvwxyz0123456789-._/:?=&%~+@#!$,;*()'[]"
CHAR_ID = {c: i + 2 for i, c in enumerate(VOCAB)}
PAD, UNK = 0, 1
VOCAB_SIZE = len(VOCAB) + 2


class Sample(NamedTuple):
    text: str      # host ("login.evil.example") or host+path ("evil.example/a.exe")
    label: int     # 1 malicious, 0 benign
    group: str     # registrable domain (eTLD+1), or the host itself when it is a public suffix


@dataclass
class Splits:
    task: str
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    temporal: list[Sample]
    source: dict[str, str] = field(default_factory=dict)   # text -> the list it came from
    info: dict = field(default_factory=dict)               # counts of everything dropped and kept

    def parts(self) -> dict[str, list[Sample]]:
        return {"train": self.train, "val": self.val, "test": self.test, "temporal": self.temporal}


@dataclass
class Lists:
    """The parsed lists (normalised), kept apart so that counts can be reported per source."""
    eth_black: list[str]
    eth_white: list[str]
    eth_black_old: list[str]
    urlhaus_hosts: list[str]
    urlhaus_urls: list[str]
    badware_hosts: list[str]
    badware_urls: list[str]
    hsts: list[str]
    top_sites: list[str]
    psl: PublicSuffixList
    raw_counts: dict[str, int]


def load_lists(data_dir: Path | None = None) -> Lists:
    """Fetch (once, into the cache) and parse every source."""
    black, white = parse.parse_eth_config(source_file("eth-1.2.0", "config.json", data_dir))
    black_old, _ = parse.parse_eth_config(source_file("eth-1.1.16", "config.json", data_dir))
    uh_path = source_file("ublock", "urlhaus-filter-online.txt", data_dir)
    bw_path = source_file("ublock", "badware.min.txt", data_dir)
    uh, bw = parse.parse_filter_list(uh_path), parse.parse_filter_list(bw_path)
    hsts_raw = parse.decode_hstspreload(source_file("hstspreload", "hstspreload.bin", data_dir).read_bytes())
    cfg = json.loads(source_file("eth-1.2.0", "config.json", data_dir).read_text(encoding="utf-8"))
    raw = {"eth_blacklist": len(cfg["blacklist"]), "eth_whitelist": len(cfg["whitelist"]),
           "hsts_leaves": len(hsts_raw), **{f"urlhaus_{k}": v for k, v in parse.filter_counts(uh_path).items()},
           **{f"badware_{k}": v for k, v in parse.filter_counts(bw_path).items()}}
    psl = PublicSuffixList.from_file(source_file("ublock", "effective_tld_names.dat", data_dir))
    return Lists(black, white, black_old, [p.host for p in uh["host"]], [p.url for p in uh["url"]],
                 [p.host for p in bw["host"]], [p.url for p in bw["url"]],
                 parse.parse_hosts_lines([h for h, _ in hsts_raw]),
                 parse.parse_top_sites(source_file("top-sites", "top-sites.json", data_dir)), psl, raw)


def group_of(text: str, psl: PublicSuffixList) -> str:
    host = text.split("/", 1)[0].split("?", 1)[0]
    return psl.registrable(host) or host


def split_of(group: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """train/val/test for a group, from a seeded hash (independent of order and of other groups)."""
    u = int.from_bytes(hashlib.blake2b(f"{seed}\0{group}".encode(), digest_size=8).digest(), "big") / 2.0 ** 64
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def _labelled(lists: Lists, task: str) -> tuple[list[tuple[str, int, str]], set[str]]:
    """(text, label, source) in source priority order, and the set of temporal (new) texts."""
    if task == "domains":
        bad = ([(h, "eth-blacklist") for h in lists.eth_black] + [(h, "urlhaus") for h in lists.urlhaus_hosts]
               + [(h, "badware") for h in lists.badware_hosts])
        new = set(lists.eth_black) - set(lists.eth_black_old)
    elif task == "urls":
        bad = ([(u, "urlhaus") for u in lists.urlhaus_urls + lists.urlhaus_hosts]
               + [(u, "badware") for u in lists.badware_urls])
        new = set()           # URLhaus comes in one version here: no time axis for URLs
    else:
        raise ValueError(f"unknown task {task!r} (domains or urls)")
    good = ([(h, "eth-whitelist") for h in lists.eth_white] + [(h, "top-sites") for h in lists.top_sites]
            + [(h, "hstspreload") for h in lists.hsts])
    return [(t, 1, s) for t, s in bad] + [(t, 0, s) for t, s in good], new


def hostname_view(samples: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """URLs reduced to their hosts (the ablation that removes the path shortcut)."""
    return [(t.split("/", 1)[0].split("?", 1)[0], y, s) for t, y, s in samples]


def build_splits(lists: Lists, task: str = "domains", seed: int = 0,
                 fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 drop_tlds: tuple[str, ...] = FREENOM, hostname_only: bool = False) -> Splits:
    """Labelled, de-duplicated, grouped splits (deterministic given the lists and the seed)."""
    rows, new = _labelled(lists, task)
    if hostname_only:
        rows = hostname_view(rows)
    labels: dict[str, set[int]] = {}
    source: dict[str, str] = {}
    for t, y, s in rows:
        labels.setdefault(t, set()).add(y)
        source.setdefault(t, s)                       # the first list (priority order) names it
    conflicts = sorted(t for t, ys in labels.items() if len(ys) > 1)
    dropped_tld = Counter()
    keep: dict[str, int] = {}
    for t, ys in labels.items():
        if len(ys) > 1:
            continue
        tld = t.split("/", 1)[0].rsplit(".", 1)[-1]
        if tld in drop_tlds:
            dropped_tld[f"{tld}:{next(iter(ys))}"] += 1
            continue
        keep[t] = next(iter(ys))
    groups = {t: group_of(t, lists.psl) for t in keep}
    temporal_groups = {groups[t] for t in new if t in keep}
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": [], "temporal": []}
    shadowed = 0
    for t in sorted(keep):                              # sorted: the order is deterministic too
        g, y = groups[t], keep[t]
        if g in temporal_groups:
            if t in new:
                parts["temporal"].append(Sample(t, y, g))
            else:
                shadowed += 1                           # an older entry of a new registrant: dropped
            continue
        parts[split_of(g, seed, fractions)].append(Sample(t, y, g))
    info = {"task": task, "seed": seed, "hostname_only": hostname_only, "raw": lists.raw_counts,
            "unique_texts": len(labels), "conflicts": len(conflicts), "conflict_examples": conflicts[:5],
            "dropped_tld": dict(sorted(dropped_tld.items())), "temporal_shadowed": shadowed,
            "sizes": {k: {"n": len(v), "malicious": sum(s.label for s in v),
                          "groups": len({s.group for s in v})} for k, v in parts.items()},
            "by_source": dict(Counter(source[t] for t in keep))}
    return Splits(task, parts["train"], parts["val"], parts["test"], parts["temporal"],
                  {t: source[t] for t in keep}, info)


def load_splits(task: str = "domains", seed: int = 0, hostname_only: bool = False,
                data_dir: Path | None = None, **kw) -> Splits:
    """Fetch if needed, parse, label and split. `(s.train, s.val, s.test, s.temporal)` are lists of
    (text, label, group); this is the entry point for the character-level SLN task later."""
    return build_splits(load_lists(data_dir), task, seed, hostname_only=hostname_only, **kw)


def temporal_eval(s: Splits) -> list[Sample]:
    """The temporal positives with the test split's benign samples (so FPR is measured as on test)."""
    return s.temporal + [x for x in s.test if x.label == 0]


def subsample(samples: list[Sample], n_benign: int, n_malicious: int, seed: int = 0) -> list[Sample]:
    """A class-wise random subset (for --quick runs and tests), order kept."""
    rng = np.random.default_rng(seed)
    out = []
    for y, n in ((0, n_benign), (1, n_malicious)):
        idx = [i for i, s in enumerate(samples) if s.label == y]
        out += [idx[i] for i in rng.permutation(len(idx))[:n]]
    return [samples[i] for i in sorted(out)]


def encode(strings: list[str], max_len: int = 64, tail: bool = True) -> np.ndarray:
    """Strings -> int64 ids (N, max_len) over the fixed `VOCAB` (lower-cased; 0 pads, 1 = other).

    tail=True keeps the last max_len characters (for hosts the TLD and eTLD+1 are at the end);
    tail=False keeps the first ones (for URLs, whose host is at the start). Padding is on the right."""
    out = np.zeros((len(strings), max_len), dtype=np.int64)
    for i, s in enumerate(strings):
        s = s.lower()
        s = s[-max_len:] if tail else s[:max_len]
        out[i, :len(s)] = [CHAR_ID.get(c, UNK) for c in s]
    return out

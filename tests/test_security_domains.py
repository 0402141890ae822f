"""sln.security: parsers, public suffix rules, grouped/temporal splits and metrics, on the real pinned lists.

The lists are fetched once per session into $SLN_DATA (checksummed archives and members); without
network or cache the data tests skip here and fail under CI=true. No training happens here."""
from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pytest
from conftest import skip_or_fail_in_ci

from sln.fetch import DataError
from sln.security import metrics, parse
from sln.security.domains import FREENOM, Lists, build_splits, encode, temporal_eval
from sln.security.psl import PublicSuffixList

# a few real PSL rules (ICANN and PRIVATE) for tests that need no data
MINI_PSL = """// ===BEGIN ICANN DOMAINS===
com
uk
co.uk
ac
jp
ac.jp
kyoto.jp
ide.kyoto.jp
*.kobe.jp
!city.kobe.jp
*.ck
!www.ck
us
ak.us
k12.ak.us
cn
com.cn
公司.cn
中国
biz
// ===END ICANN DOMAINS===
// ===BEGIN PRIVATE DOMAINS===
github.io
uk.com
// ===END PRIVATE DOMAINS===
""".splitlines()

# (host, expected eTLD+1 or None): the public suffix list's own kinds of test cases
PSL_CASES = [
    ("COM", None), ("example.COM", "example.com"), ("WwW.example.COM", "example.com"),
    (".com", None), (".example", None), (".example.com", None), ("example.com.", "example.com"),
    ("example", None), ("example.example", "example.example"), ("b.example.example", "example.example"),
    ("biz", None), ("domain.biz", "domain.biz"), ("a.b.domain.biz", "domain.biz"),
    ("com", None), ("example.com", "example.com"), ("a.b.example.com", "example.com"),
    ("uk.com", None), ("example.uk.com", "example.uk.com"), ("b.example.uk.com", "example.uk.com"),
    ("test.ac", "test.ac"),
    ("jp", None), ("test.jp", "test.jp"), ("www.test.jp", "test.jp"), ("ac.jp", None),
    ("test.ac.jp", "test.ac.jp"), ("kyoto.jp", None), ("test.kyoto.jp", "test.kyoto.jp"),
    ("ide.kyoto.jp", None), ("b.ide.kyoto.jp", "b.ide.kyoto.jp"), ("a.b.ide.kyoto.jp", "b.ide.kyoto.jp"),
    ("c.kobe.jp", None), ("b.c.kobe.jp", "b.c.kobe.jp"), ("a.b.c.kobe.jp", "b.c.kobe.jp"),
    ("city.kobe.jp", "city.kobe.jp"), ("www.city.kobe.jp", "city.kobe.jp"),
    ("ck", None), ("test.ck", None), ("b.test.ck", "b.test.ck"), ("a.b.test.ck", "b.test.ck"),
    ("www.ck", "www.ck"), ("www.www.ck", "www.ck"),
    ("us", None), ("test.us", "test.us"), ("www.test.us", "test.us"), ("ak.us", None),
    ("test.ak.us", "test.ak.us"), ("k12.ak.us", None), ("www.test.k12.ak.us", "test.k12.ak.us"),
    ("a.github.io", "a.github.io"), ("x.a.github.io", "a.github.io"), ("github.io", None),
    # IDN rules are stored punycoded: 食狮.公司.cn, www.食狮.公司.cn, 公司.cn, 食狮.中国
    ("xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"),
    ("www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"), ("xn--55qx5d.cn", None),
    ("shishi.xn--55qx5d.cn", "shishi.xn--55qx5d.cn"), ("xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s"),
    ("xn--fiqs8s", None), ("xn--85x722f.com.cn", "xn--85x722f.com.cn"),
]


@pytest.mark.parametrize("host,want", PSL_CASES)
def test_registrable_domain_on_psl_cases(host: str, want: str | None) -> None:
    assert PublicSuffixList(MINI_PSL).registrable(host) == want


def test_private_section_can_be_left_out() -> None:
    icann = PublicSuffixList(MINI_PSL, private=False)
    assert icann.registrable("a.github.io") == "github.io"
    assert icann.registrable("example.uk.com") == "uk.com"


def test_unicode_hosts_meet_punycoded_rules() -> None:
    psl = PublicSuffixList(MINI_PSL)
    assert psl.registrable(parse.normalize_host("www.食狮.公司.cn")) == "xn--85x722f.xn--55qx5d.cn"
    assert psl.registrable(parse.normalize_host("食狮.中国")) == "xn--85x722f.xn--fiqs8s"


# ---- parsers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("line,host,path", [
    ("Example.COM.", "example.com", ""),
    ("  http://user:pw@Example.COM:8080/a/b?c=1#d  ", "example.com", "/a/b?c=1#d"),
    ("Bücher.example", "xn--bcher-kva.example", ""),
    ("straße.de", "strasse.de", ""),                       # Python's IDNA 2003 maps ß to ss
    ("xn--zca.dk", "xn--zca.dk", ""),                      # ...but the IDNA 2008 punycode of ß is kept
    ("☃.net", "xn--n3h.net", ""),
    (b"evil.example/x.exe", "evil.example", "/x.exe"),
    ("_dmarc.example.org", "_dmarc.example.org", ""),
])
def test_normalize(line: str | bytes, host: str, path: str) -> None:
    assert parse.normalize(line) == parse.Parsed(host, path)


@pytest.mark.parametrize("line,why", [
    ("", "empty line"), ("   \n", "empty line"), ("a" * 100_000, "100000 characters"),
    (b"\xff\xfe\x00bad", "not UTF-8"), ("ev\x00il.com", "control characters"), ("exa mple.com", "invalid label"),
    ("1.2.3.4", "IP address"), ("[::1]:80/x", "IPv6"), ("example.com:http", "invalid port"),
    ("xn--.com", "invalid label"), ("a." * 130 + "com", "DNS allows 253"), ("-bad-.com", "invalid label"),
])
def test_normalize_refuses_garbage_with_a_reason(line: str | bytes, why: str) -> None:
    with pytest.raises(parse.InputError, match=why):
        parse.normalize(line)


def test_normalize_never_crashes_on_random_bytes() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        for line in (blob, blob.decode("latin-1")):
            try:
                p = parse.normalize(line)
            except parse.InputError:
                continue
            assert p.host.isascii() and p.host == p.host.lower()


@pytest.mark.parametrize("line,kind,text", [
    ("! Title: list", "comment", None), ("", "comment", None), ("example.com##.ad", "cosmetic", None),
    ("@@||good.com^", "exception", None), ("/ba[dr]\\.com/", "regex", None),
    ("||Evil.COM^", "host", "evil.com"), ("||evil.com^$doc", "host", "evil.com"), ("evil.com", "host", "evil.com"),
    ("||evil.com^$all", "host", "evil.com"), ("||evil.com/", "host", "evil.com"),
    ("||evil.com/a/b.exe^$all", "url", "evil.com/a/b.exe"),
    ("||web.archive.org/web/1/http:/1.2.3.4/x.arm^$all", "url", "web.archive.org/web/1/http:/1.2.3.4/x.arm"),
    ("||evil.com^$doc,domain=news.com", "pattern", None), ("||adserver*/?x=$doc", "pattern", None),
    ("||familysimulator.$all", "pattern", None), ("/click.php?data=$doc", "pattern", None),
    ("1.2.3.4", "ip", None), ("||1.2.3.4^", "ip", None), ("||ex ample.com^", "invalid", None),
])
def test_filter_lines(line: str, kind: str, text: str | None) -> None:
    k, p = parse.parse_filter_line(line)
    assert k == kind and (p.url if p else None) == text


def test_hstspreload_format() -> None:
    # flags 0x80 leaf, 0x40 include-subdomains; a non-leaf trie label in between is skipped
    blob = bytes([0x00, 3]) + b"com" + bytes([0xC0, 11]) + b"example.com" + bytes([0x80, 4]) + b"a.io"
    assert parse.decode_hstspreload(blob) == [("example.com", True), ("a.io", False)]
    with pytest.raises(ValueError, match="truncated"):
        parse.decode_hstspreload(blob + bytes([0x80, 9]) + b"short")


# ---- labels and splits on a synthetic list (no data needed) ------------------------------------------

def _lists(**kw: list[str]) -> Lists:
    base = dict(eth_black=[], eth_white=[], eth_black_old=[], urlhaus_hosts=[], urlhaus_urls=[],
                badware_hosts=[], badware_urls=[], hsts=[], top_sites=[])
    base.update(kw)
    return Lists(**base, psl=PublicSuffixList(MINI_PSL), raw_counts={})


def test_groups_conflicts_tlds_and_temporal() -> None:
    evil = [f"{c}.evil.com" for c in "abcdefghij"] + [f"x{i}.co.uk" for i in range(50)] + ["bad.tk"]
    good = [f"site{i}.com" for i in range(200)] + ["www.city.kobe.jp", "city.kobe.jp", "both.com", "free.tk"]
    lists = _lists(eth_black=evil + ["both.com", "new1.com", "sub.new1.com"], eth_black_old=evil + ["both.com"],
                   hsts=good, eth_white=["both.com"])
    s = build_splits(lists, seed=3)
    every = s.train + s.val + s.test + s.temporal
    texts = [x.text for x in every]
    assert len(texts) == len(set(texts))
    assert "both.com" not in texts and s.info["conflicts"] == 1                  # listed with both labels
    assert "bad.tk" not in texts and "free.tk" not in texts and "tk" in FREENOM   # Freenom TLDs removed
    assert {x.text for x in s.temporal} == {"new1.com", "sub.new1.com"} and all(x.label == 1 for x in s.temporal)
    where = {}
    for name, part in s.parts().items():
        for x in part:
            assert where.setdefault(x.group, name) == name, f"{x.group} is in {where[x.group]} and {name}"
    assert {x.group for x in every if x.text.endswith(".evil.com")} == {"evil.com"}   # one group, one split
    assert {x.group for x in every if x.text.endswith("kobe.jp")} == {"city.kobe.jp"}
    sizes = s.info["sizes"]
    assert sizes["train"]["n"] + sizes["val"]["n"] + sizes["test"]["n"] == 60 + 202   # no .tk, no both.com
    # deterministic given the seed, different for another seed
    assert build_splits(lists, seed=3).test == s.test
    assert build_splits(lists, seed=4).test != s.test
    assert set(temporal_eval(s)) == set(s.temporal) | {x for x in s.test if x.label == 0}


def test_url_task_and_hostname_view() -> None:
    lists = _lists(urlhaus_urls=["a.evil.com/x.exe", "b.evil.com/y.sh", "drive.google.com/uc?id=1"],
                   urlhaus_hosts=["c.evil.com"], hsts=["drive.google.com", "ok.com"])
    full = build_splits(lists, "urls", fractions=(1.0, 0.0, 0.0))
    assert sorted(x.text for x in full.train) == ["a.evil.com/x.exe", "b.evil.com/y.sh", "c.evil.com",
                                                  "drive.google.com", "drive.google.com/uc?id=1", "ok.com"]
    host = build_splits(lists, "urls", hostname_only=True, fractions=(1.0, 0.0, 0.0))
    # the malicious URL on drive.google.com conflicts with the benign host and is dropped in that view
    assert sorted((x.text, x.label) for x in host.train) == [("a.evil.com", 1), ("b.evil.com", 1),
                                                             ("c.evil.com", 1), ("ok.com", 0)]


def test_encode_values() -> None:
    ids = encode(["ab.c", "x-9/"], max_len=3)
    assert ids.tolist() == [[3, 39, 4], [38, 37, 41]]            # tail=True keeps the last characters
    assert encode(["Ab.c"], max_len=6, tail=False).tolist() == [[2, 3, 39, 4, 0, 0]]
    assert encode(["é"], max_len=2).tolist() == [[1, 0]]


# ---- metrics -------------------------------------------------------------------------------------

def test_metrics_hand_computed() -> None:
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    assert metrics.roc_auc(y, s) == pytest.approx(0.75)
    assert metrics.pr_auc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics.roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5       # a tie counts half
    assert metrics.pr_auc(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.1])) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert math.isnan(metrics.roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    neg = np.arange(10) / 10.0                                                   # 0.0 ... 0.9
    y = np.r_[np.zeros(10), np.ones(4)].astype(int)
    s = np.r_[neg, [0.95, 0.85, 0.5, 0.05]]
    assert metrics.tpr_at_fpr(y, s, 0.1) == 0.5 and metrics.tpr_at_fpr(y, s, 0.0) == 0.25
    thr = metrics.calibrate_threshold(neg, 0.1)
    assert thr == 0.8
    r = metrics.at_threshold(y, s, thr)
    assert (r["tp"], r["fp"], r["tpr"], r["fpr"]) == (2, 1, 0.5, 0.1)
    assert metrics.calibrate_threshold(neg, 0.0) == 0.9 and metrics.calibrate_threshold(neg, 1e-4) == 0.9


def test_metrics_match_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.1).astype(int)
    s = np.round(rng.normal(size=3000) + y, 1)                                   # rounded: many ties
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert metrics.pr_auc(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(y, s)
    assert metrics.tpr_at_fpr(y, s, 1e-2) == pytest.approx(tpr[fpr <= 1e-2].max())


# ---- the real lists --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def real_lists() -> Lists:
    from sln.security.domains import load_lists
    try:
        return load_lists()
    except DataError as e:
        skip_or_fail_in_ci(f"security lists not available: {e}")
        raise


def test_real_list_counts(real_lists: Lists) -> None:
    L = real_lists
    assert L.raw_counts["eth_blacklist"] == 13752 and L.raw_counts["eth_whitelist"] == 1138
    assert len(L.eth_black) == 13747 and len(L.eth_white) == 1138 and len(L.eth_black_old) == 13498
    assert (L.raw_counts["urlhaus_host"], L.raw_counts["urlhaus_url"], L.raw_counts["urlhaus_ip"]) == (602, 3345, 2307)
    assert L.raw_counts["badware_host"] == 2923 and len(set(L.badware_hosts)) == 2903
    assert L.raw_counts["hsts_leaves"] == 161019 and len(L.hsts) == 161018
    assert sum(h.endswith(".tk") for h in L.hsts) == 19036
    assert len(L.top_sites) == 500
    assert (len(L.psl.rules), len(L.psl.exceptions)) == (9941, 8)
    # a checksum of a slice: the first 1000 decoded HSTS hosts, as parsed
    assert hashlib.sha256("\n".join(L.hsts[:1000]).encode()).hexdigest()[:16] == HSTS_SLICE_SHA


HSTS_SLICE_SHA = "22c8026a4d1ba59b"


def test_real_psl_cases(real_lists: Lists) -> None:
    for host, want in PSL_CASES:
        if host.lower().removesuffix(".") in ("uk.com", "example.uk.com", "b.example.uk.com"):
            continue                     # uk.com is a PRIVATE rule in the real list too, kept below
        assert real_lists.psl.registrable(host) == want, host
    assert real_lists.psl.registrable("b.example.uk.com") == "example.uk.com"


def test_real_splits_are_grouped_and_temporal_is_new(real_lists: Lists) -> None:
    # a slice: all malicious domains and 3000 benign HSTS hosts keep this to ~1 s
    L = real_lists
    small = Lists(L.eth_black, L.eth_white, L.eth_black_old, L.urlhaus_hosts, L.urlhaus_urls, L.badware_hosts,
                  L.badware_urls, L.hsts[:3000], L.top_sites, L.psl, L.raw_counts)
    s = build_splits(small)
    where: dict[str, str] = {}
    for name, part in s.parts().items():
        for x in part:
            assert where.setdefault(x.group, name) == name
    old = set(L.eth_black_old)
    assert len(s.temporal) == 248 and not any(x.text in old for x in s.temporal)
    assert all(x.text in set(L.eth_black) for x in s.temporal)
    assert s.info["conflicts"] == 3          # the 3 hosts on both the eth blacklist and whitelist


def test_list_parsers_survive_garbage_lines() -> None:
    assert parse.parse_filter_line("||" + "a" * 100_000 + ".com^")[0] == "invalid"
    assert parse.parse_filter_line("\ufffd\ufffd.com")[0] == "invalid"        # binary bytes, decoded with replace
    assert parse.parse_hosts_lines(["", "# c", "a" * 100_000, "\x00\x01", "Good.COM.", "xn--zca.dk"]) == [
        "good.com", "xn--zca.dk"]


def test_baselines_say_how_to_get_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from sln.security.baselines import TfidfLogReg
    monkeypatch.setitem(sys.modules, "sklearn", None)           # makes `import sklearn` fail
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        TfidfLogReg().fit(["a.com"], np.array([0]))

"""Property-based tests (hypothesis) of every reader that takes bytes from a user or the network: IDX,
`.ts`, the UCR text / CSV readers, checkpoints, the domain/URL normaliser and the pcap/packet parser.

Two kinds of property: round trips (what a writer produces, the reader returns exactly), and totality
(on arbitrary input the reader returns a value or raises its own documented error, never anything
else: a user sees a message, not a traceback). Runs are derandomised, so a failure reproduces on
every machine, and small enough for the suite (~20 s).
"""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sln.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sln.config import SLNConfig
from sln.data import parse_idx
from sln.fetch import DataError
from sln.model import SLN
from sln.security.packets import LINK_ETHERNET, LINK_RAW, PcapError, ReaderStats, iter_packets, parse_frame
from sln.security.parse import InputError, normalize
from sln.series_files import parse_csv, parse_ucr_text
from sln.timeseries import TSFormatError, parse_ts

FAST = settings(derandomize=True, deadline=None, database=None, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# --- IDX -------------------------------------------------------------------------------------------
def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


@FAST
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_idx_round_trip(dims: list[int], rnd) -> None:
    a = np.array([rnd.randrange(256) for _ in range(int(np.prod(dims)))], dtype=np.uint8).reshape(dims)
    b = parse_idx(idx_bytes(a))
    assert b.shape == a.shape and np.array_equal(a, b)


@FAST
@given(st.binary(max_size=64))
def test_idx_arbitrary_bytes_parse_or_raise_data_error(raw: bytes) -> None:
    try:
        a = parse_idx(raw, "x")
    except DataError as e:
        assert str(e).startswith("x: ")
    else:
        assert a.size == len(raw) - 4 - 4 * a.ndim


@FAST
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(-3, 3).filter(bool))
def test_idx_wrong_length_is_named(dims: list[int], delta: int) -> None:
    a = np.zeros(dims, dtype=np.uint8)
    raw = idx_bytes(a)
    raw = raw + b"\0" * delta if delta > 0 else raw[:delta]
    if len(raw) < 4 + 4 * a.ndim:
        return
    with pytest.raises(DataError, match="truncated|trailing"):
        parse_idx(raw)


# --- .ts / UCR text / CSV ----------------------------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
label = st.sampled_from(["a", "b", "c1"])


@FAST
@given(st.integers(1, 3), st.lists(st.tuples(label, st.integers(1, 6)), min_size=1, max_size=6), st.data())
def test_ts_round_trip(dims: int, cases: list[tuple[str, int]], data) -> None:
    series = [np.array([[data.draw(finite) for _ in range(t)] for _ in range(dims)], dtype=np.float32)
              for _, t in cases]
    lines = ["@problemName P", "@timeStamps false", f"@univariate {'true' if dims == 1 else 'false'}",
             f"@dimensions {dims}", "@classLabel true a b c1", "@data"]
    lines += [":".join(",".join(repr(float(v)) for v in ch) for ch in s) + f":{lab}"
              for s, (lab, _) in zip(series, cases)]
    got = parse_ts("\n".join(lines))
    assert got.class_names == ["a", "b", "c1"]
    assert [got.class_names[i] for i in got.labels] == [lab for lab, _ in cases]
    for s, g in zip(series, got.series):
        assert g.dtype == np.float32 and np.array_equal(s, g)


TEXTISH = st.text(st.sampled_from(list("@data ,:?%#\n\t-+.e0123456789abinf")), max_size=120)


TOKEN = st.one_of(finite.map(lambda v: repr(float(v))),
                  st.sampled_from(["inf", "-inf", "1e999", "nan", "NaN", "?", "", " ", "x", "1e-999", "3.4e39"]))


@st.composite
def ts_like(draw) -> str:
    """Structurally plausible .ts text: real header lines, data lines of hostile value tokens and labels,
    sometimes a stray line from the raw alphabet."""
    lines = ["@problemName P", draw(st.sampled_from(["@timeStamps false", "@timeStamps true", ""])),
             "@classLabel true a b", "@data"]
    for _ in range(draw(st.integers(0, 4))):
        chans = [",".join(draw(st.lists(TOKEN, min_size=1, max_size=4))) for _ in range(draw(st.integers(1, 2)))]
        lines.append(":".join(chans) + ":" + draw(st.sampled_from(["a", "b", "z", ""])))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(TEXTISH))
    return "\n".join(lines)


@FAST
@given(st.one_of(TEXTISH, ts_like()))
def test_ts_text_is_parsed_or_refused_with_a_format_error(text: str) -> None:
    try:
        got = parse_ts(text, "f.ts")
    except TSFormatError as e:
        assert str(e).startswith("f.ts")
    else:
        for s in got.series:    # what is accepted is finite or a declared missing value
            assert np.all(np.isfinite(s) | np.isnan(s))


@FAST
@given(st.lists(st.tuples(label, st.lists(finite, min_size=1, max_size=5)), min_size=1, max_size=5),
       st.sampled_from([",", "\t", " "]))
def test_ucr_text_round_trip(rows: list[tuple[str, list[float]]], sep: str) -> None:
    n = len(rows[0][1])
    rows = [(lab, (vals * n)[:n]) for lab, vals in rows]     # the UCR text format is equal length per file
    text = "\n".join(sep.join([lab] + [repr(float(v)) for v in vals]) for lab, vals in rows)
    got = parse_ucr_text(text)
    assert [got.class_names[i] for i in got.labels] == [lab for lab, _ in rows]
    for (_, vals), g in zip(rows, got.series):
        assert np.array_equal(np.array([vals], dtype=np.float32), g)


@FAST
@given(st.one_of(TEXTISH, st.lists(st.lists(TOKEN, min_size=1, max_size=4), max_size=4).map(
    lambda rows: "\n".join(",".join(["a"] + r) for r in rows))))
def test_ucr_text_and_csv_refuse_with_a_format_error(text: str) -> None:
    for parse in (parse_ucr_text, parse_csv):
        try:
            got = parse(text, "u.txt")
        except TSFormatError as e:
            assert str(e).startswith("u.txt")
        else:
            assert all(np.all(np.isfinite(s) | np.isnan(s)) for s in got.series)


# --- checkpoints ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, SLN]:
    torch.manual_seed(0)
    model = SLN(SLNConfig(input_size=8, n_classes=3, n_neurons=16, active_frac=0.25))
    path = tmp_path_factory.mktemp("ck") / "c.safetensors"
    save_checkpoint(path, model)
    return path.read_bytes(), model


@settings(derandomize=True, deadline=None, database=None, max_examples=120,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_checkpoint_loads_exactly_or_raises_checkpoint_error(good_checkpoint, tmp_path: Path,
                                                                     flips: list[tuple[int, int]]) -> None:
    raw, model = good_checkpoint
    buf = bytearray(raw)
    for pos, val in flips:
        buf[pos % len(buf)] = val
    p = tmp_path / "d.safetensors"
    p.write_bytes(bytes(buf))
    try:
        loaded, _ = load_checkpoint(p)
    except CheckpointError:
        return
    # a flip in a float tensor can still load (it is a valid file); it must then be a finite model that
    # runs, and it equals the original where the flips did not land in its weights
    x = torch.rand(2, 3, 8)
    assert torch.isfinite(loaded(x)).all()
    if bytes(buf) == raw:
        assert torch.equal(loaded(x), model(x))


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_not_a_checkpoint(tmp_path: Path, blob: bytes) -> None:
    p = tmp_path / "x.safetensors"
    p.write_bytes(blob)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


@FAST
@given(st.dictionaries(st.sampled_from(["n_neurons", "input_size", "active_frac", "lr", "task", "nope"]),
                       st.one_of(st.integers(-5, 10**8), st.floats(allow_nan=True), st.text(max_size=5),
                                 st.none()), max_size=4))
def test_checkpoint_config_values_are_checked(good_checkpoint, tmp_path: Path, edits: dict) -> None:
    from safetensors.torch import load_file, save_file
    raw, _ = good_checkpoint
    src = tmp_path / "s.safetensors"
    src.write_bytes(raw)
    from safetensors import safe_open
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    cfg = {**json.loads(meta["config"]), **edits}
    meta["config"] = json.dumps(cfg)
    dst = tmp_path / "e.safetensors"
    save_file(load_file(str(src)), str(dst), metadata=meta)
    try:
        loaded, _ = load_checkpoint(dst)
    except CheckpointError as e:
        assert str(dst) in str(e)
    else:   # only edits that keep a valid config with the stored tensors' shapes can load
        assert loaded.cfg.to_dict() == SLNConfig.from_dict(cfg).to_dict()


# --- domains and URLs ----------------------------------------------------------------------------------
LINE = st.one_of(st.text(max_size=80), st.binary(max_size=80),
                 st.from_regex(r"(https?://)?[a-zA-Z0-9.\-]{1,30}(:[0-9]{1,5})?(/[a-z0-9/._-]{0,20})?",
                               fullmatch=True))


@FAST
@given(LINE)
def test_normalize_gives_an_ascii_host_or_an_input_error(line) -> None:
    try:
        p = normalize(line)
    except InputError as e:
        assert str(e)
        return
    assert p.host.isascii() and p.host == p.host.lower() and 0 < len(p.host) <= 253
    assert normalize(p.host).host == p.host          # idempotent: a normalised host normalises to itself
    assert normalize(p.url).url == p.url


# --- pcap / packets -----------------------------------------------------------------------------------
def pcap(records: list[bytes], linktype: int) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, r in enumerate(records):
        out.append(struct.pack("<IIII", 1000 + i, 0, len(r), len(r)) + r)
    return b"".join(out)


def ipv4_udp(src: int, dst: int, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst) + udp


@FAST
@given(st.sampled_from([LINK_ETHERNET, LINK_RAW, 0, 113, 276, 9999]), st.binary(max_size=80))
def test_parse_frame_never_raises_and_counts_what_it_skips(link: int, frame: bytes) -> None:
    stats = ReaderStats()
    p = parse_frame(link, frame, 0, 0.0, stats)
    skips = stats.bad_link + stats.non_ipv4 + stats.bad_ip + stats.truncated_l4
    assert skips == (1 if p is None else 0)


@FAST
@given(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1), st.integers(0, 65535),
                          st.integers(0, 65535), st.binary(max_size=20)), min_size=1, max_size=6))
def test_pcap_round_trip_of_raw_ipv4_udp(pkts) -> None:
    blob = pcap([ipv4_udp(*p) for p in pkts], LINK_RAW)
    got = list(iter_packets(io.BytesIO(blob)))
    assert [(g.src, g.dst, g.sport, g.dport, g.proto) for g in got] == [(s, d, sp, dp, 17) for s, d, sp, dp, _ in pkts]


@FAST
@given(st.binary(max_size=300))
def test_pcap_stream_of_garbage_yields_packets_or_a_pcap_error(tail: bytes) -> None:
    stats = ReaderStats()
    try:
        list(iter_packets(io.BytesIO(pcap([], LINK_RAW) + tail), stats))
    except PcapError as e:
        assert str(e)
    assert stats.events <= stats.records

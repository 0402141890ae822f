"""The packet detector's int8 event model (model_kind 3): the Python integer reference (sln.intspec_events)
against the C runtime's sln_events_step bit for bit on real packets of the shipped capture, the dt-bucket
selection at every bucket edge, the file round trip, refused inputs and files, and the Cortex-M4 firmware
under QEMU. A tiny randomly initialised sln-ids-small (N = 16, k = 2, sparse) keeps this fast; the figures
of a trained detector are in docs/SECURITY_IDS.md."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from sln import fmt, fmt_c, intspec, intspec_events
from sln.config import get_config
from sln.fmt import ERROR_CODES
from sln.model import SLN
from sln.security.fastpath import BlockScorer
from sln.security.ids_data import IdsSpec, fit_scale, load_capture
from sln.security.ids_int8 import EventEngine, bucket_dt, dt_range, int_inputs, quantize_events, write_stream

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
N_PKT = 400
RANGE: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="module")
def tiny() -> tuple[SLN, IdsSpec, intspec_events.QEvents, bytes, np.ndarray, np.ndarray]:
    cap = load_capture(ROOT / "tests" / "fixtures" / "ids")
    x, dt = cap.ev.x[:2000], cap.ev.dt[:2000].astype(np.float64)
    torch.manual_seed(0)
    cfg = get_config("sln-ids-small", n_neurons=16, active_frac=0.125, density_in=0.5, density_rec=0.5)
    model = SLN(cfg).eval()
    with torch.no_grad():                      # 70 % of the weights zero: W_in / W_rec are stored column-sparse
        for cell in model.cells:
            for w in (cell.w_in.weight, cell.w_rec.weight):
                w.mul_((torch.rand_like(w) < 0.3).float())
    rng = np.random.default_rng(0)
    spec = IdsSpec("reconstruct", fit_scale(x[:1500]).tolist(), 1.0, 1e-3,
                   resid_weight=rng.uniform(0.5, 20.0, cfg.input_size).tolist())
    lo, hi = dt_range(dt[:1500])
    qe = quantize_events(model, spec, x[:1500], dt[:1500], lo, hi)
    data = intspec_events.to_bytes(qe)
    RANGE["dt"] = (lo, hi)                     # the bucket range, for the float view
    return model, spec, intspec_events.from_bytes(data), data, x[1500:1500 + N_PKT], dt[1500:1500 + N_PKT]


def test_round_trip_and_file_kind(tiny) -> None:
    _, _, qe, data, _, _ = tiny
    h = fmt.header_of(data)
    assert h["model_kind"] == fmt.MODEL_KINDS["event_model"] == 3 and h["n_steps"] == 1
    assert h["version"] == fmt.SPARSE_VERSION                      # the sparse matrices need version 2
    assert intspec_events.to_bytes(qe) == data
    assert qe.gate_luts.shape == (1, 8, 257) and qe.x_frac == 11 and qe.e_frac == 8
    assert qe.dt_edges[0] == 1 and (np.diff(qe.dt_edges) >= 1).all()
    assert (qe.gate_luts[0, 0] == 32767).all()                     # bucket 0 (dt = 0): keep the state
    assert (np.diff(qe.gate_luts[0, 1:, 128]) <= 0).all()          # longer dt, less retention
    with pytest.raises(ValueError, match="model_kind != 3"):
        fmt.events_from_bytes(fmt.to_bytes(qe.qm))


def test_cut_files_are_refused_with_a_clear_error(tiny) -> None:
    """A truncated .sln is a ValueError that says so (was struct.error / numpy's buffer error)."""
    data = tiny[3]
    assert fmt.events_from_bytes(data)[0].n_neurons == tiny[2].qm.n_neurons
    h = fmt.header_of(data)
    last_end = max(off + count * np.dtype({c: d for c, _, d in fmt.DTYPES.values()}[code]).itemsize
                   for _, code, off, count in (np.frombuffer(data, "<u4", 4, h["table_offset"] + 16 * i)
                                               for i in range(h["n_tensors"])))
    for cut in (0, 10, h["table_offset"] + 3, last_end - 1):
        with pytest.raises(ValueError, match="shorter than the|past the end of the file"):
            fmt.events_from_bytes(data[:cut])
    with pytest.raises(ValueError, match="past the end of the file"):
        fmt.from_bytes(data[:last_end - 1])


def test_reference_equals_c_runtime_on_real_packets(tiny) -> None:
    _, spec, qe, data, x, dt = tiny
    xq, dus = int_inputs(qe, spec, x, dt)
    out, S, B = intspec_events.run_stream(qe, xq, dus)
    eng = EventEngine(data)
    out_c, S_c, B_c = eng.run(xq, dus)
    np.testing.assert_array_equal(B_c, B)
    np.testing.assert_array_equal(out_c, out)
    np.testing.assert_array_equal(S_c, S)
    assert len(np.unique(B)) >= 5 and (S > 0).all() and len(np.unique(S)) > N_PKT // 2   # real work, many buckets
    # and the state is carried: the same packets from a reset state give the same, from another state not
    eng.reset()
    np.testing.assert_array_equal(eng.run(xq[:50], dus[:50])[1], S[:50])
    assert not np.array_equal(eng.run(xq[:50], dus[:50])[1], S[:50])


def test_int8_score_tracks_the_float_score(tiny) -> None:
    model, spec, qe, _, x, dt = tiny
    xq, dus = int_inputs(qe, spec, x, dt)
    s_int = intspec_events.real_score(qe, intspec_events.run_stream(qe, xq, dus)[1])
    edges, centres = intspec_events.bucket_edges(*tiny_range())
    np.testing.assert_array_equal(edges, qe.dt_edges)
    s_fb = BlockScorer(model, spec).scores(x, bucket_dt(edges, centres, dt))     # float, the same dt buckets
    rel = np.sqrt(np.mean((s_int - s_fb) ** 2) / np.mean(s_fb ** 2))
    assert rel < 0.1, rel
    assert np.corrcoef(s_int, s_fb)[0, 1] > 0.98


def tiny_range() -> tuple[float, float]:
    return RANGE["dt"]


def test_bucket_selection_at_every_edge(tiny) -> None:
    _, _, qe, data, _, _ = tiny
    e = qe.dt_edges
    dts, want = [0, 2 ** 32 - 1], [0, 7]
    for j, v in enumerate(e.tolist()):
        dts += [v - 1, v, v + 1]
        want += [j, j + 1, j + 1 if j + 1 == len(e) or v + 1 < e[j + 1] else j + 2]
    np.testing.assert_array_equal(intspec_events.bucket_of(e, np.array(dts)), want)
    eng = EventEngine(data)
    x0 = np.zeros(qe.qm.input_size, np.int64)
    for d, w in zip(dts, want, strict=True):
        eng.reset()
        rc, out, S, b = eng.status(x0, d)
        ref = intspec_events.events_step(qe, intspec.init_state(qe.qm, 1), x0, d)
        assert rc == 0 and b == w == ref[2] and S == ref[1] and np.array_equal(out, ref[0]), (d, b, w)
    assert intspec_events.dt_to_us(np.array([0.0, 2.5e-6, 1.0, 1e6])).tolist() == [0, 3, 1_000_000, 2 ** 32 - 1]


def test_refused_inputs_and_files(tiny) -> None:
    _, _, qe, data, _, _ = tiny
    eng = EventEngine(data)
    D = qe.qm.input_size
    bad = np.zeros(D, np.int64)
    bad[3] = -32768
    assert eng.status(bad, 10)[0] == ERROR_CODES["SLN_ERR_ARG"]
    with pytest.raises(ValueError, match="2\\^15"):
        intspec_events.events_step(qe, intspec.init_state(qe.qm, 1), bad, 10)
    with pytest.raises(ValueError, match="uint32"):
        intspec_events.events_step(qe, intspec.init_state(qe.qm, 1), bad * 0, -1)
    lib = eng._lib
    st_small = np.zeros(4, np.uint32)
    out, s, b = np.zeros(D, np.int32), np.zeros(1, np.uint64), np.zeros(1, np.uint32)
    x = np.zeros(D, np.int16)
    assert lib.sln_events_step(eng._m, st_small.ctypes.data, 16, x.ctypes.data, 0, out.ctypes.data,
                               s.ctypes.data, b.ctypes.data) == ERROR_CODES["SLN_ERR_WORKSPACE"]
    assert lib.sln_events_step(eng._m, eng._st.ctypes.data, eng._st.nbytes, x.ctypes.data, 0, None,
                               s.ctypes.data, None) == ERROR_CODES["SLN_ERR_ARG"]

    def load(blob: bytes, kind: int = 3) -> int:
        buf = np.frombuffer(blob, np.uint8).copy()
        m = np.zeros_like(eng._model)
        return lib.sln_load(m.ctypes.data, buf.ctypes.data, len(blob), kind)

    assert load(data) == 0
    assert load(data, fmt.MODEL_KINDS["classifier"]) == ERROR_CODES["SLN_ERR_UNSUPPORTED"]
    # an ordinary int8 file patched to kind 3 lacks the event tensors; an event tensor in a kind-1 file is refused
    plain = bytearray(fmt.to_bytes(qe.qm, fmt.MODEL_KINDS["char_lm"]))
    assert load(bytes(plain), 1) == 0
    struct.pack_into("<I", plain, fmt.HEADER_OFFSETS["model_kind"], 3)
    assert load(bytes(plain)) == ERROR_CODES["SLN_ERR_TENSOR_MISSING"]
    lm_with_ev = bytearray(data)
    struct.pack_into("<I", lm_with_ev, fmt.HEADER_OFFSETS["model_kind"], 1)
    assert load(bytes(lm_with_ev), 1) == ERROR_CODES["SLN_ERR_TENSOR_MISSING"]

    def patched(name: str, value: int, index: int = 0) -> bytes:
        f = dict(qe.fields())
        arr = np.array(f[name], np.int64).copy()
        arr.reshape(-1)[index] = value
        f[name] = arr
        return fmt.events_to_bytes(qe.qm, f)

    assert load(patched("gate_luts", 32768, 300)) == ERROR_CODES["SLN_ERR_VALUE"]      # alpha outside Q15
    assert load(patched("dt_edges", int(qe.dt_edges[2]), 3)) == ERROR_CODES["SLN_ERR_VALUE"]   # not ascending
    assert load(patched("dt_edges", 0, 0)) == ERROR_CODES["SLN_ERR_VALUE"]              # edge 0 must be >= 1
    assert load(patched("resid_shift", 0, 5)) == ERROR_CODES["SLN_ERR_VALUE"]
    f = dict(qe.fields(), x_frac=17)
    assert load(fmt.events_to_bytes(qe.qm, f)) == ERROR_CODES["SLN_ERR_VALUE"]
    with pytest.raises(ValueError, match="ascending"):
        intspec_events.check(intspec_events.QEvents(**{**qe.__dict__, "dt_edges": qe.dt_edges[::-1].copy()}))


def test_qemu_cortex_m4_is_bit_exact(tiny, tmp_path: Path) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        if os.environ.get("SLN_REQUIRE_MCU"):
            pytest.fail(f"SLN_REQUIRE_MCU is set but {missing} are not installed")
        pytest.skip(f"ARM toolchain / QEMU not installed: {missing}")
    _, spec, qe, data, x, dt = tiny
    n = 60
    xq, dus = int_inputs(qe, spec, x[:n], dt[:n])
    xq[7, 2] = -32768                                           # one refused packet: skipped, state untouched
    (tmp_path / "sln_model_data.c").write_text(fmt_c.to_c_array(data))
    ws = fmt.state_bytes(1, qe.qm.n_neurons, qe.qm.k)
    (tmp_path / "sln_model_data.h").write_text(fmt_c.c_array_header(qe.qm, ws))
    write_stream(tmp_path / "packets.bin", xq, dus)
    r = subprocess.run(["make", "-C", str(RUNTIME), f"BUILD={tmp_path / 'build'}", f"MODEL_DIR={tmp_path}",
                        f"PACKETS={tmp_path / 'packets.bin'}", f"N={n}", "run-mcu-events"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [[int(v) for v in s.split()] for s in r.stdout.splitlines() if re.fullmatch(r"\d+ \d+ \d+", s)]
    keep = np.arange(n) != 7
    _, S, B = intspec_events.run_stream(qe, xq[keep], dus[keep])
    assert rows == [[i, s, b] for i, s, b in zip(np.arange(n)[keep].tolist(), S.tolist(), B.tolist(), strict=True)]
    assert "7 error SLN_ERR_ARG" in r.stdout
    m = re.search(r"insn_ticks (\d+) packets (\d+)", r.stdout)
    per_pkt = 40 * int(m.group(1)) / (n - 1)
    assert 1e3 < per_pkt < 1e5, per_pkt
    assert abs(int(re.search(r"calib 200000 insn ticks (\d+)", r.stdout).group(1)) - 5000) <= 1


def test_operation_counts_of_the_event_step(tiny) -> None:
    _, spec, qe, _, x, dt = tiny
    xq, dus = int_inputs(qe, spec, x[:50], dt[:50])
    cnt = intspec.IntCounts()
    S = intspec_events.run_stream(qe, xq, dus, cnt)[1]
    np.testing.assert_array_equal(S, intspec_events.run_stream(qe, xq, dus)[1])    # counting changes nothing
    C, B = qe.qm.n_classes, intspec_events.bucket_of(qe.dt_edges, dus)
    ro, ci = cnt.terms["readout"], cnt.terms["input"]
    assert ci["events"] == (xq != 0).sum()                                        # one input event per nonzero
    assert ro["muls32"] == 50 * 3 * C                                             # readout + residual requant, square
    assert ro["cmps32"] == (np.minimum(B + 1, 7) + 2 * C).sum()                   # bucket search + saturation


def test_two_layer_event_model_reference_equals_c(tiny) -> None:
    _, spec, _, _, x, dt = tiny
    torch.manual_seed(1)
    model = SLN(get_config("sln-ids-small", n_neurons=16, active_frac=0.25, n_layers=2)).eval()
    qe = quantize_events(model, spec, x[:200], dt[:200], *RANGE["dt"])
    data = intspec_events.to_bytes(qe)
    assert qe.gate_luts.shape == (2, 8, 257)
    xq, dus = int_inputs(qe, spec, x[200:], dt[200:])
    ref = intspec_events.run_stream(qe, xq, dus)
    got = EventEngine(data).run(xq, dus)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(b, a)

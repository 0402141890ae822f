"""`sln detect-net --model model.sln`: the int8 event model on the host (sln/security/ids_int8_net.py).

Its records against the Python integer reference (sln.intspec_events) and the existing per-packet C engine, its
packet encoding against the firmware's stream (ids_int8.int_inputs + write_stream) on the shipped capture, the
threshold calibrated in the int8 score domain, and the refusals. A tiny random N = 16 model keeps it fast (~15 s).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sln import intspec_events
from sln.cli import main as sln_main
from sln.config import get_config
from sln.model import SLN
from sln.security import ids_int8_net as N
from sln.security.ids_data import IdsSpec, fit_scale, load_capture, unsupervised_split
from sln.security.ids_int8 import EventEngine, dt_range, int_inputs, quantize_events, write_stream
from sln.security.metrics import calibrate_threshold

ROOT = Path(__file__).resolve().parent.parent
CAP = ROOT / "tests" / "fixtures" / "ids"
N_REF = 2500          # packets the (slow) Python reference is run on


def head_pcap(src: Path, n: int, dst: Path) -> None:
    """The pcap's global header and its first n records (little-endian classic pcap)."""
    b = src.read_bytes()
    pos = 24
    for _ in range(n):
        pos += 16 + struct.unpack_from("<I", b, pos + 8)[0]
    dst.write_bytes(b[:pos])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cap = load_capture(CAP)
    sp = unsupervised_split(cap)
    tb = np.flatnonzero(sp.train)
    x, dt = cap.ev.x, cap.ev.dt.astype(np.float64)
    torch.manual_seed(0)
    cfg = get_config("sln-ids-small", n_neurons=16, active_frac=0.125, density_in=0.5, density_rec=0.5)
    model = SLN(cfg).eval()
    rng = np.random.default_rng(0)
    spec = IdsSpec("reconstruct", fit_scale(x[tb]).tolist(), 1.0, 1e-3,
                   resid_weight=rng.uniform(0.5, 20.0, 58).tolist())
    lo, hi = dt_range(dt[tb])
    qe = quantize_events(model, spec, x[tb[:1500]], dt[tb[:1500]], lo, hi)
    data = intspec_events.to_bytes(qe)
    d = tmp_path_factory.mktemp("int8net")
    (d / "model.sln").write_bytes(data)
    xq, dus = int_inputs(qe, spec, x, dt)                  # the firmware's encoding (ids_int8 stream / export)
    _, S, B = EventEngine(data).run(xq, dus)                # the per-packet C engine, all 39,700 packets
    vb = sp.val & (cap.y == 0)
    side = N.make_spec(qe, data, spec, S[vb], capture_sha256=cap.sha256)
    N.write_spec(d / "model.sln", side)
    head_pcap(CAP / "capture.pcap", N_REF, d / "head.pcap")
    return {"cap": cap, "qe": qe, "spec": spec, "data": data, "dir": d, "xq": xq, "dus": dus, "S": S, "B": B,
            "vb": vb, "side": side}


def test_threshold_is_calibrated_in_the_int8_score_domain(setup) -> None:
    side, S, vb, qe = setup["side"], setup["S"], setup["vb"], setup["qe"]
    assert side.threshold_sq == int(calibrate_threshold(S[vb].astype(np.float64), 1e-3))
    assert isinstance(side.threshold_sq, int) and side.threshold_sq in S[vb]
    assert (S[vb] > side.threshold_sq).sum() <= int(1e-3 * vb.sum())         # FPR <= 1e-3 on validation
    assert (S[vb] >= side.threshold_sq).sum() > int(1e-3 * vb.sum())         # and the lowest such bound
    assert side.threshold == pytest.approx(np.sqrt(side.threshold_sq / 58) / 2 ** qe.e_frac, rel=1e-15)
    back = json.loads(N.sidecar_path(setup["dir"] / "model.sln").read_text())
    assert back["threshold_sq"] == side.threshold_sq and back["x_frac"] == qe.x_frac == 11
    assert back["calibration"]["benign_packets"] == int(vb.sum())


def test_detect_net_records_equal_the_int8_engine_and_the_firmware_stream(setup, tmp_path, capsys) -> None:
    d, cap, S = setup["dir"], setup["cap"], setup["S"]
    dump = tmp_path / "packets.bin"
    assert sln_main(["detect-net", "--pcap", str(CAP / "capture.pcap"), "--model", str(d / "model.sln"),
                     "--block", "777", "--dump-stream", str(dump)]) == 0
    out, err = capsys.readouterr()
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == len(cap.y) == 39_700
    # the firmware's input, byte for byte: u32 dt_us + 58 int16 per packet, as ids_int8 writes it
    ref_bin = tmp_path / "ref.bin"
    write_stream(ref_bin, setup["xq"], setup["dus"])
    assert dump.read_bytes() == ref_bin.read_bytes()
    score = intspec_events.real_score(setup["qe"], S)
    np.testing.assert_array_equal([r["score"] for r in recs], np.round(score, 6))
    thr = setup["side"]
    assert [r["alert"] for r in recs] == (S > thr.threshold_sq).tolist()
    assert 0 < sum(r["alert"] for r in recs) < len(recs)
    assert {r["threshold"] for r in recs} == {thr.threshold}
    np.testing.assert_allclose([r["ts"] for r in recs], cap.ev.ts, atol=1e-6)
    assert recs[5000]["src"].startswith("127.") and {r["proto"] for r in recs} >= {6, 17}
    assert "39,700 packets" in err and f"S > {thr.threshold_sq}" in err and "sln_events_step" in err


def test_block_path_is_bit_exact_with_the_python_integer_reference(setup) -> None:
    d = setup["dir"]
    ref = N.Int8NetDetector(d / "model.sln", backend="ref", block=500)
    c = N.Int8NetDetector(d / "model.sln", backend="c", block=333)
    assert isinstance(ref.loop, N.RefLoop) and isinstance(c.loop, N.EventLoop)
    from sln.security.packets import ReaderStats
    S_ref = np.concatenate([s for _, s, _ in ref.run(d / "head.pcap", ReaderStats())])
    S_c = np.concatenate([s for _, s, _ in c.run(d / "head.pcap", ReaderStats())])
    xq, dus = setup["xq"][:N_REF], setup["dus"][:N_REF]
    _, S_py, B_py = intspec_events.run_stream(setup["qe"], xq, dus)      # the spec's own loop
    np.testing.assert_array_equal(S_ref, S_py)
    np.testing.assert_array_equal(S_c, S_py)
    np.testing.assert_array_equal(S_c, setup["S"][:N_REF])
    assert len(np.unique(B_py)) >= 5 and len(np.unique(S_py)) > N_REF // 2
    # the Python featurizer + reference write the same records as the C path
    assert ref.packets == c.packets == N_REF and ref.alerts == c.alerts


def test_threshold_override_and_alerts_only(setup, capsys) -> None:
    d, S = setup["dir"], setup["S"][:N_REF]
    t = float(np.quantile(intspec_events.real_score(setup["qe"], S), 0.9))
    assert sln_main(["detect-net", "--pcap", str(d / "head.pcap"), "--model", str(d / "model.sln"), "--alerts-only",
                     "--threshold", str(t), "--quiet"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(recs) == int((intspec_events.real_score(setup["qe"], S) > t).sum()) > 0
    assert all(r["alert"] and r["threshold"] == t for r in recs)


def test_refusals(setup, tmp_path, capsys) -> None:
    d = setup["dir"]
    m = tmp_path / "model.sln"
    m.write_bytes(setup["data"])
    argv = ["detect-net", "--pcap", str(d / "head.pcap"), "--model", str(m)]
    assert sln_main(argv) == 4                                   # no sidecar
    assert "model.ids.json is missing" in capsys.readouterr().err
    side = json.loads(N.sidecar_path(d / "model.sln").read_text())
    N.sidecar_path(m).write_text(json.dumps(side | {"model_sha256": "0" * 64}))
    assert sln_main(argv) == 4
    assert "another model file" in capsys.readouterr().err
    N.sidecar_path(m).write_text(json.dumps(side))
    assert sln_main(argv + ["--state", "pair"]) == 2
    assert "link" in capsys.readouterr().err
    assert sln_main(argv + ["--backend", "torch"]) == 2
    assert "--backend auto or c" in capsys.readouterr().err
    m.write_bytes(setup["data"][:100])
    assert sln_main(argv) == 4
    assert "not an int8 event model" in capsys.readouterr().err
    assert sln_main(["detect-net", "--pcap", str(d / "head.pcap"), "--model", str(tmp_path / "none.sln")]) == 4


def test_calibrate_command_writes_the_same_sidecar(setup, tmp_path) -> None:
    """`calibrate` on an exported model: the C scores of the validation packets streamed from packet 0."""
    from sln.checkpoint import save_checkpoint
    cap = setup["cap"]
    torch.manual_seed(0)
    cfg = get_config("sln-ids-small", n_neurons=16, active_frac=0.125, density_in=0.5, density_rec=0.5)
    model = SLN(cfg).eval()
    ck = tmp_path / "checkpoint.safetensors"
    save_checkpoint(ck, model, None, {"ids": setup["spec"].to_dict()})
    m = tmp_path / "model.sln"
    m.write_bytes(setup["data"])
    s = N.calibrate(m, ck, cap=cap)
    assert s.threshold_sq == setup["side"].threshold_sq and s.model_sha256 == setup["side"].model_sha256
    assert N.sidecar_path(m).is_file()

"""The domain detector's deployable path: int8 token classifier (model_kind 2), the C runtime's
sln_classify_tokens == the Python integer reference (intspec_seq.token_forward) bit for bit, the file
round trip, refused inputs, `sln detect-url --model model.sln`, the energy counts, and the Cortex-M4
firmware under QEMU. A tiny randomly initialised sln-domains-tiny (N = 48) on synthetic and
hand-written hosts keeps this fast; the real-data figures are in docs/SECURITY_APPS.md."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from sln import fmt, fmt_c, intspec, intspec_seq, quant
from sln.checkpoint import CheckpointError
from sln.config import get_config
from sln.fmt import ERROR_CODES, HEADER_OFFSETS
from sln.model import SLN
from sln.security import detect_cli
from sln.security.detect import DetectorSpec, ids_and_lengths
from sln.security.detect_int8 import (
    TokenEngine,
    char_cnn_ops,
    int8_scores,
    load_int8_detector,
    write_token_file,
)
from sln.security.domains import VOCAB_SIZE

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
MAX_LEN = 48
HOSTS = ["a", "example.com", "login-metamask.io.secure-wallet.xyz", "xn--80ak6aa92e.com", "www.bbc.co.uk",
         "x" * 60, "0123456789.net", "_dmarc.mail-01.example.org"]
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    L = rng.integers(1, MAX_LEN + 1, n)
    L[0], L[1] = 1, MAX_LEN                            # the two ends of the allowed lengths
    ids = rng.integers(0, VOCAB_SIZE, (n, MAX_LEN))    # id 0 (pad) is a valid token too
    ids[np.arange(MAX_LEN)[None] >= L[:, None]] = 0
    return ids, L


@pytest.fixture(scope="module")
def tiny() -> tuple[SLN, intspec.QModel, bytes]:
    torch.manual_seed(0)
    model = SLN(get_config("sln-domains-tiny", n_neurons=48)).eval()
    ids, L = _synthetic(400, 1)
    qm = quant.quantize(model, ids, token_lengths=L)
    data = fmt.token_to_bytes(qm)
    return model, fmt.token_from_bytes(data), data


def test_c_runtime_equals_integer_reference(tiny) -> None:
    _, qm, data = tiny
    eng = TokenEngine(data)
    ids, L = _synthetic(300, 2)
    ref = intspec_seq.token_forward(qm, ids, L)
    assert np.array_equal(eng.logits(ids, L), ref)
    hid, hL = (a.numpy() for a in ids_and_lengths(HOSTS, MAX_LEN, True))
    assert hL.tolist()[:2] == [1, 11] and hL.max() == MAX_LEN             # "x" * 60 keeps its last 48
    assert np.array_equal(eng.score_ids(hid, hL), int8_scores(qm, hid, hL))
    # batching does not change a result: one sequence alone == the same in a batch of 300
    assert np.array_equal(intspec_seq.token_forward(qm, ids[5:6], L[5:6]), ref[5:6])
    # the logits vary with the input (not a constant model)
    assert len({tuple(r) for r in ref.tolist()}) > 250


def test_integer_model_tracks_the_float_model(tiny) -> None:
    model, qm, _ = tiny
    ids, L = _synthetic(300, 3)
    with torch.no_grad():
        f = model.run(torch.from_numpy(ids), None, torch.from_numpy(L)).logits.double().numpy()
    q = intspec_seq.token_forward(qm, ids, L) / 2.0 ** intspec.LOGIT_FRAC
    fs, qs = f[:, 1] - f[:, 0], q[:, 1] - q[:, 0]
    assert np.corrcoef(fs, qs)[0, 1] > 0.9
    assert np.median(np.abs(fs - qs)) < 0.1 * fs.std()


def test_file_round_trip_and_kind(tiny) -> None:
    _, qm, data = tiny
    h = fmt.header_of(data)
    assert h["model_kind"] == fmt.MODEL_KINDS["token_classifier"] == 2 and h["n_steps"] == MAX_LEN
    assert fmt.token_to_bytes(fmt.token_from_bytes(data)) == data
    # M_out holds no 1/T (token_readout divides by each length): M_c = s_c 2^-H 2^16, s_c = max |w_c| / 127
    w = tiny[0].readout.weight.detach().double().numpy()
    M = qm.out_mult / 2.0 ** qm.out_shift
    np.testing.assert_allclose(M, np.abs(w).max(1) / 127 * 2.0 ** (16 - qm.layers[-1].h_frac), rtol=1e-6)
    with pytest.raises(ValueError, match="model_kind"):
        fmt.lm_from_bytes(data)
    as_lm = bytearray(data)
    as_lm[HEADER_OFFSETS["model_kind"]:HEADER_OFFSETS["model_kind"] + 4] = (1).to_bytes(4, "little")
    with pytest.raises(ValueError, match="model_kind"):
        fmt.token_from_bytes(bytes(as_lm))
    with pytest.raises(ValueError, match="C runtime: SLN_ERR_UNSUPPORTED"):
        TokenEngine(bytes(as_lm))                               # the token loader refuses another kind
    # and the classifier loader (sln_run's) refuses a token-classifier file
    eng = TokenEngine(data)
    buf = np.frombuffer(data, np.uint8).copy()
    m = np.zeros_like(eng._model)
    rc = eng._lib.sln_load(m.ctypes.data, buf.ctypes.data, len(data), fmt.MODEL_KINDS["classifier"])
    assert rc == ERROR_CODES["SLN_ERR_UNSUPPORTED"]


def test_refused_inputs_give_a_clear_status(tiny) -> None:
    _, qm, data = tiny
    eng = TokenEngine(data)
    arg = ERROR_CODES["SLN_ERR_ARG"]
    ok, lg = eng.status(np.array([5, 6], np.uint16))
    assert ok == 0 and lg.any()
    assert eng.status(np.array([VOCAB_SIZE], np.uint16))[0] == arg          # token out of range
    assert eng.status(np.array([3], np.uint16), n=0)[0] == arg              # length 0
    assert eng.status(np.ones(MAX_LEN + 1, np.uint16))[0] == arg            # longer than n_steps
    assert eng.status(np.ones(MAX_LEN, np.uint16))[0] == 0
    with pytest.raises(ValueError, match="vocabulary"):
        intspec_seq.token_forward(qm, np.array([[VOCAB_SIZE]]), np.array([1]))
    with pytest.raises(ValueError, match="length"):
        intspec_seq.token_forward(qm, np.array([[3]]), np.array([0]))
    with pytest.raises(ValueError, match="C runtime: SLN_ERR_ARG"):
        eng.logits(np.array([[1, 2]]), np.array([0]))


def test_detect_url_on_the_c_engine(tiny, tmp_path: Path, monkeypatch) -> None:
    _, qm, data = tiny
    (tmp_path / "model.sln").write_bytes(data)
    (tmp_path / "detector.json").write_text(json.dumps(DetectorSpec("domains", MAX_LEN, True, 0.05, 1e-3).to_dict()))
    lines = b"Example.COM.\n\nhttps://www.bbc.co.uk/news\n\xff\xfe\n"
    (tmp_path / "in.txt").write_bytes(lines)
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert detect_cli.main(["--model", str(tmp_path / "model.sln"), str(tmp_path / "in.txt"), "--quiet"]) == 0
    recs = [json.loads(s) for s in buf.getvalue().splitlines()]
    assert [r.get("normalized") for r in recs] == ["example.com", None, "www.bbc.co.uk", None]
    assert "error" in recs[1] and "error" in recs[3]
    ids, L = (a.numpy() for a in ids_and_lengths(["example.com", "www.bbc.co.uk"], MAX_LEN, True))
    ref = int8_scores(qm, ids, L)
    assert [recs[0]["score"], recs[2]["score"]] == [round(float(s), 6) for s in ref]
    assert recs[0]["alert"] == (ref[0] > 0.05) and recs[0]["threshold"] == 0.05
    (tmp_path / "detector.json").unlink()
    with pytest.raises(CheckpointError, match="detector.json"):
        load_int8_detector(tmp_path / "model.sln")


def test_char_cnn_counts_by_hand() -> None:
    ops, fp = char_cnn_ops(np.array([1]))
    # one character: each conv sees 1 tap (32 in x 64 out), the head 192 x 64 + 64
    assert ops["macs"] == 3 * 32 * 64 + 192 * 64 + 64
    ops2, _ = char_cnn_ops(np.array([10]))
    # 10 characters: width w has 10 w - 2 (1 + 2 + ... + w//2) in-range taps per filter pair
    taps = sum(10 * w - (w // 2) * (w // 2 + 1) for w in (3, 5, 7))
    assert ops2["macs"] == taps * 32 * 64 + 192 * 64 + 64
    assert fp["matrix_bytes"] == 32 * 64 * 15 + 192 * 64 + 64 + VOCAB_SIZE * 32


def test_qemu_cortex_m4_is_bit_exact(tiny, tmp_path: Path) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        if os.environ.get("SLN_REQUIRE_MCU"):
            pytest.fail(f"SLN_REQUIRE_MCU is set but {missing} are not installed")
        pytest.skip(f"ARM toolchain / QEMU not installed: {missing}")
    _, qm, data = tiny
    (tmp_path / "sln_model_data.c").write_text(fmt_c.to_c_array(data))
    (tmp_path / "sln_model_data.h").write_text(fmt_c.c_array_header(qm, fmt.workspace_bytes(qm)))
    ids, L = _synthetic(40, 4)
    write_token_file(tmp_path / "tokens.bin", ids, L)
    r = subprocess.run(["make", "-C", str(RUNTIME), f"BUILD={tmp_path / 'build'}", f"MODEL_DIR={tmp_path}",
                        f"TOKENS={tmp_path / 'tokens.bin'}", "N=40", "run-mcu-tokens"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [[int(v) for v in s.split()] for s in r.stdout.splitlines() if re.fullmatch(r"\d+( -?\d+){2}", s)]
    ref = intspec_seq.token_forward(qm, ids, L)
    assert rows == [[i, *map(int, x)] for i, x in enumerate(ref.tolist())]
    m = re.search(r"insn_ticks (\d+) seqs 40 tokens (\d+)", r.stdout)
    assert int(m.group(2)) == int(L.sum())
    per_tok = 40 * int(m.group(1)) / int(m.group(2))
    assert 1e3 < per_tok < 1e6, per_tok
    assert abs(int(re.search(r"calib 200000 insn ticks (\d+)", r.stdout).group(1)) - 5000) <= 1
    elf = tmp_path / "build" / "mcu_tokens" / "firmware_tokens.elf"
    sz = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sec = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", sz, re.M)}
    assert sec[".rodata"] >= len(data)
    assert sec.get(".data", 0) + sec[".bss"] <= 8 * 1024                  # workspace + buffers, no heap

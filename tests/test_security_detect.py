"""The SLN domain detector (sln/security/detect.py) and `sln detect-url` (sln/security/detect_cli.py).

The CLI tests use an untrained model saved with a known threshold (no data needed); the trainer test
uses a small slice of the real lists (skips without them, fails under CI=true)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import skip_or_fail_in_ci

from sln.checkpoint import save_checkpoint
from sln.config import get_config
from sln.model import SLN
from sln.security import detect_cli
from sln.security.detect import DetectorSpec, ids_and_lengths, load_detector, score_ids
from sln.security.domains import VOCAB_SIZE

ROOT = Path(__file__).resolve().parent.parent
GARBAGE = [b"", b"\xff\xfe\x00\x01binary", "x" * 100_000, b"xn--zz.com", b"  \t ", b"a..b.com", b"1.2.3.4"]
GOOD = [b"example.com", "bücher.de".encode(), b"HTTPS://user@Login.Example.ORG:8443/x?y", b"xn--bcher-kva.de."]


def _model(n: int = 32) -> SLN:
    torch.manual_seed(0)
    return SLN(get_config("sln-domains-small", n_neurons=n)).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("det") / "checkpoint.safetensors"
    spec = DetectorSpec("domains", 48, True, threshold=0.0, target_fpr=1e-3)
    save_checkpoint(p, _model(), None, {"detector": spec.to_dict()})
    return p


def _lines(items: list) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else x.encode() for x in items) + b"\n"


def test_classify_model_takes_token_ids_and_padding_is_exact() -> None:
    """Token ids (B, T) into a classify SLN; right padding via lengths gives the unpadded result."""
    m = _model()
    assert m.cfg.input_size == VOCAB_SIZE
    ids, L = ids_and_lengths(["evil.example", "a.io"], 48, True)
    both = m.run(ids, None, L).logits
    alone = m.run(ids[1:, :int(L[1])], None, None).logits
    torch.testing.assert_close(both[1:], alone)
    # the batched, length-sorted scorer agrees with one-at-a-time scoring
    s = score_ids(m, ids, L, batch=1)
    assert np.allclose(s, score_ids(m, ids, L, batch=2))
    assert np.allclose(s[1], float((alone[0, 1] - alone[0, 0]).detach()), atol=1e-5)


def test_garbage_and_good_lines_in_process(ckpt: Path) -> None:
    model, spec = load_detector(ckpt)
    out = io.StringIO()
    counts = detect_cli.detect_stream(detect_cli.Detector(model, spec), io.BytesIO(_lines(GARBAGE + GOOD)), out,
                                      batch=3)
    recs = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(recs) == len(GARBAGE) + len(GOOD) == counts["lines"]
    bad, good = recs[:len(GARBAGE)], recs[len(GARBAGE):]
    assert all("error" in r and "score" not in r for r in bad), bad
    assert bad[0]["error"] == "empty line" and "UTF-8" in bad[1]["error"] and "100000 bytes" in bad[2]["error"]
    assert "punycode" in bad[3]["error"] and "IP address" in bad[6]["error"]
    assert len(bad[2]["input"]) < 300                              # a 100 kB line is not echoed back whole
    assert [r["normalized"] for r in good] == ["example.com", "xn--bcher-kva.de", "login.example.org",
                                                "xn--bcher-kva.de"]
    for r in good:
        assert set(r) == {"input", "normalized", "score", "alert", "threshold"}
        assert r["alert"] == (r["score"] > 0.0) and r["threshold"] == 0.0
    assert good[1]["score"] == good[3]["score"]                    # the Unicode and ACE forms score alike


def test_threshold_is_the_stored_one_and_can_be_overridden(ckpt: Path) -> None:
    model, spec = load_detector(ckpt)
    assert spec.threshold == 0.0 and spec.target_fpr == 1e-3
    for thr, want in ((-1e9, True), (1e9, False)):
        out = io.StringIO()
        detect_cli.detect_stream(detect_cli.Detector(model, spec, thr), io.BytesIO(_lines(GOOD)), out)
        assert all(json.loads(x)["alert"] is want for x in out.getvalue().splitlines())


def test_overlong_line_split_across_reads_is_skipped_not_stored() -> None:
    data = b"a" * (3 * detect_cli.CHUNK + 7) + b"\nok.com\n" + b"b" * 20_000     # last one without a newline
    got = [(r[:3], n, ready) for r, n, ready in detect_cli.read_lines(io.BytesIO(data)) if ready]
    assert got == [(b"aaa", -1, True), (b"", 3 * detect_cli.CHUNK + 7, True), (b"ok.", 6, True),
                   (b"bbb", -1, True), (b"", 20_000, True)]


def _cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sln.cli", "detect-url", *args], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=120)


def test_cli_jsonl_and_tsv_via_subprocess(ckpt: Path, tmp_path: Path) -> None:
    r = _cli("--model", str(ckpt), stdin=_lines(GARBAGE + GOOD))
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(recs) == len(GARBAGE) + len(GOOD) and sum("error" in x for x in recs) == len(GARBAGE)
    assert b"lines/s" in r.stderr and b"Traceback" not in r.stderr
    f = tmp_path / "in.txt"
    f.write_bytes(_lines(GARBAGE + GOOD))
    t = _cli("--model", str(ckpt), "--format", "tsv", "--quiet", str(f))
    assert t.returncode == 0 and t.stderr == b"", t.stderr
    rows = [ln.split("\t") for ln in t.stdout.decode().splitlines()]
    assert rows[0] == ["input", "normalized", "score", "alert", "threshold", "error"]
    assert all(len(x) == 6 for x in rows) and len(rows) == 1 + len(GARBAGE) + len(GOOD)
    assert "\\x00" in rows[2][0] and rows[2][5].startswith("not UTF-8")       # control bytes escaped
    assert rows[-1][1] == "xn--bcher-kva.de" and rows[-1][3] in ("true", "false") and rows[-1][5] == ""


@pytest.mark.parametrize("args, code, words", [
    (["--model", "/nonexistent/ck.safetensors"], 4, "no checkpoint at"),
    (["--batch", "0"], 2, "--batch"),
])
def test_cli_errors_have_exit_codes(args: list[str], code: int, words: str, tmp_path: Path) -> None:
    r = _cli(*args, stdin=b"example.com\n")
    assert r.returncode == code and words in r.stderr.decode() and b"Traceback" not in r.stderr, r.stderr


def test_a_checkpoint_without_detector_state_is_refused(tmp_path: Path, ckpt: Path) -> None:
    p = tmp_path / "plain.safetensors"
    save_checkpoint(p, _model(), None, {})
    r = _cli("--model", str(p), stdin=b"example.com\n")
    assert r.returncode == 4 and b"no detector" in r.stderr, r.stderr
    r = _cli("--model", str(ckpt), str(tmp_path / "missing.txt"))
    assert r.returncode == 2 and b"no input file" in r.stderr, r.stderr


def test_trainer_on_a_tiny_real_slice_stores_and_uses_its_threshold(tmp_path: Path) -> None:
    from sln.fetch import DataError
    from sln.security.detect import train_detector
    from sln.train import RunOptions
    cfg = get_config("sln-domains-small", n_neurons=32, epochs=2, time_budget_s=0.0, batch_size=64)
    out = tmp_path / "run"
    try:
        m = train_detector(cfg, RunOptions(dataset="domains", out=out, limit_train=1500, limit_test=600,
                                           progress=False, threads=1))
    except DataError as e:
        skip_or_fail_in_ci(f"security lists not available: {e}")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["row"]["threshold"] == m["detector"]["threshold"]
    assert len(saved["history"]) == 2 and "val_roc_auc" in saved["history"][-1]
    t = saved["row"]["test"]
    assert {"roc_auc", "pr_auc", "tpr@1e-3", "tpr@1e-4", "fpr@thr"} <= set(t) and "temporal" in saved["row"]
    assert 0.0 < saved["active_fraction"] <= cfg.k / cfg.n_neurons + 1e-6
    model, spec = load_detector(out / "checkpoint.safetensors")
    assert spec.threshold == m["detector"]["threshold"] and spec.dataset == "domains"
    r = _cli("--model", str(out / "checkpoint.safetensors"), "--quiet", stdin=b"example.com\n")
    assert json.loads(r.stdout)["threshold"] == spec.threshold

"""The deployable domain detector: int8 export, the C runtime path, and its measurements.

    python -m sln.security.detect_int8 export --checkpoint RUN/checkpoint.safetensors --out DIR
    python -m sln.security.detect_int8 bench --model DIR/model.sln            # host C engine, energy
    sln detect-url --model DIR/model.sln hosts.txt                            # scores on the C engine

The trained detector (sln/security/detect.py: characters as one-hot events, the readout of the mean of
the top layer over the valid steps) is quantised by `sln.quant.quantize(..., token_lengths=...)` into the
integer model `intspec_seq.token_forward` and written as a `.sln` file of model_kind 2 (token classifier,
`fmt.token_to_bytes`; n_steps = the most characters a host keeps, 48). The C runtime classifies one
host with `sln_classify_tokens` (runtime/sln.c), bit for bit the Python integer reference. Beside
model.sln the export writes detector.json (the DetectorSpec with the threshold re-calibrated on the
int8 scores of the benign validation hosts: score = (logit1 - logit0) / 2^16), sln_model_data.[ch]
for the Cortex-M4 firmware (runtime/mcu/firmware_tokens.c) and export_report.json (float and int8
test metrics, same metrics module as the baselines).

Energy (`energy_rows`): the project's account (sln.energy via sln.bench.measure.energy, the pricing
used for the int8 image models): the SLN from the integer reference's own counts on the test hosts
(valid steps only); the char-CNN baseline (sln/security/baselines.py `_CNN`) counted analytically
under the same rules (effective MACs: taps on padding are zero and skipped; every weight read once
per inference; requantisation 1 mul + 2 adds per output; ReLU / max compares), priced at int8 and
at fp32.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import engine as host_engine
from .. import fmt, fmt_c, intspec, intspec_seq, quant
from ..bench.int8 import _int8_ops, sln_int8_footprint
from ..bench.measure import energy, weight_footprint
from ..checkpoint import CheckpointError
from ..energy import get_profile
from . import metrics
from .detect import VIEWS, DetectorSpec, _limit, _splits, ids_and_lengths, load_detector, score_ids
from .domains import VOCAB, VOCAB_SIZE

PJ_PER_NJ = 1e3


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class TokenEngine:
    """An int8 token-classifier .sln on the host C runtime (`sln_classify_tokens`, via ctypes)."""

    def __init__(self, data: bytes) -> None:
        lib = host_engine.load_host_library()      # sets the engine's sln_model struct size
        vp = ctypes.c_void_p
        lib.sln_classify_tokens.argtypes = [vp, vp, ctypes.c_uint32, vp, ctypes.c_size_t, vp]
        lib.sln_classify_tokens.restype = ctypes.c_int
        self._lib = lib
        self._data = np.frombuffer(data, np.uint8).copy()
        self._model = np.zeros((host_engine._MODEL_STRUCT_BYTES + 7) // 8, np.uint64)
        self._m = _ptr(self._model)
        self._check(lib.sln_load(self._m, _ptr(self._data), len(data), fmt.MODEL_KINDS["token_classifier"]))
        n = ctypes.c_size_t(0)
        self._check(lib.sln_workspace_size(self._m, ctypes.byref(n)))
        self.workspace_bytes = int(n.value)
        self._ws = np.zeros((self.workspace_bytes + 3) // 4, np.uint32)
        h = fmt.header_of(data)
        self.n_classes, self.max_tokens, self.input_size = h["n_classes"], h["n_steps"], h["input_size"]

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise ValueError(f"C runtime: {self._lib.sln_status_name(rc).decode()}")

    def status(self, tokens: np.ndarray, n: int | None = None) -> tuple[int, np.ndarray]:
        """-> (sln_status, logits (C,) int32) of one sequence (no exception: for tests of refusals)."""
        t = np.ascontiguousarray(tokens, np.uint16)
        out = np.zeros(self.n_classes, np.int32)
        rc = self._lib.sln_classify_tokens(self._m, _ptr(t), len(t) if n is None else n, _ptr(self._ws),
                                           self._ws.nbytes, _ptr(out))
        return int(rc), out

    def logits(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """ids (B, T) token ids, lengths (B,) -> logits (B, C) int64 (Q16), one C call per sequence."""
        ids16 = np.ascontiguousarray(ids, np.uint16)
        out = np.zeros((len(ids16), self.n_classes), np.int32)
        f, m, ws, wsn = self._lib.sln_classify_tokens, self._m, _ptr(self._ws), self._ws.nbytes
        base, row, ob, orow = _ptr(ids16), ids16.strides[0], _ptr(out), out.strides[0]
        for i, n in enumerate(np.asarray(lengths).tolist()):
            rc = f(m, base + i * row, n, ws, wsn, ob + i * orow)
            if rc:
                self._check(rc)
        return out.astype(np.int64)

    def score_ids(self, ids: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray) -> np.ndarray:
        """The detector's score (logit1 - logit0) in real units, as detect.score_ids."""
        lg = self.logits(np.asarray(ids), np.asarray(lengths))
        return (lg[:, 1] - lg[:, 0]) / 2.0 ** intspec.LOGIT_FRAC


def int8_scores(qm: intspec.QModel, ids: np.ndarray, lengths: np.ndarray, chunk: int = 4096,
                counter: intspec.IntCounts | None = None) -> np.ndarray:
    """Scores of the Python integer reference (intspec_seq.token_forward), `chunk` sequences at a time."""
    out = []
    for s in range(0, len(ids), chunk):
        lg = intspec_seq.token_forward(qm, ids[s:s + chunk], lengths[s:s + chunk], counter)
        out.append((lg[:, 1] - lg[:, 0]) / 2.0 ** intspec.LOGIT_FRAC)
    return np.concatenate(out) if out else np.zeros(0)


def load_int8_detector(path: str | Path) -> tuple[TokenEngine, DetectorSpec]:
    """model.sln (+ detector.json beside it) -> (C engine, spec); ValueError if either is wrong."""
    path = Path(path)
    side = path.with_name("detector.json")
    if not path.is_file() or not side.is_file():
        raise CheckpointError(f"{path} and {side} are needed (python -m sln.security.detect_int8 export)")
    try:
        spec = DetectorSpec(**json.loads(side.read_text()))
        eng = TokenEngine(path.read_bytes())
    except (ValueError, TypeError) as e:             # not JSON / other fields / the C loader refused the file
        raise CheckpointError(f"{path}: not an int8 domain detector ({e})") from e
    if spec.vocab != VOCAB or eng.input_size != VOCAB_SIZE or eng.max_tokens < spec.max_len:
        raise CheckpointError(f"{path}: another character vocabulary or a shorter sequence limit than this sln's")
    return eng, spec


def export_detector(checkpoint: str | Path, out: str | Path, calib: int = 2000, data_dir: Path | None = None,
                    limit_test: int | None = None) -> dict[str, Any]:
    """Quantise a trained detector checkpoint, write model.sln, detector.json, sln_model_data.[ch],
    export_report.json; evaluate float and int8 on the grouped test split (and the temporal set)."""
    model, spec = load_detector(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task, hostname_only, max_len, tail = VIEWS[spec.dataset]
    s = _splits(task, hostname_only, model.cfg.seed, data_dir)
    cal = _limit(s.train, calib, model.cfg.seed)
    cids, cL = ids_and_lengths([x.text for x in cal], max_len, tail)
    qm = quant.quantize(model, cids.numpy(), token_lengths=cL.numpy())
    data = fmt.token_to_bytes(qm)
    qm = fmt.token_from_bytes(data)                       # what the runtime reads
    ws = fmt.workspace_bytes(qm)
    (out / "model.sln").write_bytes(data)
    (out / "sln_model_data.c").write_text(fmt_c.to_c_array(data))
    (out / "sln_model_data.h").write_text(fmt_c.c_array_header(qm, ws))

    def both(samples: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, L = ids_and_lengths([x.text for x in samples], max_len, tail)
        y = np.array([x.label for x in samples], np.int64)
        return y, score_ids(model, ids, L), int8_scores(qm, ids.numpy(), L.numpy())

    vy, vf, vq = both(_limit(s.val, limit_test, model.cfg.seed))
    thr_q = metrics.calibrate_threshold(vq[vy == 0], spec.target_fpr)
    spec_q = DetectorSpec(spec.dataset, max_len, tail, thr_q, spec.target_fpr)
    (out / "detector.json").write_text(json.dumps(spec_q.to_dict(), indent=1))
    ty, tf, tq = both(_limit(s.test, limit_test, model.cfg.seed))
    rep: dict[str, Any] = {
        "checkpoint": str(checkpoint), "model": model.cfg.name, "model_bytes": len(data),
        "format_version": fmt.header_of(data)["version"], "workspace_bytes": ws, "calibration_hosts": len(cal),
        "threshold_float": spec.threshold, "threshold_int8": thr_q,
        "test_float": metrics.report(ty, tf, spec.threshold), "test_int8": metrics.report(ty, tq, thr_q),
        "test_score_max_abs_diff": float(np.abs(tf - tq).max(initial=0.0)),
        "test_alert_agreement": float(((tf > spec.threshold) == (tq > thr_q)).mean()) if len(ty) else 1.0,
        "quantiser": qm.report,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if s.temporal and limit_test is None:
        from .domains import Splits, temporal_eval
        tm = temporal_eval(Splits(s.task, [], [], s.test, s.temporal))
        my, mf, mq = both(tm)
        rep["temporal_float"] = metrics.report(my, mf, spec.threshold)
        rep["temporal_int8"] = metrics.report(my, mq, thr_q)
    (out / "export_report.json").write_text(json.dumps(rep, indent=1))
    return rep


# --- energy: the SLN's integer counts and the char-CNN under the same rules ------------------------
def sln_energy(qm: intspec.QModel, ids: np.ndarray, lengths: np.ndarray) -> dict[str, Any]:
    """Estimated energy per host of the int8 SLN from intspec's counts over these hosts."""
    cnt = intspec.IntCounts()
    int8_scores(qm, ids, lengths, counter=cnt)
    n = float(len(ids))
    allc = {k: sum(cnt.terms[t][k] for t in intspec.COUNT_TERMS) for k in intspec.COUNTERS}
    ops = _int8_ops(allc, n)
    fp = sln_int8_footprint(qm)
    e = energy(ops, fp["matrix_bytes"], fp["act_bytes"], get_profile(), "int8", fp["param_bytes"])
    return {"nJ": e["total"] / PJ_PER_NJ, "compute_nJ": e["compute"] / PJ_PER_NJ, "memory_nJ": e["memory"] / PJ_PER_NJ,
            "macs": ops["macs"], "mean_length": float(np.mean(lengths)), "footprint": fp,
            "levels": [e["weight_level"], e["param_level"], e["act_level"]]}


def char_cnn_ops(lengths: np.ndarray, emb: int = 32, filters: int = 64, widths: tuple[int, ...] = (3, 5, 7),
                 hidden: int = 64) -> tuple[dict[str, float], dict[str, float]]:
    """Per-host operations (mean over `lengths`) and footprints of sln.security.baselines._CNN at int8:
    the embedding gather (emb bytes per character), the convolutions' effective MACs (output positions
    0..L-1, taps inside the host only), ReLU + running max (2 compares per conv output), the head
    (Linear 3F->H, ReLU, Linear H->1); requantisation 1 mul + 2 adds per conv / Linear output; every
    weight read once per inference (1 byte), biases and per-channel multipliers/shifts 4 bytes."""
    L = np.asarray(lengths, np.float64)
    macs = np.zeros_like(L)
    for w in widths:
        r = w // 2
        p = np.arange(int(L.max()))[None, :]
        taps = (np.minimum(p + r, L[:, None] - 1) - np.maximum(p - r, 0) + 1) * (p < L[:, None])
        macs += taps.sum(1) * emb * filters
    conv_out = L * filters * len(widths)
    head_macs = 3 * filters * hidden + hidden
    w8 = sum(emb * filters * w for w in widths) + 3 * filters * hidden + hidden + VOCAB_SIZE * emb
    n_vec = filters * len(widths) + hidden + 1                       # biases
    scales = 2 * (filters * len(widths) + hidden + 1)                # per-channel mult + shift
    rq = conv_out + hidden + 1
    ops = {"macs": float((macs + head_macs).mean()),
           "adds32": float((2 * rq).mean()), "muls32": float(rq.mean()),
           "cmps32": float((2 * conv_out).mean() + hidden),
           "weight_bytes": float((w8 - VOCAB_SIZE * emb) + (L * emb).mean()),
           "param_bytes": 4.0 * (n_vec + scales),
           "act_bytes": float((L * emb + 2 * conv_out + 3 * filters + hidden).mean())}
    fp = {"matrix_bytes": float(weight_footprint(w8, 0)), "param_bytes": float(weight_footprint(0, n_vec + scales)),
          "act_bytes": float(int(L.max()) * (emb + filters * len(widths)))}
    return ops, fp


def cnn_energy(lengths: np.ndarray) -> dict[str, Any]:
    """The char-CNN's estimated energy per host at int8 (the SLN's rules) and at fp32 (as benchmarked)."""
    ops, fp = char_cnn_ops(lengths)
    prof = get_profile()
    e8 = energy(ops, fp["matrix_bytes"], fp["act_bytes"], prof, "int8", fp["param_bytes"])
    ops32 = dict(ops, weight_bytes=ops["weight_bytes"] * 4, act_bytes=ops["act_bytes"] * 4,
                 adds=ops["adds32"], muls=ops["muls32"], cmps=ops["cmps32"], adds32=0.0, muls32=0.0, cmps32=0.0)
    e32 = energy(ops32, fp["matrix_bytes"] * 4, fp["act_bytes"] * 4, prof, "fp32", fp["param_bytes"])
    return {"int8_nJ": e8["total"] / PJ_PER_NJ, "fp32_nJ": e32["total"] / PJ_PER_NJ, "macs": ops["macs"]}


def bench(model_path: Path, data_dir: Path | None = None, n_latency: int = 200,
          limit_test: int | None = None) -> dict[str, Any]:
    """Host C engine on the grouped test hosts: domains/s (raw strings -> scores, encoding included,
    1 thread), batch-1 latency (median of n_latency), bit-exactness vs the integer reference, energy."""
    eng, spec = load_int8_detector(model_path)
    data = model_path.read_bytes()
    qm = fmt.token_from_bytes(data)
    task, hostname_only, _, _ = VIEWS[spec.dataset]
    s = _splits(task, hostname_only, 0, data_dir)
    test = _limit(s.test, limit_test, 0)
    texts, y = [x.text for x in test], np.array([x.label for x in test], np.int64)
    eng.score_ids(*ids_and_lengths(texts[:64], spec.max_len, spec.tail))        # warm-up
    t0 = time.perf_counter()
    sc = eng.score_ids(*ids_and_lengths(texts, spec.max_len, spec.tail))
    per_s = len(texts) / (time.perf_counter() - t0)
    lat = []
    for t in texts[:n_latency]:
        t1 = time.perf_counter()
        eng.score_ids(*ids_and_lengths([t], spec.max_len, spec.tail))
        lat.append(time.perf_counter() - t1)
    ids, L = (a.numpy() for a in ids_and_lengths(texts, spec.max_len, spec.tail))
    ref = np.concatenate([intspec_seq.token_forward(qm, ids[i:i + 4096], L[i:i + 4096])
                          for i in range(0, len(L), 4096)])
    exact = bool(np.array_equal(ref, eng.logits(ids, L)))            # every logit, C vs the integer reference
    return {"model": str(model_path), "model_bytes": len(data), "hosts": len(texts), "per_s": per_s,
            "latency_us": float(np.median(lat) * 1e6), "bit_exact": exact,
            "test": metrics.report(y, sc, spec.threshold), "sln_energy": sln_energy(qm, ids, L),
            "char_cnn_energy": cnn_energy(L),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, 1 thread, torch {torch.__version__}"}


def write_token_file(path: Path, ids: np.ndarray, lengths: np.ndarray) -> None:
    """The firmware's input: per host one byte L (1..255) then L token-id bytes."""
    buf = bytearray()
    for row, n in zip(ids, lengths, strict=True):
        buf.append(int(n))
        buf += bytes(int(v) for v in row[:n])
    path.write_bytes(bytes(buf))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.security.detect_int8", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="int8 .sln + detector.json from a detector checkpoint")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--calib", type=int, default=2000, help="training hosts for calibration")
    b = sub.add_parser("bench", help="host C engine throughput / latency / bit-exactness / energy")
    b.add_argument("--model", type=Path, required=True)
    b.add_argument("--json", type=Path, default=None, help="write the figures here")
    t = sub.add_parser("tokens", help="write N test hosts as the firmware's token file + the reference")
    t.add_argument("--model", type=Path, required=True)
    t.add_argument("--n", type=int, default=200)
    t.add_argument("--out", type=Path, required=True, help="folder: tokens.bin, reference.txt")
    for q in (e, b, t):
        q.add_argument("--data-dir", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "export":
        r = export_detector(a.checkpoint, a.out, a.calib, a.data_dir)
        print(json.dumps({k: r[k] for k in ("model_bytes", "threshold_int8", "test_float", "test_int8",
                                            "test_alert_agreement")}, indent=1))
    elif a.cmd == "bench":
        r = bench(a.model, a.data_dir)
        if a.json:
            a.json.write_text(json.dumps(r, indent=1))
        print(json.dumps(r, indent=1))
    else:
        _, spec = load_int8_detector(a.model)
        qm = fmt.token_from_bytes(a.model.read_bytes())
        task, hostname_only, _, _ = VIEWS[spec.dataset]
        test = _limit(_splits(task, hostname_only, 0, a.data_dir).test, a.n, 0)
        ids, L = (x.numpy() for x in ids_and_lengths([x.text for x in test], spec.max_len, spec.tail))
        a.out.mkdir(parents=True, exist_ok=True)
        write_token_file(a.out / "tokens.bin", ids, L)
        lg = intspec_seq.token_forward(qm, ids, L)
        (a.out / "reference.txt").write_text("".join(f"{i} {r[0]} {r[1]}\n" for i, r in enumerate(lg.tolist())))
        print(f"wrote {len(L)} hosts to {a.out}/tokens.bin and reference.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The unsupervised packet detector as an int8 event model: quantisation, the C runtime path, the firmware's stream.

    python -m sln.security.ids_int8 export --checkpoint RUN/checkpoint.safetensors --out DIR
    python -m sln.security.ids_int8 stream --model DIR/model.sln --n 600 --out DIR   # firmware input + reference

The float detector (sln/security/ids.py, mode "reconstruct") is quantised into the integer event model of
sln/intspec_events.py (model_kind 3): input = its scaled, clipped features as int16 (Q x_frac), dt rounded
to integer microseconds and mapped to one of 8 dt buckets (bucket 0: dt = 0; 7 log-spaced between the
0.1 % and 99.9 % quantiles of the benign training packets' nonzero dt, as scripts/ids_dt_buckets.py),
one gate table per bucket, the per-step readout and the residual weighted by the detector's residual
weights. Calibration (Q formats of every layer) runs the float model's own step over the benign training
prefix in stream order, with dt replaced by its bucket's centre (what the int8 model computes).
`export` writes model.sln, sln_model_data.[ch] (the firmware's model) and export_report.json: the
per-packet ROC-AUC / EER / TPR of the float detector (exact dt), of the float detector with bucketed dt,
and of the int8 reference (its threshold re-calibrated on the int8 scores of the benign validation
packets at the float detector's FPR), on the unsupervised split of the capture, and the int8 model's
estimated energy per packet (`event_energy`).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import struct
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import engine as host_engine
from .. import fmt, fmt_c, intspec_events
from .. import intspec as Q
from ..bench.int8 import _int8_ops, sln_int8_footprint
from ..bench.measure import energy, weight_footprint
from ..energy import get_profile
from ..model import SLN
from ..quant import _i32, _mults, _np, _per_channel, _rel_err, quantize_layers, record_range
from .fastpath import BlockScorer
from .ids import load_ids
from .ids_data import CLIP, IdsSpec, apply_scale, ids_report, load_capture, unsupervised_split
from .ids_int8_net import make_spec, write_spec
from .metrics import calibrate_threshold

E_FRAC = 8


def x_frac_for(clip: float = CLIP) -> int:
    """The largest XF with clip 2^XF < 2^15 (features are clipped to +-clip)."""
    return int(math.floor(math.log2(intspec_events.X_SAT / clip)))


def dt_range(dt_s: np.ndarray) -> tuple[float, float]:
    """0.1 % / 99.9 % quantiles of the nonzero dt (seconds), the bucket range."""
    nz = np.asarray(dt_s, np.float64)
    nz = nz[nz > 0]
    return float(np.quantile(nz, 0.001)), float(np.quantile(nz, 0.999))


def bucket_dt(edges: np.ndarray, centres: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
    """dt (seconds) -> its bucket's centre (seconds), the float model's view of the int8 dt."""
    return centres[intspec_events.bucket_of(edges, intspec_events.dt_to_us(dt_s))]


@torch.no_grad()
def quantize_events(model: SLN, spec: IdsSpec, x_cal: np.ndarray, dt_cal_s: np.ndarray, lo_s: float, hi_s: float
                    ) -> intspec_events.QEvents:
    """Post-training quantisation of a reconstruction detector. x_cal raw features (T, D) and dt_cal_s
    (T,) seconds of a contiguous benign stretch (calibration, in stream order)."""
    cfg = model.cfg
    model.eval()
    if spec.mode != "reconstruct" or spec.resid_weight is None:
        raise ValueError("only the unsupervised (reconstruction) detector has an int8 event model")
    N, k, D = cfg.n_neurons, cfg.k, cfg.input_size
    Q.check_limits(D, cfg.n_classes, N, cfg.n_layers, k, 1)
    xf = x_frac_for(spec.clip)
    edges, centres = intspec_events.bucket_edges(lo_s, hi_s)
    stats = [{"a_max": 0.0, "c_max": 0.0} for _ in model.cells]

    def observe(li: int, a: torch.Tensor) -> None:
        record_range(stats[li], model.cells[li], a)
    x = torch.from_numpy(apply_scale(x_cal, np.asarray(spec.scale, np.float32), spec.clip))
    dt = torch.from_numpy((bucket_dt(edges, centres, dt_cal_s) * spec.dt_scale).astype(np.float32))
    state = model.init_state(1)
    for t in range(len(x)):
        _, state, _ = model.step(x[t:t + 1], state, dt[t:t + 1], observe=observe)
    layers, report, in_scale = quantize_layers(model, stats, 2.0 ** -xf)
    # one gate table per dt bucket (its centre), per layer: what the int8 step of an event model selects
    luts = [np.stack([Q.alpha_lut(cell.lambda_min, float(c) * spec.dt_scale) for c in centres])
            for cell in model.cells]
    w_out_q, s_out = _per_channel(model.readout.weight)
    out_mult, out_shift = _mults(s_out * in_scale * 2.0 ** Q.LOGIT_FRAC)
    report["w_out_rel_rms_error"] = _rel_err(model.readout.weight, w_out_q, s_out)
    report["calibration_packets"] = int(len(x))
    qm = Q.QModel(input_size=D, n_classes=cfg.n_classes, n_neurons=N, n_layers=cfg.n_layers, k=k, n_steps=1,
                  layers=layers, w_out=np.ascontiguousarray(w_out_q.T), out_mult=out_mult, out_shift=out_shift,
                  out_bias=_i32(np.round(_np(model.readout.bias) * 2.0 ** Q.LOGIT_FRAC)), report=report)
    rm, rs = _mults(np.asarray(spec.resid_weight, np.float64) * 2.0 ** (E_FRAC - Q.LOGIT_FRAC))
    return intspec_events.QEvents(qm=qm, gate_luts=np.stack(luts), dt_edges=edges, resid_mult=rm, resid_shift=rs,
                                  x_frac=xf, e_frac=E_FRAC)


def int_inputs(qe: intspec_events.QEvents, spec: IdsSpec, x: np.ndarray, dt_s: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Raw features (T, D) and dt seconds (T,) -> the integer model's x_q (T, D) and dt_us (T,)."""
    xs = apply_scale(x, np.asarray(spec.scale, np.float32), spec.clip)
    return intspec_events.quantize_x(xs, qe.x_frac), intspec_events.dt_to_us(dt_s)


class EventEngine:
    """An int8 event-model .sln on the host C runtime (`sln_events_step`, via ctypes)."""

    def __init__(self, data: bytes) -> None:
        lib = host_engine.load_host_library()
        vp = ctypes.c_void_p
        lib.sln_events_step.argtypes = [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32, vp, vp, vp]
        lib.sln_events_step.restype = ctypes.c_int
        self._lib = lib
        self._data = np.frombuffer(data, np.uint8).copy()
        self._model = np.zeros((host_engine._MODEL_STRUCT_BYTES + 7) // 8, np.uint64)
        self._m = self._model.ctypes.data
        self._check(lib.sln_load(self._m, self._data.ctypes.data, len(data), fmt.MODEL_KINDS["event_model"]))
        n = ctypes.c_size_t(0)
        self._check(lib.sln_state_size(self._m, ctypes.byref(n)))
        self.state_bytes = int(n.value)
        self._st = np.zeros((self.state_bytes + 3) // 4, np.uint32)
        h = fmt.header_of(data)
        self.n_classes, self.input_size = h["n_classes"], h["input_size"]

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise ValueError(f"C runtime: {self._lib.sln_status_name(rc).decode()}")

    def reset(self) -> None:
        self._st[:] = 0

    def status(self, x_q: np.ndarray, dt_us: int) -> tuple[int, np.ndarray, int, int]:
        """One step -> (sln_status, out (C,), S, bucket), no exception (for the refusal tests)."""
        x = np.ascontiguousarray(x_q, np.int16)
        out = np.zeros(self.n_classes, np.int32)
        s, b = ctypes.c_uint64(0), ctypes.c_uint32(0)
        rc = self._lib.sln_events_step(self._m, self._st.ctypes.data, self._st.nbytes, x.ctypes.data, int(dt_us),
                                       out.ctypes.data, ctypes.addressof(s), ctypes.addressof(b))
        return int(rc), out.astype(np.int64), int(s.value), int(b.value)

    def run(self, x_q: np.ndarray, dt_us: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A stream from the current state -> out (T, C), S (T,), bucket (T,) (intspec_events.run_stream)."""
        T = len(x_q)
        out = np.zeros((T, self.n_classes), np.int64)
        S, B = np.zeros(T, np.int64), np.zeros(T, np.int64)
        for t in range(T):
            rc, out[t], S[t], B[t] = self.status(x_q[t], int(dt_us[t]))
            self._check(rc)
        return out, S, B


def export_events(checkpoint: str | Path, out: str | Path, data_dir: str | Path = "tests/fixtures/ids",
                  limit: int | None = None) -> dict[str, Any]:
    """Quantise a reconstruction detector; write model.sln, sln_model_data.[ch], export_report.json.
    limit: score only the first `limit` packets of the capture (tests)."""
    model, spec = load_ids(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cap = load_capture(data_dir)
    split = unsupervised_split(cap)
    x, dt = cap.ev.x, cap.ev.dt.astype(np.float64)
    tb = split.train & (cap.y == 0)
    lo, hi = dt_range(dt[tb])
    qe = quantize_events(model, spec, x[tb], dt[tb], lo, hi)
    data = intspec_events.to_bytes(qe)
    qe = intspec_events.from_bytes(data)                  # what the runtime reads
    (out / "model.sln").write_bytes(data)
    (out / "sln_model_data.c").write_text(fmt_c.to_c_array(data))
    (out / "sln_model_data.h").write_text(fmt_c.c_array_header(qe.qm, fmt.state_bytes(qe.qm.n_layers, qe.qm.n_neurons,
                                                                                      qe.qm.k)))
    n = len(x) if limit is None else min(limit, len(x))
    xq, dus = int_inputs(qe, spec, x[:n], dt[:n])
    _, S, _ = intspec_events.run_stream(qe, xq, dus)
    s_int = intspec_events.real_score(qe, S)
    edges, centres = qe.dt_edges, intspec_events.bucket_edges(lo, hi)[1]
    s_float = BlockScorer(model, spec).scores(x[:n], dt[:n])
    s_fbuck = BlockScorer(model, spec).scores(x[:n], bucket_dt(edges, centres, dt[:n]))
    rep: dict[str, Any] = {"checkpoint": str(checkpoint), "model_bytes": len(data), "packets": n,
                           "dt_range_s": [lo, hi], "dt_edges_us": edges.tolist(), "x_frac": qe.x_frac,
                           "e_frac": qe.e_frac, "quantiser": qe.qm.report,
                           "score_rel_rms_diff_int8_vs_float_bucketed": float(
                               np.sqrt(np.mean((s_int - s_fbuck) ** 2) / max(np.mean(s_fbuck ** 2), 1e-30)))}
    if limit is None:
        vb = split.val & (cap.y == 0)
        thr_q = calibrate_threshold(s_int[vb], spec.target_fpr)
        rep["threshold_float"], rep["threshold_int8"] = spec.threshold, thr_q
        for name, s, thr in (("float", s_float, spec.threshold), ("float_bucketed_dt", s_fbuck, spec.threshold),
                             ("int8", s_int, thr_q)):
            p = ids_report(cap, split, s, thr)["per_packet"]
            rep[name] = {k: round(float(p[k]), 4) for k in ("roc_auc", "eer", "tpr@1e-3", "tpr@thr", "fpr@thr")}
        te = split.test
        rep["alert_agreement_test"] = float(((s_float[te] > spec.threshold) == (s_int[te] > thr_q)).mean())
        side = make_spec(qe, data, spec, S[vb], capture_sha256=cap.sha256, checkpoint=str(checkpoint),
                         split="benign validation packets: the last 20 % of the capture's benign prefix")
        write_spec(out / "model.sln", side)
        rep["threshold_int8_sq"] = side.threshold_sq
        rep["energy_per_packet"] = event_energy(qe, xq, dus)
    rep["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (out / "export_report.json").write_text(json.dumps(rep, indent=1))
    return rep


def event_energy(qe: intspec_events.QEvents, x_q: np.ndarray, dt_us: np.ndarray) -> dict[str, Any]:
    """Estimated energy per packet of the int8 event model (the project's int8 pricing, sln.energy via
    sln.bench.measure.energy) from the integer reference's own counts over this stream; the footprint of
    sln.bench.int8 plus the bucket gate tables, edges and residual parameters (int32)."""
    cnt = Q.IntCounts()
    intspec_events.run_stream(qe, x_q, dt_us, cnt)
    allc = {k: sum(cnt.terms[t][k] for t in Q.COUNT_TERMS) for k in Q.COUNTERS}
    ops = _int8_ops(allc, float(len(x_q)))
    fp = sln_int8_footprint(qe.qm)
    n32 = fp["int32_params"] + qe.gate_luts.size + qe.dt_edges.size + 2 * qe.qm.n_classes
    e = energy(ops, fp["matrix_bytes"], fp["act_bytes"], get_profile(), "int8", weight_footprint(0, n32))
    return {"nJ": e["total"] / 1e3, "compute_nJ": e["compute"] / 1e3, "memory_nJ": e["memory"] / 1e3,
            "macs": ops["macs"], "weight_bytes": ops["weight_bytes"], "index_bytes": ops["index_bytes"],
            "levels": [e["weight_level"], e["param_level"], e["act_level"]], "packets": int(len(x_q))}


def write_stream(path: Path, x_q: np.ndarray, dt_us: np.ndarray) -> None:
    """The firmware's input: per packet u32 dt_us then D int16 features, little-endian."""
    D = x_q.shape[1]
    path.write_bytes(b"".join(struct.pack(f"<I{D}h", int(d), *map(int, row))
                              for row, d in zip(x_q, dt_us, strict=True)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sln.security.ids_int8", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="int8 event model + report from a packet-detector checkpoint")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("stream", help="N packets from --start as the firmware's stream + the reference scores")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--checkpoint", type=Path, required=True, help="for the feature scale")
    s.add_argument("--n", type=int, default=600)
    s.add_argument("--start", type=int, default=0, help="first packet (the state starts from zero there)")
    s.add_argument("--out", type=Path, required=True, help="folder: packets.bin, reference.txt")
    for q in (e, s):
        q.add_argument("--data-dir", default="tests/fixtures/ids")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "export":
        r = export_events(a.checkpoint, a.out, a.data_dir)
        print(json.dumps({k: r.get(k) for k in ("model_bytes", "float", "float_bucketed_dt", "int8",
                                                 "alert_agreement_test")}, indent=1))
        return 0
    qe = intspec_events.from_bytes(a.model.read_bytes())
    _, spec = load_ids(a.checkpoint)
    cap = load_capture(a.data_dir)
    sl = slice(a.start, a.start + a.n)
    xq, dus = int_inputs(qe, spec, cap.ev.x[sl], cap.ev.dt[sl].astype(np.float64))
    _, S, B = intspec_events.run_stream(qe, xq, dus)
    a.out.mkdir(parents=True, exist_ok=True)
    write_stream(a.out / "packets.bin", xq, dus)
    (a.out / "reference.txt").write_text("".join(f"{i} {s} {b}\n" for i, (s, b) in enumerate(zip(S, B, strict=True))))
    print(f"wrote {len(S)} packets to {a.out}/packets.bin and reference.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

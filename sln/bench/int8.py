"""The int8 vs int8 section of the image benchmark (doc["int8"]): rows never mixed into the fp32 table.

SLN int8 = sln.quant's post-training quantisation run through sln.intspec, the integer model
the C runtime matches bit for bit: one call of `intspec.reference_forward(qm, pixels,
counter=IntCounts())` gives both the logits (accuracy) and the counts of what an event-driven
integer runtime executes (intspec.IntCounts documents every counter). ViT int8 = per-channel
int8 weights and static per-tensor int8 activations at the input of every matmul, simulated
in PyTorch (`_ViTInt8Sim`), counted by the ViT's counting forward with `ViTInt8Counter`
(int8 widths, requantisation of every matmul output, per-channel scales, int32 intermediates).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import intspec
from ..baselines import OpCounter, is_vector_param
from ..energy import EnergyProfile
from ..model import SLN
from .compare import compare_all, headline_comparison, ratio_words
from .measure import PJ_TO_UJ, breakdown_uj, energy, term_energy_uj, weight_footprint

SECTION_NOTE = ("a section of its own: int8 rows are never mixed into the fp32 table; accuracies are measured "
                "int8 accuracies (SLN: sln.intspec's integer model; ViT: int8 weights and activations "
                "simulated in PyTorch); no int8 latency is measured")


def sln_int8_footprint(qm: intspec.QModel) -> dict[str, int]:
    """Bytes of the int8 model's weight set: int8 matrices at 1 byte per stored weight (a W_in /
    W_rec stored column-sparse, intspec.matrix_storage: its entries, + 1 index byte per entry and
    4 per column pointer, `index_bytes`), every other parameter (requantisation multipliers and
    shifts, biases, LayerNorm, boost, gate table) at 4 bytes; plus the activation working set
    (a int32 2N, h int16 N, events 4 bytes x k, readout accumulator int32 N, logits int32 C)."""
    n8, idx = int(qm.w_out.size), 0
    for L in qm.layers:
        for name in intspec.SPARSE_MATRICES:
            w = getattr(L, name)
            if intspec.matrix_storage(L, name) == "sparse":
                e = int(intspec.column_entries(w).sum())
                n8, idx = n8 + e, idx + e + 4 * (w.shape[0] + 1)
            else:
                n8 += int(w.size)
    n32 = int(qm.out_mult.size + qm.out_shift.size + qm.out_bias.size)
    for L in qm.layers:
        n32 += sum(int(getattr(L, f).size) for f in ("in_mult", "in_shift", "rec_mult", "rec_shift", "bias",
                                                       "ln_gamma", "ln_beta", "boost", "alpha_lut"))
    N = qm.n_neurons
    act = qm.n_layers * (2 * N * 4 + N * 2 + qm.k * 4) + N * 4 + qm.n_classes * 4
    return {"int8_weights": n8, "int32_params": n32, "index_bytes": idx,
            "weight_bytes": weight_footprint(n8 + idx, n32),
            "matrix_bytes": weight_footprint(n8 + idx, 0), "param_bytes": weight_footprint(0, n32), "act_bytes": act}


def _int8_ops(c: dict[str, float], per: float) -> dict[str, float]:
    """IntCounts counters (summed over `per` images) -> estimate_pj's int8 keys, per image."""
    return {"macs": c["mac"] / per, "adds32": c["adds32"] / per, "muls32": c["muls32"] / per,
            "cmps32": c["cmps32"] / per, "weight_bytes": c["weight_bytes"] / per,
            "param_bytes": c["param_bytes"] / per, "act_bytes": c["act_bytes"] / per,
            "index_bytes": c["index_bytes"] / per}


@dataclass
class Int8Run:
    """What one counted run of the integer model gave, summed over the images."""
    images: int
    correct: int                              # argmax(logits) == label
    active_sum: float                         # active fraction x images, summed over the chunks
    counts: intspec.IntCounts                 # totals of every term and counter
    seconds: float


def count_sln_int8(qm: intspec.QModel, xte: np.ndarray, yte: np.ndarray, chunk: int = 1000) -> Int8Run:
    """One intspec.reference_forward with a counter over the test images (uint8 (n, 28, 28)),
    `chunk` images at a time (bounded memory); the counter sums every chunk (integer-valued
    floats: exact)."""
    cnt = intspec.IntCounts()
    per_layer_step = qm.n_layers * qm.n_steps * qm.n_neurons
    correct, act_sum = 0, 0.0
    t0 = time.perf_counter()
    for s in range(0, len(xte), chunk):
        px = xte[s:s + chunk]
        nz0 = cnt.nz_out
        logits, _ = intspec.reference_forward(qm, px, counter=cnt)   # (B, C) Q16
        correct += int((logits.argmax(1) == yte[s:s + chunk]).sum())
        # active fraction of this chunk, weighted by its images (as the published runs summed it)
        act_sum += (cnt.nz_out - nz0) / (len(px) * per_layer_step) * len(px)
    return Int8Run(len(xte), correct, act_sum, cnt, time.perf_counter() - t0)


def sln_int8_row(name: str, family: str, params: int, qm: intspec.QModel, run: Int8Run, profile: EnergyProfile,
                 source: str, calib: int) -> dict[str, Any]:
    """The int8 table's row of an SLN from its counted run: counts per image, energy, footprint."""
    tot = run.counts.terms
    n = float(run.images)
    fp = sln_int8_footprint(qm)
    allc = {kk: sum(tot[t][kk] for t in intspec.COUNT_TERMS) for kk in intspec.COUNTERS}
    ops = _int8_ops(allc, n)
    e = energy(ops, fp["matrix_bytes"], fp["act_bytes"], profile, "int8", fp["param_bytes"])
    terms = term_energy_uj({t: _int8_ops(tot[t], n) for t in intspec.COUNT_TERMS}, fp["matrix_bytes"],
                           fp["act_bytes"], profile, "int8", fp["param_bytes"])
    # sensitivity (a separate line, not the estimate): the recurrent and readout MACs multiply an
    # int8 weight by a wider integer (int16 state, int32 readout sum); priced as int32 multiplies
    wide = (tot["recurrent"]["mac"] + tot["readout"]["mac"]) / n
    wide_uj = (e["total"] + wide * (profile.int32_mul - profile.int8_mul)) * PJ_TO_UJ
    return {
        "name": name, "family": family, "precision": "int8", "params": int(params),
        "accuracy": run.correct / n, "accuracy_measured": True, "test_images": int(n),
        "active_fraction": run.active_sum / n,
        "dense_macs": allc["dense_mac"] / n, "effective_macs": ops["macs"], "effective_acs": 0.0,
        "int32_ops": {"adds": ops["adds32"], "muls": ops["muls32"], "cmps": ops["cmps32"]},
        "weight_bytes_read": ops["weight_bytes"] + ops["param_bytes"] + ops["index_bytes"],
        "act_bytes": ops["act_bytes"], "matrix_bytes_read": ops["weight_bytes"], "param_bytes_read": ops["param_bytes"],
        "index_bytes_read": ops["index_bytes"],
        "weight_footprint_bytes": fp["weight_bytes"], "matrix_footprint_bytes": fp["matrix_bytes"],
        "param_footprint_bytes": fp["param_bytes"], "act_footprint_bytes": fp["act_bytes"],
        "int8_weights": fp["int8_weights"], "int32_params": fp["int32_params"],
        "weight_memory_level": e["weight_level"], "param_memory_level": e["param_level"],
        "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * PJ_TO_UJ,
        "energy_breakdown_uJ": {**breakdown_uj(e, "int8"), "by_term": terms},
        "energy_uJ_wide_multiplies": wide_uj, "latency_ms": None, "source": source,
        "how": {
            "accuracy": f"sln.intspec.reference_forward (the integer model the C runtime matches bit for bit) on "
                        f"{int(n)} real test images; post-training quantisation calibrated on the first {calib} "
                        f"training images (as sln.export)",
            "counts": "counted by sln.intspec.reference_forward(counter=IntCounts()) while it executes the integer "
                      "model (the same run that gives the accuracy), mean per image: MACs only for the weight "
                      "columns of nonzero inputs / nonzero winners, 1 byte per int8 weight; int32 parameter "
                      "vectors (mults, shifts, bias, LayerNorm, boost, gate table) 4 bytes each, counted apart",
            "energy": "estimated: MAC = int8 multiply + int32 add; requantisation, integer LayerNorm, LUT gate, "
                      "state update and top-k as counted int32 adds/muls/compares; bytes/8 x 64-bit access "
                      "energy, int8 matrices and int32 vectors each at the level of their own size "
                      "(sln/energy.py)",
            "latency": "not measured for int8 (the fp32 table has the latencies)",
            "seconds": f"{run.seconds:.1f} s for the counted integer model",
        },
    }


def evaluate_sln_int8(name: str, family: str, model: SLN, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      profile: EnergyProfile, source: str, calib: int = 2000, chunk: int = 1000
                      ) -> dict[str, Any]:
    """int8 row of an SLN: quantise (sln.quant, calibration on the first `calib` training
    images, as sln.export), then accuracy and counts from one counted integer run."""
    from .. import quant as Q

    qm = Q.quantize(model, xtr[:calib])
    return sln_int8_row(name, family, model.num_params(), qm, count_sln_int8(qm, xte, yte, chunk), profile,
                        source, calib)


class _ViTInt8Sim:
    """Stand-in for the ViT's counter argument that makes every matmul int8: per-output-channel
    symmetric int8 weights; per-tensor int8 activations at the input of every Linear and both
    operands of the attention matmuls (static scales: max |x| over the calibration images at that
    call site; unsigned 0..255 when the calibrated tensor is never negative, else -127..127).
    LayerNorm, softmax, GELU and the residual adds stay in float (as the integer-only kernels
    of I-BERT-style int8 transformers approximate them); they are priced as int32 ops."""

    def __init__(self) -> None:
        self.calibrating = True
        self.stats: list[tuple[float, float]] = []   # (max |x|, min x) per call site, in call order
        self.i = 0
        self._wq: dict[int, torch.Tensor] = {}

    def _q(self, x: torch.Tensor) -> torch.Tensor:
        i = self.i
        self.i += 1
        if self.calibrating:
            mx, mn = float(x.abs().max()), float(x.min())
            if i < len(self.stats):
                self.stats[i] = (max(self.stats[i][0], mx), min(self.stats[i][1], mn))
            else:
                self.stats.append((mx, mn))
            return x
        mx, mn = self.stats[i]
        if mx == 0:
            return torch.zeros_like(x)
        if mn >= 0:
            s = mx / 255.0
            return torch.clamp(torch.round(x / s), 0, 255) * s
        s = mx / 127.0
        return torch.clamp(torch.round(x / s), -127, 127) * s

    def _w(self, lin: torch.nn.Linear) -> torch.Tensor:
        key = id(lin)
        if key not in self._wq:
            w = lin.weight.detach()
            s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
            self._wq[key] = torch.clamp(torch.round(w / s), -127, 127) * s
        return self._wq[key]

    def linear(self, x: torch.Tensor, lin: torch.nn.Linear, term: str) -> torch.Tensor:
        return torch.nn.functional.linear(self._q(x), self._w(lin), lin.bias)

    def matmul(self, a: torch.Tensor, b: torch.Tensor, term: str) -> torch.Tensor:
        return self._q(a) @ self._q(b)

    @staticmethod
    def layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
        return ln(x)

    @staticmethod
    def softmax(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)

    @staticmethod
    def gelu(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x)

    @staticmethod
    def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    @staticmethod
    def scale(x: torch.Tensor, s: float) -> torch.Tensor:
        return x * s

    @staticmethod
    def param(p: torch.Tensor) -> torch.Tensor:
        return p


@torch.no_grad()
def vit_int8_accuracy(model: torch.nn.Module, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      calib: int = 2000, batch: int = 500) -> tuple[float, _ViTInt8Sim]:
    """Calibrate the activation scales on the first `calib` training images, then the int8
    (simulated) test accuracy."""
    model.eval()
    sim = _ViTInt8Sim()
    for s in range(0, min(calib, len(xtr)), batch):
        sim.i = 0
        model(model.patches(torch.from_numpy(xtr[s:min(s + batch, calib)].copy())), counter=sim)
    sim.calibrating = False
    correct = 0
    for s in range(0, len(xte), batch):
        sim.i = 0
        out = model(model.patches(torch.from_numpy(xte[s:s + batch].copy())), counter=sim)
        correct += int((out.argmax(1).numpy() == yte[s:s + batch]).sum())
    return correct / len(xte), sim


class ViTInt8Counter(OpCounter):
    """The ViT's counting forward at int8 (an integer-only int8 ViT, I-BERT style), on top of the
    fp32 counts of OpCounter (kept in its fields):
      * every Linear and attention matmul: its activation operands read as int8 (1 byte), its
        output requantised (1 int32 multiply + 2 int32 adds per output element, as the SLN's
        rq) and written as int8 (1 byte); its per-output-channel requantisation multiplier and
        shift read once (4 + 4 bytes per channel; one pair per attention matmul);
      * LayerNorm, softmax, GELU and residual adds work on int32 intermediates: their inputs
        and outputs are read/written at 4 bytes;
      * the 1/sqrt(dh) scale of q: 1 byte in and out (it is usually folded into a requantisation).
    act8_* are those bytes, peak8 the largest in+out of one op (the int8 activation working set)."""

    def __init__(self) -> None:
        super().__init__()
        self.act8_read = 0.0
        self.act8_written = 0.0
        self.peak8 = 0.0
        self.requant_outputs = 0.0
        self.scale_bytes = 0.0

    def _io8(self, nin: float, nout: float) -> None:
        self.act8_read += nin
        self.act8_written += nout
        self.peak8 = max(self.peak8, float(nin + nout))

    def linear(self, x: torch.Tensor, lin: torch.nn.Linear, term: str) -> torch.Tensor:
        y = super().linear(x, lin, term)
        self._io8(x.numel(), y.numel())
        self.requant_outputs += y.numel()
        self.scale_bytes += 8 * lin.out_features
        return y

    def matmul(self, a: torch.Tensor, b: torch.Tensor, term: str) -> torch.Tensor:
        y = super().matmul(a, b, term)
        self._io8(a.numel() + b.numel(), y.numel())
        self.requant_outputs += y.numel()
        self.scale_bytes += 8
        return y

    def layer_norm(self, x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
        y = super().layer_norm(x, ln)
        self._io8(4 * x.numel(), 4 * y.numel())
        return y

    def softmax(self, x: torch.Tensor) -> torch.Tensor:
        y = super().softmax(x)
        self._io8(4 * x.numel(), 4 * y.numel())
        return y

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        y = super().gelu(x)
        self._io8(4 * x.numel(), 4 * y.numel())
        return y

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = super().add(a, b)
        self._io8(4 * (a.numel() + b.numel()), 4 * y.numel())
        return y

    def scale(self, x: torch.Tensor, s: float) -> torch.Tensor:
        y = super().scale(x, s)
        self._io8(x.numel(), y.numel())
        return y


def count_vit_int8(model: torch.nn.Module, image: torch.Tensor) -> ViTInt8Counter:
    """ViTInt8Counter of one batch-1 inference on a real image (28, 28) uint8."""
    cnt = ViTInt8Counter()
    with torch.no_grad():
        model(model.patches(image[None] if image.dim() == 2 else image), counter=cnt)
    return cnt


def vit_int8_ops(model: torch.nn.Module, c: ViTInt8Counter, eff_macs: float, profile: EnergyProfile
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """-> (estimate_pj ops at int8, footprints {int8_weights, int32_params, matrix_bytes, param_bytes,
    weight_bytes, act_bytes}) of a ViT from its int8 counts: Linear weights 1 byte, the position
    embedding 4 bytes (matrices); biases, LayerNorm, class token and the requantisation
    multipliers/shifts 4 bytes (vectors); each read once per inference."""
    lin_w = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    n_vec = sum(p.numel() for p in params if is_vector_param(p))
    n_scales = c.scale_bytes / 4.0                       # int32 multipliers and shifts
    fp = {"int8_weights": float(lin_w), "int32_params": float(n_params - lin_w + n_scales),
          "matrix_bytes": float(weight_footprint(lin_w, n_params - n_vec - lin_w)),
          "param_bytes": float(weight_footprint(0, n_vec)) + c.scale_bytes, "act_bytes": c.peak8}
    fp["weight_bytes"] = fp["matrix_bytes"] + fp["param_bytes"]
    nl_m, nl_a = profile.nonlin_muls * c.nonlin, profile.nonlin_adds * c.nonlin
    rq = c.requant_outputs
    ops = {"macs": eff_macs, "adds32": c.adds + nl_a + 2 * rq, "muls32": c.muls + nl_m + rq, "cmps32": c.cmps,
           "weight_bytes": c.weight_bytes - 3 * lin_w,   # the fp32 count read each Linear weight at 4 bytes
           "param_bytes": c.param_bytes + c.scale_bytes, "act_bytes": c.act8_read + c.act8_written}
    return ops, fp


def baseline_int8_row(name: str, family: str, params: int, acc: float, n_test: int, c0: Any, eff: float,
                      ops: dict[str, float], fp: dict[str, float], profile: EnergyProfile) -> dict[str, Any]:
    """The fields every int8 baseline row (ViT, CNN) shares: counts of the first counted image c0, the
    estimated energy of ops with each memory priced at the level of its own size."""
    e = energy(ops, fp["matrix_bytes"], fp["act_bytes"], profile, "int8", fp["param_bytes"])
    mac_pj = profile.op_pj("int8")["mac"]
    return {
        "name": name, "family": family, "precision": "int8", "params": params,
        "accuracy": acc, "accuracy_measured": True, "test_images": int(n_test), "active_fraction": None,
        "dense_macs": c0.macs, "effective_macs": eff, "effective_acs": 0.0,
        "int32_ops": {"adds": ops["adds32"], "muls": ops["muls32"], "cmps": ops["cmps32"]},
        "requant_outputs": c0.requant_outputs,
        "weight_bytes_read": ops["weight_bytes"] + ops["param_bytes"], "act_bytes": ops["act_bytes"],
        "matrix_bytes_read": ops["weight_bytes"], "param_bytes_read": ops["param_bytes"],
        "weight_footprint_bytes": fp["weight_bytes"], "matrix_footprint_bytes": fp["matrix_bytes"],
        "param_footprint_bytes": fp["param_bytes"], "act_footprint_bytes": fp["act_bytes"],
        "int8_weights": int(fp["int8_weights"]), "int32_params": int(fp["int32_params"]),
        "weight_memory_level": e["weight_level"], "param_memory_level": e["param_level"],
        "act_memory_level": e["act_level"],
        "energy_uJ": e["total"] * PJ_TO_UJ,
        "energy_breakdown_uJ": {**breakdown_uj(e, "int8"),
                                "mac_by_term": {kk: v * mac_pj * PJ_TO_UJ for kk, v in c0.by_term.items()}},
    }


def evaluate_vit_int8(name: str, model: torch.nn.Module, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      profile: EnergyProfile, source: str, calib: int = 2000) -> dict[str, Any]:
    """int8 row of a ViT: measured int8 accuracy (_ViTInt8Sim), counts of count_vit_int8."""
    acc, _ = vit_int8_accuracy(model, xtr, xte, yte, calib)
    nc = min(len(xte), 20)
    cnts = [count_vit_int8(model, torch.from_numpy(xte[i].copy())) for i in range(nc)]
    c0 = cnts[0]
    eff = float(np.mean([c.effective_macs for c in cnts]))
    ops, fp = vit_int8_ops(model, c0, eff, profile)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        **baseline_int8_row(name, "vit", int(n_params), acc, len(yte), c0, eff, ops, fp, profile),
        "latency_ms": None, "source": source,
        "how": {
            "accuracy": f"measured: PyTorch forward with int8 per-channel weights and static per-tensor int8 "
                        f"activations at every matmul input (calibrated on the first {calib} training images), "
                        f"{len(yte)} real test images",
            "counts": f"ViTInt8Counter at batch 1 on {nc} real test images; MACs = NeuroBench effective MACs; "
                      "Linear weights 1 byte, other parameters and the per-channel requantisation "
                      "multipliers/shifts 4 bytes; every matmul output requantised (1 int32 mul + 2 int32 adds); "
                      "matmul operands/outputs 1 byte, LayerNorm/softmax/GELU/residual inputs and outputs "
                      "int32 (4 bytes)",
            "energy": "estimated: MAC = int8 multiply + int32 add; requantisation and LayerNorm/softmax/GELU/"
                      "residual adds/muls/compares as int32 ops, each nonlinear op as the profile's polynomial "
                      "(5 int32 mul + 5 int32 add); bytes/8 x 64-bit access energy, matrices and vectors each at "
                      "the level of their own size",
            "latency": "not measured for int8",
        },
    }


def int8_section(rows: list[dict[str, Any]], head: str) -> dict[str, Any]:
    """Equal-accuracy comparisons among int8 rows only (same methods as fp32), and a headline."""
    comps = compare_all(rows)
    use = headline_comparison(comps, head)
    hrow = next((r for r in rows if r["name"] == head), None)
    text = ""
    if use and hrow:
        text = (f"{head} int8 ({100 * hrow['accuracy']:.2f}%) vs int8 ViT at equal accuracy ({use['method']}, "
                f"{use['baseline']}), int8 vs int8: estimated energy ViT/SLN = {ratio_words(use['energy_ratio'])} "
                f"(target 100x)")
    return {
        "precision": "int8 vs int8", "note": SECTION_NOTE, "models": rows, "comparisons": comps,
        "headline": {"model": head, "precision": "int8 vs int8", "method": use["method"] if use else None,
                     "energy_ratio": use["energy_ratio"] if use else None, "target_energy_ratio": 100.0,
                     "text": text},
    }


def run_int8_section(jobs: list[tuple[str, str, Any, str]], head: str, xtr: np.ndarray, xte: np.ndarray,
                     yte: np.ndarray, profile: EnergyProfile, calib: int, limit: int | None,
                     evaluators: dict[str, Callable[..., dict[str, Any]]] | None = None) -> dict[str, Any]:
    """jobs: (family, name, fp32 model, source) of the fp32 table -> doc["int8"] (with `skipped`).
    `limit`: int8 accuracy/counts on the first `limit` test images only (None: all). `evaluators`:
    family -> row function (evaluate_vit_int8's arguments) of families defined above this module
    (the CNN: sln.bench.cnn_int8, which builds on the ViT's classes here)."""
    n8 = limit or len(xte)
    print(f"int8 vs int8: quantising and evaluating {len(jobs)} models on {min(n8, len(xte))} test images")
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for fam, name, mdl, src in jobs:
        t0 = time.perf_counter()
        try:
            if evaluators and fam in evaluators:
                rows.append(evaluators[fam](name, mdl, xtr, xte[:n8], yte[:n8], profile, src, calib))
            elif fam == "vit":
                rows.append(evaluate_vit_int8(name, mdl, xtr, xte[:n8], yte[:n8], profile, src, calib))
            else:
                rows.append(evaluate_sln_int8(name, fam, mdl, xtr, xte[:n8], yte[:n8], profile, src, calib))
        except ValueError as e:   # outside what the int8 model supports (e.g. k > 255)
            skipped.append({"name": name, "reason": str(e)})
            print(f"  int8 {name}: skipped ({e})")
            continue
        print(f"  int8 {name}: {100 * rows[-1]['accuracy']:.2f}% ({time.perf_counter() - t0:.0f} s)")
    sec = int8_section(rows, head)
    sec["skipped"] = skipped
    return sec

"""The CNN baseline's int8 row (doc["int8"]), treated exactly as the ViT's (sln/bench/int8.py).

Simulation (`_CNNInt8Sim`, the ViT's `_ViTInt8Sim` plus convolutions): per-output-channel
symmetric int8 weights of every conv and Linear; static per-tensor int8 activations at the input
of every conv and Linear (max |x| over the calibration training images; unsigned 0..255 when the
calibrated tensor is never negative: the pixels and every post-ReLU tensor here). Max-pool and
ReLU commute with that quantisation, so they run on the int8 values unchanged.

Counting (`CNNInt8Counter`, the ViT's `ViTInt8Counter` plus convolutions), on top of the fp32
counts of sln.cnn.CNNCounter:
  * every conv and Linear: operands read as int8 (1 byte), the int32 accumulators requantised
    (1 int32 multiply + 2 int32 adds per output element) and written as int8 (1 byte); its
    per-output-channel requantisation multiplier and shift read once (4 + 4 bytes per channel);
  * max-pool and ReLU work on int8 tensors: 1 byte in and out; their compares are priced as
    int32 compares (the ViT's non-matmul ops are int32 ops; an int8 compare would be cheaper);
  * weights: every conv kernel and Linear weight read once per image at 1 byte (the fp32 rule);
    the no-reuse extreme (conv weights re-read at every output position) is a separate line.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..baselines import is_vector_param
from ..cnn import CNN, CNNCounter, count_cnn
from ..energy import EnergyProfile
from .int8 import ViTInt8Counter, _ViTInt8Sim, baseline_int8_row
from .measure import PJ_TO_UJ, energy, weight_footprint


class _CNNInt8Sim(_ViTInt8Sim):
    """_ViTInt8Sim (activation calibration and quantisation, Linear) plus int8 convolutions."""

    def _wc(self, conv: nn.Conv2d) -> torch.Tensor:
        key = id(conv)
        if key not in self._wq:
            w = conv.weight.detach()                                          # (Cout, Cin, k, k)
            s = w.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) / 127.0
            self._wq[key] = torch.clamp(torch.round(w / s), -127, 127) * s
        return self._wq[key]

    def conv2d(self, x: torch.Tensor, conv: nn.Conv2d, term: str) -> torch.Tensor:
        return F.conv2d(self._q(x), self._wc(conv), conv.bias, conv.stride, conv.padding)

    @staticmethod
    def relu(x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    @staticmethod
    def max_pool(x: torch.Tensor, p: int) -> torch.Tensor:
        return F.max_pool2d(x, p)


@torch.no_grad()
def cnn_int8_accuracy(model: CNN, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray, calib: int = 2000,
                      batch: int = 500) -> tuple[float, _CNNInt8Sim]:
    """Calibrate the activation scales on the first `calib` training images, then the int8
    (simulated) test accuracy."""
    model.eval()
    sim = _CNNInt8Sim()
    for s in range(0, min(calib, len(xtr)), batch):
        sim.i = 0
        model(model.to_input(torch.from_numpy(xtr[s:min(s + batch, calib)].copy())), counter=sim)
    sim.calibrating = False
    correct = 0
    for s in range(0, len(xte), batch):
        sim.i = 0
        out = model(model.to_input(torch.from_numpy(xte[s:s + batch].copy())), counter=sim)
        correct += int((out.argmax(1).numpy() == yte[s:s + batch]).sum())
    return correct / len(xte), sim


class CNNInt8Counter(ViTInt8Counter, CNNCounter):
    """ViTInt8Counter's int8 accounting (Linear) with CNNCounter's ops: convs requantised like a
    Linear, max-pool / ReLU on int8 (1 byte per element in and out)."""

    def conv2d(self, x: torch.Tensor, conv: nn.Conv2d, term: str) -> torch.Tensor:
        y = super().conv2d(x, conv, term)
        self._io8(x.numel(), y.numel())
        self.requant_outputs += y.numel()
        self.scale_bytes += 8 * conv.out_channels
        return y

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        y = super().relu(x)
        self._io8(x.numel(), y.numel())
        return y

    def max_pool(self, x: torch.Tensor, p: int) -> torch.Tensor:
        y = super().max_pool(x, p)
        self._io8(x.numel(), y.numel())
        return y


def count_cnn_int8(model: CNN, image: torch.Tensor) -> CNNInt8Counter:
    """CNNInt8Counter of one batch-1 inference on a real image (28, 28) uint8."""
    return cast(CNNInt8Counter, count_cnn(model, image, CNNInt8Counter()))


def cnn_int8_ops(model: CNN, c: CNNInt8Counter, eff_macs: float) -> tuple[dict[str, float], dict[str, float]]:
    """-> (estimate_pj ops at int8, footprints {int8_weights, int32_params, matrix_bytes, param_bytes,
    weight_bytes, act_bytes}): every conv / Linear weight 1 byte (matrices); biases and the
    requantisation multipliers/shifts 4 bytes (vectors); each read once per inference."""
    w8 = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    n_vec = sum(p.numel() for p in params if is_vector_param(p))
    fp = {"int8_weights": float(w8), "int32_params": float(n_params - w8 + c.scale_bytes / 4.0),
          "matrix_bytes": float(weight_footprint(w8, n_params - n_vec - w8)),
          "param_bytes": float(weight_footprint(0, n_vec)) + c.scale_bytes, "act_bytes": c.peak8}
    fp["weight_bytes"] = fp["matrix_bytes"] + fp["param_bytes"]
    rq = c.requant_outputs
    ops = {"macs": eff_macs, "adds32": c.adds + 2 * rq, "muls32": c.muls + rq, "cmps32": c.cmps,
           "weight_bytes": c.weight_bytes / 4.0,   # the fp32 count read each weight at 4 bytes
           "param_bytes": c.param_bytes + c.scale_bytes, "act_bytes": c.act8_read + c.act8_written}
    return ops, fp


def evaluate_cnn_int8(name: str, model: CNN, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                      profile: EnergyProfile, source: str, calib: int = 2000) -> dict[str, Any]:
    """int8 row of a CNN: measured int8 accuracy (_CNNInt8Sim), counts of count_cnn_int8 (the
    arguments of int8.run_int8_section's evaluators)."""
    acc, _ = cnn_int8_accuracy(model, xtr, xte, yte, calib)
    nc = min(len(xte), 20)
    cnts = [count_cnn_int8(model, torch.from_numpy(xte[i].copy())) for i in range(nc)]
    c0 = cnts[0]
    eff = float(np.mean([c.effective_macs for c in cnts]))
    ops, fp = cnn_int8_ops(model, c0, eff)
    # sensitivity (not the estimate): conv weights re-read at every output position, at 1 byte
    per_pos = {**ops, "weight_bytes": c0.weight_bytes_per_position / 4.0}
    e_pp = energy(per_pos, fp["matrix_bytes"], fp["act_bytes"], profile, "int8", fp["param_bytes"])
    return {
        **baseline_int8_row(name, "cnn", int(model.num_params()), acc, len(yte), c0, eff, ops, fp, profile),
        "matrix_bytes_read_per_position": per_pos["weight_bytes"],
        "energy_uJ_weights_per_position": e_pp["total"] * PJ_TO_UJ,
        "latency_ms": None, "source": source,
        "how": {
            "accuracy": f"measured: PyTorch forward with int8 per-channel weights and static per-tensor int8 "
                        f"activations at every conv/Linear input (calibrated on the first {calib} training "
                        f"images), {len(yte)} real test images",
            "counts": f"CNNInt8Counter at batch 1 on {nc} real test images; MACs = NeuroBench effective MACs; "
                      "conv/Linear weights 1 byte, read once per image; biases and the per-channel "
                      "requantisation multipliers/shifts 4 bytes; every conv/Linear output requantised "
                      "(1 int32 mul + 2 int32 adds); conv/Linear/pool/ReLU operands and outputs 1 byte; "
                      "pool and ReLU compares priced as int32",
            "energy": "estimated: MAC = int8 multiply + int32 add; requantisation and compares as int32 ops; "
                      "bytes/8 x 64-bit access energy, matrices and vectors each at the level of their own "
                      "size; energy_uJ_weights_per_position: the same with every conv weight re-read at each "
                      "output position (a separate line)",
            "latency": "not measured for int8",
        },
    }

"""Baselines for the energy benchmark: a ViT-style encoder, the dense SLN, and ncps's CfC.

ViT (Dosovitskiy et al., ICLR 2021) for 28x28 images: 7x7 patches -> 16 tokens + a class
token, learned position embeddings, pre-LayerNorm encoder blocks (multi-head self-attention,
MLP with GELU), LayerNorm + linear head on the class token. Pixels enter as pixel/255, the
same input as SLN. Sizes (VIT_SIZES) span the accuracy range of the SLN models; vit-s is the
issue's calibration model (d=64, 4 layers, 4 heads, MLP ratio 2: ~139 k params, ~2.4 M MACs).

Training hyper-parameters (all sizes, stated in docs/ENERGY.md): AdamW, lr 1e-3, weight
decay 0.05, batch 128, linear warm-up 100 steps then cosine decay to 0 (sln.train.lr_at),
gradient clipping at 1.0, no augmentation, no dropout, the same epochs as the SLN it is
compared with, seed 0; trained by the project's one loop (sln.train.fit, sln.tasks.images).

Counting: `ViT.forward(x, counter=OpCounter())` tallies, while it executes at batch 1, the
MACs (executed and NeuroBench-effective, i.e. with a nonzero input operand), adds, muls,
compares, nonlinear ops, bytes of weights read (every parameter once per inference: at
batch 1 each weight is used by all tokens of a layer while it is held) and bytes of
activations read/written at each op's interface, with the same conventions as the SLN engine
(LayerNorm, softmax and GELU are broken down in `OpCounter` methods).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


# --------------------------------------------------------------------------- counting
@dataclass
class OpCounter:
    """Operations executed by one forward pass (call at batch 1 for per-inference counts)."""
    macs: float = 0.0            # executed multiply-accumulates (dense kernels)
    effective_macs: float = 0.0  # NeuroBench: MACs whose input activation is nonzero
    adds: float = 0.0
    muls: float = 0.0
    cmps: float = 0.0
    nonlin: float = 0.0
    weight_bytes: float = 0.0    # bytes of weight matrices read (Linear weights, position embedding)
    param_bytes: float = 0.0     # bytes of per-channel vectors read (biases, LayerNorm gain/shift, class token)
    act_bytes_read: float = 0.0
    act_bytes_written: float = 0.0
    peak_act_bytes: float = 0.0  # largest input+output of one op: the activation working set
    by_term: dict[str, float] = field(default_factory=dict)  # MACs per named term

    def _io(self, nin: int, nout: int) -> None:
        self.act_bytes_read += 4 * nin
        self.act_bytes_written += 4 * nout
        self.peak_act_bytes = max(self.peak_act_bytes, 4.0 * (nin + nout))

    def linear(self, x: torch.Tensor, lin: nn.Linear, term: str) -> torch.Tensor:
        """y = x W^T + b over the last dim; the bias initialises the accumulator (no add)."""
        y = lin(x)
        rows = x.numel() // lin.in_features
        m = rows * lin.in_features * lin.out_features
        self.macs += m
        self.effective_macs += float((x != 0).sum()) * lin.out_features
        self.weight_bytes += 4 * lin.weight.numel()
        self.param_bytes += 4 * (lin.bias.numel() if lin.bias is not None else 0)
        self._io(x.numel(), y.numel())
        self.by_term[term] = self.by_term.get(term, 0.0) + m
        return y

    def matmul(self, a: torch.Tensor, b: torch.Tensor, term: str) -> torch.Tensor:
        """Batched a @ b (activation x activation, e.g. attention)."""
        y = a @ b
        m = y.numel() * a.shape[-1]
        self.macs += m
        self.effective_macs += m
        self._io(a.numel() + b.numel(), y.numel())
        self.by_term[term] = self.by_term.get(term, 0.0) + m
        return y

    def layer_norm(self, x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        """Per row of d: sum (d adds), centred squares (d subs, d muls, d adds), /d twice,
        +eps, 1/sqrt; then per element sub, *rstd, *w, +b (same convention as the SLN engine)."""
        y = ln(x)
        d = x.shape[-1]
        rows = x.numel() // d
        self.adds += rows * (3 * d + 1 + 2 * d)
        self.muls += rows * (d + 2 + 2 * d)
        self.nonlin += rows
        self.param_bytes += 4 * 2 * d
        self._io(x.numel(), y.numel())
        return y

    def softmax(self, x: torch.Tensor) -> torch.Tensor:
        """Per row of n: max (n cmps), sub (n), exp (n), sum (n), 1/sum (1), scale (n muls)."""
        y = torch.softmax(x, dim=-1)
        n = x.shape[-1]
        rows = x.numel() // n
        self.cmps += rows * n
        self.adds += rows * 2 * n
        self.nonlin += rows * (n + 1)
        self.muls += rows * n
        self._io(x.numel(), y.numel())
        return y

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """0.5 x (1 + erf(x / sqrt 2)): 3 muls, 1 add, 1 nonlinear per element."""
        y = F.gelu(x)
        self.muls += 3 * x.numel()
        self.adds += x.numel()
        self.nonlin += x.numel()
        self._io(x.numel(), y.numel())
        return y

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = a + b
        self.adds += y.numel()
        self._io(a.numel() + b.numel(), y.numel())
        return y

    def scale(self, x: torch.Tensor, s: float) -> torch.Tensor:
        y = x * s
        self.muls += x.numel()
        self._io(x.numel(), y.numel())
        return y

    def param(self, p: torch.Tensor) -> torch.Tensor:
        """A parameter read as data: a vector (class token) to param_bytes, a matrix (position
        embedding) to weight_bytes (the rule of `is_vector_param`)."""
        if is_vector_param(p):
            self.param_bytes += 4 * p.numel()
        else:
            self.weight_bytes += 4 * p.numel()
        return p

    def to_ops(self) -> dict[str, float]:
        """Keys of sln.energy.estimate_pj; energy uses NeuroBench-effective MACs (zero-skipping
        granted to the transformer too, the conservative choice for SLN's claim)."""
        return {"macs": self.effective_macs, "acs": 0.0, "adds": self.adds, "muls": self.muls,
                "cmps": self.cmps, "nonlin": self.nonlin, "weight_bytes": self.weight_bytes,
                "param_bytes": self.param_bytes, "act_bytes": self.act_bytes_read + self.act_bytes_written}


def is_vector_param(p: torch.Tensor) -> bool:
    """A per-neuron / per-channel vector (one value per channel of its last dimension: a bias,
    LayerNorm gain or shift, the class token), as opposed to a weight matrix."""
    return p.numel() == p.shape[-1]


def vector_param_count(model: nn.Module) -> int:
    """Parameters of `model` that are vectors (is_vector_param); the rest are matrices."""
    return sum(p.numel() for p in model.parameters() if is_vector_param(p))


class _Null:
    """Counter stand-in that only computes (training, timing)."""

    @staticmethod
    def linear(x, lin, term):  # noqa: ANN001, ANN205
        return lin(x)

    @staticmethod
    def matmul(a, b, term):  # noqa: ANN001, ANN205
        return a @ b

    @staticmethod
    def layer_norm(x, ln):  # noqa: ANN001, ANN205
        return ln(x)

    @staticmethod
    def softmax(x):  # noqa: ANN001, ANN205
        return torch.softmax(x, dim=-1)

    @staticmethod
    def gelu(x):  # noqa: ANN001, ANN205
        return F.gelu(x)

    @staticmethod
    def add(a, b):  # noqa: ANN001, ANN205
        return a + b

    @staticmethod
    def scale(x, s):  # noqa: ANN001, ANN205
        return x * s

    @staticmethod
    def param(p):  # noqa: ANN001, ANN205
        return p


# --------------------------------------------------------------------------- ViT
@dataclass
class ViTConfig:
    name: str = "vit-s"
    patch: int = 7
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    image: int = 28
    n_classes: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    seed: int = 0

    @property
    def n_patches(self) -> int:
        return (self.image // self.patch) ** 2


VIT_SIZES: dict[str, ViTConfig] = {
    "vit-xs": ViTConfig(name="vit-xs", dim=32, depth=2, heads=2),
    "vit-s": ViTConfig(name="vit-s", dim=64, depth=4, heads=4),
    "vit-m": ViTConfig(name="vit-m", dim=96, depth=4, heads=4),
}


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, mlp * d), nn.Linear(mlp * d, d)

    def forward(self, x: torch.Tensor, c: Any) -> torch.Tensor:
        B, T, d = x.shape                                       # x (B, T, d)
        H, dh = self.heads, d // self.heads
        qkv = c.linear(c.layer_norm(x, self.ln1), self.qkv, "attention.qkv")   # (B, T, 3d)
        q, k, v = qkv.view(B, T, 3, H, dh).permute(2, 0, 3, 1, 4)           # each (B, H, T, dh)
        q = c.scale(q, 1.0 / math.sqrt(dh))
        att = c.softmax(c.matmul(q, k.transpose(-1, -2), "attention.scores"))  # (B, H, T, T)
        o = c.matmul(att, v, "attention.values").transpose(1, 2).reshape(B, T, d)
        x = c.add(x, c.linear(o, self.proj, "attention.proj"))
        h = c.gelu(c.linear(c.layer_norm(x, self.ln2), self.fc1, "mlp"))
        return c.add(x, c.linear(h, self.fc2, "mlp"))


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.embed = nn.Linear(cfg.patch * cfg.patch, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, cfg.n_patches + 1, d) * 0.02)
        self.blocks = nn.ModuleList(_Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.n_classes)

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 28, 28) -> float (B, 16, 49) in [0, 1] (background exactly 0, as SLN's)."""
        p, B = self.cfg.patch, images.shape[0]
        g = self.cfg.image // p
        x = images.float().div(255.0).view(B, g, p, g, p).permute(0, 1, 3, 2, 4)
        return x.reshape(B, g * g, p * p)

    def forward(self, x: torch.Tensor, counter: OpCounter | None = None) -> torch.Tensor:
        """x: patches (B, 16, 49) -> logits (B, C)."""
        c = counter if counter is not None else _Null
        B = x.shape[0]
        t = c.linear(x, self.embed, "patch_embed")                                  # (B, 16, d)
        t = torch.cat([c.param(self.cls).expand(B, -1, -1), t], dim=1)             # (B, 17, d)
        t = c.add(t, c.param(self.pos))
        for blk in self.blocks:
            t = blk(t, c)
        return c.linear(c.layer_norm(t[:, 0], self.ln), self.head, "head")        # class token only

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def count_vit(model: ViT, image: torch.Tensor) -> OpCounter:
    """Counts of one batch-1 inference on a real image (B=1, 28, 28) uint8."""
    cnt = OpCounter()
    with torch.no_grad():
        model(model.patches(image[None] if image.dim() == 2 else image), counter=cnt)
    return cnt


def train_vit(cfg: ViTConfig, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
              epochs: int, out: Path | None = None, progress: bool = True, device: str = "cpu"
              ) -> tuple[ViT, dict[str, Any]]:
    """Train (or reuse out/vit.safetensors when its config and epochs match) -> model, info.

    info: test_accuracy, epochs, seconds_per_epoch, params, train_images, reused (bool).
    """
    torch.manual_seed(cfg.seed)
    model = ViT(cfg)
    return _train_or_reuse(model, model.patches, asdict(cfg), cfg.name, "vit", cfg.lr, cfg.weight_decay,
                           cfg.batch_size, cfg.seed, xtr, ytr, xte, yte, epochs, out, progress, device)


def cached_info(out: Path | None, stem: str, cfg_dict: dict[str, Any], epochs: int, n_train: int
                ) -> dict[str, Any] | None:
    """The info of out/<stem>.safetensors when it was trained with this config, epochs and training-set
    size (what _train_or_reuse would reuse), else None."""
    if out is None:
        return None
    wf, jf = out / f"{stem}.safetensors", out / f"{stem}.json"
    if not (wf.is_file() and jf.is_file()):
        return None
    try:
        info = json.loads(jf.read_text())
    except json.JSONDecodeError:
        return None
    key = {"config": cfg_dict, "epochs": epochs, "train_images": int(n_train)}
    return info if info.get("key") == key else None


def _train_or_reuse(model: nn.Module, to_input: Any, cfg_dict: dict[str, Any], name: str, stem: str, lr: float,
                    wd: float, batch_size: int, seed: int, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray,
                    yte: np.ndarray, epochs: int, out: Path | None, progress: bool, device: str = "cpu"
                    ) -> tuple[Any, dict[str, Any]]:
    """Train in the one loop (sln.train.fit: AdamW, lr_at warm-up 100 steps + cosine to 0, clipping at
    1.0, the SLN's per-epoch shuffles, no augmentation) at the caller's torch thread count, or reuse
    out/<stem>.safetensors + .json when the config, epochs and training-set size match.
    device: where to train (--device; default the CPU, where the benchmark measures and counts these
    baselines and where its seconds_per_epoch figures come from); the model is returned on the CPU."""
    from .tasks.images import ImageTask
    from .tasks.loop import RunOptions, TrainSpec, fit

    key = {"config": cfg_dict, "epochs": epochs, "train_images": int(len(xtr))}
    wf, jf = (out / f"{stem}.safetensors", out / f"{stem}.json") if out is not None else (None, None)
    info = cached_info(out, stem, cfg_dict, epochs, len(xtr))
    if info is not None and wf is not None:
        model.load_state_dict(load_file(str(wf)))
        model.eval()
        return model, {**info, "reused": True}
    task = ImageTask(xtr, ytr, xte, yte, batch_size, seed, to_input, eval_each_epoch=False, progress=progress)
    res = fit(model, task, TrainSpec(lr=lr, weight_decay=wd, epochs=epochs),
              RunOptions(out=None, progress=progress, threads=torch.get_num_threads(), device=device))
    model.cpu()                   # measured and counted on the CPU, wherever it trained
    secs = res.epoch_seconds
    n_params = sum(p.numel() for p in model.parameters())
    info = {"key": key, "test_accuracy": res.final["accuracy"], "epochs": epochs,
            "seconds_per_epoch": float(np.mean(secs)) if secs else 0.0, "params": n_params,
            "train_images": int(len(xtr)), "test_images": int(len(xte)), "threads": res.threads,
            "trained_on": res.device}
    if wf is not None and jf is not None:
        wf.parent.mkdir(parents=True, exist_ok=True)
        tmp = wf.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, wf)
        jtmp = jf.with_suffix(".json.tmp")
        jtmp.write_text(json.dumps(info, indent=2))
        os.replace(jtmp, jf)
    return model, {**info, "reused": False}


# --------------------------------------------------------------------------- dense SLN
# --------------------------------------------------------------------------- ncps CfC peer
def ncps_available() -> bool:
    try:
        import ncps.torch  # noqa: F401
        return True
    except Exception:  # ImportError, or a broken install of an optional peer
        return False


@dataclass
class CfCConfig:
    """ncps CfC (Hasani et al., Nature Machine Intelligence 2022), default mode, LeCun-tanh backbone of
    `backbone_units`, over the same sequence as SLN (input_size pixels per step), readout = linear head on
    the last hidden state. Trained like the ViT (AdamW lr 3e-3, wd 0, batch 128, same schedule)."""
    name: str = "cfc-64"
    input_size: int = 196
    units: int = 64
    backbone_units: int = 128
    n_classes: int = 10
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    seed: int = 0


CFC_SIZES: dict[str, CfCConfig] = {
    "cfc-64": CfCConfig(name="cfc-64", units=64, backbone_units=128),
    "cfc-128": CfCConfig(name="cfc-128", units=128, backbone_units=256),
}


class CfCClassifier(nn.Module):
    def __init__(self, cfg: CfCConfig) -> None:
        super().__init__()
        from ncps.torch import CfC
        self.cfg = cfg
        self.rnn = CfC(cfg.input_size, cfg.units, batch_first=True, return_sequences=False,
                       backbone_units=cfg.backbone_units)
        self.head = nn.Linear(cfg.units, cfg.n_classes)

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 28, 28) -> (B, 784 / input_size, input_size) in [0, 1], SLN's sequence."""
        return images.reshape(images.shape[0], -1, self.cfg.input_size).float().div(255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)                       # (B, units): last hidden state
        return self.head(y)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def train_cfc(cfg: CfCConfig, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, epochs: int,
              out: Path | None = None, progress: bool = True, device: str = "cpu"
              ) -> tuple[CfCClassifier, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    model = CfCClassifier(cfg)
    return _train_or_reuse(model, model.to_input, asdict(cfg), cfg.name, "cfc", cfg.lr, cfg.weight_decay,
                           cfg.batch_size, cfg.seed, xtr, ytr, xte, yte, epochs, out, progress, device)


def count_cfc(model: CfCClassifier, image: torch.Tensor) -> OpCounter:
    """Counts of one batch-1 inference, from forward hooks on what executes: every nn.Linear call
    (MACs, weights re-read at every step as in the SLN count, activation I/O), every Tanh/Sigmoid
    call (1 nonlinear op per element, plus LeCun's 2 scalings); CfCCell's gate arithmetic
    (ff1*(1-t) + t*ff2 with t = sigmoid(a*ts + b)) is not a module, so it is counted per hidden
    unit per step as 3 muls + 3 adds, and the 4 steps of the sequence from the hooks' call counts."""
    cnt = OpCounter()
    hooks = []

    def lin_hook(mod: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        x = inp[0]
        rows = x.numel() // mod.in_features
        m = rows * mod.in_features * mod.out_features
        cnt.macs += m
        cnt.effective_macs += float((x != 0).sum()) * mod.out_features
        cnt.weight_bytes += 4 * mod.weight.numel()
        cnt.param_bytes += 4 * mod.bias.numel()
        cnt._io(x.numel(), out.numel())

    def act_hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        cnt.nonlin += out.numel()
        cnt._io(out.numel(), out.numel())

    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, (nn.Tanh, nn.Sigmoid)):
            hooks.append(mod.register_forward_hook(act_hook))
    try:
        with torch.no_grad():
            x = model.to_input(image.reshape(1, 28, 28))
            model(x)
    finally:
        for h in hooks:
            h.remove()
    steps, u, bu = x.shape[1], model.cfg.units, model.cfg.backbone_units
    cnt.muls += steps * (3 * u + 2 * bu)
    cnt.adds += steps * 3 * u
    return cnt

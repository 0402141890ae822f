"""ONNX export (`sln export --onnx --checkpoint CK --out DIR`): an SLN for onnxruntime and any ONNX runtime.

Two graphs, both traced from the one float step (`SLN.step`, so no second copy of the model):

  sln_step.onnx      one streaming step, the state in and out (constant memory, any sequence length)
      inputs   x (B, D) float32  [LM: ids (B,) int64]   dt (B,) float32 (elapsed time, 1 = regular)
               h0, y0, h1, y1, ... (B, N) float32       the liquid state and last sparse output per layer
               acc (B, N), n (B,) float32               classifier only: running sum of the top layer's
                                                        output and the number of steps before this one
      outputs  h0_out, y0_out, ...                      the new state (feed it back next step)
               win0, win1, ... (B, N) bool              each layer's k winners (ONNX TopK)
               acc_out, logits (B, C)                   classifier: acc + y, readout(acc_out / (n + 1))
               logits (B, V)                            LM / per-step tasks: the readout of this step
  sln_sequence.onnx  classifier only: x (B, T, D) -> logits (B, C), the whole sequence unrolled for the
                     T of the export (images: the config's steps per image; dt = 1, no padding)

The batch dimension is dynamic. Winner selection is ONNX TopK, whose ties go to the lowest index as
in the stable sort of `LiquidCell.select` (the cell switches to torch.topk while exporting).
onnx_report.json records the names, shapes, opset and, for image checkpoints, a parity check of
onnxruntime against PyTorch on the first test images (tests/test_onnx.py checks 1,000).

Needs the `onnx` extra (pinned in pyproject.toml): onnx, onnxscript (torch's exporter), onnxruntime
(only for the parity check). docs/DEPLOY.md shows how to run the graphs from C.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .model import SLN

STEP_FILE, SEQ_FILE, REPORT_FILE = "sln_step.onnx", "sln_sequence.onnx", "onnx_report.json"
EXTRA = "pip install --only-binary=:all: 'sparse-liquid-networks[onnx]' (onnx, onnxscript, onnxruntime)"
LOGIT_ATOL = 1e-4        # onnxruntime vs PyTorch logits (float32; measured ~1e-6 on MNIST, tests/test_onnx.py)


def require(*modules: str) -> None:
    """ValueError naming the extra to install when a module of the ONNX toolchain is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"ONNX export needs {', '.join(missing)}: {EXTRA}")


class StepGraph(nn.Module):
    """SLN.step with flat tensor inputs/outputs (ONNX graphs take no nested lists)."""

    def __init__(self, model: SLN) -> None:
        super().__init__()
        self.model = model
        self.per_step = model.cfg.task != "classify"

    def forward(self, x: torch.Tensor, dt: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        L = self.model.cfg.n_layers
        state = [(flat[2 * i], flat[2 * i + 1]) for i in range(L)]
        y, new, masks = self.model.step(x, state, dt)
        out = [t for s in new for t in s] + list(masks)
        if self.per_step:
            return (*out, self.model.readout(y))
        acc, n = flat[2 * L], flat[2 * L + 1]
        acc = acc + y
        return (*out, acc, self.model.readout(acc / (n + 1.0)[:, None]))


class SequenceGraph(nn.Module):
    """The classifier over a whole (unpadded, dt = 1) sequence: SLN.forward in eval mode."""

    def __init__(self, model: SLN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def step_names(model: SLN) -> tuple[list[str], list[str]]:
    """(input names, output names) of sln_step.onnx, in order."""
    L = model.cfg.n_layers
    state = [f"{a}{i}" for i in range(L) for a in ("h", "y")]
    ins = ["x", "dt", *state] + ([] if model.cfg.task != "classify" else ["acc", "n"])
    outs = [f"{s}_out" for s in state] + [f"win{i}" for i in range(L)]
    outs += ["logits"] if model.cfg.task != "classify" else ["acc_out", "logits"]
    return ins, outs


def step_example(model: SLN, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Zero state and a dummy input of the step graph's shapes (the trace's example)."""
    cfg = model.cfg
    x = torch.zeros(batch, dtype=torch.long) if cfg.task == "lm" else torch.rand(batch, cfg.input_size)
    state = [t for s in model.init_state(batch) for t in s]
    extra = [] if cfg.task != "classify" else [torch.zeros(batch, cfg.n_neurons), torch.zeros(batch)]
    return (x, torch.ones(batch), *state, *extra)


def image_steps(model: SLN) -> int | None:
    """Steps per image for an image classifier config (28 x 28 pixels, pooled), else None."""
    cfg = model.cfg
    pool = getattr(cfg, "input_pool", 1)
    pixels = (28 // pool) ** 2
    return pixels // cfg.input_size if cfg.task == "classify" and pixels % cfg.input_size == 0 else None


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, ins: list[str], outs: list[str]) -> None:
    """torch.onnx's exporter (torch.export + onnxscript), dimension 0 of every input dynamic."""
    batch = torch.export.Dim("batch")
    dims = {0: batch}
    # StepGraph.forward(x, dt, *flat): torch.export sees the varargs as one tuple argument
    shapes = (dims, dims, tuple(dims for _ in args[2:])) if isinstance(module, StepGraph) else (dims,)
    torch.onnx.export(module.eval(), args, str(path), dynamo=True, input_names=ins, output_names=outs,
                      dynamic_shapes=shapes, verbose=False, optimize=True)


def export_onnx(model: SLN, out: str | Path, seq_len: int | None = None) -> dict[str, Any]:
    """Write sln_step.onnx (and, for a classifier, sln_sequence.onnx unrolled for seq_len steps,
    default the image steps of the config) into out -> report (also written as onnx_report.json)."""
    require("onnx", "onnxscript")
    import onnx

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()       # the caller's model stays where it is
    t0 = time.time()
    ins, outs = step_names(model)
    with torch.no_grad():
        _export(StepGraph(model), step_example(model), out / STEP_FILE, ins, outs)
    cfg = model.cfg
    report: dict[str, Any] = {
        "step": {"file": STEP_FILE, "inputs": ins, "outputs": outs, "batch": "dynamic",
                 "state_shape": ["B", cfg.n_neurons], "k": cfg.k, "n_layers": cfg.n_layers},
        "task": cfg.task, "config": cfg.to_dict(), "torch": torch.__version__, "onnx": onnx.__version__}
    T = seq_len or image_steps(model)
    if cfg.task == "classify" and T:
        with torch.no_grad():
            _export(SequenceGraph(model), (torch.rand(2, T, cfg.input_size),), out / SEQ_FILE, ["x"], ["logits"])
        report["sequence"] = {"file": SEQ_FILE, "inputs": ["x"], "outputs": ["logits"],
                              "x_shape": ["B", T, cfg.input_size]}
    for f in (STEP_FILE, SEQ_FILE):
        if (out / f).is_file():
            onnx.checker.check_model(str(out / f))
    m = onnx.load(str(out / STEP_FILE))
    report["opset"] = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    report["step"]["ops"] = sorted({n.op_type for n in m.graph.node})
    report["seconds"] = round(time.time() - t0, 1)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return report


# --- onnxruntime ---------------------------------------------------------------------------------

def session(path: str | Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session (threads fixed: reproducible timings and results)."""
    require("onnxruntime")
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_stream(sess: Any, model: SLN, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run sln_step.onnx over seq (B, T, D) float32 from zero state, the state fed back each step ->
    (final logits (B, C), winners (T, L, B, N) bool). Classifier graphs only."""
    B, T, _ = seq.shape
    L, N = model.cfg.n_layers, model.cfg.n_neurons
    ins, outs = step_names(model)
    feed = {n: np.zeros((B, N), np.float32) for n in ins[2:2 + 2 * L]}
    feed.update(acc=np.zeros((B, N), np.float32), n=np.zeros(B, np.float32), dt=np.ones(B, np.float32))
    wins = np.zeros((T, L, B, N), bool)
    res: dict[str, np.ndarray] = {}
    for t in range(T):
        feed["x"] = np.ascontiguousarray(seq[:, t])
        res = dict(zip(outs, sess.run(outs, feed), strict=True))
        for name in ins[2:2 + 2 * L]:
            feed[name] = res[f"{name}_out"]
        feed["acc"], feed["n"] = res["acc_out"], feed["n"] + 1.0
        wins[t] = np.stack([res[f"win{i}"] for i in range(L)])
    return res["logits"], wins


@torch.no_grad()
def torch_stream(model: SLN, seq: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The same through PyTorch (SLN.step, stable sort) -> (logits (B, C), winners (T, L, B, N))."""
    model.eval()
    state = model.init_state(seq.shape[0])
    acc = torch.zeros(seq.shape[0], model.cfg.n_neurons)
    wins = []
    for t in range(seq.shape[1]):
        y, state, masks = model.step(seq[:, t], state, 1.0)
        acc += y
        wins.append(torch.stack(masks))
    return model.readout(acc / seq.shape[1]).numpy(), torch.stack(wins).numpy()


def parity(model: SLN, out: str | Path, seq: torch.Tensor, batch: int = 250) -> dict[str, Any]:
    """onnxruntime vs PyTorch on seq (n, T, D): winner agreement of the step graph over every step
    and layer, and the largest logit difference of the step graph and of the sequence graph."""
    out = Path(out)
    model = copy.deepcopy(model).cpu().eval()
    step = session(out / STEP_FILE)
    seq_s = session(out / SEQ_FILE) if (out / SEQ_FILE).is_file() else None
    rows, same_rows, d_step, d_seq, same_pred = 0, 0, 0.0, 0.0, 0
    for s in range(0, len(seq), batch):
        xb = seq[s:s + batch]
        ref_logits, ref_wins = torch_stream(model, xb)
        logits, wins = run_stream(step, model, xb.numpy())
        same_rows += int((wins == ref_wins).all(-1).sum())
        rows += ref_wins.shape[0] * ref_wins.shape[1] * ref_wins.shape[2]
        d_step = max(d_step, float(np.abs(logits - ref_logits).max()))
        same_pred += int((logits.argmax(1) == ref_logits.argmax(1)).sum())
        if seq_s is not None:
            full = seq_s.run(["logits"], {"x": xb.numpy()})[0]
            d_seq = max(d_seq, float(np.abs(full - ref_logits).max()))
    return {"inputs": len(seq), "winner_rows": rows, "winner_rows_identical": same_rows,
            "max_abs_logit_diff_step": d_step, "max_abs_logit_diff_sequence": d_seq if seq_s else None,
            "same_prediction": same_pred, "tolerance": LOGIT_ATOL}


def main_onnx(checkpoint: Path, out: Path, seq_len: int | None = None, check: int = 200,
              data_dir: Path | None = None, dataset: str | None = None) -> int:
    """`sln export --onnx`: export, then (image checkpoints) check onnxruntime on `check` test images."""
    from .checkpoint import load_checkpoint
    model, state = load_checkpoint(checkpoint)
    if not isinstance(model, SLN):
        raise ValueError(f"{checkpoint} does not hold an SLN")
    r = export_onnx(model, out, seq_len)
    dataset = dataset or state.get("dataset")
    if check > 0 and dataset in ("mnist", "fashion-mnist") and "sequence" in r and importlib.util.find_spec(
            "onnxruntime") is not None:
        from .data import load_split
        from .model import encode_images
        xte, _ = load_split(dataset, "test", data_dir, check)
        r["parity"] = parity(model, out, encode_images(torch.from_numpy(xte.copy()), model.cfg))
        (Path(out) / REPORT_FILE).write_text(json.dumps(r, indent=2))
    print(json.dumps({k: r[k] for k in ("step", "sequence", "opset", "parity", "seconds") if k in r}, indent=1))
    print(f"wrote {out}/{STEP_FILE}" + (f", {out}/{SEQ_FILE}" if "sequence" in r else "") + f", {out}/{REPORT_FILE}")
    return 0

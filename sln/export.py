"""`python export.py --checkpoint PATH --out DIR` / `sln export`: int8 model for the C runtime.

This module is also the single specification of the binary model format. The tables
HEADER_FIELDS, TENSORS, DTYPES, ERRORS and LIMITS drive
  * the exporter (`to_bytes`) and the Python parser (`from_bytes`, used by the tests),
  * the C header runtime/sln_format.h (`generate_c_header`; a test checks the checked-in
    header equals the generated one: `python -m sln.export --write-header` regenerates it),
  * the malformed-file test generator (tests/test_runtime.py reads the offsets from here).

File layout (all integers little-endian; the file is a `.sln`):
    [0, 128)          header: HEADER_FIELDS, u32 each, zero padded to HEADER_SIZE
    [table, +16*n)    tensor table, n_tensors entries of (id, dtype, offset, count), u32 each
    [offset, ...)     tensor data, each 4-byte aligned; count elements of dtype
Tensor id = layer * 256 + kind (layer = n_layers for the readout). The expected element
count of every tensor follows from the header (TENSORS' count expressions), so a loader
never trusts a size it cannot recompute.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import quant
from .quant import QLayer, QModel

MAGIC = 0x514E4C53          # b"SLNQ" read as a little-endian u32
VERSION = 1
HEADER_SIZE = 128
TABLE_ENTRY_SIZE = 16

# (name, description). Config fields carry SLNConfig's names (k is SLNConfig.k).
HEADER_FIELDS: list[tuple[str, str]] = [
    ("magic", "0x514E4C53, the bytes 'SLNQ'"),
    ("version", "format version, 1"),
    ("header_size", "bytes of the fixed header, 128"),
    ("file_size", "total bytes of the file"),
    ("input_size", "SLNConfig.input_size: inputs per step (pixels)"),
    ("n_classes", "SLNConfig.n_classes"),
    ("n_neurons", "SLNConfig.n_neurons: population size N per layer"),
    ("n_layers", "SLNConfig.n_layers"),
    ("k", "SLNConfig.k: winners per step"),
    ("n_steps", "steps per sample (784 / input_size for MNIST)"),
    ("n_tensors", "entries in the tensor table"),
    ("table_offset", "byte offset of the tensor table"),
    ("model_kind", "0 = classifier (sln_load); 1 = character LM (sln_lm_load, n_steps 1); was zero padding"),
]
HEADER_OFFSETS = {name: 4 * i for i, (name, _) in enumerate(HEADER_FIELDS)}

DTYPES: dict[str, tuple[int, int, str]] = {  # name -> (code, element bytes, numpy dtype)
    "int8": (1, 1, "<i1"),
    "int32": (2, 4, "<i4"),
}

# kind -> (name, dtype, count expression over d_in, n_neurons, n_classes, lut_points, description)
LAYER_TENSORS: dict[int, tuple[str, str, str, str]] = {
    1: ("w_in", "int8", "d_in * 2 * n_neurons", "input weights, input-major (D, 2N)"),
    2: ("in_mult", "int32", "2 * n_neurons", "requant multipliers of W_in x, [0, 2^23)"),
    3: ("in_shift", "int32", "2 * n_neurons", "requant shifts of W_in x, 1..62"),
    4: ("w_rec", "int8", "n_neurons * 2 * n_neurons", "recurrent weights, winner-major (N, 2N)"),
    5: ("rec_mult", "int32", "2 * n_neurons", "requant multipliers of W_rec y"),
    6: ("rec_shift", "int32", "2 * n_neurons", "requant shifts of W_rec y"),
    7: ("bias", "int32", "2 * n_neurons", "pre-activation bias, Q a_frac"),
    8: ("ln_gamma", "int32", "n_neurons", "LayerNorm gain, Q12"),
    9: ("ln_beta", "int32", "n_neurons", "LayerNorm bias, Q24"),
    10: ("boost", "int32", "n_neurons", "frozen homeostatic boost, 0..65535"),
    11: ("alpha_lut", "int32", "lut_points", "gate table alpha(v) in Q15, 0..32767"),
    12: ("params", "int32", "4", "a_frac (3..20), h_frac (0..15), eps_q (>= 1), reserved 0"),
}
READOUT_TENSORS: dict[int, tuple[str, str, str, str]] = {
    1: ("w_out", "int8", "n_neurons * n_classes", "readout weights, neuron-major (N, C)"),
    2: ("out_mult", "int32", "n_classes", "readout requant multipliers"),
    3: ("out_shift", "int32", "n_classes", "readout requant shifts"),
    4: ("out_bias", "int32", "n_classes", "readout bias, Q16"),
}

# (name, value, description): the loader's documented results
ERRORS: list[tuple[str, int, str]] = [
    ("SLN_OK", 0, "success"),
    ("SLN_ERR_ARG", 1, "null pointer or inconsistent argument (e.g. input length)"),
    ("SLN_ERR_TRUNCATED", 2, "buffer shorter than the header or than header.file_size"),
    ("SLN_ERR_MAGIC", 3, "wrong magic: not an SLN model file"),
    ("SLN_ERR_VERSION", 4, "unsupported format version"),
    ("SLN_ERR_HEADER", 5, "bad header_size, or tensor table outside the file / misaligned"),
    ("SLN_ERR_UNSUPPORTED", 6, "config outside the runtime's limits (layers, k, sizes, steps)"),
    ("SLN_ERR_TENSOR_MISSING", 7, "a required tensor is absent, duplicated or unknown"),
    ("SLN_ERR_TENSOR_TYPE", 8, "a tensor has the wrong dtype or element count"),
    ("SLN_ERR_TENSOR_BOUNDS", 9, "a tensor's offset/size lies past the end of the file or is misaligned"),
    ("SLN_ERR_VALUE", 10, "a parameter outside its valid range (shift, multiplier, Q formats, boost, LUT)"),
    ("SLN_ERR_WORKSPACE", 11, "caller's workspace too small"),
]
ERROR_CODES = {name: value for name, value, _ in ERRORS}

LIMITS: dict[str, int] = {
    "SLN_MAX_LAYERS": quant.MAX_LAYERS, "SLN_MAX_K": quant.MAX_K, "SLN_MAX_INPUT": quant.MAX_INPUT,
    "SLN_MAX_NEURONS": quant.MAX_NEURONS, "SLN_MAX_STEPS": quant.MAX_STEPS,
    "SLN_MAX_CLASSES": quant.MAX_CLASSES, "SLN_MAX_TENSORS": 1024,
}
CONSTANTS: dict[str, int] = {
    "SLN_MULT_BITS": quant.MULT_BITS, "SLN_A_SAT": quant.A_SAT, "SLN_NORM_FRAC": quant.NORM_FRAC,
    "SLN_GAMMA_FRAC": quant.GAMMA_FRAC, "SLN_INV_BITS": quant.INV_BITS, "SLN_ALPHA_ONE": quant.ALPHA_ONE,
    "SLN_LUT_LO": quant.LUT_LO, "SLN_LUT_STEP_LOG2": quant.LUT_STEP_LOG2, "SLN_LUT_SIZE": quant.LUT_SIZE,
    "SLN_BOOST_MAX": quant.BOOST_MAX, "SLN_H_MAX": quant.H_MAX, "SLN_LOGIT_FRAC": quant.LOGIT_FRAC,
}


def expected_count(expr: str, d_in: int, n_neurons: int, n_classes: int) -> int:
    """Evaluate a count expression of the tables: a product of names and integers."""
    env = {"d_in": d_in, "n_neurons": n_neurons, "n_classes": n_classes, "lut_points": quant.LUT_SIZE + 1}
    out = 1
    for term in expr.split("*"):
        term = term.strip()
        out *= int(term) if term.isdigit() else env[term]
    return out


# --- writer / parser ---------------------------------------------------------------------------
def _tensor_list(qm: QModel) -> list[tuple[int, str, np.ndarray]]:
    out: list[tuple[int, str, np.ndarray]] = []
    for li, L in enumerate(qm.layers):
        params = np.array([L.a_frac, L.h_frac, L.eps_q, 0], np.int64)
        for kind, (name, dtype, _, _) in LAYER_TENSORS.items():
            arr = params if name == "params" else getattr(L, name)
            out.append((li * 256 + kind, dtype, arr))
    for kind, (name, dtype, _, _) in READOUT_TENSORS.items():
        out.append((qm.n_layers * 256 + kind, dtype, getattr(qm, name)))
    return out


MODEL_KINDS = {"classifier": 0, "char_lm": 1}


def to_bytes(qm: QModel, model_kind: int = MODEL_KINDS["classifier"]) -> bytes:
    tensors = _tensor_list(qm)
    table_off = HEADER_SIZE
    off = table_off + TABLE_ENTRY_SIZE * len(tensors)
    table, blobs = [], []
    for tid, dtype, arr in tensors:
        code, size, npd = DTYPES[dtype]
        info = np.iinfo(np.dtype(npd))
        flat = np.asarray(arr).ravel()
        if flat.size and (flat.min() < info.min or flat.max() > info.max):
            raise ValueError(f"tensor {tid:#x} does not fit {dtype}")
        raw = flat.astype(npd).tobytes()
        raw += b"\0" * (-len(raw) % 4)  # keep every tensor 4-byte aligned
        table.append(struct.pack("<4I", tid, code, off, flat.size))
        blobs.append(raw)
        off += len(raw)
    vals = {"magic": MAGIC, "version": VERSION, "header_size": HEADER_SIZE, "file_size": off,
            "input_size": qm.input_size, "n_classes": qm.n_classes, "n_neurons": qm.n_neurons,
            "n_layers": qm.n_layers, "k": qm.k, "n_steps": qm.n_steps, "n_tensors": len(tensors),
            "table_offset": table_off, "model_kind": model_kind}
    header = struct.pack(f"<{len(HEADER_FIELDS)}I", *(vals[n] for n, _ in HEADER_FIELDS))
    header += b"\0" * (HEADER_SIZE - len(header))
    return header + b"".join(table) + b"".join(blobs)


def from_bytes(data: bytes) -> QModel:
    """Parse a .sln file (trusting it less than the C loader does; used by tests and tools)."""
    h = dict(zip((n for n, _ in HEADER_FIELDS), struct.unpack_from(f"<{len(HEADER_FIELDS)}I", data, 0), strict=True))
    if h["magic"] != MAGIC or h["version"] != VERSION:
        raise ValueError("not an SLN v1 model file")
    tensors: dict[int, np.ndarray] = {}
    codes = {c: (size, npd) for c, size, npd in DTYPES.values()}
    for i in range(h["n_tensors"]):
        tid, code, off, count = struct.unpack_from("<4I", data, h["table_offset"] + 16 * i)
        size, npd = codes[code]
        tensors[tid] = np.frombuffer(data, npd, count, off).astype(np.int64)
    N, C, D = h["n_neurons"], h["n_classes"], h["input_size"]
    layers = []
    for li in range(h["n_layers"]):
        t = {name: tensors[li * 256 + kind] for kind, (name, *_) in LAYER_TENSORS.items()}
        d_in = D if li == 0 else N
        p = t.pop("params")
        t["w_in"] = t["w_in"].reshape(d_in, 2 * N)
        t["w_rec"] = t["w_rec"].reshape(N, 2 * N)
        layers.append(QLayer(a_frac=int(p[0]), h_frac=int(p[1]), eps_q=int(p[2]), **t))
    r = {name: tensors[h["n_layers"] * 256 + kind] for kind, (name, *_) in READOUT_TENSORS.items()}
    r["w_out"] = r["w_out"].reshape(N, C)
    return QModel(input_size=D, n_classes=C, n_neurons=N, n_layers=h["n_layers"], k=h["k"],
                  n_steps=h["n_steps"], layers=layers, **r)


def to_c_array(data: bytes, symbol: str = "sln_model_data") -> str:
    """The model file as a `static const` C array for firmware (same bytes, same loader)."""
    lines = [f"/* generated by sln.export: {len(data)} bytes of an SLN v{VERSION} model */",
             '#include "sln_model_data.h"', "",
             f"const unsigned char {symbol}[{len(data)}] = {{"]
    for i in range(0, len(data), 16):
        lines.append("  " + ",".join(f"0x{b:02x}" for b in data[i:i + 16]) + ",")
    lines += ["};", f"const unsigned long {symbol}_len = {len(data)}UL;", ""]
    return "\n".join(lines)


def c_array_header(qm: QModel, workspace: int, symbol: str = "sln_model_data") -> str:
    return "\n".join([
        "/* generated by sln.export */", "#ifndef SLN_MODEL_DATA_H", "#define SLN_MODEL_DATA_H", "",
        f"extern const unsigned char {symbol}[];", f"extern const unsigned long {symbol}_len;",
        f"#define SLN_MODEL_WORKSPACE_BYTES {workspace}u",
        f"#define SLN_MODEL_INPUT_BYTES {qm.input_size * qm.n_steps}u",
        f"#define SLN_MODEL_N_CLASSES {qm.n_classes}u", "", "#endif", ""])


def workspace_bytes(qm: QModel) -> int:
    """Bytes of caller-owned workspace sln_run needs (mirror of sln_workspace_size in C)."""
    N, k, L = qm.n_neurons, qm.k, qm.n_layers

    def a4(x: int) -> int:
        return (x + 3) & ~3
    per_layer = a4(2 * N) + a4(2 * k) + a4(2 * k) + 4        # h int16, win idx u16, win val i16, n_win
    return (L * per_layer + a4(2 * qm.input_size) * 2          # input event list idx/val
            + 4 * 2 * N * 2 + 4 * N)                            # acc, a (int32 2N each), readout acc


# --- C header generation -----------------------------------------------------------------------
def generate_c_header() -> str:
    out = ["/* sln_format.h -- GENERATED by `python -m sln.export --write-header` from the tables",
           " * in sln/export.py. Do not edit: tests/test_runtime.py fails if this file differs. */",
           "#ifndef SLN_FORMAT_H", "#define SLN_FORMAT_H", "", "#include <stdint.h>", "",
           f"#define SLN_MAGIC 0x{MAGIC:08X}u", f"#define SLN_VERSION {VERSION}u",
           f"#define SLN_HEADER_SIZE {HEADER_SIZE}u", f"#define SLN_TABLE_ENTRY_SIZE {TABLE_ENTRY_SIZE}u", "",
           "/* header fields: u32 little-endian at these byte offsets */"]
    for name, desc in HEADER_FIELDS:
        out.append(f"#define SLN_HDR_{name.upper()} {HEADER_OFFSETS[name]}u /* {desc} */")
    out += ["", "/* model kinds (header field model_kind) */"]
    out += [f"#define SLN_KIND_{name.upper()} {v}u" for name, v in MODEL_KINDS.items()]
    out += ["", "/* tensor element types */"]
    for name, (code, size, _) in DTYPES.items():
        out.append(f"#define SLN_DTYPE_{name.upper()} {code}u /* {size} byte(s) */")
    out += ["", "/* tensor kinds; id = layer * 256 + kind (layer = n_layers for the readout) */"]
    for kind, (name, dtype, expr, desc) in LAYER_TENSORS.items():
        out.append(f"#define SLN_T_{name.upper()} {kind}u /* {dtype}[{expr}]: {desc} */")
    for kind, (name, dtype, expr, desc) in READOUT_TENSORS.items():
        out.append(f"#define SLN_T_{name.upper()} {kind}u /* readout {dtype}[{expr}]: {desc} */")
    out.append(f"#define SLN_N_LAYER_TENSORS {len(LAYER_TENSORS)}u")
    out.append(f"#define SLN_N_READOUT_TENSORS {len(READOUT_TENSORS)}u")
    out += ["", "/* runtime limits (keep every int32 accumulator in range) */"]
    out += [f"#define {k} {v}u" for k, v in LIMITS.items()]
    out += ["", "/* integer model constants (see sln/quant.py) */"]
    out += [f"#define {k} ({v})" for k, v in CONSTANTS.items()]
    out += ["", "/* error codes returned by every sln_ function */", "typedef enum sln_status {"]
    out += [f"  {name} = {value}, /* {desc} */" for name, value, desc in ERRORS]
    out += ["} sln_status;", "",
            "/* names indexed by status value */",
            "#define SLN_STATUS_NAMES { " + ", ".join(f'"{n}"' for n, _, _ in ERRORS) + " }",
            f"#define SLN_N_STATUS {len(ERRORS)}", "",
            "/* expected element type and count of tensor `kind`; dtype 0 = unknown kind */",
            "/* (called only after the header passed the SLN_MAX_* limits: no overflow) */",
            "static inline uint32_t sln_expected_count(uint32_t readout, uint32_t kind,",
            "    uint32_t d_in, uint32_t n_neurons, uint32_t n_classes, uint32_t *dtype)",
            "{", f"  const uint32_t lut_points = {quant.LUT_SIZE + 1}u;", "  (void)lut_points;",
            "  (void)d_in; (void)n_neurons; (void)n_classes;", "  *dtype = 0u;", "  if (!readout) {",
            "    switch (kind) {"]
    for kind, (_, dtype, expr, _) in LAYER_TENSORS.items():
        out.append(f"    case {kind}u: *dtype = SLN_DTYPE_{dtype.upper()}; return {expr};")
    out += ["    default: return 0u;", "    }", "  }", "  switch (kind) {"]
    for kind, (_, dtype, expr, _) in READOUT_TENSORS.items():
        out.append(f"  case {kind}u: *dtype = SLN_DTYPE_{dtype.upper()}; return {expr};")
    out += ["  default: return 0u;", "  }", "}", "", "#endif /* SLN_FORMAT_H */", ""]
    return "\n".join(out)


HEADER_PATH = Path(__file__).resolve().parent.parent / "runtime" / "sln_format.h"


# --- command line ------------------------------------------------------------------------------
def export(checkpoint: str | Path, out: str | Path, calib: int = 2000, eval_limit: int | None = None,
           data_dir: Path | None = None, dataset: str | None = None) -> dict[str, Any]:
    from .checkpoint import load_checkpoint
    from .data import load_split

    model, train_state = load_checkpoint(checkpoint)
    dataset = dataset or train_state.get("dataset", "mnist")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    xtr, _ = load_split(dataset, "train", data_dir, calib)    # calibration on training data
    qm = quant.quantize(model, xtr)
    xte, yte = load_split(dataset, "test", data_dir, eval_limit)
    stats = quant.compare(model, qm, xte, yte)
    data = to_bytes(qm)
    ws = workspace_bytes(qm)
    (out / "model.sln").write_bytes(data)
    (out / "sln_model_data.c").write_text(to_c_array(data))
    (out / "sln_model_data.h").write_text(c_array_header(qm, ws))
    report = {"checkpoint": str(checkpoint), "dataset": dataset, "model_bytes": len(data),
              "workspace_bytes": ws, "quantiser": qm.report, "test": stats,
              "accuracy_drop_points": 100 * (stats["float_accuracy"] - stats["int8_accuracy"]),
              "seconds": time.time() - t0}
    (out / "export_report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="export.py", description="int8 export of an SLN checkpoint for the C runtime")
    p.add_argument("--checkpoint", type=Path, help="checkpoint.safetensors written by train.py")
    p.add_argument("--out", type=Path, help="output folder: model.sln, sln_model_data.[ch], export_report.json")
    p.add_argument("--calib", type=int, default=2000, help="training images used for calibration")
    p.add_argument("--eval-limit", type=int, default=None, help="test images for float vs int8 (default all)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--dataset", default=None, help="default: the checkpoint's training dataset")
    p.add_argument("--write-header", action="store_true", help=f"regenerate {HEADER_PATH} and exit")
    args = p.parse_args(argv)
    if args.write_header:
        HEADER_PATH.write_text(generate_c_header())
        print(f"wrote {HEADER_PATH}")
        return 0
    if args.checkpoint is None or args.out is None:
        p.error("--checkpoint and --out are required")
    try:
        r = export(args.checkpoint, args.out, args.calib, args.eval_limit, args.data_dir, args.dataset)
    except (FileNotFoundError, ValueError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    t = r["test"]
    print(json.dumps(r["quantiser"], indent=1))
    print(f"{r['dataset']} test ({t['n_images']} images): float {100 * t['float_accuracy']:.2f} %  "
          f"int8 {100 * t['int8_accuracy']:.2f} %  (drop {r['accuracy_drop_points']:.2f} points)  "
          f"agreement {100 * t['prediction_agreement']:.2f} %  winner overlap {100 * t['winner_overlap']:.2f} %")
    print(f"wrote {args.out}/model.sln ({r['model_bytes']} bytes, workspace {r['workspace_bytes']} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

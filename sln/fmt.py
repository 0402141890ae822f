"""The `.sln` binary model format: the one specification (ground floor: numpy, stdlib, sln.intspec).

The tables below (HEADER_FIELDS, DTYPES, NUMERICS, TENSORS, ERRORS, LIMITS, CONSTANTS,
MODEL_KINDS, COUNTER_NAMES) drive
  * the writers (`to_bytes` for an int8 `intspec.QModel`, `float_model_bytes` for an eval-mode
    float SLN) and the Python parser (`from_bytes`, used by the tests and tools),
  * the C header runtime/sln_format.h (`sln.fmt_c.generate_c_header`; a test checks the checked-in header
    equals the generated one: `python -m sln.export --write-header` regenerates it),
  * the malformed-file test generator (tests/test_runtime.py reads the offsets from here).

File layout (all integers little-endian; the file is a `.sln`):
    [0, 128)          header: HEADER_FIELDS, u32 each, zero padded to HEADER_SIZE
    [table, +16*n)    tensor table, n_tensors entries of (id, dtype, offset, count), u32 each
    [offset, ...)     tensor data, each 4-byte aligned; count elements of dtype
Tensor id = layer * 256 + kind (layer = n_layers for the readout). The expected dtype and
element count of every tensor follow from the header (numeric, and the count expressions of
TENSORS), so a loader never trusts a size it cannot recompute.

Version 1 grew twice without a version bump, each time by a u32 placed in the header's zero
padding, so every older file is still read byte for byte as before: `model_kind` (0 =
classifier, the value older files carry) and `numeric` (0 = int8, ditto; 1 = float32, the
host engine's model: the same liquid layers with float32 weights, no requantisation tensors,
and n_steps 0 because the caller gives the sequence length).

Version 2 adds one thing: W_in and W_rec of a layer may each be stored column-sparse, as three
tensors (ptr, delta, val: the layout of `intspec.sparse_encode`, why uint8 deltas is said there)
in place of the dense one; the writers pick it per matrix when it makes the file smaller
(`intspec.choose_storage`). A file is written with the lowest version that holds it: a model
without a sparse matrix is a version-1 file byte for byte (older runtimes still load it), and the
loaders read both versions; a version-1 file holding a sparse tensor is refused (unknown kind).
The element count of delta and val is the last column pointer, checked against the pointer
tensor, whose own count follows from the header.
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from . import intspec, intspec_seq
from .intspec import QLayer, QModel

MAGIC = 0x514E4C53          # b"SLNQ" read as a little-endian u32
VERSION = 2                 # the newest version the loaders read and the writers may write
MIN_VERSION = 1             # the oldest the loaders read; dense-only files are still written as 1
SPARSE_VERSION = 2          # first version with column-sparse matrices
HEADER_SIZE = 128
TABLE_ENTRY_SIZE = 16

# (name, description). Config fields carry SLNConfig's names (k is SLNConfig.k).
HEADER_FIELDS: list[tuple[str, str]] = [
    ("magic", "0x514E4C53, the bytes 'SLNQ'"),
    ("version", "format version: 1, or 2 when a matrix is stored column-sparse"),
    ("header_size", "bytes of the fixed header, 128"),
    ("file_size", "total bytes of the file"),
    ("input_size", "SLNConfig.input_size: inputs per step (pixels)"),
    ("n_classes", "SLNConfig.n_classes"),
    ("n_neurons", "SLNConfig.n_neurons: population size N per layer"),
    ("n_layers", "SLNConfig.n_layers"),
    ("k", "SLNConfig.k: winners per step"),
    ("n_steps", "steps per sample (784 / input_size for MNIST; 0 for float32: given per run)"),
    ("n_tensors", "entries in the tensor table"),
    ("table_offset", "byte offset of the tensor table"),
    ("model_kind", "0 = classifier (sln_run); 1 = character LM (sln_lm_step, n_steps 1); 2 = token classifier "
                   "(sln_classify_tokens, n_steps = most tokens); 3 = event model (sln_events_step, n_steps 1); "
                   "was zero padding"),
    ("numeric", "0 = int8 (requantised integers); 1 = float32 (host engine); was zero padding"),
]
HEADER_OFFSETS = {name: 4 * i for i, (name, _) in enumerate(HEADER_FIELDS)}

DTYPES: dict[str, tuple[int, int, str]] = {  # name -> (code, element bytes, numpy dtype)
    "int8": (1, 1, "<i1"),
    "int32": (2, 4, "<i4"),
    "float32": (3, 4, "<f4"),
    "uint8": (4, 1, "<u1"),
}
NUMERICS = {"int8": 0, "float32": 1}
MODEL_KINDS = {"classifier": 0, "char_lm": 1, "token_classifier": 2, "event_model": 3}

# kind -> (name, dtype, count expression over d_in, n_neurons, n_classes, lut_points, description).
# A count expression is a sum of products of those names and integers; "nnz" = the last entry of
# the matrix's ptr tensor (column-sparse kinds 13..18, version 2, each an alternative to a dense one).
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
    13: ("w_in_ptr", "int32", "d_in + 1", "column-sparse W_in: entries of input j are ptr[j]..ptr[j+1]-1"),
    14: ("w_in_delta", "uint8", "nnz", "column-sparse W_in: row steps (first 0..255, then 1..255)"),
    15: ("w_in_val", "int8", "nnz", "column-sparse W_in: values (0 on padding entries)"),
    16: ("w_rec_ptr", "int32", "n_neurons + 1", "column-sparse W_rec: entries of winner i"),
    17: ("w_rec_delta", "uint8", "nnz", "column-sparse W_rec: row steps"),
    18: ("w_rec_val", "int8", "nnz", "column-sparse W_rec: values"),
}
READOUT_TENSORS: dict[int, tuple[str, str, str, str]] = {
    1: ("w_out", "int8", "n_neurons * n_classes", "readout weights, neuron-major (N, C)"),
    2: ("out_mult", "int32", "n_classes", "readout requant multipliers"),
    3: ("out_shift", "int32", "n_classes", "readout requant shifts"),
    4: ("out_bias", "int32", "n_classes", "readout bias, Q16"),
}
# float32 models: the subset of kinds that exists in float (same kind number = same tensor,
# so one set of SLN_T_* names serves both numerics), float32 elements, no requantisation.
FLOAT_LAYER_TENSORS: dict[int, tuple[str, str, str, str]] = {
    1: ("w_in", "float32", "d_in * 2 * n_neurons", "input weights, input-major (D, 2N)"),
    4: ("w_rec", "float32", "n_neurons * 2 * n_neurons", "recurrent weights, winner-major (N, 2N)"),
    7: ("bias", "float32", "2 * n_neurons", "pre-activation bias"),
    8: ("ln_gamma", "float32", "n_neurons", "LayerNorm gain"),
    9: ("ln_beta", "float32", "n_neurons", "LayerNorm bias"),
    10: ("boost", "float32", "n_neurons", "frozen homeostatic boost (read when has_boost)"),
    12: ("params", "float32", "4", "lambda_min (>= 0), ln_eps (> 0), has_boost (0 or 1), reserved 0"),
    13: LAYER_TENSORS[13], 14: LAYER_TENSORS[14], 15: ("w_in_val", "float32", "nnz", LAYER_TENSORS[15][3]),
    16: LAYER_TENSORS[16], 17: LAYER_TENSORS[17], 18: ("w_rec_val", "float32", "nnz", LAYER_TENSORS[18][3]),
}
FLOAT_READOUT_TENSORS: dict[int, tuple[str, str, str, str]] = {
    1: ("w_out", "float32", "n_neurons * n_classes", "readout weights, neuron-major (N, C)"),
    4: ("out_bias", "float32", "n_classes", "readout bias"),
}
# dense matrix name -> (its kind, the kinds of its column-sparse alternative: ptr, delta, val)
SPARSE_KINDS: dict[str, tuple[int, tuple[int, int, int]]] = {"w_in": (1, (13, 14, 15)), "w_rec": (4, (16, 17, 18))}
SPARSE_ONLY_KINDS = {kd for _, kinds in SPARSE_KINDS.values() for kd in kinds}
# Event models (model_kind 3, sln/intspec_events.py): extra int8 tensors that only such a file holds (and
# must hold, exactly once); every other kind of file must not. Kept out of LAYER_TENSORS / READOUT_TENSORS
# so the tables of the other kinds are unchanged. EVENT_BUCKETS dt buckets, each with its own gate table.
EVENT_BUCKETS = 8            # the count expressions below ("8 * lut_points", "7") follow it
EVENT_LAYER_TENSORS: dict[int, tuple[str, str, str, str]] = {
    19: ("gate_luts", "int32", "8 * lut_points", "event model: one gate table alpha(v) per dt bucket, Q15"),
}
EVENT_READOUT_TENSORS: dict[int, tuple[str, str, str, str]] = {
    5: ("dt_edges", "int32", "7", "event model: bucket = number of edges <= dt (us), strictly ascending, >= 1"),
    6: ("resid_mult", "int32", "n_classes", "event model: requant multipliers of the weighted residual"),
    7: ("resid_shift", "int32", "n_classes", "event model: requant shifts of the weighted residual"),
    8: ("event_params", "int32", "4", "event model: x_frac (0..16), e_frac (0..16), reserved 0, 0"),
}
# (numeric, readout?) -> table: what the writers write and the loader requires
TENSORS: dict[tuple[str, bool], dict[int, tuple[str, str, str, str]]] = {
    ("int8", False): LAYER_TENSORS, ("int8", True): READOUT_TENSORS,
    ("float32", False): FLOAT_LAYER_TENSORS, ("float32", True): FLOAT_READOUT_TENSORS,
}

# (name, value, description): the loader's documented results
ERRORS: list[tuple[str, int, str]] = [
    ("SLN_OK", 0, "success"),
    ("SLN_ERR_ARG", 1, "null pointer or inconsistent argument (e.g. input length)"),
    ("SLN_ERR_TRUNCATED", 2, "buffer shorter than the header or than header.file_size"),
    ("SLN_ERR_MAGIC", 3, "wrong magic: not an SLN model file"),
    ("SLN_ERR_VERSION", 4, "unsupported format version"),
    ("SLN_ERR_HEADER", 5, "bad header_size, or tensor table outside the file / misaligned"),
    ("SLN_ERR_UNSUPPORTED", 6, "config outside the runtime's limits (layers, k, sizes, steps), "
                               "another model kind, or a numeric this build lacks"),
    ("SLN_ERR_TENSOR_MISSING", 7, "a required tensor is absent, duplicated or unknown"),
    ("SLN_ERR_TENSOR_TYPE", 8, "a tensor has the wrong dtype or element count (column-sparse: delta and "
                               "val counts must equal the last column pointer)"),
    ("SLN_ERR_TENSOR_BOUNDS", 9, "a tensor's offset/size lies past the end of the file or is misaligned"),
    ("SLN_ERR_VALUE", 10, "a parameter outside its valid range (shift, multiplier, Q formats, boost, LUT), "
                          "or a column-sparse pointer / row step outside its matrix"),
    ("SLN_ERR_WORKSPACE", 11, "caller's workspace too small"),
]
ERROR_CODES = {name: value for name, value, _ in ERRORS}

LIMITS: dict[str, int] = {
    "SLN_MAX_LAYERS": intspec.MAX_LAYERS, "SLN_MAX_K": intspec.MAX_K, "SLN_MAX_INPUT": intspec.MAX_INPUT,
    "SLN_MAX_NEURONS": intspec.MAX_NEURONS, "SLN_MAX_STEPS": intspec.MAX_STEPS,
    "SLN_MAX_CLASSES": intspec.MAX_CLASSES, "SLN_MAX_TENSORS": 1024,
}
CONSTANTS: dict[str, int] = {
    "SLN_MULT_BITS": intspec.MULT_BITS, "SLN_A_SAT": intspec.A_SAT, "SLN_NORM_FRAC": intspec.NORM_FRAC,
    "SLN_GAMMA_FRAC": intspec.GAMMA_FRAC, "SLN_INV_BITS": intspec.INV_BITS, "SLN_ALPHA_ONE": intspec.ALPHA_ONE,
    "SLN_LUT_LO": intspec.LUT_LO, "SLN_LUT_STEP_LOG2": intspec.LUT_STEP_LOG2, "SLN_LUT_SIZE": intspec.LUT_SIZE,
    "SLN_BOOST_MAX": intspec.BOOST_MAX, "SLN_H_MAX": intspec.H_MAX, "SLN_LOGIT_FRAC": intspec.LOGIT_FRAC,
    "SLN_LOG2E_Q16": intspec_seq.LOG2E_Q16,
}
# Operation counters of the float engine (host benchmark builds, -DSLN_COUNTERS): one row of
# these columns per term (3l+0 input, 3l+1 recurrent, 3l+2 elementwise of layer l; last row readout).
COUNTER_NAMES: tuple[str, ...] = (
    "mac", "ac", "add", "mul", "nonlin", "cmp", "weight_bytes", "act_bytes_read", "act_bytes_written",
    "events", "dense_mac", "nz_out", "param_bytes", "index_bytes")
COUNTER_DOCS = ("multiply-accumulates executed", "accumulates (binary events: multiply by 1 skipped)",
                "elementwise adds/subtracts", "elementwise multiplies", "exp, log1p, sqrt/div",
                "comparisons (ReLU, softplus threshold, top-k)",
                "bytes of weight matrix rows read (W_in, W_rec, W_out)",
                "bytes of activations/state read", "bytes of activations/state written",
                "nonzero inputs consumed (input/recurrent terms)", "MACs a dense execution would need",
                "nonzero outputs produced (winners with h != 0)",
                "bytes of per-neuron parameter vectors read (bias, LayerNorm gain/shift, boost, readout bias)",
                "bytes of column-sparse indices read (row deltas, 1 per entry, + two int32 column pointers)")


def expected_count(expr: str, d_in: int, n_neurons: int, n_classes: int) -> int | None:
    """Evaluate a count expression of the tables (a sum of products of names and integers);
    None for "nnz" (given by the matrix's ptr tensor)."""
    if expr == "nnz":
        return None
    env = {"d_in": d_in, "n_neurons": n_neurons, "n_classes": n_classes, "lut_points": intspec.LUT_SIZE + 1}
    total = 0
    for prod in expr.split("+"):
        out = 1
        for term in prod.split("*"):
            term = term.strip()
            out *= int(term) if term.isdigit() else env[term]
        total += out
    return total


def _check_tables() -> None:
    """One name per kind across numerics (the C header defines SLN_T_<name> once)."""
    for readout in (False, True):
        for kind, spec in TENSORS[("float32", readout)].items():
            assert TENSORS[("int8", readout)][kind][0] == spec[0], (kind, spec)


_check_tables()


# --- writer / parser ---------------------------------------------------------------------------
def _pack(dims: dict[str, int], tensors: list[tuple[int, str, np.ndarray]]) -> bytes:
    """Header (dims + layout fields) + table + 4-byte aligned tensors. The version is the lowest
    that holds the tensors: 2 with a column-sparse matrix, else 1."""
    version = SPARSE_VERSION if any((tid & 255) in SPARSE_ONLY_KINDS for tid, _, _ in tensors) else MIN_VERSION
    table_off = HEADER_SIZE
    off = table_off + TABLE_ENTRY_SIZE * len(tensors)
    table, blobs = [], []
    for tid, dtype, arr in tensors:
        code, _, npd = DTYPES[dtype]
        flat = np.asarray(arr).ravel()
        if dtype != "float32":
            info = np.iinfo(np.dtype(npd))
            if flat.size and (flat.min() < info.min or flat.max() > info.max):
                raise ValueError(f"tensor {tid:#x} does not fit {dtype}")
        raw = flat.astype(npd).tobytes()
        raw += b"\0" * (-len(raw) % 4)  # keep every tensor 4-byte aligned
        table.append(struct.pack("<4I", tid, code, off, flat.size))
        blobs.append(raw)
        off += len(raw)
    vals = {"magic": MAGIC, "version": version, "header_size": HEADER_SIZE, "file_size": off,
            "n_tensors": len(tensors), "table_offset": table_off, **dims}
    header = struct.pack(f"<{len(HEADER_FIELDS)}I", *(vals[n] for n, _ in HEADER_FIELDS))
    header += b"\0" * (HEADER_SIZE - len(header))
    return header + b"".join(table) + b"".join(blobs)


LAYOUTS = ("auto", "dense", "sparse")


def _matrices(arrays: dict[str, np.ndarray], storage: dict[str, str]) -> dict[str, np.ndarray]:
    """Replace each matrix whose storage is "sparse" by its ptr / delta / val tensors."""
    out = dict(arrays)
    for name in SPARSE_KINDS:
        if storage[name] == "sparse":
            ptr, delta, val = intspec.sparse_encode(out.pop(name))
            out.update({f"{name}_ptr": ptr, f"{name}_delta": delta, f"{name}_val": val})
    return out


def _layer_tensors(li: int, table: dict[int, tuple[str, str, str, str]], arrays: dict[str, np.ndarray]
                   ) -> list[tuple[int, str, np.ndarray]]:
    """The layer's tensors in kind order: every kind of the table that `arrays` holds."""
    return [(li * 256 + kind, dtype, arrays[name]) for kind, (name, dtype, _, _) in table.items() if name in arrays]


def _storage(layout: str, pick: Any) -> dict[str, str]:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return {name: pick(name) if layout == "auto" else layout for name in SPARSE_KINDS}


def to_bytes(qm: QModel, model_kind: int = MODEL_KINDS["classifier"], layout: str = "auto",
             extra: list[tuple[int, str, np.ndarray]] | None = None) -> bytes:
    """An int8 model (numeric 0) -> .sln bytes. layout: "auto" stores each W_in / W_rec as its
    QLayer.storage says, else the smaller (intspec.matrix_storage); "dense" / "sparse" force it."""
    tensors: list[tuple[int, str, np.ndarray]] = []
    for li, L in enumerate(qm.layers):
        arrays = {name: getattr(L, name) for name, *_ in LAYER_TENSORS.values() if hasattr(L, name)}
        arrays["params"] = np.array([L.a_frac, L.h_frac, L.eps_q, 0], np.int64)
        storage = _storage(layout, lambda name, L=L: intspec.matrix_storage(L, name))
        tensors += _layer_tensors(li, LAYER_TENSORS, _matrices(arrays, storage))
    for kind, (name, dtype, _, _) in READOUT_TENSORS.items():
        tensors.append((qm.n_layers * 256 + kind, dtype, getattr(qm, name)))
    dims = {"input_size": qm.input_size, "n_classes": qm.n_classes, "n_neurons": qm.n_neurons,
            "n_layers": qm.n_layers, "k": qm.k, "n_steps": qm.n_steps, "model_kind": model_kind,
            "numeric": NUMERICS["int8"]}
    return _pack(dims, tensors + list(extra or []))


def float_model_bytes(model: Any, layout: str = "auto") -> bytes:
    """An eval-mode float SLN classifier (`sln.model.SLN`-like: .cfg, .cells[i].w_in / .w_rec / .ln /
    .boost / .boost_beta / .lambda_min / .ln_eps, .readout) -> float32 .sln bytes (numeric 1) for
    the host engine. Weights are stored transposed (input-major) as the int8 files; layout as
    `to_bytes` ("auto": each matrix column-sparse when that is smaller at 4 bytes per value)."""
    def f32(t: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

    cfg = model.cfg
    if getattr(cfg, "readout", "mean") != "mean":
        raise ValueError(f"readout {cfg.readout!r} (last-state readout) is not in the .sln format; only 'mean'")
    tensors: list[tuple[int, str, np.ndarray]] = []
    for li, cell in enumerate(model.cells):
        has_boost = 1.0 if cell.boost_beta > 0 else 0.0
        arrays = {"w_in": f32(cell.w_in.weight).T, "w_rec": f32(cell.w_rec.weight).T,   # (D, 2N), (N, 2N)
                  "bias": f32(cell.w_in.bias), "ln_gamma": f32(cell.ln.weight), "ln_beta": f32(cell.ln.bias),
                  "boost": f32(cell.boost),
                  "params": np.array([cell.lambda_min, cell.ln_eps, has_boost, 0.0], np.float32)}
        storage = _storage(layout, lambda name, a=arrays: intspec.choose_storage(a[name], 4))
        tensors += _layer_tensors(li, FLOAT_LAYER_TENSORS, _matrices(arrays, storage))
    ro = {"w_out": f32(model.readout.weight).T, "out_bias": f32(model.readout.bias)}   # (N, C), (C,)
    for kind, (name, dtype, _, _) in FLOAT_READOUT_TENSORS.items():
        tensors.append((cfg.n_layers * 256 + kind, dtype, ro[name]))
    dims = {"input_size": cfg.input_size, "n_classes": cfg.n_classes, "n_neurons": cfg.n_neurons,
            "n_layers": cfg.n_layers, "k": cfg.k, "n_steps": 0, "model_kind": MODEL_KINDS["classifier"],
            "numeric": NUMERICS["float32"]}
    return _pack(dims, tensors)


def header_of(data: bytes) -> dict[str, int]:
    if len(data) < 4 * len(HEADER_FIELDS):
        raise ValueError(f"not an SLN model file: {len(data)} bytes is shorter than the "
                         f"{4 * len(HEADER_FIELDS)}-byte header (a cut or empty file? export it again)")
    return dict(zip((n for n, _ in HEADER_FIELDS), struct.unpack_from(f"<{len(HEADER_FIELDS)}I", data, 0),
                    strict=True))


def tensors_of(data: bytes) -> dict[int, np.ndarray]:
    """id -> flat array of the file's tensors (numpy views of the bytes)."""
    h = header_of(data)
    codes = {c: npd for c, _, npd in DTYPES.values()}
    out = {}
    cut = "the file is cut or damaged (export it again)"
    if h["table_offset"] + TABLE_ENTRY_SIZE * h["n_tensors"] > len(data):
        raise ValueError(f"tensor table of {h['n_tensors']} entries runs past the end of the file: {cut}")
    for i in range(h["n_tensors"]):
        tid, code, off, count = struct.unpack_from("<4I", data, h["table_offset"] + TABLE_ENTRY_SIZE * i)
        if code not in codes:
            raise ValueError(f"tensor {tid} has an unknown dtype code {code}: {cut}")
        if off + count * np.dtype(codes[code]).itemsize > len(data):
            raise ValueError(f"tensor {tid} runs past the end of the file: {cut}")
        out[tid] = np.frombuffer(data, codes[code], count, off)
    return out


def sparse_decode(ptr: np.ndarray, delta: np.ndarray, val: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Column-sparse (ptr, delta, val) -> the dense (rows = D, cols = 2N) matrix, with the C
    loader's checks: ptr[0] = 0, nondecreasing, ptr[D] = len(delta) = len(val); within a column
    every step after the first >= 1 and every position < cols. ValueError otherwise."""
    ptr, delta = ptr.astype(np.int64), delta.astype(np.int64)
    n = np.diff(ptr)
    if ptr.shape != (rows + 1,) or ptr[0] != 0 or (n < 0).any() or ptr[-1] != len(delta) or len(delta) != len(val):
        raise ValueError("column-sparse matrix: bad column pointers")
    col = np.repeat(np.arange(rows), n)
    cs = np.cumsum(delta)
    pos = cs - np.concatenate([[0], cs])[ptr[:-1]][col]           # running row within each column
    first = np.zeros(len(delta), bool)
    first[ptr[:-1][n > 0]] = True
    if (pos >= cols).any() or (delta[~first] < 1).any():
        raise ValueError("column-sparse matrix: a row step leaves the column or does not advance")
    w = np.zeros((rows, cols), val.dtype)
    w[col, pos] = val
    return w


def _dense_layer(t: dict[int, np.ndarray], li: int, d_in: int, N: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The layer's tensors by name, each matrix dense (decoded if stored sparse), and its storage."""
    out = {name: t[li * 256 + kind] for kind, (name, *_) in LAYER_TENSORS.items()
           if li * 256 + kind in t and kind not in SPARSE_ONLY_KINDS}
    storage = {}
    for (name, (_, (kp, kd, kv))), rows in zip(SPARSE_KINDS.items(), (d_in, N), strict=True):
        if li * 256 + kp in t:
            out[name] = sparse_decode(t[li * 256 + kp], t[li * 256 + kd], t[li * 256 + kv], rows, 2 * N)
            storage[name] = "sparse"
        else:
            out[name] = out[name].reshape(rows, 2 * N)
            storage[name] = "dense"
    return out, storage


def from_bytes(data: bytes) -> QModel:
    """Parse an int8 .sln file of version 1 or 2 (trusting it less than the C loader does; used by
    tests and tools). Sparse matrices are decoded to dense; QLayer.storage records which were."""
    h = header_of(data)
    if h["magic"] != MAGIC or not MIN_VERSION <= h["version"] <= VERSION:
        raise ValueError(f"not an SLN model file of version {MIN_VERSION}..{VERSION}")
    if h["numeric"] != NUMERICS["int8"]:
        raise ValueError("not an int8 model (numeric != 0)")
    tensors = {tid: a.astype(np.int64) for tid, a in tensors_of(data).items()}
    if h["version"] < SPARSE_VERSION and any((tid & 255) in SPARSE_ONLY_KINDS for tid in tensors):
        raise ValueError("a version-1 file cannot hold column-sparse tensors")
    N, C, D = h["n_neurons"], h["n_classes"], h["input_size"]
    layers = []
    for li in range(h["n_layers"]):
        t, storage = _dense_layer(tensors, li, D if li == 0 else N, N)
        p = t.pop("params")
        layers.append(QLayer(a_frac=int(p[0]), h_frac=int(p[1]), eps_q=int(p[2]), storage=storage, **t))
    r = {name: tensors[h["n_layers"] * 256 + kind] for kind, (name, *_) in READOUT_TENSORS.items()}
    r["w_out"] = r["w_out"].reshape(N, C)
    return QModel(input_size=D, n_classes=C, n_neurons=N, n_layers=h["n_layers"], k=h["k"],
                  n_steps=h["n_steps"], layers=layers, **r)


def lm_to_bytes(qm: QModel) -> bytes:
    return to_bytes(qm, MODEL_KINDS["char_lm"])


def lm_from_bytes(data: bytes) -> QModel:
    if header_of(data)["model_kind"] != MODEL_KINDS["char_lm"]:
        raise ValueError("not a character-LM .sln file (model_kind != 1)")
    return from_bytes(data)


def token_to_bytes(qm: QModel) -> bytes:
    """A token classifier (intspec_seq.token_forward: one-hot token events, mean readout over the valid
    steps, n_steps = the most tokens a sequence may hold) -> .sln bytes of model_kind 2."""
    return to_bytes(qm, MODEL_KINDS["token_classifier"])


def token_from_bytes(data: bytes) -> QModel:
    if header_of(data)["model_kind"] != MODEL_KINDS["token_classifier"]:
        raise ValueError("not a token-classifier .sln file (model_kind != 2)")
    return from_bytes(data)


def events_to_bytes(qm: QModel, ev: dict[str, Any]) -> bytes:
    """An event model (sln/intspec_events.py: int16 feature events, dt buckets, per-step readout and
    weighted residual) -> .sln bytes of model_kind 3. ev: gate_luts (n_layers, EVENT_BUCKETS, 257),
    dt_edges (EVENT_BUCKETS - 1,), resid_mult / resid_shift (C,), x_frac, e_frac."""
    L = qm.n_layers
    extra = [(li * 256 + 19, "int32", np.asarray(ev["gate_luts"][li])) for li in range(L)]
    extra += [(L * 256 + kind, dtype, np.asarray(ev[name]) if name != "event_params" else
               np.array([ev["x_frac"], ev["e_frac"], 0, 0], np.int64))
              for kind, (name, dtype, _, _) in EVENT_READOUT_TENSORS.items()]
    return to_bytes(qm, MODEL_KINDS["event_model"], extra=extra)


def events_from_bytes(data: bytes) -> tuple[QModel, dict[str, Any]]:
    """-> (the liquid layers + readout, the event fields as `events_to_bytes` takes them)."""
    h = header_of(data)
    if h["model_kind"] != MODEL_KINDS["event_model"]:
        raise ValueError("not an event-model .sln file (model_kind != 3)")
    qm = from_bytes(data)
    t = {tid: a.astype(np.int64) for tid, a in tensors_of(data).items()}
    L = h["n_layers"]
    try:
        ev: dict[str, Any] = {name: t[L * 256 + kind] for kind, (name, *_) in EVENT_READOUT_TENSORS.items()}
        ev["gate_luts"] = np.stack([t[li * 256 + 19].reshape(EVENT_BUCKETS, intspec.LUT_SIZE + 1)
                                    for li in range(L)])
    except KeyError as e:
        raise ValueError(f"event-model tensor missing: {e}") from e
    p = ev.pop("event_params")
    ev["x_frac"], ev["e_frac"] = int(p[0]), int(p[1])
    return qm, ev


# --- caller-owned memory (mirrors of sln_state_size / sln_workspace_size in runtime/sln.c) --------
def _a4(x: int) -> int:
    return (x + 3) & ~3


def state_bytes(n_layers: int, n_neurons: int, k: int, numeric: str = "int8") -> int:
    """Streaming state: per layer h (N), winner ids (k, u16), winner values (k), count (i32), then
    two (2N) 32-bit scratch rows. int8 holds h and values as int16, float32 as float."""
    e = 2 if numeric == "int8" else 4
    return n_layers * (_a4(e * n_neurons) + _a4(2 * k) + _a4(e * k) + 4) + 16 * n_neurons


def lm_state_bytes(qm: QModel) -> int:
    """Bytes of the caller-owned LM state (sln_state_size of an LM file)."""
    return state_bytes(qm.n_layers, qm.n_neurons, qm.k)


def workspace_bytes(qm: QModel) -> int:
    """Bytes of caller-owned workspace sln_run needs: the state + the readout accumulator (N int32)."""
    return state_bytes(qm.n_layers, qm.n_neurons, qm.k) + 4 * qm.n_neurons


def float_workspace_bytes(n_layers: int, n_neurons: int, k: int) -> int:
    """sln_run of a float32 model: state + accumulator (N float) + fired flags (N bytes)."""
    return state_bytes(n_layers, n_neurons, k, "float32") + 4 * n_neurons + _a4(n_neurons)

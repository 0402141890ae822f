"""Event-driven inference engine for SLN: batch-1 and streaming, counting what it executes.

The engine reproduces `SLN.forward` (eval mode) but reads only the weight rows of nonzero
inputs and of the previous step's nonzero winners (see the equations in sln/cell.py):

    a = b + sum_{j: x_j != 0} x_j W_in^T[j] + sum_{i: y_i != 0} y_i W_rec^T[i]     (2N,)

W_in and W_rec are stored transposed, (D, 2N) and (N, 2N), so each event reads one
contiguous row. The rest of the step (LayerNorm, softplus, exp, update, top-k) is
elementwise over N. The readout sums the top layer's events over time and reads only the
readout rows of neurons that fired.

There is one implementation: the project's C runtime, runtime/sln.c, the same file the int8
CLIs and the Cortex-M4 firmware are built from, compiled here with its float32 numeric and
its operation counters (-DSLN_FLOAT -DSLN_COUNTERS) as a shared library (built on first use
into $SLN_CACHE, default ~/.cache/sln/host, or by `make -C runtime engine`) and called through
ctypes. The model is handed over as the bytes of a float32 `.sln` file (sln.fmt.float_model_bytes),
parsed by the runtime's loader: no C struct is mirrored in Python. It is tested against the
PyTorch model's own step (`reference_forward`). Batch-1 >= 10x the dense PyTorch forward is
its target.

Counting (NeuroBench conventions, Yik et al., "NeuroBench", arXiv:2304.04640):
  dense MACs      MACs of the same layers executed densely (every input and neuron)
  effective MACs  multiply-accumulates actually executed (nonzero, non-binary operands)
  effective ACs   accumulates actually executed (operand exactly 1.0: the multiply is skipped)
  activation sparsity  share of zero neuron outputs over all neurons, layers and steps
plus elementwise adds/muls, nonlinear ops (exp, log1p, 1/sqrt), compares, and bytes of
weights and of activations/state read and written. Every count is incremented where the
operation executes (per term: input projection, recurrent, elementwise, readout). Weight bytes
come in two counters: `weight_bytes` (rows of the weight matrices W_in, W_rec, W_out) and
`param_bytes` (the per-neuron vectors re-read every step: bias, LayerNorm gain and shift,
boost, readout bias), so that each can be priced at the memory level of its own size.

Sparse weights: a W_in / W_rec with enough exact zeros is handed to the runtime column-sparse
(sln.fmt, format version 2: the runtime reads only each active column's nonzeros), chosen per
matrix when smaller (`layout="auto"`). Its MACs/ACs and `weight_bytes` then count only the stored
entries, and `index_bytes` its row steps (1 byte per entry) and column pointers (8 bytes per
column read). The arithmetic is the dense one minus additions of exact zeros: same results.

Input rows are read once per input event: the same input index in two steps reads its W_in row
twice (the steps are sequential; docs/ENERGY.md "Input-row reuse" has the measurement).
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import fmt
from .cbuild import build_shared
from .model import SLN

# Column order of the counters: the table in sln/fmt.py, generated into runtime/sln_format.h.
COUNTER_NAMES = fmt.COUNTER_NAMES
NC = len(COUNTER_NAMES)
_I = {n: i for i, n in enumerate(COUNTER_NAMES)}

REPO_ROOT = Path(__file__).resolve().parent.parent
# a checkout: runtime/ beside the package; an installed wheel/sdist: the same sources as sln/runtime
_PACKAGED = Path(__file__).resolve().parent / "runtime"
RUNTIME = _PACKAGED if (_PACKAGED / "sln.c").is_file() else REPO_ROOT / "runtime"
HOST_SRC = RUNTIME / "sln.c"
HOST_HDRS = (RUNTIME / "sln.h", RUNTIME / "sln_format.h")
MADE_LIB = RUNTIME / "build" / "libsln_engine.so"       # `make -C runtime engine`
# the flags of runtime/Makefile's ENGINE_FLAGS
CFLAGS = ["-O3", "-march=native", "-std=c99", "-ffp-contract=off", "-fno-strict-aliasing", "-fPIC", "-Wall",
          "-Wextra", "-DSLN_FLOAT", "-DSLN_COUNTERS", "-shared"]
_BUILD_FLOAT, _BUILD_COUNTERS = 1, 2
_NO_WINNER = 0xFFFF
NUMPY_REMOVED = ("backend='numpy' is gone: the numpy twin of the engine was a second copy of the step and "
                 "was removed. The engine is the C runtime (runtime/sln.c); it needs a C compiler "
                 "(apt-get install gcc, or set CC). Use backend='c' (or 'auto', the same).")


class EngineBuildError(RuntimeError):
    """The C runtime could not be built or loaded (no compiler, compile error, wrong build)."""


# --------------------------------------------------------------------------- counts
@dataclass
class Counts:
    """Executed-operation counters, one row per term.

    `rows` has shape (3L+1, NC): for layer l, row 3l = input projection, 3l+1 = recurrent,
    3l+2 = elementwise (LayerNorm, softplus, exp, update, top-k); last row = readout.
    `inferences` is how many sequences the counts cover (divide to get per inference).
    """
    n_layers: int
    n_neurons: int
    rows: np.ndarray = field(default=None)  # type: ignore[assignment]
    inferences: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.zeros((3 * self.n_layers + 1, NC), dtype=np.uint64)

    def term_names(self) -> list[str]:
        names = []
        for l in range(self.n_layers):
            names += [f"L{l}.input", f"L{l}.recurrent", f"L{l}.elementwise"]
        return names + ["readout"]

    def add(self, other: Counts) -> None:
        self.rows += other.rows
        self.inferences += other.inferences
        self.steps += other.steps

    def total(self, name: str) -> int:
        return int(self.rows[:, _I[name]].sum())

    def per_term(self, per_inference: bool = True) -> dict[str, dict[str, float]]:
        d = max(1, self.inferences) if per_inference else 1
        return {t: {n: float(self.rows[i, j]) / d for j, n in enumerate(COUNTER_NAMES)}
                for i, t in enumerate(self.term_names())}

    def summary(self) -> dict[str, float]:
        """Per-inference totals in NeuroBench terms (averaged over `inferences`)."""
        d = max(1, self.inferences)
        tot = {n: self.total(n) / d for n in COUNTER_NAMES}
        neuron_outputs = self.n_layers * self.n_neurons * max(1, self.steps) / d
        # nz_out of the elementwise rows = nonzero neuron outputs; the readout row's nz_out
        # counts fired readout rows and is not a neuron output.
        nz = sum(float(self.rows[3 * l + 2, _I["nz_out"]]) for l in range(self.n_layers)) / d
        return {
            "dense_macs": tot["dense_mac"],
            "effective_macs": tot["mac"],
            "effective_acs": tot["ac"],
            "elementwise_adds": tot["add"],
            "elementwise_muls": tot["mul"],
            "nonlinear_ops": tot["nonlin"],
            "compares": tot["cmp"],
            # all parameter bytes read (meaning unchanged since v1), split into the weight-matrix
            # rows (`weight_bytes` counter), the per-neuron vectors (`param_bytes` counter) and the
            # indices of column-sparse matrices (`index_bytes`, 0 for dense ones)
            "weight_bytes_read": tot["weight_bytes"] + tot["param_bytes"] + tot["index_bytes"],
            "matrix_bytes_read": tot["weight_bytes"],
            "param_bytes_read": tot["param_bytes"],
            "index_bytes_read": tot["index_bytes"],
            "act_bytes_read": tot["act_bytes_read"],
            "act_bytes_written": tot["act_bytes_written"],
            "input_events": float(self.rows[0, _I["events"]]) / d,
            "activation_sparsity": 1.0 - nz / neuron_outputs if neuron_outputs else 0.0,
            "steps": self.steps / d,
        }


# --------------------------------------------------------------------------- C runtime
_LIB: ctypes.CDLL | None = None
_MODEL_STRUCT_BYTES = 0


def build_host_library(force: bool = False) -> Path:
    """Compile runtime/sln.c (float32 + counters) into the cache (keyed by sources + flags) -> .so path.

    Raises EngineBuildError with what to do when there is no compiler or the build fails.
    """
    return build_shared("sln", [HOST_SRC], CFLAGS, headers=HOST_HDRS, error=EngineBuildError, force=force,
                        no_compiler="the engine is the C runtime and needs one; or run `make -C runtime engine` "
                                    "elsewhere and set SLN_HOST_LIB")


def load_host_library() -> ctypes.CDLL:
    """The compiled runtime: $SLN_HOST_LIB, else runtime/build/libsln_engine.so (if newer than the
    sources), else built into the cache on first use."""
    global _LIB, _MODEL_STRUCT_BYTES
    if _LIB is not None:
        return _LIB
    env = os.environ.get("SLN_HOST_LIB")
    if env:
        path = Path(env)
    elif MADE_LIB.is_file() and all(MADE_LIB.stat().st_mtime >= p.stat().st_mtime for p in (HOST_SRC, *HOST_HDRS)):
        path = MADE_LIB
    else:
        path = build_host_library()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise EngineBuildError(f"cannot load {path}: {e}") from e
    vp, sz, u32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32
    try:
        lib.sln_build_info.argtypes = [ctypes.POINTER(u32), ctypes.POINTER(sz)]
    except AttributeError as e:
        raise EngineBuildError(f"{path} is not a build of runtime/sln.c; rebuild it") from e
    flags, msize = u32(0), sz(0)
    lib.sln_build_info(ctypes.byref(flags), ctypes.byref(msize))
    if flags.value & (_BUILD_FLOAT | _BUILD_COUNTERS) != _BUILD_FLOAT | _BUILD_COUNTERS:
        raise EngineBuildError(f"{path} was built without -DSLN_FLOAT -DSLN_COUNTERS; rebuild it")
    lib.sln_load.argtypes = [vp, vp, sz, u32]
    lib.sln_state_size.argtypes = [vp, ctypes.POINTER(sz)]
    lib.sln_workspace_size.argtypes = [vp, ctypes.POINTER(sz)]
    lib.sln_reset.argtypes = [vp, vp, sz]
    lib.sln_step.argtypes = [vp, vp, sz, vp, vp, u32, ctypes.c_float, vp]
    lib.sln_run.argtypes = [vp, vp, sz, vp, vp, sz, vp, vp, vp]
    for fn in (lib.sln_build_info, lib.sln_load, lib.sln_state_size, lib.sln_workspace_size, lib.sln_reset,
               lib.sln_step, lib.sln_run):
        fn.restype = ctypes.c_int
    lib.sln_status_name.argtypes = [ctypes.c_int]
    lib.sln_status_name.restype = ctypes.c_char_p
    _LIB, _MODEL_STRUCT_BYTES = lib, int(msize.value)
    return lib


def c_backend_available() -> bool:
    try:
        load_host_library()
        return True
    except EngineBuildError:
        return False


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _a4(x: int) -> int:
    return (x + 3) & ~3


# --------------------------------------------------------------------------- state
@dataclass
class EngineState:
    """Streaming state of all layers: numpy views into `buf`, the runtime's state bytes.

    h (L, N) float32 liquid state; widx (L, k) uint16 / wval (L, k) float32: each layer's last
    nonzero winners as (index, value) events, the first wn[l] entries valid; wn (L,) int32.
    """
    h: np.ndarray
    widx: np.ndarray
    wval: np.ndarray
    wn: np.ndarray
    buf: np.ndarray | None = None

    def y(self, layer: int = -1) -> np.ndarray:
        """Dense (N,) output of a layer at the last step (zeros except the winners)."""
        n = self.h.shape[1]
        out = np.zeros(n, dtype=np.float32)
        m = int(self.wn[layer])
        out[self.widx[layer, :m]] = self.wval[layer, :m]
        return out


def _state_views(buf: np.ndarray, L: int, N: int, k: int) -> EngineState:
    """Views of runtime/sln.c's state layout (float32): h (L x 4N), winner ids (L x A4(2k)),
    winner values (L x 4k), counts (L x 4), then scratch (sln.fmt.state_bytes)."""
    raw = buf.view(np.uint8)
    o_wi = L * 4 * N
    o_wv = o_wi + L * _a4(2 * k)
    o_nw = o_wv + L * 4 * k
    h = np.ndarray((L, N), np.float32, raw, 0)
    widx = np.ndarray((L, k), np.uint16, raw, o_wi, (_a4(2 * k), 2))
    wval = np.ndarray((L, k), np.float32, raw, o_wv)
    wn = np.ndarray((L,), np.int32, raw, o_nw)
    return EngineState(h, widx, wval, wn, buf)


@dataclass
class RunResult:
    logits: np.ndarray                 # (C,)
    counts: Counts
    winners: list[list[np.ndarray]]    # [step][layer] -> int array of nonzero winner indices


# --------------------------------------------------------------------------- engine
class Engine:
    """Event-driven SLN inference (batch 1 and streaming) with operation counting, on the C runtime.

    backend: "c" or "auto" (the same: the C runtime; EngineBuildError if it cannot be built).
    "numpy" raises ValueError: that twin was removed. layout: how W_in / W_rec are handed to the
    runtime (sln.fmt.float_model_bytes): "auto" (column-sparse where smaller), "dense", "sparse".
    """

    def __init__(self, model: SLN, backend: str = "auto", layout: str = "auto") -> None:
        if model.training:
            raise ValueError("Engine needs an eval-mode model (frozen boost): call model.eval()")
        if backend == "numpy":
            raise ValueError(NUMPY_REMOVED)
        if backend not in ("auto", "c"):
            raise ValueError("backend must be 'auto' or 'c'")
        cfg = model.cfg
        self.cfg = cfg
        self.L, self.N, self.C, self.D0, self.k = cfg.n_layers, cfg.n_neurons, cfg.n_classes, cfg.input_size, cfg.k
        self._lib = load_host_library()
        self.backend = "c"
        data = fmt.float_model_bytes(model, layout)
        self._data = np.frombuffer(data, np.uint8).copy()             # numpy: aligned for float views
        self._model = np.zeros((_MODEL_STRUCT_BYTES + 7) // 8, np.uint64)   # the runtime's sln_model
        self._m = _ptr(self._model)
        self._check(self._lib.sln_load(self._m, _ptr(self._data), len(data), fmt.MODEL_KINDS["classifier"]),
                    "sln_load")
        n = ctypes.c_size_t(0)
        self._check(self._lib.sln_state_size(self._m, ctypes.byref(n)), "sln_state_size")
        self.state_bytes = int(n.value)
        self._check(self._lib.sln_workspace_size(self._m, ctypes.byref(n)), "sln_workspace_size")
        self.workspace_bytes = int(n.value)
        self._ws = np.zeros((self.workspace_bytes + 3) // 4, np.uint32)

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise ValueError(f"{what}: {self._lib.sln_status_name(rc).decode()}")

    def new_counts(self) -> Counts:
        return Counts(self.L, self.N)

    # ----- streaming API
    def init_state(self) -> EngineState:
        return _state_views(np.zeros((self.state_bytes + 3) // 4, np.uint32), self.L, self.N, self.k)

    def step(self, x_t: np.ndarray, state: EngineState, dt: float = 1.0,
             counts: Counts | None = None) -> tuple[np.ndarray, EngineState]:
        """x_t (D0,) -> top-layer output y (N,) (dense view of the events), updated state.

        The state is updated in place (and returned, like the PyTorch cell's API).
        """
        x = np.ascontiguousarray(x_t, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.D0:
            raise ValueError(f"x_t has {x.shape[0]} values, the model expects {self.D0}")
        if state.buf is None:
            raise ValueError("state must come from Engine.init_state()")
        cnt = counts if counts is not None else self.new_counts()
        rc = self._lib.sln_step(self._m, _ptr(state.buf), state.buf.nbytes, _ptr(x), None, self.D0, float(dt),
                                _ptr(cnt.rows))
        if rc:
            raise ValueError(f"sln_step rejected its arguments (dt={dt}): {self._lib.sln_status_name(rc).decode()}")
        cnt.steps += 1
        return state.y(-1), state

    # ----- whole sequence
    def _run(self, x: np.ndarray, dts: np.ndarray | None, logits: np.ndarray, rows: np.ndarray,
             win: np.ndarray | None) -> None:
        rc = self._lib.sln_run(self._m, _ptr(x), x.size, None if dts is None else _ptr(dts), _ptr(self._ws),
                               self._ws.nbytes, _ptr(logits), None if win is None else _ptr(win), _ptr(rows))
        if rc:
            raise ValueError(f"sln_run rejected its arguments: {self._lib.sln_status_name(rc).decode()}")

    def run(self, x: np.ndarray, dt: np.ndarray | float | None = None, record_winners: bool = True
            ) -> RunResult:
        """One sequence x (T, D0) float32 (e.g. images_to_sequence(...)[0]) -> logits, counts, winners."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        T = x.shape[0]
        dts = None if dt is None else np.ascontiguousarray(np.broadcast_to(np.asarray(dt, np.float32), (T,)))
        cnt = self.new_counts()
        logits = np.empty(self.C, np.float32)
        win = np.empty((self.L, T, self.k), np.uint16) if record_winners else None
        self._run(x, dts, logits, cnt.rows, win)
        winners = [] if win is None else [[w[w != _NO_WINNER].astype(np.int64) for w in win[:, t]]
                                          for t in range(T)]
        cnt.inferences, cnt.steps = 1, T
        return RunResult(logits, cnt, winners)

    def run_batch(self, x: np.ndarray) -> tuple[np.ndarray, Counts]:
        """B sequences (B, T, D0) -> logits (B, C) and counts summed over the batch (dt = 1)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        B, T = x.shape[0], x.shape[1]
        cnt = self.new_counts()
        logits = np.empty((B, self.C), np.float32)
        for b in range(B):
            self._run(x[b], None, logits[b], cnt.rows, None)
        cnt.inferences, cnt.steps = B, B * T
        return logits, cnt


# --------------------------------------------------------------------------- helpers
def reference_forward(model: SLN, x: torch.Tensor) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """The PyTorch training-path forward of one sequence x (T, D0), step by step:
    -> logits (C,), winners [step][layer] (indices with nonzero output, ascending)."""
    model.eval()
    with torch.no_grad():
        T = x.shape[0]
        state = model.init_state(1)
        acc = torch.zeros(1, model.cfg.n_neurons)
        winners = []
        for t in range(T):
            y, state, masks = model.step(x[t][None], state, 1.0)
            acc = acc + y
            winners.append([torch.nonzero(s[1][0] != 0).flatten().numpy() for s in state])
        logits = model.readout(acc / T)[0].numpy()
    return logits, winners


def same_winners(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> bool:
    """Winner sets with nonzero value equal at every step and layer (order-free)."""
    return len(a) == len(b) and all(
        len(la) == len(lb) and all(np.array_equal(np.sort(x), np.sort(y)) for x, y in zip(la, lb, strict=True))
        for la, lb in zip(a, b, strict=True))

"""Event-driven inference engine for SLN: batch-1 and streaming, counting what it executes.

The engine reproduces `SLN.forward` (eval mode) but reads only the weight rows of nonzero
inputs and of the previous step's nonzero winners (see the equations in sln/cell.py):

    a = b + sum_{j: x_j != 0} x_j W_in^T[j] + sum_{i: y_i != 0} y_i W_rec^T[i]     (2N,)

W_in and W_rec are stored transposed, (D, 2N) and (N, 2N), so each event reads one
contiguous row. The rest of the step (LayerNorm, softplus, exp, update, top-k) is
elementwise over N. The readout sums the top layer's events over time and reads only the
readout rows of neurons that fired.

Two backends run the same algorithm and count the same way:
  * "c"     -- runtime/host/sln_host.c, the whole step loop compiled (float32), via ctypes;
               built on first use into $SLN_CACHE (default ~/.cache/sln/host) or by
               `make -C runtime/host`. This is the fast path (batch-1 >= 10x the dense
               PyTorch forward is its target).
  * "numpy" -- vectorised over neurons, a Python loop over steps/layers; the fallback when
               no C compiler is available, and a second implementation to test against.

Counting (NeuroBench conventions, Yik et al., "NeuroBench", arXiv:2304.04640):
  dense MACs      MACs of the same layers executed densely (every input and neuron)
  effective MACs  multiply-accumulates actually executed (nonzero, non-binary operands)
  effective ACs   accumulates actually executed (operand exactly 1.0: the multiply is skipped)
  activation sparsity  share of zero neuron outputs over all neurons, layers and steps
plus elementwise adds/muls, nonlinear ops (exp, log1p, 1/sqrt), compares, and bytes of
weights and of activations/state read and written. Every count is incremented where the
operation executes (per term: input projection, recurrent, elementwise, readout).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import SLN

# Column order of the counters; must match the enum in runtime/host/sln_host.c.
COUNTER_NAMES = ("mac", "ac", "add", "mul", "nonlin", "cmp", "weight_bytes", "act_bytes_read",
                 "act_bytes_written", "events", "dense_mac", "nz_out")
NC = len(COUNTER_NAMES)
_I = {n: i for i, n in enumerate(COUNTER_NAMES)}
HOST_ABI = 1

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST_SRC = REPO_ROOT / "runtime" / "host" / "sln_host.c"
CFLAGS = ["-O3", "-march=native", "-std=c99", "-ffp-contract=off", "-fPIC", "-Wall", "-Wextra",
          "-shared"]


class EngineBuildError(RuntimeError):
    """The C kernel could not be built or loaded (no compiler, compile error, bad ABI)."""


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
            "weight_bytes_read": tot["weight_bytes"],
            "act_bytes_read": tot["act_bytes_read"],
            "act_bytes_written": tot["act_bytes_written"],
            "input_events": float(self.rows[0, _I["events"]]) / d,
            "activation_sparsity": 1.0 - nz / neuron_outputs if neuron_outputs else 0.0,
            "steps": self.steps / d,
        }


# --------------------------------------------------------------------------- weights
class _Weights:
    """Float32, C-contiguous, transposed copies of an eval-mode SLN's tensors."""

    def __init__(self, model: SLN) -> None:
        cfg = model.cfg
        self.L, self.N, self.C, self.D0 = cfg.n_layers, cfg.n_neurons, cfg.n_classes, cfg.input_size

        def f32(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

        self.layers: list[dict[str, Any]] = []
        for cell in model.cells:
            self.layers.append({
                "D": cell.input_size, "N": cell.n_neurons, "k": cell.k,
                "has_boost": int(cell.boost_beta > 0),
                "lambda_min": float(cell.lambda_min), "ln_eps": float(cell.ln_eps),
                "w_in_t": f32(cell.w_in.weight.T),     # (D, 2N): one row per input
                "w_rec_t": f32(cell.w_rec.weight.T),   # (N, 2N): one row per neuron
                "bias": f32(cell.w_in.bias),           # (2N,)
                "ln_w": f32(cell.ln.weight), "ln_b": f32(cell.ln.bias),  # (N,)
                "boost": f32(cell.boost),              # (N,) frozen homeostatic gains
            })
        self.w_out_t = f32(model.readout.weight.T)     # (N, C)
        self.b_out = f32(model.readout.bias)           # (C,)


# --------------------------------------------------------------------------- C backend
class _CLayer(ctypes.Structure):
    _fields_ = [("D", ctypes.c_int32), ("N", ctypes.c_int32), ("k", ctypes.c_int32),
                ("has_boost", ctypes.c_int32), ("lambda_min", ctypes.c_float), ("ln_eps", ctypes.c_float),
                ("w_in_t", ctypes.c_void_p), ("w_rec_t", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("ln_w", ctypes.c_void_p), ("ln_b", ctypes.c_void_p), ("boost", ctypes.c_void_p)]


class _CModel(ctypes.Structure):
    _fields_ = [("L", ctypes.c_int32), ("N", ctypes.c_int32), ("C", ctypes.c_int32), ("D0", ctypes.c_int32),
                ("layers", ctypes.POINTER(_CLayer)), ("w_out_t", ctypes.c_void_p), ("b_out", ctypes.c_void_p)]


_LIB: ctypes.CDLL | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("SLN_CACHE", Path.home() / ".cache" / "sln")) / "host"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def build_host_library(force: bool = False) -> Path:
    """Compile runtime/host/sln_host.c into the cache (keyed by source + flags) -> .so path.

    Raises EngineBuildError with what to do when there is no compiler or the build fails.
    """
    if not HOST_SRC.is_file():
        raise EngineBuildError(f"C source {HOST_SRC} is missing (incomplete checkout?)")
    src = HOST_SRC.read_bytes()
    cc = os.environ.get("CC", "gcc")
    # -march=native: the key includes the CPU so a shared cache never serves a foreign build
    key = hashlib.sha256(src + " ".join([cc, *CFLAGS, platform.machine(), _cpu_model()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"libslnhost-{key}.so"
    if out.is_file() and not force:
        return out
    if shutil.which(cc) is None:
        raise EngineBuildError(
            f"no C compiler ({cc!r} not on PATH): the compiled engine needs one (apt-get install gcc, "
            f"or set CC); or run `make -C runtime/host` elsewhere and set SLN_HOST_LIB; "
            f"Engine(backend='numpy') works without it")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_so = Path(tmp) / out.name
        proc = subprocess.run([cc, *CFLAGS, "-o", str(tmp_so), str(HOST_SRC), "-lm"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineBuildError(f"building {HOST_SRC} failed:\n{proc.stderr.strip()}")
        os.replace(tmp_so, out)  # atomic: concurrent builders never see half a library
    return out


def load_host_library() -> ctypes.CDLL:
    """The compiled kernel: $SLN_HOST_LIB, else runtime/host/build (if newer than the source),
    else built into the cache on first use."""
    global _LIB
    if _LIB is not None:
        return _LIB
    env = os.environ.get("SLN_HOST_LIB")
    made = HOST_SRC.parent / "build" / "libslnhost.so"
    if env:
        path = Path(env)
    elif made.is_file() and made.stat().st_mtime >= HOST_SRC.stat().st_mtime:
        path = made
    else:
        path = build_host_library()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise EngineBuildError(f"cannot load {path}: {e}") from e
    if lib.sln_host_abi() != HOST_ABI:
        raise EngineBuildError(f"{path} has ABI {lib.sln_host_abi()}, expected {HOST_ABI}; rebuild it")
    vp, i32, f32 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_float
    lib.sln_step.argtypes = [vp, vp, f32, vp, vp, vp, vp, vp]
    lib.sln_run.argtypes = [vp, vp, vp, i32, vp, vp, vp]
    lib.sln_run_batch.argtypes = [vp, vp, i32, i32, vp, vp]
    for fn in (lib.sln_step, lib.sln_run, lib.sln_run_batch):
        fn.restype = ctypes.c_int
    _LIB = lib
    return lib


def c_backend_available() -> bool:
    try:
        load_host_library()
        return True
    except EngineBuildError:
        return False


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


# --------------------------------------------------------------------------- state
@dataclass
class EngineState:
    """Streaming state of all layers.

    h (L, N) liquid state; widx (L, N) int32 / wval (L, N) float32: each layer's last nonzero
    winners as (index, value) events, the first wn[l] entries valid; wn (L,) int32.
    """
    h: np.ndarray
    widx: np.ndarray
    wval: np.ndarray
    wn: np.ndarray

    def y(self, layer: int = -1) -> np.ndarray:
        """Dense (N,) output of a layer at the last step (zeros except the winners)."""
        n = self.h.shape[1]
        out = np.zeros(n, dtype=np.float32)
        m = int(self.wn[layer])
        out[self.widx[layer, :m]] = self.wval[layer, :m]
        return out


@dataclass
class RunResult:
    logits: np.ndarray                 # (C,)
    counts: Counts
    winners: list[list[np.ndarray]]    # [step][layer] -> int array of nonzero winner indices


# --------------------------------------------------------------------------- engine
class Engine:
    """Event-driven SLN inference (batch 1 and streaming) with operation counting.

    backend: "c" (compiled kernel; raises EngineBuildError if unavailable), "numpy", or
    "auto" (C, falling back to numpy with a warning).
    """

    def __init__(self, model: SLN, backend: str = "auto") -> None:
        if model.training:
            raise ValueError("Engine needs an eval-mode model (frozen boost): call model.eval()")
        self.cfg = model.cfg
        self.w = _Weights(model)
        self.L, self.N, self.C, self.D0 = self.w.L, self.w.N, self.w.C, self.w.D0
        if backend not in ("auto", "c", "numpy"):
            raise ValueError("backend must be 'auto', 'c' or 'numpy'")
        if backend in ("auto", "c"):
            try:
                self._lib = load_host_library()
                self.backend = "c"
            except EngineBuildError as e:
                if backend == "c":
                    raise
                warnings.warn(f"compiled SLN engine unavailable, using numpy: {e}", stacklevel=2)
                backend = "numpy"
        if backend == "numpy":
            self._lib = None
            self.backend = "numpy"
        else:
            self._make_cmodel()

    # ----- C structs (kept alive by self: they point into self.w's arrays)
    def _make_cmodel(self) -> None:
        ly = (_CLayer * self.L)()
        for i, d in enumerate(self.w.layers):
            ly[i] = _CLayer(d["D"], d["N"], d["k"], d["has_boost"], d["lambda_min"], d["ln_eps"],
                            _ptr(d["w_in_t"]), _ptr(d["w_rec_t"]), _ptr(d["bias"]),
                            _ptr(d["ln_w"]), _ptr(d["ln_b"]), _ptr(d["boost"]))
        self._clayers = ly
        self._cmodel = _CModel(self.L, self.N, self.C, self.D0, ly, _ptr(self.w.w_out_t), _ptr(self.w.b_out))
        self._cm = ctypes.addressof(self._cmodel)

    def new_counts(self) -> Counts:
        return Counts(self.L, self.N)

    # ----- streaming API
    def init_state(self) -> EngineState:
        L, N = self.L, self.N
        return EngineState(np.zeros((L, N), np.float32), np.zeros((L, N), np.int32),
                           np.zeros((L, N), np.float32), np.zeros(L, np.int32))

    def step(self, x_t: np.ndarray, state: EngineState, dt: float = 1.0,
             counts: Counts | None = None) -> tuple[np.ndarray, EngineState]:
        """x_t (D0,) -> top-layer output y (N,) (dense view of the events), updated state.

        The state is updated in place (and returned, like the PyTorch cell's API).
        """
        x = np.ascontiguousarray(x_t, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.D0:
            raise ValueError(f"x_t has {x.shape[0]} values, the model expects {self.D0}")
        cnt = counts if counts is not None else self.new_counts()
        if self.backend == "c":
            rc = self._lib.sln_step(self._cm, _ptr(x), float(dt), _ptr(state.h), _ptr(state.widx),
                                    _ptr(state.wval), _ptr(state.wn), _ptr(cnt.rows))
            if rc:
                raise ValueError(f"sln_step rejected its arguments (dt={dt})")
        else:
            self._np_step(x, state, float(dt), cnt.rows)
        cnt.steps += 1
        return state.y(-1), state

    # ----- whole sequence
    def run(self, x: np.ndarray, dt: np.ndarray | float | None = None, record_winners: bool = True
            ) -> RunResult:
        """One sequence x (T, D0) float32 (e.g. images_to_sequence(...)[0]) -> logits, counts, winners."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        T = x.shape[0]
        dts = None if dt is None else np.ascontiguousarray(np.broadcast_to(np.asarray(dt, np.float32), (T,)))
        cnt = self.new_counts()
        if self.backend == "c":
            logits = np.empty(self.C, np.float32)
            win = np.empty((T, self.L, self.N), np.int32) if record_winners else None
            rc = self._lib.sln_run(self._cm, _ptr(x), None if dts is None else _ptr(dts), T, _ptr(logits),
                                   _ptr(cnt.rows), None if win is None else _ptr(win))
            if rc:
                raise ValueError("sln_run rejected its arguments")
            winners = [] if win is None else [[w[w >= 0] for w in win[t]] for t in range(T)]
        else:
            logits, winners = self._np_run(x, dts, cnt.rows)
        cnt.inferences, cnt.steps = 1, T
        return RunResult(logits, cnt, winners)

    def run_batch(self, x: np.ndarray) -> tuple[np.ndarray, Counts]:
        """B sequences (B, T, D0) -> logits (B, C) and counts summed over the batch (dt = 1)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        B, T = x.shape[0], x.shape[1]
        cnt = self.new_counts()
        if self.backend == "c":
            logits = np.empty((B, self.C), np.float32)
            if self._lib.sln_run_batch(self._cm, _ptr(x), B, T, _ptr(logits), _ptr(cnt.rows)):
                raise ValueError("sln_run_batch rejected its arguments")
        else:
            logits = np.empty((B, self.C), np.float32)
            for b in range(B):
                logits[b], _ = self._np_run(x[b], None, cnt.rows)
        cnt.inferences, cnt.steps = B, B * T
        return logits, cnt

    # ----- numpy backend (same algorithm and counting as sln_host.c)
    def _np_layer(self, l: int, x_dense: np.ndarray | None, ev_idx: np.ndarray | None,
                  ev_val: np.ndarray | None, dt: float, state: EngineState, rows: np.ndarray) -> None:
        d = self.w.layers[l]
        N, N2, D, k = d["N"], 2 * d["N"], d["D"], d["k"]
        ci, cr, ce = rows[3 * l], rows[3 * l + 1], rows[3 * l + 2]
        I = _I
        # input projection: gather rows of the nonzero inputs
        ci[I["weight_bytes"]] += N2 * 4
        ci[I["dense_mac"]] += D * N2
        if x_dense is not None:
            ci[I["act_bytes_read"]] += D * 4
            ev_idx = np.flatnonzero(x_dense)
            ev_val = x_dense[ev_idx]
        assert ev_idx is not None and ev_val is not None
        if x_dense is None:
            ci[I["act_bytes_read"]] += len(ev_idx) * 8
        n_bin = int((ev_val == 1.0).sum())
        ci[I["ac"]] += n_bin * N2
        ci[I["mac"]] += (len(ev_idx) - n_bin) * N2
        ci[I["weight_bytes"]] += len(ev_idx) * N2 * 4
        ci[I["events"]] += len(ev_idx)
        a = d["bias"] + ev_val @ d["w_in_t"][ev_idx]                       # (2N,)
        # recurrent projection: rows of the previous nonzero winners
        m = int(state.wn[l])
        ridx, rval = state.widx[l, :m], state.wval[l, :m]
        cr[I["dense_mac"]] += N * N2
        cr[I["act_bytes_read"]] += m * 8
        r_bin = int((rval == 1.0).sum())
        cr[I["ac"]] += r_bin * N2
        cr[I["mac"]] += (m - r_bin) * N2
        cr[I["weight_bytes"]] += m * N2 * 4
        cr[I["events"]] += m
        if m:
            a = a + rval @ d["w_rec_t"][ridx]
        a = a.astype(np.float32)
        ce[I["act_bytes_written"]] += N2 * 4
        ce[I["act_bytes_read"]] += N2 * 4
        # LayerNorm (float64 statistics, as the C kernel), candidate, decay, update
        u, v = a[:N], a[N:]
        mean = np.float32(u.astype(np.float64).mean())
        var = ((u.astype(np.float64) - np.float64(mean)) ** 2).mean()
        rstd = np.float32(1.0) / np.sqrt(np.float32(var) + np.float32(d["ln_eps"]))
        c = np.maximum((u - mean) * rstd * d["ln_w"] + d["ln_b"], np.float32(0))
        big = v > 20.0
        with np.errstate(over="ignore"):
            sp = np.where(big, v, np.log1p(np.exp(np.minimum(v, 20.0)))).astype(np.float32)
        lam = sp + np.float32(d["lambda_min"])
        alpha = np.exp(-lam * np.float32(dt))
        h = state.h[l]
        h[:] = alpha * h + (np.float32(1) - alpha) * c
        ce[I["add"]] += 3 * N + 1 + 5 * N
        ce[I["mul"]] += N + 2 + 5 * N
        ce[I["nonlin"]] += 1 + N + 2 * int((~big).sum())
        ce[I["cmp"]] += 2 * N
        ce[I["weight_bytes"]] += N * 8
        ce[I["act_bytes_read"]] += N * 4
        ce[I["act_bytes_written"]] += N * 4
        # k-WTA (stable: ties to the lowest index); only nonzero winners become events
        if k >= N:
            win = np.flatnonzero(h)
            ce[I["cmp"]] += N
        else:
            score = h
            if d["has_boost"]:
                score = h * d["boost"]
                ce[I["mul"]] += N
                ce[I["weight_bytes"]] += N * 4
            order = np.argsort(-score, kind="stable")[:k]
            win = order[h[order] != 0]
            # compares of the numpy path: N + k log2 k for a selection (the C kernel counts
            # the compares its insertion top-k executes)
            ce[I["cmp"]] += N + int(k * np.ceil(np.log2(max(k, 2)))) + k
        n = len(win)
        state.widx[l, :n] = win
        state.wval[l, :n] = h[win]
        state.wn[l] = n
        ce[I["nz_out"]] += n
        ce[I["act_bytes_written"]] += n * 8

    def _np_step(self, x: np.ndarray, state: EngineState, dt: float, rows: np.ndarray) -> None:
        for l in range(self.L):
            if l == 0:
                self._np_layer(0, x, None, None, dt, state, rows)
            else:
                m = int(state.wn[l - 1])
                self._np_layer(l, None, state.widx[l - 1, :m].copy(), state.wval[l - 1, :m].copy(),
                               dt, state, rows)

    def _np_run(self, x: np.ndarray, dts: np.ndarray | None, rows: np.ndarray
                ) -> tuple[np.ndarray, list[list[np.ndarray]]]:
        T = x.shape[0]
        st = self.init_state()
        acc = np.zeros(self.N, np.float32)
        fired = np.zeros(self.N, bool)
        ro = rows[3 * self.L]
        I = _I
        winners = []
        for t in range(T):
            self._np_step(x[t], st, 1.0 if dts is None else float(dts[t]), rows)
            m = int(st.wn[-1])
            ti, tv = st.widx[-1, :m], st.wval[-1, :m]
            acc[ti] += tv
            fired[ti] = True
            ro[I["add"]] += m
            ro[I["act_bytes_read"]] += m * 12
            ro[I["act_bytes_written"]] += m * 4
            ro[I["events"]] += m
            winners.append([st.widx[l, :int(st.wn[l])].copy() for l in range(self.L)])
        sel = np.flatnonzero(fired & (acc != 0))
        nf = len(sel)
        logits = ((acc[sel] * np.float32(1.0 / T)) @ self.w.w_out_t[sel] + self.w.b_out).astype(np.float32)
        C = self.C
        ro[I["mac"]] += nf * C
        ro[I["mul"]] += nf + 1
        ro[I["nonlin"]] += 1
        ro[I["add"]] += C
        ro[I["weight_bytes"]] += nf * C * 4 + C * 4
        ro[I["act_bytes_read"]] += self.N + nf * 4
        ro[I["act_bytes_written"]] += C * 4
        ro[I["dense_mac"]] += self.N * C
        ro[I["nz_out"]] += nf
        return logits, winners


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

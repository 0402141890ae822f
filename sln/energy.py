"""Per-operation energy table (one place, swappable) and the arithmetic that applies it.

Default profile "horowitz45": M. Horowitz, "Computing's energy problem (and what we can do
about it)", IEEE ISSCC 2014, Digest of Technical Papers pp. 10-14 (45 nm, 0.9 V):

    operation                 energy (pJ)
    8-bit int add             0.03        8-bit int multiply   0.2
    32-bit int add            0.1         32-bit int multiply  3.1
    32-bit float add          0.9         32-bit float multiply 3.7
    64-bit SRAM read, 8 KB    10          32 KB  20             1 MB  100
    64-bit DRAM read          1300-2600   (1300 used by default: the optimistic end)

Conventions (docs/ENERGY.md):
  * a MAC = one multiply + one add of the precision; an AC = one add;
  * a compare is priced as an add of the precision;
  * nonlinear ops (exp, log1p, erf, 1/sqrt) are not in the table: ASSUMED to cost a degree-4
    polynomial plus range reduction, 5 multiplies + 5 adds at the precision (swappable);
  * memory: bytes / 8 accesses of 64 bits, each priced by the size of the data set it comes
    from (`memory_level`). Three data sets, priced separately, the same way for every model:
    the weight MATRICES (their whole size at the precision), the per-neuron / per-channel
    parameter VECTORS (bias, requantisation multipliers and shifts, LayerNorm gain and shift,
    boost, gate table, per-channel scales: their own total size), and the activations/state
    (the model's activation working set). The indices of column-sparse matrices (row deltas and
    column pointers, `index_bytes`) are stored with the matrices and priced at their level:
    the matrices' footprint should then be their stored size, values + indices.
  * memory models (`memory_model`):
      "continuous" (default): SRAM energy per 64-bit access E(C) = E_c (C / C_c)^(s b), the
      least-squares line in log-log through the cited points (b = 0.4726: about sqrt(C), the
      wire-dominated scaling), C_c / E_c their geometric means, s = `sram_slope_scale` (1; the
      sensitivity analysis uses 2 and 0.5). Held at its value at the smallest cited capacity
      below it (no extrapolation downwards). Up to `onchip_bytes` (1 MB, the largest cited
      SRAM) the data is on chip; a larger data set keeps `onchip_bytes` of it on chip and the
      rest in DRAM, each access landing on chip with probability onchip/size:
      price = (S/F) E(S) + (1 - S/F) DRAM. Continuous and increasing in the size everywhere.
      "steps": the published model up to 2026-11: the smallest cited level that holds the data
      (8 KB, 32 KB, 1 MB), else DRAM (a 13x jump at 1 MB).
  * int8 accumulation is done in 32 bits: an int8 MAC = int8 multiply + int32 add.
  * integer elementwise work (requantisation, integer LayerNorm, LUT gate, state update,
    top-k of an int8 model) is counted as 32-bit integer ops: keys adds32 / muls32 / cmps32,
    priced at the int32 add / int32 multiply rows whatever the `precision` argument.

A profile can also be read from a JSON file with the same fields (`--energy-profile PATH`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MB = 1024 * 1024
MEMORY_MODELS = ("continuous", "steps")


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    citation: str
    fp32_add: float = 0.9
    fp32_mul: float = 3.7
    int8_add: float = 0.03
    int8_mul: float = 0.2
    int32_add: float = 0.1
    int32_mul: float = 3.1
    # (capacity in bytes, pJ per 64-bit read), ascending: the cited SRAM points
    sram_levels: tuple[tuple[int, float], ...] = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
    dram_64b: float = 1300.0
    memory_model: str = "continuous"
    onchip_bytes: int = MB            # continuous model: SRAM capacity; beyond it DRAM (partly)
    sram_slope_scale: float = 1.0     # continuous model: multiplies the fitted log-log slope
    # nonlinear op = nonlin_muls multiplies + nonlin_adds adds (an assumption, see module doc)
    nonlin_muls: int = 5
    nonlin_adds: int = 5
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.memory_model not in MEMORY_MODELS:
            raise ValueError(f"memory_model must be one of {MEMORY_MODELS}, got {self.memory_model!r}")
        if self.memory_model == "continuous" and len(self.sram_levels) < 2:
            raise ValueError("the continuous memory model needs at least two SRAM points to fit")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sram_levels"] = [list(x) for x in self.sram_levels]
        d["notes"] = list(self.notes)
        if self.memory_model == "continuous":   # derived, for the reader (ignored when loaded back)
            c, e, b = self.sram_fit()
            d["sram_fit"] = {"centre_bytes": c, "centre_pj": e, "exponent": b,
                             "formula": "pJ per 64-bit access = centre_pj * (bytes / centre_bytes) ** exponent"}
        return d

    # ----- arithmetic of one precision
    def op_pj(self, precision: str = "fp32") -> dict[str, float]:
        """pJ per mac, ac, add, mul, cmp, nonlin at a precision ('fp32' or 'int8')."""
        if precision == "fp32":
            add, mul, acc = self.fp32_add, self.fp32_mul, self.fp32_add
        elif precision == "int8":
            add, mul, acc = self.int8_add, self.int8_mul, self.int32_add
        else:
            raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        return {"mac": mul + acc, "ac": acc, "add": add, "mul": mul, "cmp": add,
                "nonlin": self.nonlin_muls * mul + self.nonlin_adds * add}

    # ----- memory
    def sram_fit(self) -> tuple[float, float, float]:
        """Least squares of log(pJ) on log(bytes) through the cited SRAM points -> (C_c, E_c, slope):
        C_c, E_c the geometric means (the fitted line passes through them); slope = fitted slope x
        sram_slope_scale (the scaled line pivots on the same centre)."""
        xs = [math.log(c) for c, _ in self.sram_levels]
        ys = [math.log(e) for _, e in self.sram_levels]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        return math.exp(mx), math.exp(my), b * self.sram_slope_scale

    def sram_pj(self, nbytes: float) -> float:
        """Continuous model: pJ per 64-bit SRAM access for a data set of nbytes (held at the
        smallest cited capacity below it)."""
        c, e, b = self.sram_fit()
        n = max(float(nbytes), float(self.sram_levels[0][0]))
        return e * (n / c) ** b

    def memory_level(self, nbytes: float) -> tuple[str, float]:
        """Where a data set of nbytes is read from -> (name, pJ per 64-bit access)."""
        if self.memory_model == "steps":
            for cap, pj in self.sram_levels:
                if nbytes <= cap:
                    return f"SRAM {_human(cap)}", pj
            return "DRAM", self.dram_64b
        S = float(self.onchip_bytes)
        if nbytes <= S:
            return f"SRAM {_human(max(nbytes, self.sram_levels[0][0]))} (fit)", self.sram_pj(nbytes)
        f = S / float(nbytes)
        return (f"SRAM {_human(S)} + DRAM {100 * (1 - f):.0f}%",
                f * self.sram_pj(S) + (1 - f) * self.dram_64b)


def _human(n: float) -> str:
    if n >= MB:
        return f"{n / MB:.3g} MB"
    return f"{n / 1024:.3g} KB"


_CITE = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
         "IEEE ISSCC 2014, pp. 10-14; 45 nm, 0.9 V")
_NONLIN_NOTE = "nonlinear ops (exp, log1p, erf, 1/sqrt) are an assumption: 5 mul + 5 add"
_FIT_NOTE = ("SRAM: least-squares fit in log-log through the cited 8 KB / 32 KB / 1 MB points (exponent 0.4726); "
             "on chip up to onchip_bytes, beyond it the excess share of the accesses from DRAM")
HOROWITZ_45NM = EnergyProfile(
    name="horowitz45", citation=_CITE,
    notes=("DRAM priced at 1.3 nJ per 64-bit read, the low end of the cited 1.3-2.6 nJ", _FIT_NOTE, _NONLIN_NOTE),
)
HOROWITZ_45NM_STEPS = EnergyProfile(
    name="horowitz45-steps", citation=_CITE, memory_model="steps",
    notes=("the step model published until 2026-11: smallest cited SRAM level holding the data, else DRAM",
           "DRAM priced at 1.3 nJ per 64-bit read, the low end of the cited 1.3-2.6 nJ", _NONLIN_NOTE),
)
HOROWITZ_45NM_DRAM_HIGH = dataclasses.replace(
    HOROWITZ_45NM, name="horowitz45-dram-high", dram_64b=2600.0,
    notes=("DRAM priced at 2.6 nJ per 64-bit read, the high end of the cited range", _FIT_NOTE, _NONLIN_NOTE))
HOROWITZ_45NM_ONCHIP_8MB = dataclasses.replace(
    HOROWITZ_45NM, name="horowitz45-onchip-8mb", onchip_bytes=8 * MB,
    notes=("sensitivity: 8 MB on chip (the fit extrapolated beyond the cited 1 MB)", _FIT_NOTE, _NONLIN_NOTE))
HOROWITZ_45NM_SLOPE_X2 = dataclasses.replace(
    HOROWITZ_45NM, name="horowitz45-slope-x2", sram_slope_scale=2.0,
    notes=("sensitivity: SRAM log-log slope doubled (pivot at the fit's centre, 64 KB)", _FIT_NOTE, _NONLIN_NOTE))
HOROWITZ_45NM_SLOPE_HALF = dataclasses.replace(
    HOROWITZ_45NM, name="horowitz45-slope-x0.5", sram_slope_scale=0.5,
    notes=("sensitivity: SRAM log-log slope halved (pivot at the fit's centre, 64 KB)", _FIT_NOTE, _NONLIN_NOTE))
PROFILES: dict[str, EnergyProfile] = {p.name: p for p in (
    HOROWITZ_45NM, HOROWITZ_45NM_STEPS, HOROWITZ_45NM_DRAM_HIGH, HOROWITZ_45NM_ONCHIP_8MB, HOROWITZ_45NM_SLOPE_X2,
    HOROWITZ_45NM_SLOPE_HALF)}
DEFAULT_PROFILE = HOROWITZ_45NM.name
_DERIVED_KEYS = ("sram_fit",)


def get_profile(name_or_path: str | None = None) -> EnergyProfile:
    """A named profile, or a JSON file with EnergyProfile's fields (name and citation required;
    a file without `memory_model` gets the continuous default)."""
    if name_or_path is None:
        return PROFILES[DEFAULT_PROFILE]
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    p = Path(name_or_path)
    if not p.is_file():
        raise ValueError(f"unknown energy profile {name_or_path!r}: use one of {', '.join(PROFILES)} "
                         f"or a JSON file path")
    d = json.loads(p.read_text())
    if "name" not in d or "citation" not in d:
        raise ValueError(f"{p}: an energy profile needs 'name' and 'citation'")
    for k in _DERIVED_KEYS:
        d.pop(k, None)
    if "sram_levels" in d:
        d["sram_levels"] = tuple((int(c), float(e)) for c, e in d["sram_levels"])
    if "notes" in d:
        d["notes"] = tuple(d["notes"])
    return EnergyProfile(**d)


OPS_KEYS = ("macs", "acs", "adds", "muls", "cmps", "nonlin", "weight_bytes", "param_bytes", "act_bytes",
            "adds32", "muls32", "cmps32", "index_bytes")


def estimate_pj(ops: dict[str, float], weight_footprint_bytes: float, act_footprint_bytes: float,
                profile: EnergyProfile | None = None, precision: str = "fp32",
                param_footprint_bytes: float | None = None) -> dict[str, Any]:
    """Energy of one inference in pJ, by term.

    ops: counts per inference with keys macs, acs, adds, muls, cmps, nonlin, weight_bytes (bytes
    of weight matrices read), param_bytes (bytes of per-neuron / per-channel parameter vectors
    read), act_bytes (read + written), and adds32, muls32, cmps32 (32-bit integer elementwise
    ops, always priced at the int32 rows), index_bytes (indices of column-sparse matrices read,
    priced at the matrices' level); missing keys count as 0.
    weight_footprint_bytes: the size of the weight matrices at this precision, as stored (column-sparse:
    values + indices; prices weight_bytes and index_bytes);
    param_footprint_bytes: the size of the parameter vectors (prices param_bytes; None: they are
    priced at the matrices' level, as before the split); act_footprint_bytes: the activation
    working set (prices act_bytes).
    -> {"mac","ac","add","mul","cmp","nonlin","int32_ops","weight_mem","param_mem","act_mem" (pJ; weight_mem
        includes "index_mem", the part of it spent on index_bytes),
        "compute", "memory", "total" (pJ), "weight_level", "param_level", "act_level"}
    """
    prof = profile or get_profile()
    op = prof.op_pj(precision)
    g = {k: float(ops.get(k, 0.0)) for k in OPS_KEYS}
    wl, wpj = prof.memory_level(weight_footprint_bytes)
    pl, ppj = (wl, wpj) if param_footprint_bytes is None else prof.memory_level(param_footprint_bytes)
    al, apj = prof.memory_level(act_footprint_bytes)
    out: dict[str, Any] = {
        "mac": g["macs"] * op["mac"], "ac": g["acs"] * op["ac"], "add": g["adds"] * op["add"],
        "mul": g["muls"] * op["mul"], "cmp": g["cmps"] * op["cmp"], "nonlin": g["nonlin"] * op["nonlin"],
        "int32_ops": (g["adds32"] + g["cmps32"]) * prof.int32_add + g["muls32"] * prof.int32_mul,
        # weight_mem: the matrices as stored, values + sparse indices; index_mem: the indices' part of it
        "weight_mem": (g["weight_bytes"] + g["index_bytes"]) / 8.0 * wpj, "index_mem": g["index_bytes"] / 8.0 * wpj,
        "param_mem": g["param_bytes"] / 8.0 * ppj,
        "act_mem": g["act_bytes"] / 8.0 * apj,
    }
    out["compute"] = sum(out[k] for k in ("mac", "ac", "add", "mul", "cmp", "nonlin", "int32_ops"))
    out["memory"] = out["weight_mem"] + out["param_mem"] + out["act_mem"]
    out["total"] = out["compute"] + out["memory"]
    out["weight_level"], out["param_level"], out["act_level"] = wl, pl, al
    return out

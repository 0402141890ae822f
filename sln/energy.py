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
  * memory: bytes / 8 accesses of 64 bits, each priced at the level that holds the data.
    Weights come from the smallest level that holds the model's whole weight set (its size
    in bytes at the precision); activations/state from the smallest level that holds the
    model's activation working set. Above 1 MB the level is DRAM.
  * int8 accumulation is done in 32 bits: an int8 MAC = int8 multiply + int32 add.
  * integer elementwise work (requantisation, integer LayerNorm, LUT gate, state update,
    top-k of an int8 model) is counted as 32-bit integer ops: keys adds32 / muls32 / cmps32,
    priced at the int32 add / int32 multiply rows whatever the `precision` argument.

A profile can also be read from a JSON file with the same fields (`--energy-profile PATH`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
    # (capacity in bytes, pJ per 64-bit read), ascending; anything larger is DRAM
    sram_levels: tuple[tuple[int, float], ...] = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
    dram_64b: float = 1300.0
    # nonlinear op = nonlin_muls multiplies + nonlin_adds adds (an assumption, see module doc)
    nonlin_muls: int = 5
    nonlin_adds: int = 5
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sram_levels"] = [list(x) for x in self.sram_levels]
        d["notes"] = list(self.notes)
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

    def memory_level(self, nbytes: float) -> tuple[str, float]:
        """Smallest level holding nbytes -> (name, pJ per 64-bit access)."""
        for cap, pj in self.sram_levels:
            if nbytes <= cap:
                return f"SRAM {_human(cap)}", pj
        return "DRAM", self.dram_64b


def _human(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


HOROWITZ_45NM = EnergyProfile(
    name="horowitz45",
    citation=("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
              "IEEE ISSCC 2014, pp. 10-14; 45 nm, 0.9 V"),
    notes=("DRAM priced at 1.3 nJ per 64-bit read, the low end of the cited 1.3-2.6 nJ",
           "nonlinear ops (exp, log1p, erf, 1/sqrt) are an assumption: 5 mul + 5 add"),
)
HOROWITZ_45NM_DRAM_HIGH = EnergyProfile(
    name="horowitz45-dram-high", citation=HOROWITZ_45NM.citation, dram_64b=2600.0,
    notes=("DRAM priced at 2.6 nJ per 64-bit read, the high end of the cited range",
           "nonlinear ops (exp, log1p, erf, 1/sqrt) are an assumption: 5 mul + 5 add"),
)
PROFILES: dict[str, EnergyProfile] = {p.name: p for p in (HOROWITZ_45NM, HOROWITZ_45NM_DRAM_HIGH)}
DEFAULT_PROFILE = HOROWITZ_45NM.name


def get_profile(name_or_path: str | None = None) -> EnergyProfile:
    """A named profile, or a JSON file with EnergyProfile's fields (name and citation required)."""
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
    if "sram_levels" in d:
        d["sram_levels"] = tuple((int(c), float(e)) for c, e in d["sram_levels"])
    if "notes" in d:
        d["notes"] = tuple(d["notes"])
    return EnergyProfile(**d)


def estimate_pj(ops: dict[str, float], weight_footprint_bytes: float, act_footprint_bytes: float,
                profile: EnergyProfile | None = None, precision: str = "fp32") -> dict[str, Any]:
    """Energy of one inference in pJ, by term.

    ops: counts per inference with keys macs, acs, adds, muls, cmps, nonlin, weight_bytes,
    act_bytes (read + written), and adds32, muls32, cmps32 (32-bit integer elementwise ops,
    always priced at the int32 rows); missing keys count as 0.
    weight_footprint_bytes: the model's whole weight set at this precision (picks the level of
    weight reads); act_footprint_bytes: its activation working set (picks the level of
    activation traffic).
    -> {"mac","ac","add","mul","cmp","nonlin","int32_ops","weight_mem","act_mem" (pJ), "compute",
        "memory", "total" (pJ), "weight_level", "act_level"}
    """
    prof = profile or get_profile()
    op = prof.op_pj(precision)
    g = {k: float(ops.get(k, 0.0)) for k in ("macs", "acs", "adds", "muls", "cmps", "nonlin",
                                               "weight_bytes", "act_bytes", "adds32", "muls32",
                                               "cmps32")}
    wl, wpj = prof.memory_level(weight_footprint_bytes)
    al, apj = prof.memory_level(act_footprint_bytes)
    out: dict[str, Any] = {
        "mac": g["macs"] * op["mac"], "ac": g["acs"] * op["ac"], "add": g["adds"] * op["add"],
        "mul": g["muls"] * op["mul"], "cmp": g["cmps"] * op["cmp"], "nonlin": g["nonlin"] * op["nonlin"],
        "int32_ops": (g["adds32"] + g["cmps32"]) * prof.int32_add + g["muls32"] * prof.int32_mul,
        "weight_mem": g["weight_bytes"] / 8.0 * wpj, "act_mem": g["act_bytes"] / 8.0 * apj,
    }
    out["compute"] = sum(out[k] for k in ("mac", "ac", "add", "mul", "cmp", "nonlin", "int32_ops"))
    out["memory"] = out["weight_mem"] + out["act_mem"]
    out["total"] = out["compute"] + out["memory"]
    out["weight_level"], out["act_level"] = wl, al
    return out

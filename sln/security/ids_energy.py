"""The one fp32 pricing of an IDS model's per-packet operation counts (ids_bench's tables, fastpath.counted_energy).

Its own module so that the C fast path (fastpath) and the benchmark (ids_bench) both use it without importing
each other."""
from __future__ import annotations

from ..energy import estimate_pj, get_profile


def energy_nj(ops: dict[str, float], fp: dict[str, float]) -> dict[str, float]:
    """Operation counts per packet + fp32 footprints {matrix, param, act} (bytes) -> nJ per packet
    (sln.energy's default profile, fp32): total, compute, memory, and the memory level of the weights."""
    e = estimate_pj(ops, fp["matrix"], fp["act"], get_profile(), "fp32", fp["param"])
    return {"total_nj": e["total"] / 1e3, "compute_nj": e["compute"] / 1e3, "memory_nj": e["memory"] / 1e3,
            "weight_level": e["weight_level"]}

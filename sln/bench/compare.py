"""Equal-accuracy comparisons of an SLN row against baseline rows (one precision at a time).

Ratios are baseline / SLN (higher = SLN better), by two methods (docs/ENERGY.md):
  smallest-matching  the cheapest baseline (by estimated energy) whose accuracy is >= the SLN's;
  interpolated       log(cost) linear in accuracy between the two Pareto-front baselines that
                     bracket the SLN's accuracy; no extrapolation.
The same code serves the fp32 table and the int8 section (int8 rows have no latency: their
latency ratios are None).
"""
from __future__ import annotations

import math
from typing import Any

SLN_FAMILIES = ("sln", "sln-dense")


def _front(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Pareto front (lower `key`, higher accuracy), sorted by key."""
    out: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: (r[key], -r["accuracy"])):
        if not out or r["accuracy"] > out[-1]["accuracy"]:
            out.append(r)
    return out


def compare(sln: dict[str, Any], base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SLN vs a baseline family at equal accuracy, by two methods (ratios = baseline / SLN)."""
    res = []
    a = sln["accuracy"]
    # (1) the cheapest baseline (by energy) whose accuracy is >= the SLN's
    match = [r for r in base if r["accuracy"] >= a]
    if match:
        r = min(match, key=lambda r: r["energy_uJ"])
        note = "cheapest baseline with accuracy >= SLN's"
    else:
        r = max(base, key=lambda r: r["accuracy"])
        note = ("no baseline reaches the SLN's accuracy: ratio vs the most accurate one, which is less "
                "accurate (a matching one would cost more)")
    comp = None
    if "energy_breakdown_uJ" in r and "energy_breakdown_uJ" in sln:
        comp = r["energy_breakdown_uJ"]["compute"] / sln["energy_breakdown_uJ"]["compute"]
    res.append({"sln": sln["name"], "method": "smallest-matching", "baseline": r["name"],
                "sln_accuracy": a, "baseline_accuracy": r["accuracy"],
                "energy_ratio": r["energy_uJ"] / sln["energy_uJ"],
                "latency_ratio": (r["latency_ms"] / sln["latency_ms"]
                                  if r.get("latency_ms") and sln.get("latency_ms") else None),
                "energy_ratio_compute_only": comp, "note": note})
    # (2) interpolation on the baseline's Pareto front: log(cost) linear in accuracy between the two
    # front points that bracket the SLN's accuracy; no extrapolation.
    ratios: dict[str, float | None] = {}
    names = ""
    for key in ("energy_uJ", "latency_ms"):
        if sln.get(key) is None or any(r.get(key) is None for r in base):
            ratios[key] = None   # not measured (int8 rows have no latency)
            continue
        fr = _front(base, key)
        val = None
        for lo, hi in zip(fr, fr[1:], strict=False):
            if lo["accuracy"] <= a <= hi["accuracy"]:
                f = (a - lo["accuracy"]) / (hi["accuracy"] - lo["accuracy"])
                val = math.exp((1 - f) * math.log(lo[key]) + f * math.log(hi[key]))
                names = f"{lo['name']}..{hi['name']}"
                break
        ratios[key] = None if val is None else val / sln[key]
    res.append({"sln": sln["name"], "method": "interpolated", "baseline": names or None,
                "sln_accuracy": a, "baseline_accuracy": a if ratios["energy_uJ"] is not None else None,
                "energy_ratio": ratios["energy_uJ"], "latency_ratio": ratios["latency_ms"],
                "note": "log-cost linear in accuracy between the two Pareto-front baselines that bracket the "
                        "SLN's accuracy" if names else "SLN accuracy outside the baselines' range: "
                                                       "no interpolation (no extrapolation is done)"})
    return res


def compare_all(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every SLN row (sparse and dense) against the ViT rows of the same table."""
    vits = [r for r in rows if r["family"] == "vit"]
    return [c for r in rows if r["family"] in SLN_FAMILIES and vits for c in compare(r, vits)]


def headline_comparison(comparisons: list[dict[str, Any]], head: str) -> dict[str, Any] | None:
    """The comparison the headline quotes for model `head`: interpolated when the SLN's accuracy
    lies inside the baselines' range, else smallest-matching (None without baselines)."""
    hc = [c for c in comparisons if c["sln"] == head]
    sm = next((c for c in hc if c["method"] == "smallest-matching"), None)
    ip = next((c for c in hc if c["method"] == "interpolated"), None)
    return ip if ip and ip["energy_ratio"] is not None else sm


def ratio_words(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:.2f}x (SLN lower)" if r >= 1 else f"{r:.3f}x (SLN {1 / r:.1f}x higher)"

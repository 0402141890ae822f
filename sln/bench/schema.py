"""The JSON document of `benchmark.py --compare-energy` (schema `sln-energy-benchmark-v1`).

`JSON_SCHEMA` is the whole document, `INT8_SCHEMA` its optional int8 vs int8 section (absent
with --no-int8 and in documents written before it existed), `validate` the checker of the
JSON-Schema subset used here. docs/ENERGY.md explains every field. Changing a required field
or an enum here breaks the checked-in bench/*.json: bump SCHEMA_ID instead.
"""
from __future__ import annotations

import math
from typing import Any

SCHEMA_ID = "sln-energy-benchmark-v1"
FAMILIES = ("sln", "sln-dense", "vit", "cfc", "cnn")   # `family` of a row (report.py colours them)

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_COMPARISON_METHODS = {"type": "string", "enum": ["smallest-matching", "interpolated"]}

# one row of the fp32 table (doc["models"][i])
MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "family", "params", "precision", "accuracy", "test_images", "active_fraction",
                 "dense_macs", "effective_macs", "effective_acs", "elementwise", "weight_bytes_read",
                 "act_bytes", "weight_footprint_bytes", "weight_memory_level", "act_memory_level",
                 "energy_uJ", "energy_breakdown_uJ", "measured_energy_uJ", "latency_ms", "latency_threads",
                 "torch_dense_latency_ms", "throughput_per_s", "epochs", "source", "how"],
    "properties": {
        "name": {"type": "string"}, "family": {"type": "string", "enum": list(FAMILIES)},
        "params": {"type": "integer", "minimum": 1}, "precision": {"type": "string", "enum": ["fp32", "int8"]},
        "accuracy": {"type": "number", "minimum": 0, "maximum": 1},
        "test_images": {"type": "integer", "minimum": 1},
        "active_fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "dense_macs": _NUM, "effective_macs": _NUM, "effective_acs": _NUM,
        "elementwise": {"type": "object", "required": ["adds", "muls", "cmps", "nonlin"],
                        "properties": {k: _NUM for k in ("adds", "muls", "cmps", "nonlin")}},
        "weight_bytes_read": _NUM, "act_bytes": _NUM, "weight_footprint_bytes": _NUM,
        "weight_memory_level": {"type": "string"}, "act_memory_level": {"type": "string"},
        "energy_uJ": {"type": "number", "minimum": 0}, "energy_breakdown_uJ": {"type": "object"},
        "measured_energy_uJ": _NUM_OR_NULL, "latency_ms": {"type": "number", "minimum": 0},
        "latency_threads": {"type": "integer", "minimum": 1}, "torch_dense_latency_ms": _NUM_OR_NULL,
        "throughput_per_s": {"type": "number", "minimum": 0}, "epochs": {"type": ["integer", "null"]},
        "source": {"type": "string"},
        "how": {"type": "object", "required": ["accuracy", "counts", "energy", "latency", "throughput"],
                "properties": {k: {"type": "string"} for k in ("accuracy", "counts", "energy", "latency",
                                                               "throughput")}},
    },
}

# one row of the int8 table (doc["int8"]["models"][i]): no latency, int32 elementwise ops
INT8_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "family", "precision", "params", "accuracy", "accuracy_measured", "test_images",
                 "effective_macs", "int32_ops", "weight_bytes_read", "act_bytes", "weight_footprint_bytes",
                 "weight_memory_level", "act_memory_level", "energy_uJ", "energy_breakdown_uJ", "how"],
    "properties": {
        "name": {"type": "string"}, "family": {"type": "string", "enum": list(FAMILIES)},
        "precision": {"type": "string", "enum": ["int8"]}, "params": {"type": "integer", "minimum": 1},
        "accuracy": {"type": "number", "minimum": 0, "maximum": 1}, "accuracy_measured": {"type": "boolean"},
        "test_images": {"type": "integer", "minimum": 1}, "effective_macs": _NUM,
        "int32_ops": {"type": "object", "required": ["adds", "muls", "cmps"],
                      "properties": {k: _NUM for k in ("adds", "muls", "cmps")}},
        "weight_bytes_read": _NUM, "act_bytes": _NUM, "weight_footprint_bytes": _NUM,
        "weight_memory_level": {"type": "string"}, "act_memory_level": {"type": "string"},
        "energy_uJ": {"type": "number", "minimum": 0},
        "energy_breakdown_uJ": {"type": "object", "required": ["compute", "mac", "int32_ops", "weight_mem",
                                                               "act_mem"]},
        "how": {"type": "object", "required": ["accuracy", "counts", "energy"]},
    },
}

# SLN vs the CNN baseline (doc["comparisons_cnn"], doc["int8"]["comparisons_cnn"]; optional: absent in
# documents written before the CNN): the comparisons' fields, ratio = CNN / SLN, never in the headline
CNN_COMPARISONS_SCHEMA: dict[str, Any] = {"type": "array", "items": {
    "type": "object", "required": ["sln", "method", "baseline", "sln_accuracy", "baseline_accuracy", "energy_ratio",
                                   "latency_ratio", "note"],
    "properties": {"energy_ratio": _NUM_OR_NULL, "latency_ratio": _NUM_OR_NULL, "method": _COMPARISON_METHODS}}}

INT8_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["precision", "note", "models", "comparisons", "headline"],
    "properties": {
        "precision": {"type": "string", "enum": ["int8 vs int8"]}, "note": {"type": "string"},
        "models": {"type": "array", "items": INT8_ROW_SCHEMA},
        "comparisons": {"type": "array", "items": {
            "type": "object", "required": ["sln", "method", "baseline", "sln_accuracy", "energy_ratio", "note"],
            "properties": {"energy_ratio": _NUM_OR_NULL, "method": _COMPARISON_METHODS}}},
        "headline": {"type": "object", "required": ["model", "precision", "method", "energy_ratio", "text"]},
        "comparisons_cnn": CNN_COMPARISONS_SCHEMA,
    },
}

JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "command", "date", "dataset", "quick", "machine", "energy_profile",
                 "measured_energy", "models", "comparisons", "headline"],
    "properties": {
        "schema": {"type": "string", "enum": [SCHEMA_ID]},
        "command": {"type": "string"}, "date": {"type": "string"},
        "dataset": {"type": "string"}, "quick": {"type": "boolean"},
        "machine": {"type": "object", "required": ["cpu", "cores", "threads", "torch", "engine_backend"]},
        "energy_profile": {"type": "object", "required": ["name", "citation"]},
        "measured_energy": {"type": "object", "required": ["available", "note"]},
        "models": {"type": "array", "minItems": 1, "items": MODEL_SCHEMA},
        "comparisons": {"type": "array", "items": {
            "type": "object",
            "required": ["sln", "method", "baseline", "sln_accuracy", "baseline_accuracy", "energy_ratio",
                         "latency_ratio", "note"],
            "properties": {"energy_ratio": _NUM_OR_NULL, "latency_ratio": _NUM_OR_NULL,
                           "method": _COMPARISON_METHODS}}},
        "headline": {"type": "object", "required": ["model", "precision", "method", "energy_ratio",
                                                     "latency_ratio", "target_energy_ratio",
                                                     "target_latency_ratio", "text"]},
        "comparisons_cnn": CNN_COMPARISONS_SCHEMA,   # optional: validated when present
        "int8": INT8_SCHEMA,   # optional: validated when present
    },
}

_PY_TYPES: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list, "string": str, "boolean": bool,
                                                 "null": type(None)}


def _is_type(doc: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(doc, int) and not isinstance(doc, bool)
    if t == "number":   # JSON has no NaN / inf: a non-finite float is an error, not a number
        return isinstance(doc, (int, float)) and not isinstance(doc, bool) and math.isfinite(doc)
    return isinstance(doc, _PY_TYPES[t])


def validate(doc: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Errors of doc against the JSON-Schema subset used here (type, enum, required,
    properties, items, minItems, minimum, maximum). Empty list = valid."""
    types = schema.get("type")
    if types is not None:
        tl = types if isinstance(types, list) else [types]
        if not any(_is_type(doc, t) for t in tl):
            return [f"{path}: expected {types}, got {type(doc).__name__}"]
    errs: list[str] = []
    if "enum" in schema and doc not in schema["enum"]:
        errs.append(f"{path}: {doc!r} not in {schema['enum']}")
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        if "minimum" in schema and doc < schema["minimum"]:
            errs.append(f"{path}: {doc} < minimum {schema['minimum']}")
        if "maximum" in schema and doc > schema["maximum"]:
            errs.append(f"{path}: {doc} > maximum {schema['maximum']}")
    if isinstance(doc, dict):
        errs += [f"{path}: missing {r!r}" for r in schema.get("required", []) if r not in doc]
        for k, sub in schema.get("properties", {}).items():
            if k in doc:
                errs += validate(doc[k], sub, f"{path}.{k}")
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0):
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, it in enumerate(doc):
                errs += validate(it, schema["items"], f"{path}[{i}]")
    return errs

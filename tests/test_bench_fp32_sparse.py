"""The fp32 energy rows of a pruned SLN price what the event engine stores and reads: the matrices
column-sparse (values + indices, the same bytes as the engine's file) and the index bytes read."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from sln import fmt, intspec
from sln.bench.image import evaluate_sln, sln_footprints
from sln.energy import estimate_pj, get_profile
from sln.model import create_model


def _pruned(density: float) -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("sln-tiny", n_neurons=32, active_frac=0.125).eval()
    with torch.no_grad():
        for cell in m.cells:
            for lin in (cell.w_in, cell.w_rec):
                w = lin.weight
                keep = torch.rand_like(w) < density
                w.mul_(keep)
    return m


def _file_matrix_bytes(model: torch.nn.Module) -> int:
    """Bytes of W_in / W_rec / W_out tensors in the engine's own float32 file."""
    data = fmt.float_model_bytes(model)
    tensors = fmt.tensors_of(data)
    other = sum(cell.w_in.bias.numel() + 3 * cell.ln.weight.numel() + 4 for cell in model.cells) \
        + model.readout.bias.numel()
    total = sum(a.nbytes for a in tensors.values())
    return total - 4 * other


def test_dense_footprint_is_unchanged_and_sparse_is_what_is_stored() -> None:
    dense, sparse = _pruned(1.0), _pruned(0.1)
    cfg = dense.cfg
    N, D, C = cfg.n_neurons, cfg.input_size, cfg.n_classes
    assert sln_footprints(dense)[0] == 4 * (D * 2 * N + N * 2 * N + C * N)
    mfp, _ = sln_footprints(sparse)
    # 10 % density: both matrices column-sparse, 5 bytes per entry + pointers, far below dense
    entries = sum(int(intspec.column_entries(c.w_in.weight.detach().numpy().T).sum())
                  + int(intspec.column_entries(c.w_rec.weight.detach().numpy().T).sum()) for c in sparse.cells)
    assert mfp < 0.3 * sln_footprints(dense)[0]
    assert mfp >= 5 * entries + 4 * C * N
    # the engine's file holds the same matrix bytes, up to each sparse matrix's two extra table
    # entries (32 bytes, counted by intspec.storage_bytes) and the 4-byte alignment of its 3 tensors
    assert 0 <= mfp - _file_matrix_bytes(sparse) <= (32 + 3 * 3) * 2 * cfg.n_layers


def test_fp32_row_prices_index_bytes(mnist_slice) -> None:
    _, _, xte, yte = mnist_slice
    args = argparse.Namespace(engine="auto", repeats=3, warmup=1)
    prof = get_profile()
    rows = {}
    for d in (1.0, 0.1):
        _, rows[d] = evaluate_sln(f"d{d}", "sln", _pruned(d), xte[:20], yte[:20], args, prof, None, "test", None)
    dense, sparse = rows[1.0], rows[0.1]
    assert dense["index_bytes_read"] == 0 and sparse["index_bytes_read"] > 0
    assert sparse["matrix_bytes_read"] < 0.3 * dense["matrix_bytes_read"]
    for r in (dense, sparse):
        ops = {"macs": r["effective_macs"], "acs": r["effective_acs"], "adds": r["elementwise"]["adds"],
               "muls": r["elementwise"]["muls"], "cmps": r["elementwise"]["cmps"],
               "nonlin": r["elementwise"]["nonlin"], "weight_bytes": r["matrix_bytes_read"],
               "param_bytes": r["param_bytes_read"], "index_bytes": r["index_bytes_read"],
               "act_bytes": r["act_bytes"]}
        e = estimate_pj(ops, r["matrix_footprint_bytes"], r["act_footprint_bytes"], prof, "fp32",
                        r["param_footprint_bytes"])
        assert r["energy_uJ"] == pytest.approx(e["total"] * 1e-6, rel=1e-9)
        assert e["index_mem"] > 0 if r is sparse else e["index_mem"] == 0
    assert np.isfinite(sparse["energy_uJ"]) and sparse["energy_uJ"] < dense["energy_uJ"]

"""The int8 vs int8 section of the benchmark (sln/bench/int8.py): energy arithmetic, counts, schema.

The counts come from sln.intspec's integer model run with a counter; here a hand-made QModel
whose winners are known fixes what they must be, and a quantised tiny model checks invariants.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sln import intspec
from sln import quant as Q
from sln.baselines import ViT, ViTConfig
from sln.bench import int8 as I8
from sln.bench.schema import INT8_SCHEMA, validate
from sln.energy import HOROWITZ_45NM, HOROWITZ_45NM_STEPS, estimate_pj, get_profile
from sln.model import create_model


def test_int8_known_count_equals_table() -> None:
    # Horowitz 45 nm: int8 mul 0.2, int32 add 0.1, int32 mul 3.1 pJ; SRAM 32 KB 20 pJ, 8 KB 10 pJ per 64 bits
    ops = {"macs": 1000, "adds32": 300, "muls32": 40, "cmps32": 50, "weight_bytes": 800, "act_bytes": 160}
    e = estimate_pj(ops, weight_footprint_bytes=20 * 1024, act_footprint_bytes=4096, precision="int8",
                    profile=HOROWITZ_45NM_STEPS)
    assert e["mac"] == pytest.approx(1000 * (0.2 + 0.1), rel=1e-12)          # int8 multiply + int32 add
    assert e["int32_ops"] == pytest.approx(300 * 0.1 + 40 * 3.1 + 50 * 0.1, rel=1e-12)
    assert e["weight_mem"] == pytest.approx(800 / 8 * 20.0, rel=1e-12)
    assert e["act_mem"] == pytest.approx(160 / 8 * 10.0, rel=1e-12)
    assert e["total"] == pytest.approx(300 + 30 + 124 + 5 + 2000 + 200, rel=1e-12)
    assert (e["weight_level"], e["act_level"]) == ("SRAM 32 KB", "SRAM 8 KB")
    # int32 ops are priced at the int32 rows whatever the precision argument
    assert estimate_pj({"muls32": 1}, 1, 1, precision="fp32")["int32_ops"] == pytest.approx(HOROWITZ_45NM.int32_mul)
    # step model: an int8 model of 0.75 MB sits in the 1 MB SRAM level, its fp32 twin (3 MB) in DRAM
    assert HOROWITZ_45NM_STEPS.memory_level(758_284) == ("SRAM 1 MB", 100.0)
    assert HOROWITZ_45NM_STEPS.memory_level(4 * 758_284)[0] == "DRAM"
    # continuous model: on the fitted curve, and 3 MB keeps a third of its accesses on chip
    assert HOROWITZ_45NM.memory_level(758_284)[1] == pytest.approx(20000 ** (1 / 3) * (758_284 / 65536) ** 0.472604,
                                                                   rel=1e-5)
    assert HOROWITZ_45NM.memory_level(3 * 2 ** 20)[1] == pytest.approx(100.635 / 3 + 1300 * 2 / 3, abs=1e-3)


# --- a hand-made integer model whose winners are known ---------------------------------------
D, N, K, C, T, L = 4, 4, 3, 2, 2, 2
H_FRAC, A_FRAC = 8, 8


def _hand_layer(d_in: int, storage: str = "dense") -> intspec.QLayer:
    """All weights and biases 0, so a = 0 and the LayerNorm output is its shift beta: neurons 0
    and 1 get c = 100 (Q8), neurons 2 and 3 c = 0. The state h = (1 - alpha) c is then > 0 for
    neurons 0, 1 only; with k = 3 the winners are 0, 1, 2 (ties to the lowest index) and exactly
    2 of them are nonzero at every step, whatever the pixels. The zero matrices are held dense
    (as a runtime given a dense file reads them), or column-sparse (no entries at all)."""
    z2 = np.zeros(2 * N, np.int64)
    beta = np.array([100, 100, 0, 0], np.int64) << (intspec.NORM_FRAC + intspec.GAMMA_FRAC - H_FRAC)
    return intspec.QLayer(
        a_frac=A_FRAC, h_frac=H_FRAC, eps_q=1, w_in=np.zeros((d_in, 2 * N), np.int8), in_mult=z2 + (1 << 22),
        in_shift=z2 + 23, w_rec=np.zeros((N, 2 * N), np.int8), rec_mult=z2 + (1 << 22), rec_shift=z2 + 23,
        bias=z2.copy(), ln_gamma=np.full(N, 1 << intspec.GAMMA_FRAC, np.int64), ln_beta=beta,
        boost=np.full(N, intspec.BOOST_MAX, np.int64), alpha_lut=intspec.alpha_lut(0.1),
        storage={"w_in": storage, "w_rec": storage})


def _hand_model(storage: str = "dense") -> intspec.QModel:
    z = np.zeros(C, np.int64)
    return intspec.QModel(input_size=D, n_classes=C, n_neurons=N, n_layers=L, k=K, n_steps=T,
                          layers=[_hand_layer(D, storage), _hand_layer(N, storage)], w_out=np.ones((N, C), np.int8),
                          out_mult=z + (1 << 22), out_shift=z + 23, out_bias=z.copy())


def test_counts_of_a_hand_made_model_follow_from_pixels_and_winners() -> None:
    qm = _hand_model()
    px = np.zeros((3, T * D), np.uint8)
    px[0, [0, 5]] = 7              # sample 0: one nonzero pixel in each step
    px[1, [1, 2, 3, 6]] = 255      # sample 1: three in step 0, one in step 1
    # sample 2: all pixels zero (no input event at all)
    P = int((px != 0).sum())       # 6 nonzero pixels
    B, NZ_WIN = len(px), 2         # every layer-step has exactly 2 nonzero winners per sample
    run = I8.count_sln_int8(qm, px, np.zeros(B, np.int64), chunk=2)      # two chunks: 2 + 1 images
    t = run.counts.terms
    # input projection: one column of 2N int8 weights per event; layer 1's events are layer 0's outputs
    assert t["input"]["events"] == P + (L - 1) * NZ_WIN * B * T == 18
    assert t["input"]["mac"] == 18 * 2 * N
    assert t["input"]["dense_mac"] == B * T * (D * 2 * N + N * 2 * N)
    # recurrent: the previous step's nonzero winners (none at step 0)
    assert t["recurrent"]["events"] == NZ_WIN * B * (T - 1) * L == 12
    assert t["recurrent"]["mac"] == 12 * 2 * N
    assert t["recurrent"]["dense_mac"] == B * T * L * N * 2 * N
    # readout: each step's nonzero top-layer outputs are accumulated; at the end one int8 row of C
    # weights per neuron that ever fired (neurons 0 and 1 of every sample)
    assert t["readout"]["events"] == NZ_WIN * B * T
    assert t["readout"]["mac"] == NZ_WIN * B * C
    assert t["readout"]["dense_mac"] == B * N * C
    assert run.counts.nz_out == NZ_WIN * B * T * L
    assert run.active_sum / B == pytest.approx(NZ_WIN / N, abs=1e-15)
    assert run.images == B
    # weight-matrix bytes (int8, 1 byte each) and int32 parameter vectors are counted apart
    assert t["input"]["weight_bytes"] == 18 * 2 * N                      # the columns of the events
    assert t["input"]["param_bytes"] == B * T * L * 2 * N * 8            # in_mult, in_shift every step
    assert t["recurrent"]["weight_bytes"] == 12 * 2 * N
    assert t["recurrent"]["param_bytes"] == B * (T - 1) * L * 2 * N * 8  # only where a winner fed back
    assert t["elementwise"]["weight_bytes"] == 0
    # bias 2N x 4, gamma/beta N x 8, two gate-table entries N x 8, boost N x 4
    assert t["elementwise"]["param_bytes"] == B * T * L * (2 * N * 4 + N * 8 + N * 8 + N * 4) == 1344
    assert t["readout"]["weight_bytes"] == NZ_WIN * B * C and t["readout"]["param_bytes"] == B * C * 12
    # the row: per-image means of the same counts, and the integer footprint of the hand model
    row = I8.sln_int8_row("hand", "sln", 1, qm, run, get_profile(), "test", calib=0)
    assert row["effective_macs"] == pytest.approx((18 + 12) * 2 * N / B + NZ_WIN * C)
    assert row["dense_macs"] == pytest.approx(T * (D + N) * 2 * N + T * L * N * 2 * N + N * C)
    assert row["active_fraction"] == pytest.approx(0.5)
    assert row["int8_weights"] == (D + N) * 2 * N + L * N * 2 * N + N * C
    # int32 parameters: per layer 5 x 2N (mults, shifts, bias) + 3 x N (gamma, beta, boost) + the gate
    # table; the readout's mult, shift and bias per class
    assert row["int32_params"] == L * (5 * 2 * N + 3 * N + intspec.LUT_SIZE + 1) + 3 * C
    assert row["weight_footprint_bytes"] == row["int8_weights"] + 4 * row["int32_params"]


def test_counts_of_sparse_matrices_are_their_entries_plus_index_bytes() -> None:
    """The hand model with its (all-zero) matrices stored column-sparse: no weight is read, each
    event column still reads its two int32 pointers (8 index bytes); the rest is unchanged. Then
    a column-sparse matrix with known entries: reads = entries of the event columns."""
    px = np.zeros((3, T * D), np.uint8)
    px[0, [0, 5]] = 7
    px[1, [1, 2, 3, 6]] = 255
    dense = I8.count_sln_int8(_hand_model("dense"), px, np.zeros(3, np.int64)).counts.terms
    sparse = I8.count_sln_int8(_hand_model("sparse"), px, np.zeros(3, np.int64)).counts.terms
    for term in ("input", "recurrent"):
        assert sparse[term]["mac"] == sparse[term]["weight_bytes"] == 0
        assert sparse[term]["index_bytes"] == 8 * dense[term]["events"] and dense[term]["index_bytes"] == 0
        assert sparse[term]["events"] == dense[term]["events"] and sparse[term]["dense_mac"] == dense[term]["dense_mac"]
    assert sparse["elementwise"] == dense["elementwise"] and sparse["readout"] == dense["readout"]
    # the footprint: column pointers only (D + 1 and N + 1 int32 per layer), no int8 weight of W_in / W_rec
    qm = _hand_model("sparse")
    fp = I8.sln_int8_footprint(qm)
    assert fp["index_bytes"] == 4 * ((D + 1) + (N + 1) + 2 * (N + 1)) and fp["int8_weights"] == N * C
    assert fp["matrix_bytes"] == N * C + fp["index_bytes"]
    # known entries: input 0's column holds rows 1 and 6, input 1's none; one event each
    layer = qm.layers[0]
    layer.w_in = layer.w_in.copy()
    layer.w_in[0, [1, 6]] = [5, -5]
    x = np.zeros((1, D), np.int64)
    x[0, [0, 1]] = 3
    cnt = intspec.IntCounts()
    intspec.q_step(qm, intspec.init_state(qm, 1), x, cnt)
    assert cnt.terms["input"]["mac"] == 2 + 0 + 2 * 0        # layer 0: 2 entries; layer 1 (empty) none
    assert cnt.terms["input"]["index_bytes"] == 2 + 8 * 2 + 8 * float(cnt.terms["input"]["events"] - 2)
    e = estimate_pj({"weight_bytes": 80, "index_bytes": 40}, 20 * 1024, 1, HOROWITZ_45NM_STEPS, "int8")
    assert e["weight_mem"] == pytest.approx(120 / 8 * 20.0) and e["index_mem"] == pytest.approx(40 / 8 * 20.0)
    assert e["memory"] == pytest.approx(e["weight_mem"] + e["param_mem"] + e["act_mem"])


def _tiny_sln() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("sln-tiny", n_neurons=32, active_frac=0.125).eval()


def test_int8_counts_invariants_on_a_quantised_model(mnist_slice) -> None:
    xtr, _, xte, yte = mnist_slice
    qm = Q.quantize(_tiny_sln(), xtr[:200])
    px = xte[:50]
    run = I8.count_sln_int8(qm, px, yte[:50], chunk=20)
    t = run.counts.terms
    for term in intspec.COUNT_TERMS:           # effective <= dense, for every term
        assert 0 <= t[term]["mac"] <= t[term]["dense_mac"]
    # one layer: the input events are the nonzero pixels, the MACs one 2N column each
    assert t["input"]["events"] == float((px != 0).sum())
    assert t["input"]["mac"] == t["input"]["events"] * 2 * qm.n_neurons
    # the readout accumulates every nonzero output of the (only) layer; at most k winners a step
    assert t["readout"]["events"] == run.counts.nz_out <= 50 * qm.n_steps * qm.k
    assert 0 < run.active_sum / 50 <= qm.k / qm.n_neurons
    # the counted run is the integer model: its accuracy is the reference's
    logits, _ = intspec.reference_forward(qm, px)
    assert run.correct == int((logits.argmax(1) == yte[:50]).sum())


def test_int8_section_rows_and_schema(mnist_slice) -> None:
    xtr, _, xte, yte = mnist_slice
    prof = get_profile()
    sln_row = I8.evaluate_sln_int8("tiny", "sln", _tiny_sln(), xtr, xte[:40], yte[:40], prof, "test", calib=200,
                                   chunk=20)
    vit = ViT(ViTConfig(name="vit-t", dim=16, depth=1, heads=2))
    vit_row = I8.evaluate_vit_int8("vit-t", vit, xtr, xte[:40], yte[:40], prof, "test", calib=200)
    sec = I8.int8_section([sln_row, vit_row], "tiny")
    assert validate(sec, INT8_SCHEMA) == []
    assert [c["method"] for c in sec["comparisons"]] == ["smallest-matching", "interpolated"]
    # the energy column is the table applied to the row's own counts, at int8
    for r in (sln_row, vit_row):
        ops = {"macs": r["effective_macs"], "adds32": r["int32_ops"]["adds"], "muls32": r["int32_ops"]["muls"],
               "cmps32": r["int32_ops"]["cmps"], "weight_bytes": r["matrix_bytes_read"],
               "param_bytes": r["param_bytes_read"], "act_bytes": r["act_bytes"]}
        assert r["weight_bytes_read"] == pytest.approx(r["matrix_bytes_read"] + r["param_bytes_read"])
        e = estimate_pj(ops, r["matrix_footprint_bytes"], r["act_footprint_bytes"], prof, precision="int8",
                        param_footprint_bytes=r["param_footprint_bytes"])
        assert r["energy_uJ"] == pytest.approx(e["total"] * 1e-6, rel=1e-9)
        assert r["precision"] == "int8" and r["accuracy_measured"]
        assert r["effective_macs"] <= r["dense_macs"]
    # int8 footprint: 1 byte per int8 weight, 4 per other parameter, plus the requantisation multiplier
    # and shift (4 + 4 bytes) of every Linear output channel and of each attention matmul
    n8 = sum(p.numel() for n, p in vit.named_parameters() if n.endswith("weight") and p.dim() == 2)
    chans = sum(m.out_features for m in vit.modules() if isinstance(m, torch.nn.Linear))
    assert vit_row["weight_footprint_bytes"] == n8 + 4 * (vit_row["params"] - n8) + 8 * chans + 8 * 2
    assert vit_row["matrix_footprint_bytes"] == n8 + 4 * 17 * 16          # + the position embedding
    assert sln_row["int8_weights"] + sln_row["int32_params"] * 4 == sln_row["weight_footprint_bytes"]
    # by-term breakdown sums to the total; the wide-multiply line only adds
    bt = sln_row["energy_breakdown_uJ"]["by_term"]
    assert sum(bt.values()) == pytest.approx(sln_row["energy_uJ"], rel=1e-9)
    assert sln_row["energy_uJ_wide_multiplies"] >= sln_row["energy_uJ"]
    # the validator catches an fp32 row in the int8 section
    bad = dict(sec, models=[dict(sln_row, precision="fp32")])
    assert any("precision" in e for e in validate(bad, INT8_SCHEMA))


def test_k_beyond_the_int8_limits_is_skipped_not_fatal(mnist_slice) -> None:
    xtr, _, xte, yte = mnist_slice
    torch.manual_seed(0)
    dense = create_model("sln-tiny", n_neurons=300, active_frac=1.0, boost_beta=0.0).eval()   # k = 300 > 255
    sec = I8.run_int8_section([("sln-dense", "too-wide", dense, "test")], "too-wide", xtr[:100], xte[:10],
                              yte[:10], get_profile(), calib=50, limit=None)
    assert sec["models"] == [] and [s["name"] for s in sec["skipped"]] == ["too-wide"]
    assert "k" in sec["skipped"][0]["reason"]


def test_vit_int8_counts_equal_hand_computed() -> None:
    """ViTInt8Counter on a 1-block ViT (d=16, 2 heads, MLP 32, 17 tokens): requantisation of every
    matmul output, the per-channel scales, int8 matmul I/O and int32 LayerNorm/softmax/GELU/adds."""
    vit = ViT(ViTConfig(name="vit-t", dim=16, depth=1, heads=2)).eval()
    c = I8.count_vit_int8(vit, torch.zeros(28, 28, dtype=torch.uint8))
    T, d, H, dh, mlp, P, C = 17, 16, 2, 8, 32, 16, 10
    lin_out = P * d + T * 3 * d + T * d + T * mlp + T * d + C        # embed, qkv, proj, fc1, fc2, head
    mm_out = H * T * T + H * T * dh                                  # scores, values
    assert c.requant_outputs == lin_out + mm_out == 3020
    assert c.scale_bytes == 8 * (d + 3 * d + d + mlp + d + C) + 8 * 2 == 1120
    lin_in = P * 49 + T * d + T * d + T * d + T * mlp + d            # the head reads the class token only
    mm_in = 2 * H * T * dh + (H * T * T + H * T * dh)
    int8_io = lin_in + lin_out + mm_in + mm_out + 2 * T * d          # + the q scale, 1 byte in and out
    int32_io = 4 * (2 * (2 * T * d) + 2 * d                          # ln1, ln2 (17 tokens), final LN (class token)
                    + 2 * H * T * T + 2 * T * mlp                    # softmax, GELU
                    + 3 * (3 * T * d))                               # + position, two residual adds
    assert c.act8_read + c.act8_written == int8_io + int32_io
    ops, fp = I8.vit_int8_ops(vit, c, c.effective_macs, get_profile())
    assert ops["muls32"] == c.muls + 5 * c.nonlin + 3020 and ops["adds32"] == c.adds + 5 * c.nonlin + 2 * 3020
    assert ops["param_bytes"] == c.param_bytes + 1120 and fp["param_bytes"] == ops["param_bytes"]
    n8 = sum(m.weight.numel() for m in vit.modules() if isinstance(m, torch.nn.Linear))
    assert ops["weight_bytes"] == n8 + 4 * T * d == fp["matrix_bytes"]      # each weight read once

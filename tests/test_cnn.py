"""The LeNet-class CNN baseline (sln.cnn, sln.bench.cnn_int8): counts equal hand-computed ones, the
int8 simulation and its counts, training through the one loop with reuse from the cache."""
from __future__ import annotations

import pytest
import torch

from sln.bench.cnn_int8 import _CNNInt8Sim, cnn_int8_accuracy, cnn_int8_ops, count_cnn_int8
from sln.cnn import CNN, CNN_SIZES, CNNConfig, count_cnn, train_cnn

# 8x8 input, conv 3x3 (pad 1) 2 ch -> pool -> conv 3x3 3 ch -> pool -> fc 4 -> head 10; spatial 8, 4, 2, 1
TINY = CNNConfig(name="tiny", c1=2, c2=3, kernel=3, fc1=4, fc2=0, image=8)


def _tiny() -> tuple[CNN, torch.Tensor]:
    """All weights +1, biases 0 (every activation that sees a nonzero pixel is positive: the
    nonzero pattern can be followed by hand); pixels at (0, 0) and (3, 3)."""
    m = CNN(TINY).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1.0 if p.dim() > 1 else 0.0)
    img = torch.zeros(8, 8, dtype=torch.uint8)
    img[0, 0] = img[3, 3] = 255
    return m, img


def test_lenet5_size_and_macs() -> None:
    m = CNN(CNN_SIZES["lenet5"])
    assert m.num_params() == (6 * 25 + 6) + (16 * 150 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10) \
        == 61_706
    c = count_cnn(m, torch.full((28, 28), 7, dtype=torch.uint8))     # no zero pixel
    assert c.by_term == {"conv1": 6 * 28 * 28 * 25, "conv2": 16 * 10 * 10 * 150, "fc": 400 * 120 + 120 * 84,
                         "head": 840}
    assert c.macs == 416_520
    assert c.weight_bytes + c.param_bytes == 4 * 61_706                # every parameter once per image
    with torch.no_grad():                                              # positive weights: nothing zero after conv1
        for p in m.parameters():
            p.fill_(0.01 if p.dim() > 1 else 0.0)
    c = count_cnn(m, torch.full((28, 28), 7, dtype=torch.uint8))
    # only conv1's padding taps are not effective: per axis 28 x 5 taps, 2 + 1 off each border
    assert c.effective_macs == 6 * (28 * 5 - 6) ** 2 + 240_000 + 58_080 + 840


def test_cnn_counts_equal_hand_computed() -> None:
    m, img = _tiny()
    c = count_cnn(m, img)
    assert c.macs == 2 * 64 * 9 + 3 * 4 * 2 * 9 + 3 * 4 + 4 * 10 == 1420
    # conv1: 4 windows cover (0,0), 9 cover (3,3) -> 13 taps x 2 out channels; pool 1 -> nonzero cells
    # (0,0), (1,1), (1,2), (2,1), (2,2) of 4x4 per channel; conv2's 4 windows see 5+4+4+4 = 17 of
    # them per channel x 2 channels x 3 out; fc1 sees 3 nonzero, the head 4
    assert c.effective_macs == 13 * 2 + 17 * 2 * 3 + 3 * 4 + 4 * 10 == 180
    # ReLU 1 compare per element, pool 2x2 3 per output: pool1 32 out, relu 32, pool2 3, relu 3, relu(fc1) 4
    assert c.cmps == 32 * 3 + 32 + 3 * 3 + 3 + 4 and c.adds == 0 and c.muls == 0 and c.nonlin == 0
    assert c.weight_bytes == 4 * (18 + 54 + 12 + 40)                   # each kernel once per image
    assert c.param_bytes == 4 * (2 + 3 + 4 + 10)                       # the biases
    assert c.weight_bytes_per_position == 4 * (18 * 64 + 54 * 4 + 12 + 40) == 4 * c.macs
    # activations: each op reads its input and writes its output once, fp32
    reads = 64 + 128 + 32 + 32 + 12 + 3 + 3 + 4 + 4
    writes = 128 + 32 + 32 + 12 + 3 + 3 + 4 + 4 + 10
    assert (c.act_bytes_read, c.act_bytes_written) == (4 * reads, 4 * writes)
    assert c.peak_act_bytes == 4 * (64 + 128)                          # conv1's input + output
    ops = c.to_ops()
    assert ops["macs"] == 180 and ops["act_bytes"] == 4 * (reads + writes)


def test_cnn_int8_counts_equal_hand_computed() -> None:
    m, img = _tiny()
    c = count_cnn_int8(m, img)
    assert c.macs == 1420 and c.effective_macs == 180                  # the fp32 counts are kept
    assert c.requant_outputs == 128 + 12 + 4 + 10                       # every conv / Linear output
    assert c.scale_bytes == 8 * (2 + 3 + 4 + 10)                        # multiplier + shift per channel
    assert (c.act8_read, c.act8_written) == (282, 228) and c.peak8 == 64 + 128   # 1 byte per element
    ops, fp = cnn_int8_ops(m, c, c.effective_macs)
    assert ops["weight_bytes"] == 124 and ops["param_bytes"] == 4 * 19 + 152
    assert (ops["adds32"], ops["muls32"], ops["cmps32"]) == (2 * 154, 154, 144)
    assert fp["matrix_bytes"] == 124 and fp["param_bytes"] == 4 * 19 + 152 and fp["act_bytes"] == 192
    assert fp["int8_weights"] == 124 and fp["int32_params"] == 19 + 38


def test_int8_sim_per_channel_weights_and_exact_pixels() -> None:
    torch.manual_seed(0)
    m = CNN(CNN_SIZES["lenet-xs"]).eval()
    with torch.no_grad():
        m.conv1.weight[0] *= 10                     # one channel 10x larger: its own scale
    sim = _CNNInt8Sim()
    wq = sim._wc(m.conv1)
    w = m.conv1.weight.detach()
    for o in range(w.shape[0]):
        amax = float(w[o].abs().max())
        assert float(wq[o].abs().max()) == pytest.approx(amax, rel=1e-6)
        assert float((wq[o] - w[o]).abs().max()) <= amax / 127 / 2 + 1e-7   # round to nearest of its grid
    xtr = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8).numpy()
    acc, sim = cnn_int8_accuracy(m, xtr, xtr[:32], torch.zeros(32, dtype=torch.long).numpy(), calib=64, batch=32)
    assert 0.0 <= acc <= 1.0
    mx, mn = sim.stats[0]                           # conv1's input: pixel / 255, never negative
    assert mn >= 0 and mx == pytest.approx(1.0)
    x = m.to_input(torch.from_numpy(xtr[:4]))
    sim.i = 0
    assert float((sim._q(x) - x).abs().max()) < 1e-6                    # unsigned 8-bit grid: pixels kept
    sim.i = 0
    with torch.no_grad():
        q, f = m(x, counter=sim), m(x)
    assert float((q - f).abs().max()) < 0.05 * float(f.abs().max())     # int8 close to fp32


def test_train_through_the_one_loop_then_reuse(tmp_path, mnist_slice) -> None:
    xtr, ytr, xte, yte = mnist_slice
    torch.set_num_threads(1)
    cfg = CNN_SIZES["lenet-xs"]
    m, info = train_cnn(cfg, xtr, ytr, xte[:500], yte[:500], 2, tmp_path, progress=False)
    assert not info["reused"] and info["epochs"] == 2 and info["train_images"] == 3000
    assert info["params"] == 7674 and info["test_accuracy"] > 0.3       # 48 steps in the warm-up: 43%, chance 10%
    m2, info2 = train_cnn(cfg, xtr, ytr, xte[:500], yte[:500], 2, tmp_path, progress=False)
    assert info2["reused"] and info2["test_accuracy"] == info["test_accuracy"]
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # another training-set size is another model: not reused
    _, info3 = train_cnn(cfg, xtr[:300], ytr[:300], xte[:100], yte[:100], 2, tmp_path, progress=False)
    assert not info3["reused"]

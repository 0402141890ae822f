"""The liquid cell against an independent float64 reference of the documented equations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sln.cell import LiquidCell


def reference_step(cell: LiquidCell, x: np.ndarray, h: np.ndarray, y: np.ndarray, dt: np.ndarray):
    """float64 numpy version of the equations in sln/cell.py's docstring (written separately)."""
    W_in = cell.w_in.weight.detach().double().numpy()
    b = cell.w_in.bias.detach().double().numpy()
    W_rec = cell.w_rec.weight.detach().double().numpy()
    gamma = cell.ln.weight.detach().double().numpy()
    beta = cell.ln.bias.detach().double().numpy()
    boost = cell.boost.double().numpy()
    N, k = cell.n_neurons, cell.k
    a = x @ W_in.T + y @ W_rec.T + b
    u, v = a[:, :N], a[:, N:]
    mu = u.mean(1, keepdims=True)
    var = ((u - mu) ** 2).mean(1, keepdims=True)
    c = np.maximum(0.0, (u - mu) / np.sqrt(var + cell.ln_eps) * gamma + beta)
    lam = np.log1p(np.exp(v)) + cell.lambda_min
    alpha = np.exp(-lam * dt[:, None])
    h_new = alpha * h + (1 - alpha) * c
    score = h_new * boost
    winners = np.argsort(-score, axis=1, kind="stable")[:, :k]
    y_new = np.zeros_like(h_new)
    np.put_along_axis(y_new, winners, np.take_along_axis(h_new, winners, 1), 1)
    return y_new, h_new, winners


@pytest.mark.parametrize("dt", [1.0, 0.37, 2.5, "per-sample"])
def test_step_matches_float64_reference(dt) -> None:
    B, D, N, k = 6, 20, 64, 5
    cell = LiquidCell(D, N, k)
    with torch.no_grad():
        cell.ln.weight.uniform_(0.5, 1.5)
        cell.ln.bias.uniform_(-0.2, 0.2)
        cell.boost.uniform_(0.5, 2.0)
    x = torch.randn(B, D)
    h = torch.rand(B, N)
    y = h * (torch.rand(B, N) < 0.1)
    dts = torch.rand(B) * 3 + 0.05 if dt == "per-sample" else torch.full((B,), float(dt))
    y1, (h1, _), mask = cell.step(x, (h, y), dts if dt == "per-sample" else float(dt))
    y_ref, h_ref, win_ref = reference_step(cell, x.double().numpy(), h.double().numpy(),
                                           y.double().numpy(), dts.double().numpy())
    np.testing.assert_allclose(h1.detach().numpy(), h_ref, atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(y1.detach().numpy(), y_ref, atol=2e-6, rtol=1e-5)
    ref_mask = np.zeros((B, N), bool)
    np.put_along_axis(ref_mask, win_ref, True, 1)
    assert (mask.numpy() == ref_mask).all()


def test_dt_zero_keeps_state_and_large_dt_reaches_candidate() -> None:
    cell = LiquidCell(8, 32, 4)
    x, h = torch.randn(3, 8), torch.rand(3, 32)
    y0 = torch.zeros(3, 32)
    _, (h_same, _), _ = cell.step(x, (h, y0), 0.0)
    torch.testing.assert_close(h_same, h)  # a step of zero length changes nothing
    _, (h_far, _), _ = cell.step(x, (h, y0), 1e4)
    a = cell.w_in(x)
    cand = torch.relu(cell.ln(a[:, :32]))
    torch.testing.assert_close(h_far, cand, atol=1e-5, rtol=1e-5)  # fully relaxed to c


def test_exactly_k_selected_and_at_most_k_nonzero() -> None:
    cell = LiquidCell(16, 100, 3)
    state = cell.init_state(8)
    for _ in range(5):
        y, state, mask = cell.step(torch.randn(8, 16), state)
        assert (mask.sum(1) == 3).all()
        assert ((y != 0).sum(1) <= 3).all()
        assert (y[~mask] == 0).all()


def test_gather_over_active_indices_equals_masked_dense() -> None:
    cell = LiquidCell(30, 50, 4)
    x = torch.randn(30) * (torch.rand(30) < 0.3)       # sparse input events
    h = torch.rand(50)
    y_prev = h * (torch.rand(50) < 0.08)
    dense = cell.w_in(x[None]) + cell.w_rec(y_prev[None])
    torch.testing.assert_close(cell.gather_preactivation(x, y_prev)[None], dense, atol=1e-6, rtol=1e-6)


def test_gradients_reach_winners_and_not_losers_gate() -> None:
    N, k = 40, 4
    cell = LiquidCell(10, N, k)
    y, _, mask = cell.step(torch.randn(1, 10), cell.init_state(1))
    y.sum().backward()
    g_v = cell.w_in.weight.grad[N:].abs().sum(1)      # rows of the decay gate v_i, one per neuron
    win = mask[0]
    assert (g_v[win & (y[0] > 0)] > 0).all()          # winners' weights learn
    assert (g_v[~win] == 0).all()                      # a loser's gate does not touch the output


def test_boost_shifts_winners_and_follows_formula() -> None:
    cell = LiquidCell(4, 10, 2, boost_beta=1.0, duty_momentum=0.5)
    h = torch.linspace(1.0, 0.1, 10)[None]            # neuron 0, 1 most excited
    assert cell.select(h)[0].nonzero().flatten().tolist() == [0, 1]
    with torch.no_grad():
        cell.boost[9] = 20.0                          # a boosted quiet neuron wins over neuron 1
    assert cell.select(h)[0].nonzero().flatten().tolist() == [0, 9]
    cell.duty.fill_(0.2)                              # target = k/N = 0.2
    rate = torch.tensor([0.6] + [0.0] * 9)
    cell.update_boost(rate)
    duty = 0.5 * 0.2 + 0.5 * rate
    torch.testing.assert_close(cell.duty, duty)
    torch.testing.assert_close(cell.boost, torch.exp((0.2 - duty) / 0.2))
    assert cell.boost[0] < 1 < cell.boost[1]          # busy neurons damped, idle ones boosted


def test_mask_buffers_only_when_masked_and_pruned_weights_are_plus_zero() -> None:
    dense = LiquidCell(6, 8, 2)
    assert not any("mask" in k for k in dense.state_dict())     # old checkpoints have none: still load
    dense.apply_masks()                                          # no-op for a dense cell
    assert (dense.w_rec.weight != 0).all()
    cell = LiquidCell(6, 8, 2, masked=True)
    sd = cell.state_dict()
    assert sd["mask_in"].shape == (16, 6) and sd["mask_rec"].shape == (16, 8)
    assert sd["mask_in"].dtype == torch.bool and sd["mask_in"].all()    # dense until the schedule prunes
    with torch.no_grad():
        cell.w_in.weight.fill_(-0.5)
        cell.mask_in[::2] = False                                # every other row pruned
    cell.apply_masks()
    pruned = cell.w_in.weight[::2]
    assert (pruned == 0).all() and not torch.signbit(pruned).any()      # +0.0, not -0.0
    assert (cell.w_in.weight[1::2] == -0.5).all()
    # the step reads the pruned matrix as it is: the same as a dense cell holding those weights
    dense_twin = LiquidCell(6, 8, 2)
    dense_twin.load_state_dict({k: v for k, v in cell.state_dict().items() if "mask" not in k})
    x, st = torch.rand(3, 6), dense_twin.init_state(3)
    assert torch.equal(cell.step(x, st)[0], dense_twin.step(x, st)[0])

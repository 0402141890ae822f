"""Streaming inference (init_state / step, constant memory) equals the whole-sequence forward."""
from __future__ import annotations

import torch

from sln.config import SLNConfig
from sln.model import SLN


def _model(n_layers: int) -> SLN:
    torch.manual_seed(1)
    m = SLN(SLNConfig(input_size=5, n_classes=3, n_neurons=64, n_layers=n_layers, active_frac=0.0625))
    with torch.no_grad():   # trained-looking, non-uniform boost factors (they decide the winners)
        for c in m.cells:
            c.boost.uniform_(0.5, 1.5)
    return m.eval()


def test_streaming_equals_forward_with_irregular_dt() -> None:
    for n_layers in (1, 2):
        m = _model(n_layers)
        B, T = 3, 17
        x = torch.randn(B, T, 5)
        dt = torch.rand(B, T) * 3 + 0.05            # irregular elapsed times, per sample
        with torch.no_grad():
            want = m(x, dt)
            # stream: one step at a time, state carried, running sum of the top layer's output
            state = m.init_state(B)
            sizes = [tuple(t.shape) for s in state for t in s]
            acc = torch.zeros(B, 64)
            for t in range(T):
                y, state, masks = m.step(x[:, t], state, dt[:, t])
                acc += y
                assert all(int(mk.sum(1).max()) == m.cfg.k for mk in masks)
                # constant memory: the state never grows with t
                assert [tuple(z.shape) for s in state for z in s] == sizes
            got = m.readout(acc / T)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        # dt matters: streaming with dt = 1 gives a different answer (so the test can fail)
        with torch.no_grad():
            assert (m(x, 1.0) - want).abs().max() > 1e-3


def test_lm_streaming_equals_full_sequence_per_step() -> None:
    torch.manual_seed(2)
    m = SLN(SLNConfig(task="lm", input_size=20, n_classes=20, n_neurons=64, n_layers=2, active_frac=0.0625)).eval()
    with torch.no_grad():
        for c in m.cells:
            c.boost.uniform_(0.5, 1.5)
    idx = torch.randint(0, 20, (2, 40))
    with torch.no_grad():
        full = m(idx)                                           # (2, 40, 20)
        # two chunks with the state carried equal one pass
        first = m.run(idx[:, :13])
        b = m.run(idx[:, 13:], state=first.state).logits
        torch.testing.assert_close(torch.cat([first.logits, b], 1), full, rtol=1e-6, atol=1e-6)
        # token by token: the per-step readout of the one step
        state = m.init_state(2)
        for t in range(40):
            y, state, _ = m.step(idx[:, t], state)
            torch.testing.assert_close(m.readout(y), full[:, t], rtol=1e-6, atol=1e-6)
        # the one-hot gather of the first layer equals the cell's own dense step on a one-hot input
        cell = m.cells[0]
        s0 = cell.init_state(2)
        y_dense, _, _ = cell.step(torch.nn.functional.one_hot(idx[:, 0], 20).float(), s0)
        _, st1, _ = m.step(idx[:, 0], m.init_state(2))
        torch.testing.assert_close(st1[0][1], y_dense, rtol=1e-6, atol=1e-6)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_stream_memory_is_flat_over_1e5_steps() -> None:
    """The documented streaming path (model.stream()) keeps memory flat; plain model.step with
    gradients enabled would grow it by the autograd graph of every step."""
    m = _model(1).train()                    # a training-mode model: stream() must still be safe
    torch.set_num_threads(1)
    stream = m.stream(1)
    x = torch.randn(64, 5)
    for t in range(2_000):                   # warm-up: allocator pools and caches settle
        stream.step(x[t % 64, None], 0.5)
    before = _rss_bytes()
    for t in range(100_000):
        stream.step(x[t % 64, None], 0.5 + (t % 3))
    grown = _rss_bytes() - before
    assert grown < 8 * 2 ** 20, f"memory grew by {grown / 2 ** 20:.1f} MiB over 1e5 steps"
    assert stream.steps == 102_000 and not stream.y.requires_grad and not m.training
    # the stream's answer is the model's: equal to the whole-sequence forward on the same steps
    s2 = m.stream(2)
    xs, dts = torch.randn(2, 9, 5), torch.rand(2, 9) + 0.1
    for t in range(9):
        s2.step(xs[:, t], dts[:, t])
    with torch.no_grad():
        torch.testing.assert_close(s2.logits(), m(xs, dts), rtol=1e-6, atol=1e-6)


def test_plain_step_with_grad_does_grow() -> None:
    """The control: without the stream, a graph-carrying loop keeps what it computed (so the flat
    test above measures something)."""
    m = _model(1).eval()
    state = m.init_state(1)
    x = torch.randn(1, 5)
    for _ in range(50):
        _, state, _ = m.step(x, state, 1.0)
    assert state[0][0].requires_grad and state[0][0].grad_fn is not None

"""Event-driven engine (the C runtime, float32): hand-computed counts, equality with the PyTorch
model's step (winners identical, logits within 1e-5), streaming, build errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import skip_or_fail_in_ci

from sln import engine as E
from sln import fmt
from sln.config import SLNConfig
from sln.engine import Engine, EngineBuildError, reference_forward, same_winners
from sln.model import SLN, images_to_sequence

BACKENDS = ["c", "auto"]   # "auto" is the C runtime too


def _backend_ok(backend: str) -> None:
    if not E.c_backend_available():
        skip_or_fail_in_ci("no C compiler: the compiled engine cannot be built here")


# --------------------------------------------------------------------------- hand-built model
def _hand_model() -> SLN:
    """D=3 inputs, N=4 neurons, k=2, C=2 classes. Every W_in / W_rec entry is 0.1, so each
    event shifts all of u by the same amount (LayerNorm removes it); u's bias [2, 1, -1, -2]
    then makes neurons 0 and 1 the only positive candidates at every step: winners {0, 1},
    both nonzero, h0 > h1."""
    cfg = SLNConfig(input_size=3, n_classes=2, n_neurons=4, active_frac=0.5, boost_beta=1.0)
    m = SLN(cfg)
    cell = m.cells[0]
    with torch.no_grad():
        cell.w_in.weight.fill_(0.1)
        cell.w_rec.weight.fill_(0.1)
        cell.w_in.bias.copy_(torch.tensor([2.0, 1.0, -1.0, -2.0, 0.0, 0.0, 0.0, 0.0]))
        cell.ln.weight.fill_(1.0)
        cell.ln.bias.fill_(0.0)
        cell.boost.fill_(1.0)
        m.readout.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 1.0]]))
        m.readout.bias.copy_(torch.tensor([0.1, -0.1]))
    return m.eval()


# step 1: x = [0, 0.5, 1.0] -> one MAC event (0.5) and one AC event (1.0); step 2: x = 0
HAND_X = np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]], np.float32)
N, N2, D, C, K, T = 4, 8, 3, 2, 2, 2


def _hand_expected(backend: str) -> dict[str, dict[str, int]]:
    """Counts per term for the two steps, computed by hand from the counting rules of runtime/sln.c."""
    inp = {"mac": N2, "ac": N2,                          # 0.5 -> 8 MACs; 1.0 -> 8 ACs
           "weight_bytes": 2 * N2 * 4,                   # 2 rows of W_in
           "param_bytes": T * N2 * 4,                     # the bias vector, re-read each step
           "act_bytes_read": T * D * 4,                   # scan of the input vector
           "events": 2, "dense_mac": T * D * N2}
    rec = {"mac": 2 * N2,                                 # step 2: winners {0, 1} of step 1
           "weight_bytes": 2 * N2 * 4, "act_bytes_read": 2 * 8, "events": 2, "dense_mac": T * N * N2}
    # top-k compares of the insertion selection on scores [h0, h1, 0, 0], h0 > h1:
    # i=1: 1 (h0 >= h1 stops), i=2: 1, i=3: 1 -> 3; plus k to emit the winners; plus ReLU and
    # softplus threshold 2N
    cmp_step = 2 * N + 3 + K
    elt = {"add": T * (3 * N + 1 + 5 * N), "mul": T * (N + 2 + 5 * N + N), "nonlin": T * (1 + N + 2 * N),
           "cmp": T * cmp_step, "param_bytes": T * (N * 8 + N * 4),   # LayerNorm gain/shift, boost
           "act_bytes_read": T * (N2 * 4 + N * 4), "act_bytes_written": T * (N2 * 4 + N * 4 + 2 * 8),
           "nz_out": T * 2}
    ro = {"add": 2 * T + C, "mac": 2 * C, "mul": 2 + 1, "nonlin": 1, "weight_bytes": 2 * C * 4, "param_bytes": C * 4,
          "act_bytes_read": 2 * T * 12 + N + 2 * 4, "act_bytes_written": 2 * T * 4 + C * 4, "events": 2 * T,
          "dense_mac": N * C, "nz_out": 2}
    return {"L0.input": inp, "L0.recurrent": rec, "L0.elementwise": elt, "readout": ro}


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_equal_hand_computed(backend: str) -> None:
    _backend_ok(backend)
    m = _hand_model()
    res = Engine(m, backend).run(HAND_X)
    got = res.counts.per_term()
    for term, exp in _hand_expected(backend).items():
        for name in E.COUNTER_NAMES:
            assert got[term][name] == exp.get(name, 0), (term, name, got[term][name], exp.get(name, 0))
    s = res.counts.summary()
    assert s["effective_macs"] == N2 + 2 * N2 + 2 * C
    assert s["effective_acs"] == N2
    assert s["dense_macs"] == T * (D + N) * N2 + N * C
    assert s["activation_sparsity"] == pytest.approx(0.5)   # 2 of 4 neurons nonzero per step
    # weight-matrix rows and parameter vectors are counted apart; the v1 total is their sum
    assert s["matrix_bytes_read"] == 4 * (2 * N2 + 2 * N2 + 2 * C)
    assert s["param_bytes_read"] == 4 * (T * N2 + T * 3 * N + C)
    assert s["weight_bytes_read"] == s["matrix_bytes_read"] + s["param_bytes_read"]
    # and the output is the model's
    ref, wins = reference_forward(m, torch.from_numpy(HAND_X))
    np.testing.assert_allclose(res.logits, ref, atol=1e-6)
    assert [[list(w) for w in s] for s in res.winners] == [[[0, 1]], [[0, 1]]]
    assert same_winners(res.winners, wins)


def test_sparse_layout_counts_equal_hand_computed() -> None:
    """The hand model handed over column-sparse (forced: its weights have no zero, so every column
    stores all 2N entries): the same MACs, ACs, weight bytes and logits, plus the index bytes,
    1 per entry and 8 (two int32 pointers) per column read."""
    _backend_ok("c")
    m = _hand_model()
    dense, sparse = Engine(m, "c", layout="dense").run(HAND_X), Engine(m, "c", layout="sparse").run(HAND_X)
    np.testing.assert_array_equal(sparse.logits, dense.logits)
    got, exp = sparse.counts.per_term(), dense.counts.per_term()
    for term in exp:
        for name in E.COUNTER_NAMES:
            want = exp[term][name]
            if name == "index_bytes":
                cols = {"L0.input": 2, "L0.recurrent": 2}.get(term, 0)    # events of each term
                want = cols * (N2 + 8)
            assert got[term][name] == want, (term, name, got[term][name], want)
    assert sparse.counts.summary()["index_bytes_read"] == 4 * (N2 + 8)


def test_sparse_weights_read_only_nonzeros_and_equal_dense(trained_small: SLN, mnist_slice) -> None:
    """trained_small pruned to 10 % of W_in / W_rec: the engine picks the column-sparse layout
    itself; logits and winners equal the dense layout's exactly (only additions of 0 are skipped),
    and the input MACs + ACs are the stored entries of the event columns."""
    import copy

    from sln import intspec

    _backend_ok("c")
    _, _, xte, _ = mnist_slice
    m = copy.deepcopy(trained_small)
    with torch.no_grad():
        for w in (m.cells[0].w_in.weight, m.cells[0].w_rec.weight):
            w.mul_((w.abs() >= w.abs().flatten().kthvalue(int(0.9 * w.numel())).values).float())
    seq = images_to_sequence(torch.from_numpy(xte[:30].copy()), m.cfg.input_size).numpy()
    es, ed = Engine(m, "c"), Engine(m, "c", layout="dense")
    assert fmt.header_of(fmt.float_model_bytes(m))["version"] == 2
    ent = intspec.column_entries(m.cells[0].w_in.weight.detach().numpy().T)     # (D,) entries per input
    want_in = 0
    for x in seq:
        rs, rd = es.run(x), ed.run(x)
        np.testing.assert_array_equal(rs.logits, rd.logits)
        assert same_winners(rs.winners, rd.winners)
        want_in += int(ent[np.nonzero(x)[1]].sum())
    _, cs = es.run_batch(seq)
    _, cd = ed.run_batch(seq)
    ts, td = cs.per_term(False), cd.per_term(False)
    assert ts["L0.input"]["mac"] + ts["L0.input"]["ac"] == want_in
    assert ts["L0.input"]["weight_bytes"] == 4 * want_in
    assert ts["L0.input"]["index_bytes"] == want_in + 8 * ts["L0.input"]["events"]
    rec_s, rec_d = (t["L0.recurrent"]["mac"] + t["L0.recurrent"]["ac"] for t in (ts, td))
    assert 0 < rec_s < 0.15 * rec_d and td["L0.recurrent"]["index_bytes"] == 0
    assert ts["L0.elementwise"] == td["L0.elementwise"]


# --------------------------------------------------------------------------- random models
CASES = [
    ("1 layer, boost", dict(n_neurons=64, active_frac=0.0625, input_size=196), 1.0),
    ("2 layers, dt 0.37", dict(n_neurons=48, active_frac=0.125, n_layers=2, input_size=112), 0.37),
    ("dense k=N", dict(n_neurons=32, active_frac=1.0, boost_beta=0.0, input_size=196), 1.0),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,kw,dt", CASES, ids=[c[0] for c in CASES])
def test_random_inputs_match_training_forward(backend: str, name: str, kw: dict, dt: float) -> None:
    _backend_ok(backend)
    torch.manual_seed(1)
    m = SLN(SLNConfig(**kw)).eval()
    for c in m.cells:
        c.boost.uniform_(0.5, 2.0)  # nontrivial frozen gains must change the selection as in torch
    eng = Engine(m, backend)
    T, D = 784 // kw["input_size"], kw["input_size"]
    for trial in range(5):
        g = torch.Generator().manual_seed(trial)
        x = torch.rand(T, D, generator=g) * (torch.rand(T, D, generator=g) < 0.3)
        x[x > 0.8] = 1.0  # some binary events
        with torch.no_grad():
            state = m.init_state(1)
            acc = torch.zeros(1, m.cfg.n_neurons)
            ref_w = []
            for t in range(T):
                y, state, _ = m.step(x[t][None], state, dt)
                acc = acc + y
                ref_w.append([torch.nonzero(s[1][0]).flatten().numpy() for s in state])
            ref = m.readout(acc / T)[0].numpy()
            full = m(x[None], dt=dt)[0].numpy()
        np.testing.assert_allclose(full, ref, atol=1e-6)
        res = eng.run(x.numpy(), dt=dt)
        np.testing.assert_allclose(res.logits, ref, atol=1e-5, rtol=0)
        assert same_winners(res.winners, ref_w)
        k = m.cfg.k
        assert all(len(w) <= k for step in res.winners for w in step)


@pytest.fixture(scope="module")
def trained_small(mnist_slice, tmp_path_factory) -> SLN:
    """A small SLN trained for one epoch on 1000 real MNIST images (the real-data checks)."""
    from sln.checkpoint import load_checkpoint
    from sln.train import RunOptions, train
    out = tmp_path_factory.mktemp("eng_run")
    cfg = SLNConfig(n_neurons=128, active_frac=0.05, epochs=1, batch_size=64, input_size=196)
    torch.set_num_threads(2)
    train(cfg, RunOptions(dataset="mnist", out=out, limit_train=1000, limit_test=200, progress=False))
    model, _ = load_checkpoint(out / "checkpoint.safetensors")
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_images_match_training_forward(backend: str, trained_small: SLN, mnist_slice) -> None:
    _backend_ok(backend)
    _, _, xte, _ = mnist_slice
    m = trained_small
    seq = images_to_sequence(torch.from_numpy(xte[:60].copy()), m.cfg.input_size)
    eng = Engine(m, backend)
    with torch.no_grad():
        full = m(seq).numpy()
    batch_logits, batch_counts = eng.run_batch(seq.numpy())
    total_mac = 0
    for i in range(len(seq)):
        ref, ref_w = reference_forward(m, seq[i])
        res = eng.run(seq[i].numpy())
        np.testing.assert_allclose(res.logits, ref, atol=1e-5, rtol=0)
        np.testing.assert_allclose(res.logits, full[i], atol=1e-5, rtol=0)
        assert same_winners(res.winners, ref_w), f"image {i}: winners differ"
        np.testing.assert_array_equal(batch_logits[i], res.logits)
        total_mac += res.counts.total("mac")
    assert batch_counts.total("mac") == total_mac
    # the sparse model really skips work: effective MACs well below dense
    s = batch_counts.summary()
    assert s["effective_macs"] < 0.3 * s["dense_macs"]
    assert 0 < s["input_events"] < m.cfg.input_size * seq.shape[1]


def test_counts_are_deterministic_and_add_over_the_batch(trained_small: SLN, mnist_slice) -> None:
    """The batch counts are the sum of the single runs' counts, on every term and counter."""
    _backend_ok("c")
    _, _, xte, _ = mnist_slice
    m = trained_small
    seq = images_to_sequence(torch.from_numpy(xte[:20].copy()), m.cfg.input_size).numpy()
    eng = Engine(m, "c")
    lb, cb = eng.run_batch(seq)
    rows = sum(eng.run(x, record_winners=False).counts.rows for x in seq)
    np.testing.assert_array_equal(cb.rows, rows)
    np.testing.assert_array_equal(eng.run_batch(seq)[0], lb)


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_step_equals_whole_run(backend: str, trained_small: SLN, mnist_slice) -> None:
    _backend_ok(backend)
    _, _, xte, _ = mnist_slice
    m = trained_small
    seq = images_to_sequence(torch.from_numpy(xte[:3].copy()), m.cfg.input_size).numpy()
    eng = Engine(m, backend)
    for x in seq:
        st = eng.init_state()
        acc = np.zeros(m.cfg.n_neurons, np.float32)
        cnt = eng.new_counts()
        tstate = m.init_state(1)
        for t in range(len(x)):
            y, st = eng.step(x[t], st, 1.0, counts=cnt)
            with torch.no_grad():
                ty, tstate, _ = m.step(torch.from_numpy(x[t])[None], tstate, 1.0)
            np.testing.assert_allclose(y, ty[0].numpy(), atol=1e-5)
            acc += y
        w_out, b_out = m.readout.weight.detach().numpy().T, m.readout.bias.detach().numpy()
        logits = (acc / len(x)) @ w_out + b_out
        np.testing.assert_allclose(logits, eng.run(x).logits, atol=1e-5)
        assert cnt.steps == len(x) and cnt.total("events") > 0


def test_build_fails_clearly_without_compiler(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CC", "definitely-not-a-compiler")
    monkeypatch.setenv("SLN_CACHE", str(tmp_path))
    with pytest.raises(EngineBuildError, match="no C compiler"):
        E.build_host_library()


def test_numpy_backend_is_gone_and_auto_is_c(monkeypatch) -> None:
    m = _hand_model()
    with pytest.raises(ValueError, match="apt-get install gcc"):
        Engine(m, "numpy")
    with pytest.raises(ValueError, match="backend"):
        Engine(m, "fortran")

    def boom() -> None:
        raise EngineBuildError("no C compiler (test)")
    monkeypatch.setattr(E, "load_host_library", boom)
    for backend in ("auto", "c"):
        with pytest.raises(EngineBuildError):
            Engine(m, backend)


def test_state_is_the_runtime_layout() -> None:
    """EngineState views the C runtime's state bytes (sln.fmt.state_bytes mirrors its layout)."""
    _backend_ok("c")
    torch.manual_seed(2)
    m = SLN(SLNConfig(n_neurons=40, active_frac=0.1, n_layers=3, input_size=112)).eval()
    eng = Engine(m, "c")
    assert eng.state_bytes == fmt.state_bytes(3, 40, m.cfg.k, "float32")
    assert eng.workspace_bytes == fmt.float_workspace_bytes(3, 40, m.cfg.k)
    st = eng.init_state()
    x = (torch.rand(7, 112) < 0.3).float().numpy()
    tstate = m.init_state(1)
    for t in range(7):
        eng.step(x[t], st, 0.5)
        with torch.no_grad():
            _, tstate, _ = m.step(torch.from_numpy(x[t])[None], tstate, 0.5)
        for l in range(3):
            np.testing.assert_allclose(st.h[l], tstate[l][0][0].numpy(), atol=1e-5)
            np.testing.assert_allclose(st.y(l), tstate[l][1][0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="rejected"):
        eng.step(x[0], st, -1.0)


def test_engine_rejects_training_mode_and_bad_input() -> None:
    _backend_ok("c")
    m = _hand_model()
    with pytest.raises(ValueError, match="eval"):
        Engine(m.train(), "c")
    eng = Engine(m.eval(), "c")
    with pytest.raises(ValueError, match="expects 3"):
        eng.step(np.zeros(5, np.float32), eng.init_state())

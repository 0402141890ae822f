"""Registry and model-level behaviour; one parametrised test covers every registered model."""
from __future__ import annotations

import pytest
import torch

from sln import SLNConfig, create_model, get_config, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_forward_backward(name: str) -> None:
    model = create_model(name)
    cfg = model.cfg
    T = 3
    if cfg.task == "lm":                               # per-step next-character logits
        idx = torch.randint(0, cfg.input_size, (4, T))
        logits, act = model(idx, return_activity=True)
        assert logits.shape == (4, T, cfg.n_classes) and torch.isfinite(logits).all()
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
        active = act.active
    else:
        x = torch.rand(4, T, cfg.input_size) * (torch.rand(4, T, cfg.input_size) < 0.3)
        logits, act = model(x, return_activity=True)
        assert logits.shape == (4, cfg.n_classes)
        assert torch.isfinite(logits).all()
        torch.nn.functional.cross_entropy(logits, torch.arange(4) % cfg.n_classes).backward()
        active = act.active
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    for a in active or []:                             # never more than k of N fire per step
        assert (a <= cfg.k / cfg.n_neurons + 1e-6).all()


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(KeyError) as e:
        create_model("sln-huge")
    for name in list_models():
        assert name in str(e.value)


def test_named_models_are_sparse_and_overrides_apply() -> None:
    for name in list_models():
        cfg = get_config(name)
        if "dense" not in name:
            assert cfg.k / cfg.n_neurons <= 0.03
    cfg = get_config("sln-small", n_neurons=100, active_frac=0.05)
    assert (cfg.n_neurons, cfg.k) == (100, 5)
    with pytest.raises(ValueError, match="unknown config fields"):
        get_config("sln-small", neurons=3)


def test_config_json_round_trip() -> None:
    cfg = get_config("sln-base", seed=7)
    assert SLNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        SLNConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_eval_is_deterministic_and_freezes_boost() -> None:
    model = create_model("sln-tiny")
    x = torch.rand(8, 4, model.cfg.input_size)
    model.train()
    model(x)
    boost = model.cells[0].boost.clone()
    assert not torch.equal(boost, torch.ones_like(boost))   # training moved the homeostasis
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a, b)
    assert torch.equal(model.cells[0].boost, boost)


def test_streaming_steps_equal_sequence_forward() -> None:
    model = create_model("sln-small", n_layers=2).eval()
    x = torch.rand(3, 5, model.cfg.input_size)
    dt = torch.rand(3, 5) + 0.1
    full = model(x, dt)
    state, acc = model.init_state(3), 0
    for t in range(5):
        y, state, _ = model.step(x[:, t], state, dt[:, t])
        acc = acc + y
    torch.testing.assert_close(model.readout(acc / 5), full)

"""Training on real data slices, checkpoints, resume, metrics and the train CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sln import get_config
from sln.checkpoint import load_checkpoint, save_checkpoint
from sln.model import create_model, images_to_sequence
from sln.train import RunOptions, train
from sln.train_cli import main as train_main

SMALL = dict(n_neurons=256, active_frac=0.03, batch_size=32, lr=4e-3)


def _opts(out: Path, **kw) -> RunOptions:
    return RunOptions(out=out, progress=False, threads=1, **{"limit_train": 512, "limit_test": 500, **kw})


def test_short_run_on_real_mnist_learns(tmp_path: Path) -> None:
    # 3000 real images, 4 epochs, 7 of 256 neurons active: measured 85.8 % on 1000 test images
    cfg = get_config("sln-tiny", epochs=4, **SMALL)
    m = train(cfg, _opts(tmp_path, limit_train=3000, limit_test=1000))
    assert m["test_accuracy"] >= 0.80
    assert m["active_fraction"][0] <= 7 / 256 + 1e-9
    assert 0.0 <= m["dead_fraction"][0] < 0.5
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("dataset", "model", "epochs", "test_accuracy", "active_fraction", "dead_fraction",
                "params", "seconds_per_epoch"):
        assert key in saved
    assert saved["params"] == create_model("sln-tiny", **SMALL).num_params()


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = create_model("sln-tiny")
    model.train()
    model(torch.rand(16, 4, 196))                       # move boost away from its init
    model.eval()
    save_checkpoint(tmp_path / "c.safetensors", model)
    loaded, _ = load_checkpoint(tmp_path / "c.safetensors")
    assert loaded.cfg == model.cfg
    x = torch.rand(5, 4, 196)
    assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.cells[0].boost, model.cells[0].boost)
    assert not (tmp_path / "c.safetensors.tmp").exists()


def test_checkpoint_rejects_foreign_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not an SLN checkpoint"):
        load_checkpoint(tmp_path / "x.safetensors")


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    cfg = get_config("sln-tiny", epochs=2, **SMALL)
    full = train(cfg, _opts(tmp_path / "a"))
    train(cfg, _opts(tmp_path / "b", stop_after_epoch=1))
    resumed = train(cfg, _opts(tmp_path / "b", resume=True))
    a, _ = load_checkpoint(tmp_path / "a" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert resumed["test_accuracy"] == full["test_accuracy"]


def test_cli_rejects_unknown_flag_with_valid_list(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        train_main(["--epochz", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--epochz" in err and "--epochs" in err and "--active-frac" in err


def test_cli_unknown_model_lists_known(capsys) -> None:
    assert train_main(["--model", "nope"]) == 2
    assert "sln-small" in capsys.readouterr().err


def test_cli_trains_and_writes_metrics(tmp_path: Path) -> None:
    rc = train_main(["--model", "sln-tiny", "--epochs", "1", "--n-neurons", "64", "--limit-train", "256",
                     "--limit-test", "200", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["model"] == "sln-tiny" and m["epochs"] == 1 and 0 <= m["test_accuracy"] <= 1
    assert json.loads((tmp_path / "config.json").read_text())["n_neurons"] == 64


def test_images_to_sequence_keeps_background_zero() -> None:
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, 3, 5] = 255
    seq = images_to_sequence(img, 196)
    assert seq.shape == (1, 4, 196)
    assert seq[0, 0, 3 * 28 + 5] == 1.0 and seq.sum() == 1.0
    with pytest.raises(ValueError):
        images_to_sequence(img, 100)


def test_random_shift_translates_with_zero_fill() -> None:
    from sln.train import random_shift
    img = torch.zeros(64, 28, 28, dtype=torch.uint8)
    img[:, 10, 12] = 200
    out = random_shift(img, 2, torch.Generator().manual_seed(0))
    assert (out.flatten(1).sum(1) == 200).all()         # the pixel moved, nothing else appeared
    pos = out.flatten(1).argmax(1)
    dy, dx = pos // 28 - 10, pos % 28 - 12
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 10  # shifts vary per image
    assert torch.equal(random_shift(img, 0, torch.Generator()), img)

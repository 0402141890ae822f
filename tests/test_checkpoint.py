"""Checkpoints and configs refuse bad input with a message naming the file or field (no raw
KeyError / RuntimeError / TypeError / SafetensorError from a damaged or hostile file)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sln.checkpoint import TMP_SUFFIX, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from sln.config import SLNConfig, get_config
from sln.model import SLN


def _tiny() -> SLN:
    torch.manual_seed(0)
    return SLN(SLNConfig(input_size=4, n_classes=3, n_neurons=16, active_frac=0.125))


def test_round_trip_and_no_leftover_partial_file(tmp_path: Path) -> None:
    m = _tiny()
    p = tmp_path / "checkpoint.safetensors"
    (tmp_path / ("checkpoint.safetensors" + TMP_SUFFIX)).write_bytes(b"torn write of a killed run")
    save_checkpoint(p, m, None, {"epoch": 3})
    got, state = load_checkpoint(p)
    assert state["epoch"] == 3 and got.cfg == m.cfg
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), m.state_dict().values(), strict=True))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["checkpoint.safetensors"]


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("case", ["not_safetensors", "missing_config", "missing_train", "config_not_json",
                                  "string_for_number", "wrong_shape", "nan_weights", "other_format"])
def test_damaged_checkpoints_give_a_clear_error(tmp_path: Path, case: str) -> None:
    m = _tiny()
    tensors = {f"model.{k}": v.contiguous() for k, v in m.state_dict().items()}
    meta = {"format": "sln-checkpoint-v1", "kind": "sln", "config": json.dumps(m.cfg.to_dict()),
            "train": json.dumps({"epoch": 1})}
    p = tmp_path / "c.safetensors"
    if case == "not_safetensors":
        p.write_bytes(b"\x00" * 7 + b"definitely not a checkpoint")
        want = "not a readable safetensors"
    elif case in ("missing_config", "missing_train"):
        del meta[case.split("_")[1]]
        _write(p, tensors, meta)
        want = "missing or not JSON"
    elif case == "config_not_json":
        meta["config"] = "{broken"
        _write(p, tensors, meta)
        want = "missing or not JSON"
    elif case == "string_for_number":
        meta["config"] = json.dumps({**m.cfg.to_dict(), "n_neurons": "sixteen"})
        _write(p, tensors, meta)
        want = "n_neurons must be int"
    elif case == "wrong_shape":
        tensors["model.readout.weight"] = torch.zeros(5, 16)
        _write(p, tensors, meta)
        want = "does not rebuild its model"
    elif case == "nan_weights":
        tensors["model.readout.weight"] = torch.full((3, 16), float("nan"))
        _write(p, tensors, meta)
        want = "non-finite"
    else:
        meta["format"] = "something-else"
        _write(p, tensors, meta)
        want = "is not an SLN checkpoint"
    with pytest.raises(CheckpointError, match=want) as e:
        load_checkpoint(p)
    assert str(p) in str(e.value)


def test_read_checkpoint_of_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train one with"):
        read_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("bad, msg", [
    ({"epochs": 0}, "epochs=0 is outside"), ({"epochs": -1}, "epochs=-1 is outside"),
    ({"batch_size": -3}, "batch_size=-3"), ({"batch_size": 0}, "batch_size=0"),
    ({"n_neurons": 10 ** 7}, "n_neurons=10000000"), ({"lr": float("inf")}, "lr must be finite"),
    ({"n_layers": 16, "n_neurons": 65536}, "above the stated limit"), ({"task": "regress"}, "task must be"),
])
def test_config_refuses_bad_values_before_allocating(bad: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        get_config("sln-small", **bad)
    with pytest.raises(ValueError, match=msg):
        SLNConfig.from_dict({**get_config("sln-small").to_dict(), **bad})

"""Checkpoints: one safetensors file (tensors + JSON metadata), no pickle, atomic writes.

One format for every model the project trains (SLN classifiers and LMs, and the baselines).
Layout of `checkpoint.safetensors`:
  tensors  "model.<name>"            model parameters and buffers (incl. homeostatic boost)
           "optim.<i>.<name>"        Adam moments of parameter i (resume only)
  metadata "format"  = "sln-checkpoint-v1"
           "kind"    = "sln" (SLNConfig) or a baseline's kind ("gpt", ...); absent means "sln"
           "config"  = the model's config as JSON   (enough to rebuild the model)
           "train"   = training state as JSON       (epoch/steps, optimizer hyper-params, history;
                                                     the LM's vocabulary under "vocab")
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import SLNConfig
from .model import SLN

FORMAT = "sln-checkpoint-v1"
TMP_SUFFIX = ".partial"   # <name>.partial: a write in progress; a stale one (a killed write) is removed


class CheckpointError(ValueError):
    """A file is not a loadable checkpoint (wrong format, missing or malformed metadata, tensors of
    the wrong shape, non-finite weights); the message names the file and what to do."""


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    train_state: dict[str, Any] | None = None) -> None:
    """Atomically write model (+ optimizer moments) and a JSON training state. model.cfg is an
    SLNConfig or a dataclass; model.kind (default "sln") says which builder rebuilds it."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt_groups = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        for i, st in sd["state"].items():
            for name, val in st.items():
                tensors[f"optim.{i}.{name}"] = torch.as_tensor(val).detach().clone().contiguous()
        opt_groups = sd["param_groups"]
    cfg = model.cfg.to_dict() if isinstance(model.cfg, SLNConfig) else dataclasses.asdict(model.cfg)
    meta = {"format": FORMAT, "kind": getattr(model, "kind", "sln"), "config": json.dumps(cfg),
            "train": json.dumps({**(train_state or {}), "optimizer_groups": opt_groups})}
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint
    finally:
        tmp.unlink(missing_ok=True)   # a failed write (full disk) leaves no torn file behind


def read_checkpoint(path: str | Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python train.py --out DIR`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not an SLN checkpoint (format {meta.get('format')!r}, "
                                      f"want {FORMAT})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as e:   # safetensors raises its own error types for a file that is not one
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({type(e).__name__}: {e})") from e
    for key in ("config", "train"):
        try:
            value = json.loads(meta[key])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: metadata {key!r} is missing or not JSON; the file is damaged "
                                  "or was not written by sln") from e
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: metadata {key!r} must be a JSON object")
    return meta, tensors


def load_checkpoint(path: str | Path, builders: dict[str, Callable[[dict[str, Any]], torch.nn.Module]] | None = None
                    ) -> tuple[Any, dict[str, Any]]:
    """-> model in eval mode (boost frozen), training state dict.

    Kind "sln" is rebuilt here; another kind needs builders[kind](config dict) (e.g. the GPT
    baseline's, from sln.gpt), since this floor does not import the baselines."""
    meta, tensors = read_checkpoint(path)
    kind = meta.get("kind", "sln")
    cfg = json.loads(meta["config"])
    try:
        if kind == "sln":
            model: torch.nn.Module = SLN(SLNConfig.from_dict(cfg))
        elif builders and kind in builders:
            model = builders[kind](cfg)
        else:
            raise CheckpointError(f"{path} holds a {kind!r} model; pass builders={{{kind!r}: ...}} to load it")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except (TypeError, ValueError, RuntimeError) as e:   # bad config values, missing/mis-shaped tensors
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: does not rebuild its model ({str(e).splitlines()[0]})") from e
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite (NaN/Inf) values in {bad[:4]}: the run diverged; "
                              "resume from an earlier checkpoint or retrain with a lower --lr")
    model.eval()
    return model, json.loads(meta["train"])


def load_optimizer_state(path: str | Path, optimizer: torch.optim.Optimizer) -> None:
    meta, tensors = read_checkpoint(path)
    groups = json.loads(meta["train"])["optimizer_groups"]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def load_with_spec(path: str | Path, key: str, spec_type: Callable[..., Any], what: str, how: str
                   ) -> tuple[Any, Any]:
    """A checkpoint whose train_state holds a task's settings under `key` (a detector's threshold and
    inputs) -> (model in eval mode, spec_type(**settings)); CheckpointError naming `what` it is not, and
    `how` to train one."""
    model, state = load_checkpoint(path)
    d = state.get(key)
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} holds no {what} (no {key!r} settings in its train_state); train one with "
                              f"`{how}`")
    try:
        return model, spec_type(**d)
    except TypeError as e:
        raise CheckpointError(f"{path}: malformed {what} settings ({e})") from e


"""Devices and processes: where a run computes, and the torchrun process group it may belong to.

On the ground floor (torch only) because the model needs one thing from here: under torchrun
(PyTorch DDP) the homeostatic win rates are all-reduced before the boost update (`win_rates`),
so every rank selects its winners with the same boosts, the ones one process would compute on the
whole global batch. Everything else is used by the training loop (sln/tasks/loop.py):

  resolve_device("auto"|"cpu"|"cuda"|"cuda:N")   auto = CUDA when present; cuda without one: ValueError
  to_device(batch, dev)                          tensors of a (nested) batch, copied without a host sync
  init_distributed(dev) / rank_world()           torchrun's env -> process group (NCCL on GPU, gloo on CPU)
  shard(batch, rank, world)                      this rank's non-overlapping part of a global batch
  agree(value)                                   rank 0's float on every rank (the wall clock of budget runs)

No home-made distribution layer: gradients are averaged by torch's DistributedDataParallel, these
helpers only decide what each rank feeds it.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

import torch
import torch.distributed as dist

DEVICES = ("auto", "cpu", "cuda")
_CPU_GROUP: Any = None      # a gloo group for host-side scalars when the default group is NCCL


def resolve_device(name: str | None = "auto") -> torch.device:
    """--device -> torch.device. "auto" (or None): CUDA when torch sees a GPU, else the CPU; under
    torchrun on GPUs each process takes cuda:$LOCAL_RANK. "cuda" without a GPU: ValueError saying why."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = ("this torch is built without CUDA" if torch.version.cuda is None
                   else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES)")
            raise ValueError(f"--device {name}: {why} (torch {torch.__version__}); use --device cpu or auto")
        if name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        index = name.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(name)
    raise ValueError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """The one --device flag of every trainer's command line."""
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                   help="where to train: auto = CUDA when present, else the CPU")


def to_device(batch: Any, dev: torch.device) -> Any:
    """Every tensor of a batch (tuples, lists, dicts nested) on dev. non_blocking: a host-to-device
    copy is queued, the host does not wait for the GPU (no per-step round trip); a tensor already
    on dev is returned as it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(dev, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, dev) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, dev) for k, v in batch.items()}
    return batch


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return torch.device("cpu") if p is None else p.device


# --- torchrun -------------------------------------------------------------------------------------

def launched_by_torchrun() -> bool:
    """True in a process started by torchrun with more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Only rank 0 writes checkpoints, metrics and logs."""
    return rank_world()[0] == 0


def init_distributed(dev: torch.device) -> tuple[int, int]:
    """Under torchrun: join the process group (NCCL for CUDA devices, gloo for the CPU) once, from
    torchrun's environment (MASTER_ADDR/PORT, RANK, WORLD_SIZE). -> (rank, world size)."""
    global _CPU_GROUP
    if not launched_by_torchrun() or rank_world()[1] > 1:
        return rank_world()
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend)
    _CPU_GROUP = dist.new_group(backend="gloo") if backend != "gloo" else None
    return rank_world()


def shutdown_distributed() -> None:
    """Leave the process group (end of a torchrun command); a no-op outside one."""
    global _CPU_GROUP
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CPU_GROUP = None


def shard(batch: Any, rank: int, world: int) -> tuple[Any, float]:
    """This rank's part of a global batch -> (local batch, local share of the samples).

    Every tensor whose first dimension is the batch's (that of its first tensor) is cut into `world`
    contiguous near-equal parts (torch.tensor_split) and rank r keeps part r, so the ranks' samples
    never overlap and together are exactly the global batch; other items (None, floats, ints) are
    kept. The share lets the loop weight the loss so DDP's average over ranks is the mean over the
    global batch even when it does not divide evenly."""
    tensors = [b for b in (batch if isinstance(batch, (tuple, list)) else [batch]) if isinstance(b, torch.Tensor)]
    if world == 1 or not tensors:
        return batch, 1.0
    n = tensors[0].shape[0]
    if n < world:
        raise ValueError(f"a batch of {n} samples cannot be split over {world} processes; use a larger "
                         "--batch-size (under torchrun it is the global batch)")

    def part(b: Any) -> Any:
        return torch.tensor_split(b, world)[rank] if isinstance(b, torch.Tensor) and b.dim() and b.shape[0] == n \
            else b
    local = type(batch)(part(b) for b in batch) if isinstance(batch, (tuple, list)) else part(batch)
    return local, part(tensors[0]).shape[0] / n


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over the ranks (a no-op in one process)."""
    if rank_world()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def win_rates(wins: list[torch.Tensor], n_valid: torch.Tensor) -> list[torch.Tensor]:
    """Per-layer win counts (N,) and valid (sample, step) pairs of this batch -> win rates (N,).

    Under torchrun the counts and pairs are summed over the ranks first, in one all-reduce, so every
    rank updates its duty cycles and boosts from the global batch: the same boosts on every rank and
    the same as one process with that batch (counts are whole numbers, so the sum is exact)."""
    if rank_world()[1] == 1:
        return [w / n_valid for w in wins]
    flat = all_reduce_sum_(torch.cat([*wins, n_valid.reshape(1).to(wins[0].dtype)]))
    total = flat[-1]
    return [w / total for w in flat[:-1].split([len(w) for w in wins])]


def agree(value: float) -> float:
    """Rank 0's value on every rank (a budget run's clock: the ranks must stop at the same step with
    the same learning rate). Host-side, over gloo: no GPU synchronisation."""
    if rank_world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(t, 0, group=_CPU_GROUP)
    return float(t[0])

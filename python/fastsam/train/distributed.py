"""Data-parallel plumbing of the training loop: the torchrun process group, samplers, and the collectives.

Launched by torchrun the loop shards batches with DistributedSampler, reduces validation sums across ranks,
and only rank 0 writes files; a single process uses the same code with no process group.

Every collective of the loop goes through the helpers below (reduce_sum, any_rank, gather_objects, barrier):
they move tensors to the device the backend requires (NCCL: this rank's GPU; gloo: the CPU) and back, so no
call site can hand NCCL a CPU tensor. No other module of fastsam.train imports torch.distributed (tested).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this node
    backend: str | None = None  # None: no process group (one process started without torchrun)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer (torchrun sets it)") from None


def launch_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); no group yet."""
    return DistInfo(rank=_env_int("RANK", 0), world_size=_env_int("WORLD_SIZE", 1),
                    local_rank=_env_int("LOCAL_RANK", 0), local_world_size=_env_int("LOCAL_WORLD_SIZE", 1))


def launched_by_torchrun() -> bool:
    # torchrun sets WORLD_SIZE even for one process; then the run still joins a group (a 1-process NCCL check).
    return "WORLD_SIZE" in os.environ


def backend_for(device: torch.device) -> str:
    """NCCL for GPU training, gloo for CPU training (NCCL cannot reduce CPU tensors)."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup_distributed(launch: DistInfo, device: torch.device, timeout_minutes: float = 30.0) -> DistInfo:
    """Join torchrun's process group on the backend `device` needs; `launch` itself when not under torchrun.

    On CUDA this rank's GPU becomes the current device before the group exists, so NCCL and every later
    allocation use cuda:LOCAL_RANK. `timeout_minutes` bounds every collective: a rank whose peer died
    raises instead of waiting forever.
    """
    if not launched_by_torchrun():
        return launch
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = backend_for(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=launch.local_rank,
                    local_world_size=launch.local_world_size, backend=dist.get_backend())


def shutdown(info: DistInfo) -> None:
    """Leave the process group (the trainer calls it in a finally, on success, error or stop)."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def collective_device(info: DistInfo) -> torch.device:
    """Where tensors must live for `info.backend`'s collectives: this rank's GPU for NCCL, else the CPU."""
    if info.backend == "nccl":
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """`tensor` summed over ranks, on `tensor`'s own device (itself without a process group)."""
    if not info.distributed:
        return tensor
    work = tensor.detach().to(collective_device(info), copy=True)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when `flag` is True on any (a stop request seen by one rank stops all at one step)."""
    if not info.distributed:
        return flag
    work = torch.tensor([1 if flag else 0], dtype=torch.int32, device=collective_device(info))
    dist.all_reduce(work, op=dist.ReduceOp.MAX)
    return bool(work.item())


def gather_objects(value: dict, info: DistInfo) -> list[dict]:
    """Every rank's copy of `value` (a mid-epoch checkpoint restores each rank's own running sums)."""
    if not info.distributed:
        return [dict(value)]
    gathered: list = [None] * info.world_size
    # all_gather_object stages its bytes on the current CUDA device under NCCL: setup_distributed set it.
    dist.all_gather_object(gathered, dict(value))
    return gathered


def barrier(info: DistInfo) -> None:
    if not info.distributed:
        return
    if info.backend == "nccl":
        dist.barrier(device_ids=[info.local_rank])
    else:
        dist.barrier()


class SkipSampler(Sampler):
    """The indices of `sampler` after its first `skip` (a resumed epoch continues where it stopped)."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


class ShardSampler(Sampler):
    """Every world_size-th index from rank, in order, without padding (validation counts each object once;
    DistributedSampler would repeat samples to even out the ranks)."""

    def __init__(self, length: int, info: DistInfo):
        self.indices = list(range(info.rank, length, info.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """`module` itself without a process group, else DistributedDataParallel around it."""
    if not info.distributed:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # Prompt-encoder embeddings for unused prompt kinds get no gradient: tell DDP so.
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

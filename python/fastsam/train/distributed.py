"""Data-parallel plumbing of the training loop: the torchrun process group, samplers, cross-rank gathers.

Launched by torchrun (WORLD_SIZE > 1) the loop shards batches with DistributedSampler, reduces validation
sums across ranks, and only rank 0 writes files; a single process uses the same code with world size 1.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


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
    """Every world_size-th index from rank, in order, without padding (validation counts each object once)."""

    def __init__(self, length: int, info: DistInfo):
        self.indices = list(range(info.rank, length, info.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def reduce_sums(sums: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Add a float64 tensor of validation sums over ranks (in place; a no-op for one process)."""
    if info.world_size > 1:
        dist.all_reduce(sums)
    return sums


def gather_objects(value: dict, info: DistInfo) -> list[dict]:
    """Every rank's copy of `value` (a mid-epoch checkpoint restores each rank's own running sums)."""
    if info.world_size == 1:
        return [dict(value)]
    gathered: list = [None] * info.world_size
    dist.all_gather_object(gathered, dict(value))
    return gathered


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """`module` itself for one process, else DistributedDataParallel around it."""
    if info.world_size == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # Prompt-encoder embeddings for unused prompt kinds get no gradient: tell DDP so.
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

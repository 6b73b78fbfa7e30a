"""Data-parallel training on the existing engine: torch.distributed + DistributedDataParallel.

Started by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
or by a test that spawns processes itself. CPU runs use the gloo backend, GPUs nccl.

Every rank sees a disjoint shard of the same *global* batch: the global batches are a
function of (seed, step) only, never of the number of ranks, so ``torchrun`` with N ranks
and a single process compute the same updates (DDP averages the gradients; each rank's
loss is normalised by its local batch, so the average equals the global-batch gradient).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_environment() -> DistInfo:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size())


def shard(items: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's part of a global batch (rows rank, rank + world, ...)."""
    return items[info.rank :: info.world]


def all_mean(value: float, info: DistInfo) -> float:
    """The mean of a scalar over all ranks (the value itself in one process)."""
    if not info.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0]) / info.world


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()

"""Several training processes on one model: ``torch.distributed`` set up from ``torchrun``'s environment.

``torchrun --nproc_per_node=N ...`` starts N processes with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`init_distributed` joins them into one process group
(gloo on CPU, nccl on CUDA, one GPU per local rank) and gives each its device; without that
environment it is a single process and nothing changes. How a training step shares work is in
:mod:`sdf_autodec.core.engine`: every process holds the whole (replicated) state and a shard of
each global batch; DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sdf_autodec.core.devices import resolve_device


@dataclass
class DistContext:
    """Where this process stands in its group (``world == 1``: a single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False
    """True when :func:`init_distributed` created the group (and :meth:`close` destroys it)."""

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that writes files (checkpoints, logs): rank 0."""
        return self.rank == 0

    def shard(self, batch_size: int) -> torch.Tensor | None:
        """Positions in a global batch of ``batch_size`` that this process handles (every ``world``-th,
        from its rank); ``None`` for a single process (all of them)."""
        return torch.arange(self.rank, batch_size, self.world) if self.active else None

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the processes (every process gets the sum)."""
        if self.active:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def from_main(self, value: float) -> float:
        """Rank 0's ``value`` on every process (a broadcast; ``value`` itself for a single process):
        what all processes must agree on, such as the clock of a budget run."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.broadcast(t, src=0)
        return float(t.item())

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_name: str) -> tuple[DistContext, torch.device]:
    """Join (or create) the process group described by the environment; returns it and this process's device.

    A process group that already exists (set up by the caller) is used as it is.
    """
    initialised = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if initialised else int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), resolve_device(device_name)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank = dist.get_rank() if initialised else int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not initialised:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world=world, local_rank=local_rank, owns_group=not initialised), device

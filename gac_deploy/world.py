"""The processes ``torchrun`` starts: who this process is, its share of the work, and
exact sums and gathers of what the processes counted.

``torchrun --nproc_per_node N -m gac_deploy COMMAND ...`` (and across nodes, with
``--nnodes``) starts N processes that join one process group (gloo on CPU, NCCL on
CUDA). Training splits each global batch over them (:mod:`gac_deploy.training`);
``simulate``, ``evaluate`` and ``energy`` split the test images into contiguous blocks
and merge integer counts, so N processes report what one does. Alone (no torchrun),
every function here is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from gac_deploy.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # this process's index on its node (its GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    """Join the process group that torchrun describes in the environment (or run alone).
    On CUDA each process takes the GPU of its local rank before joining (NCCL)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(process_device(device, World(0, size, local_rank)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def join_for_images() -> World:
    """The process group torchrun describes, on CPU (gloo), for a command that splits its
    images; each process takes an equal share of its node's cores for torch's threads."""
    world = init_world(torch.device("cpu"))
    if world.distributed:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world.size)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
    return world


def process_device(device: torch.device, world: World) -> torch.device:
    """The device this process trains on: ``cuda`` without an index means the GPU of the
    process's local rank (``cuda:LOCAL_RANK``) when training with several processes."""
    if device.type == "cuda" and device.index is None and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def _collective(values: torch.Tensor) -> torch.Tensor:
    """``values`` where this process group's backend can reduce them (NCCL: the GPU)."""
    if dist.get_backend() == "nccl":
        return values.to(torch.device("cuda", torch.cuda.current_device()))
    return values


def shard(indices: torch.Tensor, world: World) -> torch.Tensor:
    """This process's share of a global batch (equal shares)."""
    return indices[world.rank :: world.size]


def all_finite(loss: torch.Tensor, world: World) -> bool:
    """Whether the loss is finite in every process (so all of them stop together)."""
    finite = bool(torch.isfinite(loss))
    if not world.distributed:
        return finite
    flag = _collective(torch.tensor([float(finite)], dtype=torch.float64))
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def all_sum(values: list[float], world: World) -> list[float]:
    if not world.distributed:
        return values
    tensor = _collective(torch.tensor(values, dtype=torch.float64))
    dist.all_reduce(tensor)
    return tensor.tolist()


def block(count: int, world: World) -> range:
    """This process's contiguous share of ``count`` items (image indices): process r of
    N takes [count * r // N, count * (r + 1) // N)."""
    return range(count * world.rank // world.size, count * (world.rank + 1) // world.size)


def gather(value: Any, world: World) -> list[Any]:
    """``value`` from every process, in rank order (the processes' own objects, sent
    between them by torch.distributed; nothing read from a file). A process that died
    stops the others with a one-line UserError, before anything is written."""
    if not world.distributed:
        return [value]
    values: list[Any] = [None] * world.size
    try:
        dist.all_gather_object(values, value)
    except (RuntimeError, dist.DistBackendError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"another process of this torchrun stopped ({first}); nothing was written, run it again"
        ) from None
    return values


def leave() -> None:
    """Leave the process group, if this process joined one (at the command's end)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

"""Multi-process training through PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

Launched as ``torchrun --nproc_per_node N -m gac_deploy train ...``, each process trains on
its share of every global batch (the batch size is the global one); DDP averages the
gradients, and batch normalisation uses the statistics of the whole global batch, so
N processes compute what one process computes on the same global batch. On CUDA the
statistics are synchronised by ``torch.nn.SyncBatchNorm``; PyTorch's SyncBatchNorm
refuses CPU tensors, so on CPU (the gloo backend) :class:`GlobalBatchNorm2d` does the
same with a differentiable all-reduce. Only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

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


def training_device(name: str) -> torch.device:
    """``--device``: ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown --device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}, but this machine's torch sees no CUDA GPU; use cpu")
    return device


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


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all processes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        with warnings.catch_warnings():  # deprecated in favour of a private, non-autograd API
            warnings.simplefilter("ignore", FutureWarning)
            total = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), x.new_tensor([x.numel() / c])]))
            count = total[-1]
            mean = total[:c] / count
            # two passes, as one process computes it (the sum of squares minus the squared
            # mean loses precision)
            centred = x - mean.view(1, c, 1, 1)
            var = all_reduce((centred * centred).sum(dim=(0, 2, 3))) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * count / (count - 1))
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of ``model`` normalised with global-batch statistics."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum)
            replacement.load_state_dict(child.state_dict())
            setattr(model, name, replacement)
        else:
            synchronise_batchnorm(child, device)
    return model


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

"""Multi-process training through PyTorch's own engine: ``torchrun`` + DistributedDataParallel
(the process group itself: :mod:`gac_deploy.world`).

Launched as ``torchrun --nproc_per_node N -m gac_deploy train ...``, each process trains on
its share of every global batch (the batch size is the global one); DDP averages the
gradients, and batch normalisation uses the statistics of the whole global batch, so
N processes compute what one process computes on the same global batch. On CUDA the
statistics are synchronised by ``torch.nn.SyncBatchNorm``; PyTorch's SyncBatchNorm
refuses CPU tensors, so on CPU (the gloo backend) :class:`GlobalBatchNorm2d` does the
same with a differentiable all-reduce. Only rank 0 logs and writes files.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from gac_deploy.errors import UserError


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

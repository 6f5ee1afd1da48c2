"""Leaky integrate-and-fire neurons in float, as trained (paper Eq. 1).

Layout: time first, ``[T, ...]``. The update is the CUBA neuron with current
decay 1 and voltage decay ``1 - tau``, which is what Loihi runs:

    v[t] = tau * v[t-1] * (1 - s[t-1]) + reset * s[t-1] + x[t]
    s[t] = v[t] > threshold
"""

from __future__ import annotations

import torch
from torch import nn

from gac_deploy.config import LIFConfig


class RectangleSpike(torch.autograd.Function):
    """Heaviside step of ``v - threshold`` with the rectangle surrogate (Eq. 22).

    Forward: 1 where the argument is > 0. Backward: ``1/a`` inside ``|x| < a/2``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        window = (x.abs() < ctx.width / 2).to(grad.dtype) / ctx.width
        return grad * window, None


def lif_forward(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """Run a LIF population over time. ``x``: input current [T, ...]; returns spikes [T, ...]."""
    v = torch.zeros_like(x[0])
    spikes = []
    for t in range(x.shape[0]):
        v = v + x[t]
        s = RectangleSpike.apply(v - config.threshold, config.surrogate_width)
        spikes.append(s)
        v = config.tau * v * (1 - s) + config.reset * s
    return torch.stack(spikes)


class LIF(nn.Module):
    """A population of LIF neurons. Input current and output spikes are [T, N, ...]."""

    def __init__(self, config: LIFConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_forward(x, self.config)

    def extra_repr(self) -> str:
        c = self.config
        return f"threshold={c.threshold}, tau={c.tau}, reset={c.reset}, a={c.surrogate_width}"

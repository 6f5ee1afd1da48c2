"""Leaky integrate-and-fire neurons in float, as trained (paper Eq. 1).

Layout: time first, ``[T, ...]``. The update is the CUBA neuron with current
decay 1 and voltage decay ``1 - tau``, which is what Loihi runs:

    v[t] = tau * v[t-1] * (1 - s[t-1]) + reset * s[t-1] + x[t]
    s[t] = v[t] > threshold          (v[t] >= threshold when not strict)
"""

from __future__ import annotations

import torch
from torch import nn

from gac_deploy.config import LIFConfig


class SurrogateSpike(torch.autograd.Function):
    """Heaviside step of ``x = v - threshold`` with a surrogate gradient.

    Forward: 1 where x > 0 (``strict``) or x >= 0. Backward:
    ``rectangle`` (Eq. 22): 1/a inside |x| < a/2; ``triangle`` (the authors'
    CIFAR code, gamma = a): max(a - |x|, 0) / a**2.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, strict: bool, kind: str, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.kind, ctx.width = kind, width
        return (x > 0).to(x.dtype) if strict else (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (x,) = ctx.saved_tensors
        a = ctx.width
        if ctx.kind == "rectangle":
            surrogate = (x.abs() < a / 2).to(grad.dtype) / a
        else:
            surrogate = torch.clamp(a - x.abs(), min=0) / (a * a)
        return grad * surrogate, None, None, None


def spike(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """Spikes of membrane potentials ``x`` under ``config`` (surrogate gradient attached)."""
    return SurrogateSpike.apply(
        x - config.threshold, config.strict, config.surrogate, config.surrogate_width
    )


def lif_forward(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """Run a LIF population over time. ``x``: input current [T, ...]; returns spikes [T, ...]."""
    v = torch.zeros_like(x[0])
    spikes = []
    for t in range(x.shape[0]):
        v = v + x[t]
        s = spike(v, config)
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
        rule = ">" if c.strict else ">="
        return (
            f"spike when v {rule} {c.threshold}, tau={c.tau}, reset={c.reset}, "
            f"{c.surrogate} surrogate a={c.surrogate_width}"
        )

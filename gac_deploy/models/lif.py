"""Leaky integrate-and-fire neurons in float, as trained (paper Eq. 1): the CUBA neuron
of :mod:`gac_deploy.neurons.cuba` (its dynamics are written there), made trainable with
a surrogate gradient, a hand-written backward over time and, for quantisation-aware
training, its Loihi fixed-point form. Layout: time first, ``[T, ...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from gac_deploy.body.formats import ACTIVATION_SCALE
from gac_deploy.config import LIFConfig
from gac_deploy.neurons.cuba import device_params, float_dynamics, integer_neuron


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
        return grad * surrogate_derivative(x, ctx.kind, ctx.width).to(grad.dtype), None, None, None


def spike(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """Spikes of membrane potentials ``x`` under ``config`` (surrogate gradient attached)."""
    return SurrogateSpike.apply(
        x - config.threshold, config.strict, config.surrogate, config.surrogate_width
    )


def surrogate_derivative(u: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    """d(spike)/du at ``u = v - threshold`` (see :class:`SurrogateSpike`)."""
    if kind == "rectangle":
        return (u.abs() < width / 2).to(u.dtype) / width
    return torch.clamp(width - u.abs(), min=0) / (width * width)


def recurrence_backward(
    grad_spikes: torch.Tensor,
    v_before: torch.Tensor,
    spikes: torch.Tensor,
    tau: float,
    threshold: float,
    reset: float,
    surrogate: str,
    width: float,
) -> torch.Tensor:
    """dL/dx [T, M] from dL/ds [T, M], the potentials and the spikes (any dtype) of
    :func:`gac_deploy.neurons.cuba.float_dynamics`; the formula is in :class:`LIFOverTime`."""
    grad_x = torch.empty_like(grad_spikes)
    grad_h = torch.zeros_like(grad_spikes[0])
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        v, s = v_before[t], spikes[t].to(v_before.dtype)
        g = surrogate_derivative(v - threshold, surrogate, width)
        grad_v = grad_spikes[t] * g + grad_h * (tau * (1 - s) + (reset - tau * v) * g)
        grad_x[t] = grad_v
        grad_h = grad_v
    return grad_x


_compiled: dict[str, Callable] = {}
_use_compiled = False


@contextmanager
def compiled_recurrences(enabled: bool = True) -> Iterator[None]:
    """Within: the LIF recurrences of training (forward and hand-written backward) run as
    ``torch.compile``-d loops, each fused into one kernel over [T, M]. The first step of a
    run pays the compilation (seconds on a CPU); results agree with the eager loops to
    float rounding (the compiler may contract multiply-adds)."""
    global _use_compiled
    previous, _use_compiled = _use_compiled, enabled
    try:
        yield
    finally:
        _use_compiled = previous


def _recurrence(name: str) -> Callable:
    plain = {"forward": float_dynamics, "backward": recurrence_backward}[name]
    if not _use_compiled:
        return plain
    if name not in _compiled:
        _compiled[name] = torch.compile(plain, dynamic=True)
    return _compiled[name]


class LIFOverTime(torch.autograd.Function):
    """The LIF recurrence with its backward written by hand over time.

    Forward as :func:`lif_forward_autograd`; it keeps only the membrane potential before
    each spike decision and the spikes, instead of every intermediate autograd would
    keep. Backward, with g the surrogate derivative at v[t] - Vth and h[t] the potential
    after the reset (h[t] = tau v[t] (1 - s[t]) + reset s[t]):

        dL/dv[t] = dL/ds[t] g + dL/dh[t] (tau (1 - s[t]) + (reset - tau v[t]) g)
        dL/dx[t] = dL/dv[t],   dL/dh[t-1] = dL/dv[t]

    which is exactly what autograd computes through the same graph.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
        c = config
        flat = x.reshape(x.shape[0], -1)
        v_before, spikes = _recurrence("forward")(flat, c.tau, c.threshold, c.reset, c.strict)
        ctx.save_for_backward(v_before, spikes.to(torch.uint8))  # spikes kept in 1 byte each
        ctx.config = config
        return spikes.view(x.shape)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, None]:
        v_before, spikes = ctx.saved_tensors
        c = ctx.config
        grad_x = _recurrence("backward")(
            grad_spikes.reshape(grad_spikes.shape[0], -1),
            v_before,
            spikes,
            c.tau,
            c.threshold,
            c.reset,
            c.surrogate,
            c.surrogate_width,
        )
        return grad_x.view(grad_spikes.shape), None


def lif_forward(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """Run a LIF population over time. ``x``: input current [T, ...]; returns spikes [T, ...].

    Uses the hand-written backward (:class:`LIFOverTime`) when gradients are needed."""
    if torch.is_grad_enabled() and x.requires_grad:
        return LIFOverTime.apply(x, config)
    return lif_forward_autograd(x, config)


def lif_forward_autograd(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """The same recurrence written plainly, differentiated by autograd."""
    v = torch.zeros_like(x[0])
    spikes = []
    for t in range(x.shape[0]):
        v = v + x[t]
        s = spike(v, config)
        spikes.append(s)
        v = config.tau * v * (1 - s) + config.reset * s
    return torch.stack(spikes)


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def loihi_lif_forward(x: torch.Tensor, config: LIFConfig, scale_exp: int) -> torch.Tensor:
    """The same population in Loihi fixed point, run by lava-dl's CUBA neuron.

    ``x`` [T, ...] in model units is rounded to the population's integer unit
    2**-scale_exp (straight-through); the threshold becomes vThMant =
    round(Vth * 2**scale_exp) and the voltage decay round(4096 * (1 - tau))
    (:func:`gac_deploy.neurons.cuba.device_params`). The voltage follows
    slayer's integer dynamics (decay rounded toward zero, as on Loihi); spikes are
    v > vThMant with this package's surrogate gradient, in a_in / 64 units.
    Needs a strict threshold and reset 0 (what Loihi does).
    """
    if not config.strict or config.reset != 0.0:
        raise ValueError("Loihi fixed point needs a strict threshold and reset 0")
    scale = 2.0**scale_exp
    device = device_params(config, scale_exp)
    neuron = integer_neuron(device.threshold, device.voltage_decay)
    a_in = (_RoundSTE.apply(x * scale) / ACTIVATION_SCALE).movedim(0, -1).float()  # [N, ..., T]
    shape = a_in.shape
    _, voltage = neuron.dynamics(a_in.reshape(shape[0], -1, shape[-1]))  # slayer: [N, n, T]
    width = config.surrogate_width * scale / ACTIVATION_SCALE
    vth = device.threshold / ACTIVATION_SCALE
    spikes = SurrogateSpike.apply(voltage - vth, True, config.surrogate, width)
    return spikes.reshape(shape).movedim(-1, 0).to(x.dtype)


class LIF(nn.Module):
    """A population of LIF neurons. Input current and output spikes are [T, N, ...].

    ``scale_exp`` None: float dynamics. An integer: Loihi fixed point at unit
    2**-scale_exp (:func:`loihi_lif_forward`), as the exported population runs.
    """

    def __init__(self, config: LIFConfig) -> None:
        super().__init__()
        self.config = config
        self.scale_exp: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_exp is not None:
            return loihi_lif_forward(x, self.config, self.scale_exp)
        return lif_forward(x, self.config)

    def extra_repr(self) -> str:
        c = self.config
        rule = ">" if c.strict else ">="
        return (
            f"spike when v {rule} {c.threshold}, tau={c.tau}, reset={c.reset}, "
            f"{c.surrogate} surrogate a={c.surrogate_width}"
        )

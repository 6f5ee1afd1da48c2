"""The CUBA neuron: the neuron every population of the body runs, in one place.

In float, as trained (paper Eq. 1), time first ``[T, ...]``: current decay 1 (nothing of
the current is kept) and voltage decay ``1 - tau``,

    v[t] = tau * v[t-1] * (1 - s[t-1]) + reset * s[t-1] + x[t]
    s[t] = v[t] > threshold          (v[t] >= threshold when not strict)

On the chip (Loihi 2's CUBA compartment, all integers, see :mod:`gac_deploy.body.formats`)
the same neuron at a population's unit 2**-k has vThMant = round(threshold * 2**k) and
dv = round(4096 (1 - tau)), and spikes when v > vThMant << 6. This module holds:

* :func:`device_params`: the chip integers of a float neuron (:class:`CubaParams`), and
  :func:`netx_fields`, the neuron as lava-dl NetX's HDF5 stores it (what lava-dl's
  neurons call ``device_params``);
* :func:`float_dynamics`: the float step, over T (no autograd; training's surrogate
  gradient and hand-written backward are :mod:`gac_deploy.models.lif`'s);
* :func:`integer_neuron`: the integer step, lava-dl's own CUBA neuron (slayer) in Loihi
  fixed point: the quantised reference and quantisation-aware training run it;
* :func:`nir_node`: the neuron as a NIR ``LIF`` node (the mapping is derived in
  :mod:`gac_deploy.export.nir_graph`).

The emulator's compiled passes (:mod:`gac_deploy.chip.neuron_passes`) and the Lava
runner (``LIF``/``LIFReset`` processes) implement the same integer step on their own;
the tests hold them to :func:`integer_neuron` spike for spike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gac_deploy.body.formats import (
    ACTIVATION_SCALE,
    CURRENT_DECAY,
    DECAY_UNITY,
    threshold_mant,
    voltage_decay_int,
)
from gac_deploy.config import LIFConfig
from gac_deploy.errors import UserError

NAME = "CUBA"
"""The neuron type NetX's HDF5 names (``neuron/type`` of each layer of body.net)."""


@dataclass(frozen=True)
class CubaParams:
    """A spiking population's neuron on the chip: vThMant and dv (out of 4096)."""

    threshold: int
    voltage_decay: int


def device_params(lif: LIFConfig, scale_exp: int) -> CubaParams:
    """The CUBA neuron that runs ``lif`` at unit 2**-scale_exp."""
    return CubaParams(
        threshold=threshold_mant(lif.threshold, scale_exp),
        voltage_decay=voltage_decay_int(1.0 - lif.tau),
    )


def netx_fields(threshold: int, voltage_decay: int) -> dict[str, Any]:
    """The ``neuron`` group of a NetX HDF5 layer for vThMant ``threshold`` and dv
    ``voltage_decay`` (lava-dl's ``device_params``): no current kept (iDecay 4096), no
    refractory period beyond the step, binary spikes."""
    return {
        "type": NAME,
        "iDecay": CURRENT_DECAY,
        "vDecay": voltage_decay,
        "vThMant": threshold,
        "refDelay": 1,
        "gradedSpike": False,
    }


def float_dynamics(
    x: torch.Tensor, tau: float, threshold: float, reset: float, strict: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The float neuron over time, without autograd. ``x`` [T, M] input current; returns
    the potential before each spike decision and the spikes, both [T, M]."""
    v_before = torch.empty_like(x)
    spikes = torch.empty_like(x)
    h = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        v = h + x[t]
        u = v - threshold
        s = ((u > 0) if strict else (u >= 0)).to(x.dtype)
        v_before[t], spikes[t] = v, s
        h = tau * v * (1 - s) + reset * s
    return v_before, spikes


def integer_neuron(threshold: int, voltage_decay: int) -> Any:
    """lava-dl's CUBA neuron for vThMant ``threshold`` and 12-bit ``voltage_decay``.

    It takes a_in / 64 as input and keeps its state in integers of 1/4096, so it
    runs Loihi's arithmetic: u = a_in << 6, v = sign(v)(|v| (4096 - dv) >> 12) + u,
    spike when v > vth << 6, then v = 0. Its strict test (v >= vth + 0.01/4096,
    in float32) is exact only while vThMant < 4096
    (:data:`gac_deploy.body.formats.SPIKING_THRESHOLD_MAX`); quantisation keeps it there.
    """
    from gac_deploy.lava_compat import import_slayer

    return import_slayer().neuron.cuba.Neuron(
        threshold=threshold / ACTIVATION_SCALE,
        current_decay=1.0,
        voltage_decay=voltage_decay / DECAY_UNITY,
        scale=ACTIVATION_SCALE,
    )


def nir_node(threshold: float, voltage_decay: float, shape: tuple[int, ...], dt: float) -> Any:
    """A ``nir.LIF`` (arrays of the population's shape) for a float population with
    threshold Vth and ``voltage_decay`` = 1 - tau (the fraction lost per step), read
    with forward-Euler steps of ``dt`` seconds: tau_mem = dt / voltage_decay (so
    1 - dt/tau_mem = tau), r = tau_mem / dt (input gain 1), no leak, reset to 0."""
    import nir

    if not 0.0 < voltage_decay <= 1.0:
        raise UserError(f"voltage decay {voltage_decay} has no NIR LIF time constant")
    tau = dt / voltage_decay
    full = np.ones(shape)
    return nir.LIF(
        tau=tau * full,
        r=tau / dt * full,
        v_leak=0.0 * full,
        v_threshold=threshold * full,
        v_reset=0.0 * full,
    )

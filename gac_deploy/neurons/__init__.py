"""Neuron models, each described in one module (:mod:`.cuba`) and registered here by the
name body.net gives it (NetX's ``neuron/type``).

A neuron model's module provides what :class:`Neuron` lists. The body runs one model,
:data:`BODY_NEURON`: body.net's writer and reader, the NIR writer and the quantised
reference take its description from :func:`body_neuron`. A graph does not yet name its
neuron, and the emulator's passes, the Lava runner and the trainable LIF
(:mod:`gac_deploy.models.lif`) are CUBA's own code (see docs/extending.md).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from gac_deploy.config import LIFConfig
from gac_deploy.neurons import cuba
from gac_deploy.registries import Registry


class Neuron(Protocol):
    """What a neuron model's module provides (see :mod:`.cuba` for each member)."""

    NAME: str

    def device_params(self, lif: LIFConfig, scale_exp: int) -> Any: ...

    def float_dynamics(
        self, x: torch.Tensor, tau: float, threshold: float, reset: float, strict: bool
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def netx_fields(self, threshold: int, voltage_decay: int) -> dict[str, Any]: ...

    def integer_neuron(self, threshold: int, voltage_decay: int) -> Any: ...

    def nir_node(
        self, threshold: float, voltage_decay: float, shape: tuple[int, ...], dt: float
    ) -> Any: ...


NEURONS: Registry[Neuron] = Registry("neuron")
NEURONS.register(cuba.NAME, cuba)  # a module that provides what Neuron lists
BODY_NEURON = cuba.NAME
"""The neuron model every population of a body runs."""


def body_neuron() -> Neuron:
    """The neuron model of :data:`BODY_NEURON`."""
    return NEURONS.get(BODY_NEURON)

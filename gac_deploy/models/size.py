"""What a model needs in memory at the least, known before any weight is allocated.

The model is built on PyTorch's ``meta`` device (shapes only, no storage), so a config
that asks for 10,000 channels or 10^9 time steps is measured in microseconds and refused
before it can exhaust the machine. The figure is a lower bound: the float32 parameters
and buffers plus one image's neuron states over T steps (4 bytes each); training and
batches need several times more, so refusing above it never refuses a model that fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gac_deploy.config import ModelConfig
from gac_deploy.errors import UserError
from gac_deploy.models.msresnet import GACMSResNet

BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True)
class ModelSize:
    """``parameters`` (trainable, the authors' count) and ``buffers`` (BatchNorm
    statistics) in values; ``neurons``: LIF neurons of one image at one time step
    (encoder and body); ``time_steps`` T."""

    parameters: int
    buffers: int
    neurons: int
    time_steps: int

    @property
    def min_bytes(self) -> int:
        """Parameters, buffers and one image's neuron states over T steps, float32."""
        values = self.parameters + self.buffers + self.neurons * self.time_steps
        return values * BYTES_PER_VALUE


def meta_model(config: ModelConfig) -> GACMSResNet:
    """The model with shapes but no storage (PyTorch's meta device). A config whose
    tensors could not even be described (a byte count beyond 64 bits, e.g. 10**9 stem
    channels) is refused with UserError."""
    try:
        with torch.device("meta"):
            return GACMSResNet(config)
    except RuntimeError as exc:  # "Storage size calculation overflowed with sizes=[...]"
        sizes = str(exc).partition("sizes=")[2] or str(exc)
        raise UserError(
            f"model {config.arch} asks for a weight tensor of sizes {sizes}, beyond what "
            "any machine can hold; use fewer channels, classes or a smaller kernel"
        ) from None


def model_size(config: ModelConfig) -> ModelSize:
    """Sizes of ``config``'s model, read from a meta-device build (nothing allocated)."""
    model = meta_model(config)
    c, h, w = model.encoder_output_shape()
    neurons = c * h * w  # the encoder's LIF
    for block in model.blocks:  # LIF at the block's input, conv1, LIF at its output, conv2
        conv = block.conv1.conv
        neurons += conv.in_channels * h * w
        (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        neurons += conv.out_channels * h * w
    neurons += model.fc.in_features * h * w  # the head's LIF
    return ModelSize(
        parameters=sum(p.numel() for p in model.parameters()),
        buffers=sum(b.numel() for b in model.buffers()),
        neurons=neurons,
        time_steps=config.time_steps,
    )


def physical_memory() -> int:
    """This machine's memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_model_size(config: ModelConfig, available: int | None = None) -> ModelSize:
    """Refuse a model that cannot fit in ``available`` bytes (this machine's memory),
    with the estimate in the message."""
    available = physical_memory() if available is None else available
    size = model_size(config)
    if size.min_bytes > available:
        raise UserError(
            f"model {config.arch} needs at least {size.min_bytes / 2**30:,.1f} GiB "
            f"({size.parameters:,} parameters, {size.neurons:,} neurons x "
            f"T={size.time_steps:,} steps for one image) but this machine has "
            f"{available / 2**30:,.1f} GiB; use fewer channels, classes or time steps"
        )
    return size

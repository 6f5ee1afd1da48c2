"""What a population receives: an edge's synaptic current and the per-channel bias, in torch.

The one implementation of this arithmetic, shared by the quantised reference and
the emulator (:mod:`gac_deploy.chip.emulator`) and by quantisation-aware training
(:mod:`gac_deploy.training.qat`). It lives in ``body/`` because it is the body's
own arithmetic and needs only ``torch`` and ``torch.nn.functional`` (no module, no
Lava). Signals are time first: [T, N, *shape], shapes (C, H, W) or (F,).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from gac_deploy.body.graph import Edge

FLOAT32_EXACT = 1 << 24
"""Integers of magnitude up to 2**24 are exact in float32, and so is every partial sum
of integer products that stays below it: an edge whose largest |input| does
(:func:`gac_deploy.body.quantize.max_synaptic_input`) may be convolved in float32."""


def edge_current(
    edge: Edge, signal: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Synaptic input through ``edge``: source signal [T, N, *src] -> [T, N, *dst].

    ``weight`` (conv [out, in, kH, kW], dense [out, in] over the (C, H, W)-flattened
    source) defaults to the edge's own in float64; the signal is taken in the weight's
    dtype, so the sums are exact while they stay within its integer range."""
    if weight is None:
        weight = torch.as_tensor(edge.weight, dtype=torch.float64)
    flat = signal.flatten(0, 1).to(weight.dtype)
    if edge.kind == "conv":
        out = F.conv2d(flat, weight, stride=edge.stride, padding=edge.padding)
    else:
        out = flat.flatten(1) @ weight.T
    return out.view(*signal.shape[:2], *out.shape[1:])


def channel_bias(bias, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> torch.Tensor:
    """A per-channel bias [C] (array or tensor) shaped to add to signals of population
    ``shape`` (C, H, W) or (C,): [C, 1, 1] or [C]. ``dtype`` None keeps a tensor's own."""
    return torch.as_tensor(bias, dtype=dtype).view(-1, *([1] * (len(shape) - 1)))

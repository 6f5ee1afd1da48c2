"""Exact integer convolution of spikes (and small graded payloads) on oneDNN's int8 kernels.

A convolution of unsigned 8-bit inputs x [n, C, H, W] (uint8, channels_last) with int8
weights, summed in int32 and returned as float32 times a per-channel power of two:

    out[n, o, i, j] = scale * sum_{c, a, b} x[n, c, i*s + a - p, j*s + b - p] * w[o, c, a, b]

exact while |sum| < 2**24 (float32's integers; the emulator checks the worst case) and
the scale is a power of two. Loihi's weights are even integers up to 8 bits: they are
stored divided by the largest power of two that divides them all, so that they fit in
[-128, 127], and the scale puts that factor back.

On x86 without VNNI, oneDNN multiplies u8 x s8 pairs into a saturating int16
(``vpmaddubsw``): two products of x <= 127 and |w| <= 128 stay below 2**15, so inputs are
limited to :data:`INPUT_MAX` (a spike is 1; a payload of up to 7 bits qualifies).

The kernels are PyTorch's own (``torch.ops.onednn.qconv_prepack`` and
``qconv_pointwise``, the int8 path Inductor uses on x86). Where they are missing or a
one-time probe against float64 disagrees, :func:`available` is False and callers use
their float convolution instead.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.nn import functional as F

INPUT_MAX = 127  # largest input: two products stay below int16's 2**15 (see above)
WEIGHT_RANGE = (-128, 127)


def int8_weight(weight: np.ndarray) -> tuple[torch.Tensor, float] | None:
    """``weight`` (integers) as int8 and the power of two it was divided by; None when
    even after dividing by the largest common power of two it does not fit in int8."""
    w = np.asarray(weight, dtype=np.int64)
    nonzero = np.abs(w[w != 0])
    shift = int(np.min(_trailing_zeros(nonzero))) if nonzero.size else 0
    w = w >> shift
    if w.size and (w.min() < WEIGHT_RANGE[0] or w.max() > WEIGHT_RANGE[1]):
        return None
    q = torch.as_tensor(w, dtype=torch.int8)
    if q.dim() == 4:
        q = q.contiguous(memory_format=torch.channels_last)
    return q, float(2**shift)


def _trailing_zeros(values: np.ndarray) -> np.ndarray:
    """How many times 2 divides each positive integer."""
    return np.log2(values & -values).astype(np.int64)


class Int8Conv:
    """A prepacked int8 convolution: uint8 [n, C, H, W] -> float32 [n, O, H', W'] (channels
    last), the int32 sums times ``scale`` plus an optional float32 bias per output channel
    (exact while both are integers below 2**24)."""

    def __init__(self, weight: torch.Tensor, scale: float, stride: int, padding: int) -> None:
        out_channels = weight.shape[0]
        self.scale = torch.full((out_channels,), scale, dtype=torch.float32)
        self.zero_point = torch.zeros(out_channels, dtype=torch.int64)
        self.geometry = ([stride, stride], [padding, padding], [1, 1], 1)
        self.packed = torch.ops.onednn.qconv_prepack(
            weight, self.scale, 1.0, 0, *self.geometry, None
        )

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ops.onednn.qconv_pointwise(
            x.contiguous(memory_format=torch.channels_last),
            1.0,
            0,
            self.packed,
            self.scale,
            self.zero_point,
            None if bias is None else bias.flatten().to(torch.float32),
            *self.geometry,
            1.0,
            0,
            torch.float32,
            "none",
            [],
            "",
        )


@functools.cache
def available() -> bool:
    """Whether the int8 kernels exist here and agree with float64 on a probe that holds
    the worst case (inputs of INPUT_MAX against weights of -128: int16 saturation would
    show), random spikes through strided, padded 3x3 and 1x1 kernels, and a bias."""
    gen = torch.Generator().manual_seed(0)

    def spikes(*shape: int) -> torch.Tensor:
        return (torch.rand(shape, generator=gen) < 0.3).to(torch.float64)

    def weights(*shape: int) -> torch.Tensor:
        return 2 * torch.randint(-128, 128, shape, generator=gen).to(torch.float64)

    largest = torch.full((2, 16, 6, 6), INPUT_MAX, dtype=torch.float64)
    worst = torch.full((4, 16, 3, 3), -256.0, dtype=torch.float64)  # stored as -128:
    worst[:, :, 0, 0] = 2.0  # 2 is the largest common factor
    bias = torch.arange(-3.0, 3.0, dtype=torch.float64) * 640
    cases = [  # (x, w, stride, padding, bias)
        (largest, worst, 1, 1, None),
        (spikes(3, 8, 7, 7), weights(5, 8, 3, 3), 2, 1, None),
        (spikes(3, 8, 7, 7), weights(6, 8, 1, 1), 2, 0, bias),
    ]
    try:
        for x, w, stride, padding, bias in cases:
            packed = int8_weight(w.numpy())
            if packed is None:
                return False
            conv = Int8Conv(packed[0], packed[1] * 64, stride, padding)
            x8 = x.to(torch.uint8).contiguous(memory_format=torch.channels_last)
            got = conv(x8, bias).double()
            want = F.conv2d(x.double(), w * 64, bias, stride=stride, padding=padding)
            if not torch.equal(got, want):
                return False
    except (AttributeError, RuntimeError, NotImplementedError, TypeError):
        return False  # no such op, or not on this CPU
    return True

"""oneDNN's int8 convolution, as the emulator uses it, equals float64 convolution exactly."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gac_deploy.chip import int8_conv
from gac_deploy.chip.int8_conv import INPUT_MAX, Int8Conv, int8_weight


def test_weights_are_stored_divided_by_their_common_power_of_two():
    q, factor = int8_weight(np.array([[-256.0, 254.0], [0.0, 2.0]]))
    assert factor == 2.0
    assert q.dtype == torch.int8
    assert q.flatten().tolist() == [-128, 127, 0, 1]
    assert int8_weight(np.array([12.0, -4.0, 0.0]))[1] == 4.0
    assert int8_weight(np.zeros(3))[1] == 1.0
    assert int8_weight(np.array([129.0, 1.0])) is None  # odd and beyond int8: no int8 form
    assert int8_weight(np.array([-258.0, 2.0])) is None


def test_the_probe_finds_the_kernels_on_x86():
    if not hasattr(torch.ops.onednn, "qconv_pointwise") or not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN int8 convolution")
    assert int8_conv.available()


@pytest.mark.parametrize(("k", "stride", "padding"), [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0)])
@pytest.mark.parametrize("inputs", ["spikes", "payload below 128", "worst case"])
def test_int8_convolution_equals_float64(k, stride, padding, inputs):
    if not int8_conv.available():
        pytest.skip("oneDNN's int8 kernels are not available here")
    gen = torch.Generator().manual_seed(k * 10 + stride)
    if inputs == "spikes":
        x = (torch.rand(5, 12, 9, 9, generator=gen) < 0.3).double()
    elif inputs == "payload below 128":
        x = torch.randint(0, INPUT_MAX + 1, (5, 12, 9, 9), generator=gen).double()
    else:
        x = torch.full((5, 12, 9, 9), float(INPUT_MAX), dtype=torch.float64)
    w = 2 * torch.randint(-128, 128, (7, 12, k, k), generator=gen).double()
    if inputs == "worst case":
        w[:] = -256.0
        w[0, 0, 0, 0] = 2.0  # keeps the common factor at 2: -256 is stored as -128
    bias = torch.arange(7, dtype=torch.float64) * 64 - 192
    q, factor = int8_weight(w.numpy())
    conv = Int8Conv(q, factor * 64, stride, padding)
    x8 = x.to(torch.uint8).contiguous(memory_format=torch.channels_last)
    want = F.conv2d(x, w * 64, stride=stride, padding=padding)
    got = conv(x8)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got.double(), want)
    assert torch.equal(conv(x8, bias).double(), want + bias.view(-1, 1, 1))

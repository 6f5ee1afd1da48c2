"""The compiled neuron passes against the chip's arithmetic written out step by step in
float64 PyTorch (the module docstring of gac_deploy.chip.neuron_passes)."""

import numpy as np
import pytest
import torch

from gac_deploy.body.formats import DECAY_UNITY, STATE_MAX
from gac_deploy.chip import neuron_passes
from gac_deploy.chip.neuron_passes import STATE_WRAP, Current

T, N = 4, 5


@pytest.fixture
def threads(request):
    """torch's intra-op thread count (the passes split images over it), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def chip(currents, bias, kept, threshold, reset=True):
    """Voltage before reset [T, N, P], spikes and overflows, one step at a time."""
    a = sum(currents)
    overflows = int((a > STATE_WRAP).sum() + (a <= -STATE_WRAP).sum())
    a = torch.where(a > STATE_WRAP, a - 2 * STATE_WRAP, a)
    a = torch.where(a <= -STATE_WRAP, a + 2 * STATE_WRAP, a)
    v = torch.zeros_like(a[0])
    voltages, spikes = [], []
    for t in range(len(a)):
        x = torch.trunc(v * kept / DECAY_UNITY) + a[t] + bias
        overflows += int((x.abs() > STATE_MAX).sum())
        x = x.clamp(-STATE_MAX, STATE_MAX)
        voltages.append(x)
        spikes.append(x > threshold)
        v = torch.where(spikes[-1], 0.0, x) if reset else x
    return torch.stack(voltages), torch.stack(spikes), overflows


def random_current(size, scale, gen, silent=(), factor=None, dtype=torch.float32):
    """A Current over T * N frames with the frames in ``silent`` left out, and the plain
    [T, N, size] float64 input it stands for."""
    dense = torch.randint(-scale, scale + 1, (T * N, size), generator=gen).double() * 64
    dense[list(silent)] = 0
    kept = [f for f in range(T * N) if f not in silent]
    rows = np.full(T * N, -1)
    rows[kept] = np.arange(len(kept))
    values = dense[kept].to(dtype)
    if factor is not None:
        dense = dense * factor.double()
        factor = factor.to(dtype)
    return Current(values, rows, factor), dense.view(T, N, size)


CASES = {  # dtype, checked, kept, input scale, threshold, currents (silent frames, scaled)
    "one current, float32": (torch.float32, False, 1024, 300, 200, [((), False)]),
    "two currents, silent frames, a scale": (
        torch.float32,
        False,
        2048,
        300,
        150,
        [((0, 7, 13), False), ((3, 7), True)],
    ),
    "no memory (kept 0)": (torch.float32, False, 0, 300, 100, [((), False)]),
    "leak not a power of two, float64": (torch.float64, True, 1000, 300, 200, [((), False)]),
    "wraps and saturates": (
        torch.float64,
        True,
        4000,
        200_000,
        100_000,
        [((), False), ((2,), False), ((), True)],
    ),
}


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("case", CASES)
def test_spiking_pass_is_the_chip_arithmetic(case, threads, monkeypatch):
    dtype, checked, kept, scale, threshold, spec = CASES[case]
    monkeypatch.setattr(neuron_passes, "MIN_PART", 1)  # split even these few images
    shape = (3, 2, 4)  # C, H, W: memory order (H, W, C), P = 24
    size = 24
    gen = torch.Generator().manual_seed(len(case))
    currents, dense = [], []
    for silent, scaled in spec:
        factor = torch.randint(-3, 4, (size,), generator=gen) * 2.0 if scaled else None
        current, plain = random_current(size, scale, gen, silent, factor, dtype)
        currents.append(current)
        dense.append(plain)
    bias = torch.randint(-50, 50, (size,), generator=gen).double() * 64
    threshold = threshold * 64.0
    _, want, overflows = chip(dense, bias, kept, threshold)
    if case == "wraps and saturates":
        assert overflows > 0
    fired = neuron_passes.spiking(
        currents, bias.numpy(), kept, threshold, (T, N), shape, dtype=dtype, checked=checked
    )
    assert 0 < want.sum() < want.numel()  # some spikes, not all
    memory = fired.spikes.permute(0, 1, 3, 4, 2).reshape(T, N, size)  # (H, W, C) order
    assert torch.equal(memory.bool(), want)
    assert fired.spikes.shape == (T, N, *shape)
    assert np.array_equal(fired.frame_counts, want.sum(dim=2).flatten().numpy())
    assert np.array_equal(fired.column_counts, want.sum(dim=(0, 1)).numpy())
    assert fired.overflows == (overflows if checked else 0)


@pytest.mark.parametrize("kept", [DECAY_UNITY, 3000])
def test_readout_voltage_is_the_chip_arithmetic(kept):
    """A non-leaky read-out (kept 4096) accumulates and saturates, a leaky one resets."""
    gen = torch.Generator().manual_seed(kept)
    current, plain = random_current(6, 3_000_000, gen, silent=(1,), dtype=torch.float64)
    bias = torch.arange(6).double() * 64
    threshold = 2_000_000 * 64.0
    want, _, overflows = chip([plain], bias, kept, threshold, reset=kept < DECAY_UNITY)
    voltage, got_overflows = neuron_passes.voltage(
        [current], bias.numpy(), kept, threshold, (T, N), 6
    )
    assert torch.equal(voltage, want.to(torch.int64))
    assert got_overflows == overflows > 0


def test_no_current_is_the_bias_alone():
    bias = torch.full((8,), 5 * 64.0, dtype=torch.float64)
    fired = neuron_passes.spiking(
        [], bias.numpy(), 2048, 9 * 64.0, (T, N), (8,), torch.float32, False
    )
    _, want, _ = chip([torch.zeros(T, N, 8, dtype=torch.float64)], bias, 2048, 9 * 64.0)
    assert torch.equal(fired.spikes.bool(), want)
    assert want.any()  # 5 + 5/2 + 5 > 9 at the second step


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("kind", ["payload channels last", "bool spikes", "flat float64"])
def test_count_nonzero(kind, threads, monkeypatch):
    monkeypatch.setattr(neuron_passes, "MIN_PART", 1)
    gen = torch.Generator().manual_seed(1)
    if kind == "payload channels last":
        signal = torch.randint(0, 5, (T, N, 3, 2, 4), generator=gen).float()
        signal = signal.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(
            T, N, 3, 2, 4
        )
        memory = signal.permute(0, 1, 3, 4, 2).reshape(T, N, -1)
    elif kind == "bool spikes":
        signal = torch.rand((T, N, 3, 2, 4), generator=gen) < 0.3
        memory = signal.permute(0, 1, 3, 4, 2).reshape(T, N, -1)
    else:
        signal = torch.randint(-3, 3, (T, N, 7), generator=gen).double()
        memory = signal
    frames, columns, low, high = neuron_passes.count_nonzero(signal)
    nonzero = memory != 0
    assert np.array_equal(frames, nonzero.sum(dim=2).flatten().numpy())
    assert np.array_equal(columns, nonzero.sum(dim=(0, 1)).numpy())
    assert (low, high) == (float(memory.min()), float(memory.max()))
    empty = neuron_passes.count_nonzero(torch.zeros(T, 0, 7))
    assert empty[0].size == 0 and empty[1].tolist() == [0] * 7

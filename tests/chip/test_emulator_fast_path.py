"""The emulator's shortcuts (active channels and frames gathered, currents shared between
edges with the same source and weights) give exactly the plain computation."""

import math

import numpy as np
import pytest
import torch

from gac_deploy.body.formats import ACTIVATION_SCALE
from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.body.synapses import edge_current
from gac_deploy.chip import int8_conv
from gac_deploy.chip.emulator import Source, _Synapses, emulate, payload_tensor, prepare
from gac_deploy.chip.reference import run_quantized_graph
from tests.chip.test_emulator import payload_for, timed_graph

PAYLOAD_BITS = 8


def conv_edge(src, c_in, c_out, k, stride, padding, seed):
    gen = np.random.default_rng(seed)
    weight = 2 * gen.integers(-128, 128, size=(c_out, c_in, k, k))
    return Edge("layer", src, "dst", "conv", weight.astype(np.float64), stride, padding)


def binary(shape, rate, seed, silent_channels=(), silent_frames=()):
    """Spikes [T, N, C, ...] (bool) with the given channels and (t, n) frames silent."""
    gen = torch.Generator().manual_seed(seed)
    spikes = torch.rand(shape, generator=gen) < rate
    for c in silent_channels:
        spikes[:, :, c] = False
    for t, n in silent_frames:
        spikes[t, n] = False
    return spikes


def as_signal(current, steps_images, shape):
    """A neuron_passes.Current (rows of the active frames, memory order, optional per-column
    scale) back as the plain [T, N, *shape] float64 input; None counts as all zero."""
    frames = torch.zeros(math.prod(steps_images), math.prod(shape), dtype=torch.float64)
    if current is not None:
        values = current.values.double()
        if current.scale is not None:
            values = values * current.scale.double()
        rows = torch.from_numpy(current.rows)
        active = rows >= 0
        frames[active] = values[rows[active]]
    if len(shape) == 3:  # memory order (H, W, C) -> (C, H, W)
        frames = frames.view(-1, *shape[1:], shape[0]).permute(0, 3, 1, 2)
    return frames.reshape(*steps_images, *shape)


def assert_current_exact(edge, signal, in_hw, out_hw, graph=None):
    graph = graph or Graph(input_shape=(1, 1, 1), time_steps=1, payload_bits=PAYLOAD_BITS)
    syn = _Synapses(edge, graph, in_hw, out_hw)
    source = Source.of(signal)
    plain = edge_current(edge, signal.double()) * ACTIVATION_SCALE  # float64, no shortcut
    fast = as_signal(syn.current(source), source.steps_images, tuple(plain.shape[2:]))
    assert torch.equal(fast, plain)
    return syn, fast


CONV_CASES = {
    "all channels active": {},
    "half the channels silent": {"silent_channels": range(0, 12, 2)},
    "one channel active": {"silent_channels": range(1, 12)},
    "no channel active": {"silent_channels": range(12)},
    "silent frames": {"silent_frames": [(0, 0), (2, 1), (3, 2)]},
    "silent frames and channels": {"silent_channels": range(6), "silent_frames": [(1, 1)]},
}


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("k", "stride", "padding"), [(3, 1, 1), (3, 2, 1), (1, 2, 0)])
def test_conv_current_equals_plain_convolution(case, k, stride, padding):
    spikes = binary((4, 3, 12, 9, 9), 0.3, seed=k + stride, **CONV_CASES[case])
    edge = conv_edge("pop", 12, 7, k, stride, padding, seed=stride)
    out = (9 + 2 * padding - k) // stride + 1
    _, fast = assert_current_exact(edge, spikes, (9, 9), (out, out))
    if case == "no channel active":
        assert not fast.any()
    else:
        assert fast.any()


@pytest.mark.parametrize("bits", [7, 8])
@pytest.mark.parametrize("silent", [(), range(0, 5), range(5)])
def test_graded_input_current_equals_plain_convolution(silent, bits):
    """The host payload is graded (0 .. 2**bits - 1), not binary; its worst case is 255x.
    Below 128 it takes the int8 kernels, above it must not (int16 pairs would saturate)."""
    gen = torch.Generator().manual_seed(3)
    payload = torch.randint(0, 2**bits, (3, 2, 5, 8, 8), generator=gen).double()
    payload[torch.rand(payload.shape, generator=gen) < 0.5] = 0
    payload[:, :, list(silent)] = 0
    payload[1, 0] = 0  # a silent frame
    payload[2, 1, 0] = 2**bits - 1  # the largest value, everywhere in one channel
    edge = conv_edge(INPUT, 5, 6, 3, 1, 1, seed=4)
    edge.weight[:, 0] = -256  # the most negative weight, against the largest input
    assert_current_exact(edge, payload, (8, 8), (8, 8))
    assert Source.of(payload).small_unsigned == (bits <= 7)


@pytest.mark.parametrize("int8", [True, False])
@pytest.mark.parametrize("case", ["flat", "from a conv population"])
@pytest.mark.parametrize("silent", ["none", "half", "all"])
def test_dense_current_equals_plain_matmul(case, silent, int8, monkeypatch):
    """Through int8 1x1 kernels (features as channels) or a float matrix product."""
    if not int8:
        monkeypatch.setattr(int8_conv, "available", lambda: False)
    shape = (4, 3, 40) if case == "flat" else (4, 3, 5, 2, 4)
    spikes = binary(shape, 0.3, seed=5)
    if silent == "half":
        spikes[:, :, ::2] = False
    elif silent == "all":
        spikes[:] = False
    weight = 2 * np.random.default_rng(6).integers(-128, 128, size=(10, 40))
    edge = Edge("fc", "pop", "readout", "dense", weight.astype(np.float64))
    syn, _ = assert_current_exact(edge, spikes, tuple(shape[3:]), ())
    assert (syn.int8 is not None) == int8


DIAGONAL = np.diag(2.0 * np.arange(-3, 3)).reshape(6, 6, 1, 1)
EDGE_MODES = {  # (weight, stride, padding, how the emulator computes it)
    "diagonal 1x1": (DIAGONAL, 1, 0, "scale"),
    "diagonal 1x1, stride 2": (DIAGONAL, 2, 0, "scale"),
    "1x1, stride 2": (conv_edge("pop", 6, 6, 1, 2, 0, seed=1).weight, 2, 0, "pointwise"),
    "3x3, stride 2": (conv_edge("pop", 6, 6, 3, 2, 1, seed=2).weight, 2, 1, "conv"),
}


@pytest.mark.parametrize("int8", [True, False])
@pytest.mark.parametrize("case", EDGE_MODES)
def test_edge_modes_equal_plain_computation(case, int8, monkeypatch):
    """Diagonal 1x1 edges are per-channel scales (of stride 1: the source's own frames,
    scaled per column by the neuron kernel), other 1x1 edges matrix products (or int8
    convolutions): the same numbers as convolution."""
    if not int8:
        monkeypatch.setattr(int8_conv, "available", lambda: False)
    weight, stride, padding, mode = EDGE_MODES[case]
    spikes = binary((2, 3, 6, 7, 7), 0.3, seed=9, silent_frames=[(1, 2)])
    edge = Edge("layer", "pop", "dst", "conv", weight, stride, padding)
    out = (7 + 2 * padding - weight.shape[2]) // stride + 1
    syn, _ = assert_current_exact(edge, spikes, (7, 7), (out, out))
    assert syn.mode == mode
    assert (syn.int8 is not None) == (int8 and mode != "scale")
    assert (syn.column_scale is not None) == (mode == "scale" and stride == 1)


def test_shared_currents_only_for_equal_weights():
    graph = timed_graph(5)
    synapses = prepare(graph)
    shared = {name: syn.share for name, syn in synapses.items() if syn.share}
    assert shared  # the residual stream repeats edges (the identity from the input at least)
    for name, first in shared.items():
        a, b = synapses[name].edge, synapses[first].edge
        assert (a.src, a.stride, a.padding) == (b.src, b.stride, b.padding)
        assert np.array_equal(a.weight, b.weight)
    name = next(iter(shared))
    edge = next(e for e in graph.edges if e.name == name)
    edge.weight = edge.weight + 2  # now different: must get its own current
    assert prepare(graph)[name].share is None
    payload = payload_for(5, graph)
    run = emulate(graph, payload)
    reference = run_quantized_graph(graph, payload.double())
    for pop, spikes in reference.spikes.items():
        assert torch.equal(run.spikes[pop].float(), spikes), pop
    assert torch.equal(run.readout.double(), reference.readout)


@pytest.mark.parametrize("int8", [True, False])
@pytest.mark.parametrize("silence", ["channels", "steps", "everything"])
def test_emulator_with_silent_inputs_equals_reference(silence, int8, monkeypatch):
    """With oneDNN's int8 kernels and with float convolution only (where they are missing)."""
    if not int8:
        monkeypatch.setattr(int8_conv, "available", lambda: False)
    graph = timed_graph(6)
    payload = payload_for(6, graph)
    if silence == "channels":
        payload[:, :, ::2] = 0
    elif silence == "steps":
        payload[1:3] = 0
        payload[:, 0] = 0
    else:
        payload[:] = 0
    synapses = prepare(graph)
    assert any(syn.int8 is not None for syn in synapses.values()) == int8
    run = emulate(graph, payload, synapses)
    reference = run_quantized_graph(graph, payload.double())
    for pop, spikes in reference.spikes.items():
        assert torch.equal(run.spikes[pop].float(), spikes), pop
    assert torch.equal(run.readout.double(), reference.readout)


def test_payload_tensor_is_the_rounded_payload_laid_out_channels_last():
    graph = timed_graph(7)
    raw = payload_for(7, graph).numpy() + np.float32(0.3)  # rounding is part of the job
    payload = payload_tensor(raw)
    assert payload.shape == raw.shape
    assert torch.equal(payload, torch.from_numpy(np.rint(raw)))
    assert payload.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    plain = emulate(graph, torch.from_numpy(np.rint(raw)).contiguous())
    laid_out = emulate(graph, payload)
    for name, spikes in plain.spikes.items():
        assert torch.equal(laid_out.spikes[name], spikes), name
    assert torch.equal(laid_out.readout, plain.readout)
    assert laid_out.synaptic_ops == plain.synaptic_ops

"""Lava's fixed-point simulation reproduces the quantised reference spike for spike."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from gac_deploy.body.quantize import quantize_graph, quantize_payload
from gac_deploy.body.timing import balance_delays, power_of_two_window
from gac_deploy.chip import lava_runner
from gac_deploy.chip.emulator import emulate
from gac_deploy.chip.lava_runner import run_in_lava
from gac_deploy.chip.reference import run_quantized_graph
from gac_deploy.chip.simulate import simulate_bundle
from gac_deploy.data import load_split
from gac_deploy.export.loading import load_bundle
from tests.cli.test_cli import assert_user_error, run_cli
from tests.conftest import random_model, small_config

pytestmark = pytest.mark.lava


def assert_identical(graph, payload):
    """Lava, the quantised reference and the emulator: the same spikes and read-out."""
    reference = run_quantized_graph(graph, torch.as_tensor(payload).double())
    timed = graph.with_delays(balance_delays(graph).delay)
    emulated = emulate(timed, torch.as_tensor(payload))
    lava = run_in_lava(graph, payload.astype(np.int32))
    for name, ref in reference.spikes.items():
        assert lava.spikes[name].shape == tuple(ref.shape)
        assert np.array_equal(lava.spikes[name], ref.numpy()), name
        assert np.array_equal(lava.spikes[name], emulated.spikes[name].numpy()), name
    assert np.array_equal(lava.readout, reference.readout.numpy())
    assert np.array_equal(lava.readout, emulated.readout.numpy())
    return reference, lava


def assert_model_body_identical(model, images):
    """``model``'s quantised body on its encoder's payload for ``images``: Lava, the
    reference and the emulator agree, and every population spikes. Returns (graph, payload)."""
    graph, _ = quantize_graph(model.export_graph())
    with torch.no_grad():
        o = model.encoder(images)
    payload = quantize_payload(o.numpy(), graph.payload_bits, graph.signed_input)
    reference, _ = assert_identical(graph, payload)
    for name, spikes in reference.spikes.items():
        assert spikes.sum() > 0, f"{name} never spiked: the test would prove nothing"
    return graph, payload


def test_random_residual_body_is_bit_exact(monkeypatch):
    """Stride 2, a stream with three contributions (delays 4, 2, 0), relays, graded input;
    run with the configuration ``run_config`` gives for simulation (the switch to the chip
    is that one argument)."""
    configs = []

    def recorded(hardware=False):
        configs.append(lava_runner.run_config.__wrapped__(hardware))
        return configs[-1]

    recorded.__wrapped__ = lava_runner.run_config
    monkeypatch.setattr(lava_runner, "run_config", recorded)
    torch.manual_seed(0)
    assert_model_body_identical(random_model(small_config(), seed=7), torch.randn(3, 1, 6, 6) * 2)
    (config,) = configs
    assert type(config).__name__ == "Loihi2SimCfg" and config.select_tag == "fixed_pt"


@pytest.mark.parametrize("steps", [6, 3])
def test_power_of_two_windows_are_bit_exact(steps):
    """T = 6 runs in windows of 8 steps, T = 3 in windows of 4: each population resets
    every W steps at its own offset and the host sends nothing in the last W - T. Lava,
    the reference and the emulator agree over whole windows, images back to back; the
    first T steps are those of a T-step run, and the padding steps do spike (biases and
    charge left over), so the chip's cost includes them."""
    torch.manual_seed(0)
    model = random_model(small_config(time_steps=steps), seed=7)
    graph, _ = quantize_graph(model.export_graph())
    window = power_of_two_window(steps)
    assert window == {6: 8, 3: 4}[steps]
    with torch.no_grad():
        o = model.encoder(torch.randn(3, 1, 6, 6) * 2)
    payload = quantize_payload(o.numpy(), graph.payload_bits, graph.signed_input)
    reference, lava = assert_identical(replace(graph, window=window), payload)
    plain = run_quantized_graph(graph, torch.as_tensor(payload).double())
    for name, spikes in reference.spikes.items():
        assert lava.spikes[name].shape[0] == window
        assert torch.equal(spikes[:steps], plain.spikes[name]), name
    assert lava.readout.shape[0] == steps
    assert torch.equal(reference.readout, plain.readout)
    assert sum(int(s[steps:].sum()) for s in reference.spikes.values()) > 0


def test_the_chip_backend_says_what_it_needs(bundle_dir, tmp_path):
    """Without lava-loihi, --backend loihi2 stops in one line before any work and writes
    nothing; the hardware configuration is Lava's Loihi2HwCfg."""
    report = tmp_path / "report.json"
    result = run_cli("simulate", str(bundle_dir), "--backend", "loihi2", "--json", str(report))
    assert_user_error(result, "lava-loihi", "--backend lava")
    assert not report.exists()
    assert type(lava_runner.run_config(hardware=True)).__name__ == "Loihi2HwCfg"


def test_all_zero_layer_runs():
    model = random_model(small_config(), seed=8)
    with torch.no_grad():
        model.blocks[1].conv2.conv.weight.zero_()
    graph, _ = quantize_graph(model.export_graph())
    zero = [e for e in graph.edges if e.layer == "block2.conv2"]
    assert all(not e.weight.any() for e in zero)
    with torch.no_grad():
        o = model.encoder(torch.randn(2, 1, 6, 6) * 2)
    assert_identical(graph, quantize_payload(o.numpy(), graph.payload_bits))


def test_trained_digits_bundle_in_lava(bundle_dir):
    bundle = load_bundle(bundle_dir)
    images = load_split(bundle.data_spec).test_images(4)[0].numpy()
    _, payload = bundle.encode(images)
    assert_identical(bundle.graph, np.rint(payload))
    report = simulate_bundle(bundle, "lava", samples=6, progress=False)
    assert report.spike_exact
    assert all(p.mismatched_spikes == 0 for p in report.populations)
    assert report.agreement == 1.0
    assert report.accuracy == report.reference_accuracy
    assert report.accuracy >= 4 / 6
    assert sum(p.spikes for p in report.populations) > 0


@pytest.mark.parametrize("encoder", ["direct", "rate"])
def test_signed_graded_input_is_bit_exact(encoder):
    """Direct and rate coding send the stem's signed real output as graded spikes."""
    torch.manual_seed(0)
    model = random_model(small_config(encoder=encoder), seed=3)
    graph, payload = assert_model_body_identical(model, torch.rand(2, 1, 6, 6))
    assert graph.signed_input and payload.min() < 0 < payload.max()


def test_membrane_shortcut_body_is_bit_exact():
    """A membrane-shortcut body: the downsample composed with each stream term (the
    graded input among them) runs as ordinary synapses."""
    torch.manual_seed(0)
    model = random_model(small_config(shortcut="membrane"), seed=5)
    graph, _ = assert_model_body_identical(model, torch.randn(2, 1, 6, 6) * 2)
    composed = {e.layer for e in graph.edges if "@" in e.layer}
    assert {"block3.downsample@input", "block3.downsample@block1.conv2"} <= composed, composed


def test_current_wrap_and_voltage_saturation_match_lava():
    """Beyond the 24-bit state Loihi wraps the current (u > 2**23 -> u - 2**24) and clips
    the voltage; the emulator does the same as Lava, and counts every such neuron-step."""
    from gac_deploy.body.graph import INPUT, Edge, Graph, Population

    graph = Graph(input_shape=(3, 1, 1), time_steps=4, payload_bits=8)
    weight = np.array([[254, 254, 254], [254, 254, 0], [2, 2, 2], [-256, -256, -256]])
    graph.populations = [
        Population("hot", (4, 1, 1), "lif", 1000, 0, np.zeros(4, np.int32), 6),
        Population("readout", (2,), "readout", (1 << 17) - 1, 0, np.zeros(2, np.int32), 6),
    ]
    graph.edges = [
        Edge("in", INPUT, "hot", "conv", weight.astype(np.int32)[:, :, None, None]),
        Edge("out", "hot", "readout", "dense", np.array([[2, 0, 2, 0], [0, 2, 0, 2]], np.int32)),
    ]
    payload = np.array([255, 200, 3, 0])[:, None, None, None, None] * np.ones((4, 2, 3, 1, 1))
    payload[:, 1] = np.array([255, 255, 255])[:, None, None]  # image 2: every neuron at most
    timed = graph.with_delays(balance_delays(graph).delay)
    emulated = emulate(timed, torch.as_tensor(payload))
    lava = run_in_lava(graph, payload.astype(np.int32))
    assert np.array_equal(lava.spikes["hot"], emulated.spikes["hot"].numpy())
    assert np.array_equal(lava.readout, emulated.readout.numpy())
    # neuron 0 at 3 x 254 x 255 x 64 = 12.4M wraps to -4.3M every step, in both images;
    # neuron 3's voltage runs to -2**23 + 1 and stays there (saturated) in image 2
    assert emulated.spikes["hot"][:, :, 0].sum() == 0 and emulated.spikes["hot"].sum() > 0
    assert emulated.overflows["hot"] >= 2 * 4

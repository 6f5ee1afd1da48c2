"""Float against chip, population by population (chip/fidelity.py)."""

import numpy as np
import pytest
import torch

from gac_deploy.body.quantize import QuantSpec, choose_format, quantize_graph, weight_exponent
from gac_deploy.body.timing import balance_delays
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.chip.fidelity import Fidelity, PopulationFidelity, measure_fidelity
from gac_deploy.chip.reference import run_quantized_graph
from gac_deploy.cli.export import report_fidelity
from gac_deploy.config import LIFConfig
from gac_deploy.data import load_split
from gac_deploy.export.loading import load_bundle
from gac_deploy.models.lif import lif_forward


def _inputs(bundle, count):
    images, labels = load_split(bundle.data_spec).test_images(count)
    encoded, payload = bundle.encode(images.numpy())
    return torch.from_numpy(encoded), torch.from_numpy(payload), labels


def test_accuracies_and_mismatches_are_those_of_the_two_runs(trained_dir, bundle_dir):
    bundle = load_bundle(bundle_dir)
    model = load_checkpoint(trained_dir / "model.pt").build()
    encoded, payload, labels = _inputs(bundle, 40)
    fidelity = measure_fidelity(model.export_graph(), bundle.graph, encoded, payload, labels, 16)
    images = load_split(bundle.data_spec).test_images(40)[0]
    with torch.no_grad():
        float_acc = (model(images).argmax(1) == labels).double().mean().item()
    chip = run_quantized_graph(bundle.graph, payload.double())
    assert fidelity.samples == 40
    assert fidelity.float_accuracy == pytest.approx(float_acc, abs=1 / 40)  # float32 ties
    assert fidelity.chip_accuracy == (chip.predictions == labels).double().mean().item()
    first = bundle.graph.populations[0]
    graph = model.export_graph()
    (edge,) = graph.incoming(first.name)  # the identity edge from O
    lif = LIFConfig(
        threshold=graph.population(first.name).threshold,
        tau=1.0 - graph.population(first.name).voltage_decay,
    )
    float_spikes = lif_forward(encoded.float() * float(edge.weight.ravel()[0]), lif)
    row = fidelity.populations[0]
    expected = (float_spikes != chip.spikes[first.name]).double().mean().item()
    assert row.population == first.name and row.spike_mismatch == pytest.approx(expected)
    assert row.chip_rate == pytest.approx(chip.spikes[first.name].double().mean().item())
    assert [p.population for p in fidelity.populations] == [
        p.name for p in bundle.graph.populations
    ]
    assert fidelity.populations[-1].spike_mismatch is None  # the read-out


def test_a_coarser_exponent_shows_as_a_larger_current_error(trained_dir, bundle_dir):
    """Quantising one population three exponents coarser than its weights' own (so its
    weights' unit grows 8x) multiplies its own rounding error, and only its own: the
    current errors are teacher forced."""
    bundle = load_bundle(bundle_dir)
    graph = load_checkpoint(trained_dir / "model.pt").build().export_graph()
    fine = choose_format(graph)
    target = graph.populations[1].name
    own = weight_exponent(max(float(np.abs(e.weight).max()) for e in graph.incoming(target)))
    coarse_k = min(fine.scale_exp[target], own) - 3
    coarse = QuantSpec({**fine.scale_exp, target: coarse_k}, fine.payload_bits)
    encoded, payload, labels = _inputs(bundle, 24)  # the same payload bits in both formats
    rows = {}
    for name, spec in (("fine", fine), ("coarse", coarse)):
        quantized, _ = quantize_graph(graph, spec)
        quantized = quantized.with_delays(balance_delays(quantized).delay)
        fidelity = measure_fidelity(graph, quantized, encoded, payload, labels)
        rows[name] = {p.population: p for p in fidelity.populations}
    assert rows["coarse"][target].current_error > 4 * rows["fine"][target].current_error
    first = graph.populations[0].name
    assert rows["coarse"][first].current_error == rows["fine"][first].current_error


def test_a_large_cost_is_a_warning_naming_the_worst_populations(capsys):
    rows = [
        PopulationFidelity("a.lif", 10, 0.01, 0.02, 0.2, 0.2),
        PopulationFidelity("b.lif", 3, 0.4, 0.3, 0.3, 0.1),
        PopulationFidelity("readout", 9, 0.05, None, None, None),
    ]
    report_fidelity(Fidelity(100, 0.95, 0.60, rows))
    out = capsys.readouterr().out
    assert "deployment cost +35.00 points" in out
    warning = next(line for line in out.splitlines() if line.startswith("WARNING"))
    assert warning.index("b.lif (30.0 % of spikes differ") < warning.index("a.lif")
    report_fidelity(Fidelity(100, 0.95, 0.94, rows))
    assert "WARNING" not in capsys.readouterr().out


def test_silent_and_saturated_populations_are_named(capsys):
    rows = [
        PopulationFidelity("a.lif", 10, 0.01, 0.0, 0.0, 0.0),
        PopulationFidelity("b.lif", 10, 0.01, 0.0, 1.0, 1.0),
        PopulationFidelity("c.lif", 10, 0.01, 0.0, 0.2, 0.2),
        PopulationFidelity("readout", 9, 0.05, None, None, None),
    ]
    report_fidelity(Fidelity(50, 0.9, 0.9, rows))
    out = capsys.readouterr().out
    assert "warning: 1 of 3 populations never fired on 50 test images: a.lif" in out
    assert "warning: 1 of 3 populations fired at every neuron-step on 50 test images: b.lif" in out
    report_fidelity(Fidelity(50, 0.9, 0.9, rows[2:]))
    assert "warning" not in capsys.readouterr().out

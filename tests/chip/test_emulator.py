"""The emulator: the reference's spikes on whole batches, exact synaptic event counts.
(Spike-for-spike agreement with Lava is asserted in test_lava_runner.py.)"""

import gc
import weakref

import numpy as np
import pytest
import torch

from gac_deploy.body.quantize import quantize_graph, quantize_payload
from gac_deploy.body.synapses import edge_current
from gac_deploy.body.timing import balance_delays
from gac_deploy.chip import emulator
from gac_deploy.chip.emulator import emulate
from gac_deploy.chip.reference import run_quantized_graph
from gac_deploy.chip.simulate import simulate_bundle
from gac_deploy.data import ArrayDataset
from gac_deploy.export.loading import load_bundle
from tests.conftest import random_model, small_config


def timed_graph(seed):
    graph, _ = quantize_graph(random_model(small_config(), seed=seed).export_graph())
    return graph.with_delays(balance_delays(graph).delay)


def payload_for(seed, graph, n=5):
    model = random_model(small_config(), seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        o = model.encoder(torch.randn(n, 1, 6, 6) * 2)
    return torch.as_tensor(quantize_payload(o.numpy(), graph.payload_bits))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_emulator_equals_reference_on_random_bodies(seed):
    graph = timed_graph(seed)
    payload = payload_for(seed, graph)
    run = emulate(graph, payload)
    reference = run_quantized_graph(graph, payload.double())
    for name, spikes in reference.spikes.items():
        assert torch.equal(run.spikes[name].float(), spikes), name
    assert torch.equal(run.readout.double(), reference.readout)


def test_synaptic_events_are_counted_exactly():
    graph = timed_graph(4)
    payload = payload_for(4, graph)
    run = emulate(graph, payload)
    signals = {"input": payload.double(), **{k: v.double() for k, v in run.spikes.items()}}
    for edge in graph.edges:
        active = (signals[edge.src] != 0).double()
        ones = edge.__class__(**{**edge.__dict__, "weight": np.ones_like(edge.weight)})
        brute = int(edge_current(ones, active).sum().item())  # each event x synapses reached
        assert run.synaptic_ops[edge.name] == brute, edge.name
    assert sum(run.synaptic_ops.values()) > 0


def test_unbalanced_delays_are_refused():
    graph = timed_graph(0)
    graph.edges[0].delay += 1
    with pytest.raises(ValueError, match="delay"):
        emulate(graph, payload_for(0, graph))


def test_whole_test_split_in_batches(bundle_dir):
    bundle = load_bundle(bundle_dir)
    small = simulate_bundle(bundle, "emulator", None, batch_size=37, progress=False)
    large = simulate_bundle(bundle, "emulator", None, batch_size=512, progress=False)
    assert small.samples == large.samples == 360
    assert small.spike_exact and large.spike_exact
    assert small.accuracy == large.accuracy == small.reference_accuracy
    assert small.synaptic_ops == large.synaptic_ops
    assert [p.spikes for p in small.populations] == [p.spikes for p in large.populations]


def test_check_compares_only_the_first_images_with_the_reference(bundle_dir, monkeypatch):
    """``check=k``: every image runs and counts for accuracy and rates; the reference runs
    on the first k only (across batch boundaries), and the comparison covers those."""
    from gac_deploy.chip import simulate

    bundle = load_bundle(bundle_dir)
    full = simulate_bundle(bundle, "emulator", 100, batch_size=32, progress=False)
    referenced = []
    real_reference = simulate.run_quantized_graph

    def counted(graph, payload):
        referenced.append(payload.shape[1])
        return real_reference(graph, payload)

    monkeypatch.setattr(simulate, "run_quantized_graph", counted)
    part = simulate_bundle(bundle, "emulator", 100, batch_size=32, progress=False, check=40)
    assert referenced == [32, 8]
    assert (part.samples, part.checked_samples, full.checked_samples) == (100, 40, 100)
    assert part.spike_exact and full.spike_exact
    assert part.accuracy == full.accuracy
    assert [p.spikes for p in part.populations] == [p.spikes for p in full.populations]
    assert part.synaptic_ops == full.synaptic_ops
    referenced.clear()
    none = simulate_bundle(bundle, "emulator", 100, batch_size=32, progress=False, check=0)
    assert referenced == [] and none.checked_samples == 0
    assert none.spike_exact is None and none.reference_accuracy is None
    assert none.accuracy == full.accuracy


def test_whole_split_streams_one_batch_at_a_time(bundle_dir, monkeypatch):
    """Memory bounded by the batch, not the split: images are read batch by batch, and
    when a batch starts no earlier batch's spikes or read-out are still referenced."""
    bundle = load_bundle(bundle_dir)
    runs, alive, reads = [], [], []
    real_emulate, real_batch = emulator.emulate, ArrayDataset.batch

    def tracked(graph, payload, synapses=None):
        gc.collect()
        alive.append(sum(any(ref() is not None for ref in refs) for refs in runs))
        run = real_emulate(graph, payload, synapses)
        runs.append([weakref.ref(t) for t in (*run.spikes.values(), run.readout)])
        return run

    def read(self, indices, *args, **kwargs):
        reads.append(len(indices))
        return real_batch(self, indices, *args, **kwargs)

    monkeypatch.setattr(emulator, "emulate", tracked)
    monkeypatch.setattr(ArrayDataset, "batch", read)
    report = simulate_bundle(bundle, "emulator", None, batch_size=40, progress=False, check=40)
    assert report.samples == 360 and report.spike_exact and report.checked_samples == 40
    assert alive == [0] * 9
    assert reads == [40] * 9

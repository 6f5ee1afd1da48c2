import numpy as np
import pytest
import torch

from gac_deploy.body.graph import INPUT, Edge, Graph, Population
from gac_deploy.body.quantize import (
    SPIKING_THRESHOLD_MAX,
    QuantSpec,
    choose_format,
    graded_input_error,
    quantize_graph,
    quantize_payload,
    quantize_weight,
    weight_exponent,
)
from gac_deploy.body.synapses import edge_current
from gac_deploy.chip.reference import run_float_graph, run_quantized_graph
from tests.conftest import random_model, small_config


def test_quantize_weight_even_8bit_mantissa():
    w = np.array([0.5, -0.5, 0.01, 3.0, -3.0])
    q, clipped = quantize_weight(w, 8)
    assert q.tolist() == [128, -128, 2, 254, -256]
    assert clipped == 2
    assert all(v % 2 == 0 for v in q)


def test_weight_exponent_is_largest_that_fits():
    assert weight_exponent(0.9) == 8  # 0.9 * 256 = 230 <= 254; * 512 > 254
    assert weight_exponent(1.0) == 7


@pytest.fixture(scope="module")
def graphs():
    model = random_model(small_config(), seed=1)
    float_graph = model.export_graph()
    q, report = quantize_graph(float_graph)
    return model, float_graph, q, report


def test_quantised_graph_fits_loihi(graphs):
    _, _, q, report = graphs
    assert 1 <= q.payload_bits <= 8
    for pop in q.populations:
        assert pop.bias.dtype == np.int32 and np.abs(pop.bias).max() <= 4096
        assert pop.voltage_decay == (0 if pop.role == "readout" else 3072)
        if pop.role == "lif":
            assert pop.threshold == round(0.5 * 2**pop.scale_exp)
            assert pop.threshold <= SPIKING_THRESHOLD_MAX
    for edge in q.edges:
        assert edge.mantissa.min() >= -256 and edge.mantissa.max() <= 254
        assert (edge.mantissa % 2 == 0).all() and 0 <= edge.weight_exp <= 7
        assert (edge.mantissa << edge.weight_exp == edge.weight).all()
        if edge.src == INPUT:
            k = q.population(edge.dst).scale_exp
            diag = np.einsum("ii->i", edge.weight[:, :, 0, 0])
            assert (diag == 2 ** (k - q.payload_bits)).all()
    assert sum(r.clipped_weights for r in report) == 0


def test_quantised_reference_tracks_float_model(graphs):
    model, float_graph, q, _ = graphs
    torch.manual_seed(5)
    x = torch.randn(32, 1, 6, 6) * 2
    with torch.no_grad():
        o = model.encoder(x)
    float_run = run_float_graph(float_graph, o.double())
    payload = torch.as_tensor(quantize_payload(o.numpy(), q.payload_bits))
    q_run = run_quantized_graph(q, payload)
    for name, spikes in float_run.spikes.items():
        rate_f = float(spikes.mean())
        rate_q = float(q_run.spikes[name].mean())
        assert abs(rate_f - rate_q) < 0.05, name
    # read-out voltage / (64 * 2**k) is the float read-out sum
    k = q.readout.scale_exp
    scores_q = q_run.scores / (64 * 2.0**k)
    agree = (scores_q.argmax(1) == float_run.scores.argmax(1)).float().mean()
    assert agree >= 0.8


def test_payload_is_rounded_and_clipped():
    o = np.array([0.0, 0.2, 0.5, 0.999])
    assert quantize_payload(o, 4).tolist() == [0, 3, 8, 15]


def graded_input_graph(weight_max: float, seed: int = 0) -> Graph:
    """32 graded inputs into 8 LIF neurons (threshold 0.6, so their exponent is capped at
    12 by the threshold), 1x1 conv weights uniform in +-``weight_max``."""
    rng = np.random.default_rng(seed)
    weight = rng.uniform(-weight_max, weight_max, (8, 32, 1, 1))
    lif = Population("lif", (8, 1, 1), "lif", 0.6, 0.25, np.zeros(8))
    return Graph((32, 1, 1), 4, [lif], [Edge("fc", INPUT, "lif", "conv", weight)])


def measured_input_error(graph: Graph, spec: QuantSpec, samples: int = 20000) -> float:
    """RMS over O uniform in [0, 1) of (quantised current - float current) / threshold, for
    the worst neuron."""
    generator = torch.Generator().manual_seed(0)
    o = torch.rand(1, samples, 32, 1, 1, dtype=torch.float64, generator=generator)
    q, _ = quantize_graph(graph, spec)
    exact = edge_current(graph.edges[0], o)
    k = spec.scale_exp["lif"]
    rounded = edge_current(q.edges[0], quantize_payload(o, spec.payload_bits)) / 2.0**k
    rms = ((rounded - exact) ** 2).mean(dim=(0, 1)).sqrt().max()
    return float(rms) / graph.populations[0].threshold


def test_payload_bits_trade_payload_precision_against_input_weights():
    """With the exponent capped at 12, an 8-bit payload leaves the input weights a unit of
    2**-4 (even integers: steps of 1/8): weights below 1/16 all round to 0. The chosen
    payload errs least, as measured on uniform O, and the predicted error matches the
    measured one."""
    graph = graded_input_graph(0.06)
    spec = choose_format(graph)
    errors = {}
    for bits in range(1, 9):
        chosen = choose_format(graph, payload_bits=bits)
        predicted = graded_input_error(graph, "lif", chosen.scale_exp["lif"], bits)
        errors[bits] = measured_input_error(graph, chosen)
        assert predicted == pytest.approx(errors[bits], rel=0.03), bits
    at_8_bits, _ = quantize_graph(graph, choose_format(graph, payload_bits=8))
    assert not at_8_bits.edges[0].weight.any()
    assert spec.payload_bits < 8
    assert errors[spec.payload_bits] == min(errors.values())
    # weights large enough to keep their precision at the finest payload (their own
    # 8-bit unit is 2**-4): the finest payload is taken
    assert choose_format(graded_input_graph(8.0)).payload_bits == 8
    with pytest.raises(ValueError, match="9-bit payload does not fit"):
        choose_format(graph, payload_bits=9)

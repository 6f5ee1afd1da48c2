"""The quantised reference sums integer synaptic input exactly, in float32 where every
partial sum stays below 2**24 and in float64 beyond."""

import numpy as np
import pytest
import torch

from gac_deploy.body.graph import INPUT, Edge, Graph, Population
from gac_deploy.body.quantize import max_synaptic_input
from gac_deploy.body.synapses import FLOAT32_EXACT
from gac_deploy.chip.reference import _synaptic_input


def dense_graph(weight: np.ndarray, payload_bits: int) -> Graph:
    graph = Graph(input_shape=(weight.shape[1], 1, 1), time_steps=2, payload_bits=payload_bits)
    graph.populations = [
        Population("p", (weight.shape[0],), "lif", 40, 0, np.zeros(weight.shape[0], np.int32), 6)
    ]
    flat = weight.reshape(weight.shape[0], -1)
    graph.edges = [Edge("fc", INPUT, "p", "dense", flat)]
    return graph


@pytest.mark.parametrize("inputs, below", [(2080, True), (4401, False)])
def test_sums_are_exact_on_both_sides_of_float32s_range(inputs, below):
    """254 x 31 x n: 2080 inputs give 16,378,720 < 2**24 (float32); 4401 give 34,653,474,
    beyond 2**25 and not a multiple of 4, which float32 cannot hold (float64 does)."""
    rng = np.random.default_rng(0)
    weight = np.full((3, inputs), 254, np.int64)
    weight[1] = -254
    weight[2] = rng.choice([-254, 254], inputs)
    graph = dense_graph(weight, payload_bits=5)
    assert (max_synaptic_input(graph.edges[0], 5) < FLOAT32_EXACT) is below
    payload = np.full((2, 4, inputs, 1, 1), 31, np.int64)
    payload[1, 1] = rng.integers(0, 32, (inputs, 1, 1))
    got = _synaptic_input(graph, "p", {INPUT: torch.from_numpy(payload).double()})
    expected = np.einsum("tnf,of->tno", payload.reshape(2, 4, inputs), weight)
    assert got.dtype == torch.float64
    assert np.array_equal(got.numpy().astype(np.int64), expected)
    in_float32 = payload.reshape(2, 4, inputs).astype(np.float32) @ weight.T.astype(np.float32)
    assert np.array_equal(in_float32.astype(np.int64), expected) is below

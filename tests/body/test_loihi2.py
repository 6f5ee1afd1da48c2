from dataclasses import replace

import numpy as np
import pytest

from gac_deploy.body.graph import INPUT, Edge, Graph, Population
from gac_deploy.body.loihi2 import (
    HARDWARE,
    LOIHI2,
    NETX_MAX_DELAY,
    check_fits,
    check_hardware_limits,
    estimate_mapping,
    shared_cores,
    state_bounds,
)
from gac_deploy.body.quantize import quantize_graph
from gac_deploy.body.timing import balance_delays, power_of_two_window
from gac_deploy.errors import UserError
from tests.conftest import random_model, small_config


def test_every_limit_names_its_source():
    assert all(limit.source for limit in LOIHI2.values())
    assert LOIHI2["cores_per_chip"].value == 128 and LOIHI2["neurons_per_core"].value == 8192


def test_mapping_counts_neurons_and_synapses():
    graph, _ = quantize_graph(random_model(small_config()).export_graph())
    mapping = check_fits(graph)
    rows = {r.population: r for r in mapping.rows}
    assert rows["block1.lif1"].neurons == 4 * 6 * 6
    # block1.lif2 reads block1.lif1 through a 3x3 conv, 4 -> 4 channels: 36 inputs each
    assert rows["block1.lif2"].synapses == 4 * 6 * 6 * 4 * 9
    assert rows["readout"].synapses == 10 * 8 * 3 * 3
    assert mapping.cores == len(graph.populations) and mapping.chips_needed == 1


def test_shared_kernels_need_fewer_cores_than_unrolled_synapses():
    """64 channels of 128 x 128 neurons, a 3x3 conv from 64 channels: 1,048,576 neurons
    (128 cores of 8,192); unrolled, 1,048,576 x 576 synapses need 645 cores of 937,500;
    with each channel's 576 kernel weights stored once per core (1,627 channels' worth fit
    in a core's budget) the neurons decide: 128 cores."""
    mapping = estimate_mapping(big_population_graph(128 * 128))
    (row,) = mapping.rows
    assert row.synapses == 64 * 128 * 128 * 576 and row.weight_bytes == 64 * 576
    assert row.cores_unrolled == 645 and row.cores == 128
    assert mapping.chips_needed == 1 and mapping.chips_needed_unrolled == 6
    assert shared_cores(channels=4, neurons=4, fan_in=937_500 * 2 + 1) == 4 * 3  # split fan-in


def big_population_graph(neurons_per_channel: int) -> Graph:
    side = int(np.sqrt(neurons_per_channel))
    g = Graph(input_shape=(64, side, side), time_steps=2, payload_bits=4)
    g.populations = [
        Population("wide", (64, side, side), "lif", 40, 3072, np.zeros(64, np.int32), 6)
    ]
    g.edges = [Edge("conv", INPUT, "wide", "conv", 2 * np.ones((64, 64, 3, 3), np.int32), 1, 1)]
    return g


def test_too_many_cores_is_refused_with_the_fix():
    graph = big_population_graph(256 * 256)  # 4.2M neurons, 2.4G synapses
    mapping = estimate_mapping(graph)
    assert mapping.chips_needed > 1
    with pytest.raises(UserError, match=rf"wide.*pass --chips {mapping.chips_needed}") as refused:
        check_fits(graph, chips=1)
    assert "cores_per_chip" in str(refused.value)
    assert LOIHI2["cores_per_chip"].source in str(refused.value)
    check_fits(graph, chips=mapping.chips_needed)


def test_worst_case_state_is_bounded_and_reported():
    """|u| <= 64 * the largest row sum of |w| * the largest payload, |v| <= |u| * 4096 / dv:
    reported in the mapping where it exceeds the 24-bit state, not refused."""
    g = Graph(input_shape=(64, 4, 4), time_steps=2, payload_bits=8)
    g.populations = [Population("hot", (8, 4, 4), "lif", 40, 3072, np.zeros(8, np.int32), 6)]
    g.edges = [Edge("conv", INPUT, "hot", "conv", np.full((8, 64, 3, 3), 254, np.int32), 1, 1)]
    (bound,) = state_bounds(g)
    assert bound.current == 254 * 64 * 9 * 255 * 64
    assert bound.voltage == bound.current * 4096 / 3072
    assert bound.exceeds
    exceeding = check_fits(g).to_dict()["state_bound_exceeds_24_bits"]
    assert [b["population"] for b in exceeding] == ["hot"]
    g.edges[0].weight[:] = 2
    g.input_shape, g.edges[0].weight = (1, 4, 4), np.full((8, 1, 3, 3), 2, np.int32)
    assert not state_bounds(g)[0].exceeds  # 2 * 9 * 255 * 64 * 4/3 < 2**23
    assert check_fits(g).to_dict()["state_bound_exceeds_24_bits"] == []


def test_threshold_beyond_17_bits_is_refused():
    graph = big_population_graph(16)
    graph.populations[0].threshold = 1 << 17
    with pytest.raises(UserError, match="wide.*17-bit"):
        check_fits(graph)


def chip_graph(time_steps: int = 4, **overrides):
    """A small quantised body with balanced delays, in the window the chip needs (unless
    ``overrides`` say otherwise)."""
    graph, _ = quantize_graph(random_model(small_config(time_steps=time_steps)).export_graph())
    graph = graph.with_delays(balance_delays(graph).delay)
    return replace(graph, **{"window": power_of_two_window(time_steps), **overrides})


def assert_refused_by(limit_name: str, graph) -> None:
    """``check_hardware_limits`` refuses ``graph`` in one line that names the limit, its source
    and a fix; the same graph passes when that limit's rule holds."""
    limit = next(h for h in HARDWARE if h.name == limit_name)
    with pytest.raises(UserError) as refused:
        check_hardware_limits(graph)
    message = str(refused.value)
    assert f"limit {limit_name}:" in message and limit.source in message
    assert limit.fix in message and "\n" not in message


def test_every_hardware_limit_quotes_a_source_and_a_fix():
    names = [h.name for h in HARDWARE]
    assert names == ["reset_interval", "synaptic_delay", "input_message_bits"]
    assert all("lava-dl" in h.source and h.fix for h in HARDWARE)
    check_hardware_limits(chip_graph())  # a body export writes keeps them all


@pytest.mark.parametrize("steps, window", [(6, 6), (3, 3), (4, 6)])
def test_a_window_that_is_no_power_of_two_is_refused(steps, window):
    assert_refused_by("reset_interval", chip_graph(steps, window=window))
    check_hardware_limits(chip_graph(steps))  # the power of two >= T passes


def test_a_delay_beyond_netx_is_refused():
    graph = chip_graph()
    edge = graph.edges[-1]
    late = {e.name: e.delay for e in graph.edges} | {edge.name: NETX_MAX_DELAY + 1}
    assert_refused_by("synaptic_delay", graph.with_delays(late))
    late[edge.name] = NETX_MAX_DELAY
    check_hardware_limits(graph.with_delays(late))


def test_graded_input_wider_than_the_adapter_is_refused():
    """Signed payloads of b fractional bits need b + 8 bits: 16 for b = 8 fits the
    adapter's 16-bit messages, 17 (b = 9) does not."""
    assert_refused_by("input_message_bits", chip_graph(payload_bits=9, signed_input=True))
    check_hardware_limits(chip_graph(payload_bits=8, signed_input=True))

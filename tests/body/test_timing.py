from gac_deploy.body.graph import INPUT
from gac_deploy.body.timing import balance_delays
from tests.conftest import random_model, small_config


def test_every_edge_arrives_at_its_population_latency():
    graph = random_model(small_config()).export_graph()
    timing = balance_delays(graph)
    assert timing.latency["block1.lif1"] == 1
    assert timing.latency["block3.lif1"] == 5
    assert timing.total_latency == timing.latency["readout"] == 8
    for edge in graph.edges:
        src = 0 if edge.src == INPUT else timing.latency[edge.src]
        assert src + 1 + timing.delay[edge.name] == timing.latency[edge.dst]
        assert timing.delay[edge.name] >= 0
    # the encoder output waits 4 steps to reach block 3 together with block 2's output
    assert timing.delay["input->block3.lif1"] == 4
    assert timing.delay["block1.conv2->block3.lif1"] == 2
    assert timing.delay["block2.conv2->block3.lif1"] == 0
    assert timing.delay["block3.downsample->head.lif"] == 1

import h5py
import numpy as np
import pytest

from gac_deploy.body.graph import INPUT, Edge, Graph, Population
from gac_deploy.body.quantize import quantize_graph
from gac_deploy.body.timing import balance_delays
from gac_deploy.errors import UserError
from gac_deploy.export.netx_hdf5 import read_body, write_body
from tests.conftest import random_model, small_config


def _quantised(seed=0):
    graph, _ = quantize_graph(random_model(small_config(), seed=seed).export_graph())
    return graph.with_delays(balance_delays(graph).delay)


def test_round_trip_preserves_graph(tmp_path):
    graph = _quantised()
    write_body(tmp_path / "body.net", graph)
    back = read_body(tmp_path / "body.net")
    assert back.input_shape == graph.input_shape and back.payload_bits == graph.payload_bits
    assert [p.name for p in back.populations] == [p.name for p in graph.populations]
    for a, b in zip(graph.populations, back.populations, strict=True):
        assert (a.shape, a.threshold, a.voltage_decay, a.scale_exp) == (
            b.shape,
            b.threshold,
            b.voltage_decay,
            b.scale_exp,
        )
        assert np.array_equal(a.bias, b.bias)
    key = lambda e: e.name  # noqa: E731
    for a, b in zip(sorted(graph.edges, key=key), sorted(back.edges, key=key), strict=True):
        assert (a.name, a.src, a.kind, a.stride, a.padding, a.delay) == (
            b.name,
            b.src,
            b.kind,
            b.stride,
            b.padding,
            b.delay,
        )
        assert np.array_equal(a.weight, b.weight)


def test_write_is_deterministic(tmp_path):
    graph = _quantised()
    write_body(tmp_path / "a.net", graph)
    write_body(tmp_path / "b.net", graph)
    assert (tmp_path / "a.net").read_bytes() == (tmp_path / "b.net").read_bytes()


def test_netx_schema_fields(tmp_path):
    write_body(tmp_path / "body.net", _quantised())
    with h5py.File(tmp_path / "body.net") as f:
        assert f["layer/0/type"][0] == b"input"
        layer = f["layer/1"]
        assert layer["type"][0] == b"conv"
        for key in ("iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"):
            assert key in layer["neuron"]
        assert int(layer["neuron/iDecay"][()]) == 4096
        types = [f[f"layer/{i}/type"][0] for i in range(len(f["layer"]))]
        assert types[-2:] == [b"flatten", b"dense"]


def test_a_layer_of_another_neuron_model_is_refused(tmp_path):
    """Every population runs the body's neuron (CUBA); body.net names it per layer."""
    write_body(tmp_path / "body.net", _quantised())
    with h5py.File(tmp_path / "body.net", "r+") as f:
        assert f["layer/1/neuron/type"][0] == b"CUBA"
        del f["layer/2/neuron/type"]
        f["layer/2/neuron"].create_dataset("type", (1,), "S10", [b"ALIF"])
    with pytest.raises(UserError, match="runs ALIF neurons, not CUBA"):
        read_body(tmp_path / "body.net")


def chain_graph() -> Graph:
    """input (graded) -> conv -> conv stride 2 -> flatten -> dense read-out, integer weights."""
    rng = np.random.default_rng(4)
    g = Graph(input_shape=(2, 6, 6), time_steps=4, payload_bits=4)
    g.populations = [
        Population("a", (3, 6, 6), "lif", 40, 3072, np.array([2, 0, -1], np.int32), 6),
        Population("b", (4, 3, 3), "lif", 30, 3072, np.zeros(4, np.int32), 6),
        Population("readout", (5,), "readout", 131071, 0, np.zeros(5, np.int32), 6),
    ]
    g.edges = [
        Edge("l1", INPUT, "a", "conv", 2 * rng.integers(-3, 6, (3, 2, 3, 3)), 1, 1),
        Edge("l2", "a", "b", "conv", 2 * rng.integers(-10, 20, (4, 3, 3, 3)), 2, 1),
        Edge("fc", "b", "readout", "dense", 2 * rng.integers(-20, 20, (5, 36))),
    ]
    return g


def test_plain_chain_loads_in_netx(tmp_path):
    from gac_deploy.lava_compat import import_lava

    netx = import_lava("lava.lib.dl.netx")
    write_body(tmp_path / "chain.net", chain_graph())
    net = netx.hdf5.Network(net_config=str(tmp_path / "chain.net"), input_message_bits=4)
    assert len(net) == 3
    assert net.layers[0].shape == (6, 6, 3)  # netx is x-y-f
    assert net.layers[2].shape == (5,)


def test_corrupt_file_is_a_user_error(tmp_path):
    bad = tmp_path / "body.net"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="corrupt"):
        read_body(bad)


@pytest.mark.lava
def test_plain_chain_runs_in_netx_as_the_reference_says(tmp_path):
    """lava-dl's own netx.hdf5.Network runs our body.net spike for spike (one hop per layer)."""
    import torch

    from gac_deploy.chip.reference import run_quantized_graph
    from gac_deploy.lava_compat import import_lava

    netx = import_lava("lava.lib.dl.netx")
    source = import_lava("lava.proc.io.source")
    monitor = import_lava("lava.proc.monitor.process")
    run_cfg = import_lava("lava.magma.core.run_configs")
    run_cond = import_lava("lava.magma.core.run_conditions")
    graph = chain_graph()
    write_body(tmp_path / "chain.net", graph)
    payload = np.random.default_rng(0).integers(0, 16, size=(4, 1, 2, 6, 6))
    reference = run_quantized_graph(graph, torch.as_tensor(payload).double())

    net = netx.hdf5.Network(net_config=str(tmp_path / "chain.net"), input_message_bits=4)
    steps = 8
    data = np.zeros((6, 6, 2, steps), dtype=np.int32)
    data[..., :4] = payload[:, 0].transpose(3, 2, 1, 0)  # [T, C, H, W] -> x-y-f, time last
    src = source.RingBuffer(data=data)
    src.s_out.connect(net.inp)
    probes = []
    for layer in net.layers[:2]:
        probe = monitor.Monitor()
        probe.probe(layer.neuron.s_out, steps)
        probes.append((probe, layer))
    net.run(
        condition=run_cond.RunSteps(num_steps=steps),
        run_cfg=run_cfg.Loihi2SimCfg(select_tag="fixed_pt"),
    )
    records = [probe.get_data()[layer.neuron.name]["s_out"] for probe, layer in probes]
    net.stop()
    for hop, (name, record) in enumerate(zip(["a", "b"], records, strict=True), start=1):
        expected = reference.spikes[name].numpy()[:, 0]
        lava = record[hop : hop + 4].transpose(0, 3, 2, 1)
        assert expected.sum() > 0
        assert np.array_equal(lava, expected), name

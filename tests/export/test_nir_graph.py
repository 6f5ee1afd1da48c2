"""body.nir: what is written (NIR's own validation, the LIF parameters), what is read back,
and the one-line refusals of graphs and files that cannot be mapped."""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest
import torch

from gac_deploy.chip.reference import run_float_graph
from gac_deploy.errors import UserError
from gac_deploy.export.nir_graph import DT, READOUT, nir_to_graph, read_nir, write_nir
from tests.conftest import random_model, small_config


@pytest.fixture(scope="module")
def float_graph():
    """A small body with a three-term residual stream and a membrane-shortcut block."""
    return random_model(small_config(shortcut="membrane")).export_graph()


@pytest.fixture(scope="module")
def nir_file(float_graph, tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "body.nir"
    write_nir(path, float_graph)
    return path


def encoded(graph, n: int = 6, seed: int = 0) -> torch.Tensor:
    """Encoder-like output O [T, N, C, H, W] in [0, 1), half of it zero."""
    g = torch.Generator().manual_seed(seed)
    shape = (graph.time_steps, n, *graph.input_shape)
    return torch.rand(shape, generator=g, dtype=torch.float64) * (
        torch.rand(shape, generator=g) < 0.5
    )


def test_file_passes_nir_validation_and_holds_our_nodes(nir_file, float_graph):
    graph = nir.read(nir_file)  # type-checked by NIR (infer_types + check_types)
    graph.validate_structure()
    assert graph.check_types()
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert kinds == {"Input", "Conv2d", "LIF", "Output"}
    lif = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    assert len(lif) == sum(p.role == "lif" for p in float_graph.populations)
    for node in lif:  # forward Euler with DT: decay kept 0.25, input gain 1, reset to 0
        np.testing.assert_allclose(1 - DT / node.tau, 0.25)
        np.testing.assert_allclose(node.r * DT / node.tau, 1.0)
        assert not node.v_leak.any() and not node.v_reset.any()
        np.testing.assert_array_equal(node.v_threshold, 0.5)
    # a residual sum is several edges into one LIF node
    into = [sum(1 for _, b in graph.edges if b == name) for name in graph.nodes]
    assert max(into) >= 3
    out = graph.nodes[READOUT]
    assert list(out.input_type["input"]) == [float_graph.readout.size, 1, 1]


def test_reads_back_the_same_body(nir_file, float_graph):
    back = read_nir(nir_file, float_graph.time_steps)
    assert [p.name for p in back.populations] == [p.name for p in float_graph.populations]
    assert [(e.layer, e.src, e.dst) for e in back.edges] == [
        (e.layer, e.src, e.dst) for e in float_graph.edges
    ]
    o = encoded(float_graph)
    ours, theirs = run_float_graph(float_graph, o), run_float_graph(back, o)
    for name, spikes in ours.spikes.items():
        assert spikes.sum() > 0
        assert torch.equal(spikes, theirs.spikes[name]), name
    torch.testing.assert_close(theirs.readout, ours.readout, rtol=1e-12, atol=1e-12)


def lif(shape, tau=DT / 0.75, threshold=0.5, **extra):
    full = np.ones(shape)
    return nir.LIF(
        tau=tau * full,
        r=tau / DT * full,
        v_leak=extra.get("v_leak", 0.0) * full,
        v_threshold=threshold * full,
        v_reset=extra.get("v_reset", 0.0) * full,
    )


def conv(c_in, c_out, size, seed=0):
    w = np.random.default_rng(seed).normal(0, 0.3, (c_out, c_in, 3, 3))
    return nir.Conv2d(np.array([size, size]), w, 1, 1, 1, 1, np.zeros(c_out))


def small_nir(**replace_nodes) -> nir.NIRGraph:
    """Input -> conv -> a -> conv -> b, plus a shortcut input -> b; b -> Flatten -> Affine."""
    nodes = {
        "in": nir.Input(np.array([2, 4, 4])),
        "c1": conv(2, 3, 4),
        "a": lif((3, 4, 4)),
        "c2": conv(3, 3, 4, 1),
        "skip": conv(2, 3, 4, 2),
        "b": lif((3, 4, 4)),
        "flat": nir.Flatten(np.array([3, 4, 4]), 0, -1),
        "fc": nir.Affine(np.ones((5, 48)) * 0.1, np.arange(5.0)),
        "out": nir.Output(np.array([5])),
    }
    nodes.update(replace_nodes)
    edges = [
        ("in", "c1"), ("c1", "a"), ("a", "c2"), ("c2", "b"), ("in", "skip"), ("skip", "b"),
        ("b", "flat"), ("flat", "fc"), ("fc", "out"),
    ]  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_a_foreign_dag_maps_to_a_body():
    graph = nir_to_graph(small_nir(), time_steps=3)
    assert [p.name for p in graph.populations] == ["a", "b", READOUT]
    assert [(e.layer, e.src, e.dst, e.kind) for e in graph.edges] == [
        ("c1", "input", "a", "conv"),
        ("c2", "a", "b", "conv"),
        ("skip", "input", "b", "conv"),
        ("fc", "b", READOUT, "dense"),
    ]
    np.testing.assert_allclose(graph.population("a").voltage_decay, 0.75)


@pytest.mark.parametrize(
    ("nodes", "words"),
    [
        ({"a": nir.IF(np.ones((3, 4, 4)), np.ones((3, 4, 4)))}, ["node a", "IF"]),
        ({"a": lif((3, 4, 4), v_leak=0.1)}, ["node a", "v_leak"]),
        ({"a": lif((3, 4, 4), v_reset=0.2)}, ["node a", "reset"]),
        (
            {
                "a": nir.CubaLIF(
                    tau_syn=np.full((3, 4, 4), 5 * DT),
                    tau_mem=np.full((3, 4, 4), DT / 0.75),
                    r=np.full((3, 4, 4), 1 / 0.75),
                    v_leak=np.zeros((3, 4, 4)),
                    v_threshold=np.full((3, 4, 4), 0.5),
                )
            },
            ["node a", "tau_syn"],
        ),
        ({"a": lif((3, 4, 4), threshold=np.linspace(0.1, 1, 48).reshape(3, 4, 4))}, ["node a"]),
    ],
)
def test_unmappable_neurons_are_refused_by_name(nodes, words):
    with pytest.raises(Exception) as info:
        nir_to_graph(small_nir(**nodes), time_steps=3)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_a_recurrent_edge_is_refused():
    graph = small_nir()
    graph.edges.append(("b", "c1"))
    with pytest.raises(Exception, match="recurrent"):
        nir_to_graph(graph, time_steps=3)


def test_cuba_lif_without_kept_current_is_our_neuron():
    shape = (3, 4, 4)
    cuba = nir.CubaLIF(
        tau_syn=np.full(shape, DT),
        tau_mem=np.full(shape, DT / 0.75),
        r=np.full(shape, 1 / 0.75),
        v_leak=np.zeros(shape),
        v_threshold=np.full(shape, 0.5),
        w_in=np.full(shape, 2.0),  # an input gain of 2: folded into the weights
    )
    plain = nir_to_graph(small_nir(), time_steps=3)
    graph = nir_to_graph(small_nir(a=cuba), time_steps=3)
    np.testing.assert_allclose(graph.edges[0].weight, 2 * plain.edges[0].weight)
    assert graph.population("a").threshold == pytest.approx(0.25)


def hostile_files(tmp_path, nir_file):
    """(file, words of the error) pairs: each must be refused in one line."""
    cases = []
    text = tmp_path / "text.nir"
    text.write_text("not a NIR graph\n")
    cases.append((text, ["not a NIR file"]))
    empty = tmp_path / "empty.nir"
    with h5py.File(empty, "w") as f:
        f.create_dataset("version", data="1.0")
    cases.append((empty, ["no NIR 'node' group"]))
    huge = tmp_path / "huge.nir"
    with h5py.File(huge, "w") as f:  # 1 TB declared, nothing stored (a decompression bomb)
        f.create_group("node").create_dataset(
            "weight", shape=(1 << 20, 1 << 20), dtype="f8", chunks=(64, 64), compression="gzip"
        )
    cases.append((huge, ["too large"]))
    words = {
        "missing_node.nir": "block1.lif2",
        "unknown_edge.nir": "ghost",
        "absurd_shape.nir": "1000000000",
    }
    for name, change in (
        ("missing_node.nir", lambda f: f["node/nodes"].__delitem__("block1.lif2")),
        ("unknown_edge.nir", lambda f: _rewrite_edges(f, ("ghost", "readout"))),
        ("absurd_shape.nir", lambda f: _rewrite(f, "node/nodes/input/shape", [10**9, 10**9, 7])),
    ):
        bad = tmp_path / name
        bad.write_bytes(nir_file.read_bytes())
        with h5py.File(bad, "r+") as f:
            change(f)
        cases.append((bad, [words[name]]))
    return cases


def _rewrite(f, key: str, value) -> None:
    del f[key]
    f[key] = np.asarray(value)


def _rewrite_edges(f, extra: tuple[str, str]) -> None:
    edges = [tuple(e) for e in f["node/edges"][()]]
    _rewrite(f, "node/edges", np.array([*edges, tuple(s.encode() for s in extra)]))


def test_hostile_files_are_refused_in_one_line(tmp_path, nir_file):
    for path, words in hostile_files(tmp_path, nir_file):
        with pytest.raises(UserError) as info:
            read_nir(path, 4)
        message = str(info.value)
        assert "\n" not in message and str(path) in message, message
        assert all(w in message for w in words), message

"""The body as a NIR graph (Neuromorphic Intermediate Representation, package ``nir``), both ways.

**Writing** (:func:`graph_to_nir`, :func:`write_nir`): a float body graph becomes

* ``input``: ``nir.Input`` of the encoder output O, shape (C, H, W) (no batch, no time);
* one ``nir.LIF`` node per spiking population, named as the population;
* one ``nir.Conv2d`` node per edge (BatchNorm folded into its bias; the identity edges
  that carry O into the stream are 1x1 identity convs), named ``{layer}.to.{dst}``
  (``@`` in a composed shortcut's name becomes ``.of.``); the layer name is kept in the
  node's metadata. A residual sum is several edges into one LIF node, as NIR sums them;
* the read-out: global average pooling folded into the classifier is one ``nir.Conv2d``
  whose kernel covers the whole map (weight fc / (H W), bias fc.bias), into
  ``nir.Output`` of shape (classes, 1, 1). NIR has no "sum over time": the class score is
  the **sum of that output over the T steps** (what our non-spiking read-out population
  accumulates), summed by the reader. A Conv2d, not Flatten + Affine, because readers
  differ on whether Flatten's start_dim counts the batch dimension.

**The LIF parameters** (written by :func:`gac_deploy.neurons.cuba.nir_node`). Our
neuron (``neurons/cuba.py``) is, per step,
``v = tau_k v (1 - s_prev) + x;  s = v > Vth;`` reset to 0 — CUBA with current decay 1
(no current kept) and voltage decay ``1 - tau_k`` (tau_k = 0.25 kept per step). A NIR
``LIF`` (``tau dv/dt = (v_leak - v) + r I``) integrated by forward Euler with step ``dt``
is ``v = (1 - dt/tau) v + (r dt/tau) I``; with

    dt = DT = 1e-4 s (the step a reader must use; snnTorch's fixed step),
    tau = dt / (1 - tau_k)   (so 1 - dt/tau = tau_k),
    r = tau / dt             (so the input gain r dt/tau = 1),
    v_leak = 0, v_reset = 0, v_threshold = Vth,

the reader's update is ours, provided it fires when v > v_threshold, resets to v_reset
at the step it fires, and the synaptic input of step t reaches v at step t. A
``CubaLIF`` with ``tau_syn = dt`` and ``w_in = 1`` (nothing kept of the current) is the
same neuron; on reading, both are accepted.

**Reading** (:func:`read_nir`): a NIR graph of Input, Conv2d/Affine/Linear (optionally
after a Flatten), LIF/CubaLIF and Output nodes — chains or DAGs with sums — becomes a
float body graph. Each synapse node between a source (Input or a neuron) and a neuron
becomes one edge per source (a sum into a synapse node is linear, so it splits); the
synapse nodes that feed Output directly become the non-spiking read-out ``readout``
(a Conv2d there must cover its whole input map); a neuron that feeds Output directly
gets a read-out that counts its spikes. A neuron's input gain other than 1 is folded
into its incoming weights. Anything else (a recurrent edge, subgraphs, pooling, other
neurons, leak, non-zero reset, a current that decays over several steps) is refused with
a one-line error naming the node. A file is checked before ``nir.read`` loads it: an
HDF5 file, a bounded number of objects, every dataset of a sane size.

Why one module of about 500 lines: writing and reading are the two halves of one
mapping (each NIR field and the arithmetic it stands for); kept together, a change to
one half is seen beside the other.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gac_deploy.body.graph import INPUT, Edge, Graph, Population, check_graph
from gac_deploy.errors import UserError
from gac_deploy.fileio import write_bytes
from gac_deploy.neurons import body_neuron

DT = 1e-4
"""Seconds per time step a NIR reader must integrate with (see the module docstring)."""
READOUT = "readout"
"""The read-out population of an imported graph, and the NIR Output node's name."""
INPUT_NODE = "input"
LAYER_KEY = "gac_layer"
"""Node metadata: the body graph layer a synapse node comes from."""
MAX_OBJECTS = 100_000
MAX_DATASET_BYTES = 1 << 30
MAX_NEURONS = 1 << 24
"""Largest population or input an imported graph may have (absurd shapes are refused)."""
SYNAPSES = ("Conv2d", "Affine", "Linear")
NEURONS = ("LIF", "CubaLIF")


def synapse_node_name(edge: Edge) -> str:
    return f"{edge.layer.replace('@', '.of.')}.to.{edge.dst}"


def graph_to_nir(graph: Graph):
    """A float body graph as a ``nir.NIRGraph`` (validated by NIR's own type checking)."""
    import nir

    if graph.quantized:
        raise ValueError("NIR export takes the float graph")
    nodes: dict = {INPUT_NODE: nir.Input(np.array(graph.input_shape))}
    edges: list[tuple[str, str]] = []
    for pop in graph.populations:
        if pop.role == "lif":
            if np.any(pop.bias):
                raise ValueError(f"{pop.name}: a population bias has no NIR LIF field")
            nodes[pop.name] = body_neuron().nir_node(
                pop.threshold, pop.voltage_decay, pop.shape, DT
            )
        for edge in graph.incoming(pop.name):
            name = synapse_node_name(edge)
            nodes[name] = _synapse_node(graph, edge, pop)
            src = INPUT_NODE if edge.src == INPUT else edge.src
            dst = READOUT if pop.role == "readout" else pop.name
            edges += [(src, name), (name, dst)]
        if pop.role == "readout":
            nodes[READOUT] = nir.Output(np.array([pop.size, 1, 1]))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _synapse_node(graph: Graph, edge: Edge, pop: Population):
    import nir

    src_shape = graph.shape_of(edge.src)
    bias = np.zeros(edge.weight.shape[0]) if edge.bias is None else np.asarray(edge.bias)
    if pop.role == "readout":
        if np.any(pop.bias):
            bias = bias + pop.bias
        if edge.kind == "dense":  # folded pooling: one kernel over the whole (C, H, W) map
            weight = edge.weight.reshape(edge.weight.shape[0], *src_shape)
            return nir.Conv2d(
                input_shape=np.array(src_shape[1:]),
                weight=weight,
                stride=1,
                padding=0,
                dilation=1,
                groups=1,
                bias=bias,
                metadata={LAYER_KEY: edge.layer},
            )
    if edge.kind != "conv":
        raise ValueError(f"{edge.name}: only conv edges into spiking populations are written")
    return nir.Conv2d(
        input_shape=np.array(src_shape[1:]),
        weight=edge.weight,
        stride=edge.stride,
        padding=edge.padding,
        dilation=1,
        groups=1,
        bias=bias,
        metadata={LAYER_KEY: edge.layer},
    )


def write_nir(path: str | Path, graph: Graph) -> None:
    """Write ``graph`` to ``path`` with ``nir.write`` (serialised in memory, one write)."""
    import nir

    buffer = io.BytesIO()
    nir.write(buffer, graph_to_nir(graph))
    write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------- reading


def check_nir_file(path: Path) -> None:
    """Refuse a file nir.read should not load: not HDF5, too many objects, a dataset of
    absurd size (checked from its header, before any data is read), no ``node`` group."""
    import h5py

    if not path.is_file():
        raise UserError(f"NIR file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            count = 0
            problems: list[str] = []

            def visit(name: str, obj) -> None:
                nonlocal count
                count += 1
                if count > MAX_OBJECTS:
                    raise _Refused(f"more than {MAX_OBJECTS} objects")
                if isinstance(obj, h5py.Dataset):
                    size = int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize
                    if obj.shape is None or size > MAX_DATASET_BYTES:
                        problems.append(f"dataset {name} of shape {obj.shape}")

            f.visititems(visit)
            if problems:
                raise _Refused(f"{problems[0]} is too large")
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise _Refused("it has no NIR 'node' group")
    except _Refused as exc:
        raise UserError(f"{path} is not a usable NIR file: {exc}") from None
    except OSError:
        raise UserError(f"{path} is not a NIR file (not HDF5)") from None


class _Refused(Exception):
    pass


def load_nir(path: str | Path):
    """``nir.read`` of a checked file, with NIR's own structure and type validation."""
    import nir

    path = Path(path)
    check_nir_file(path)
    try:
        graph = nir.read(path)
    except Exception as exc:  # nir raises KeyError, ValueError, AssertionError, ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = reason.split(" Available nodes")[0][:200]
        raise UserError(f"{path} is not a valid NIR graph: {reason}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"{path} holds a single {type(graph).__name__}, not a NIR graph")
    return graph


def read_nir(path: str | Path, time_steps: int, dt: float = DT) -> Graph:
    """A NIR file as a float body graph running ``time_steps`` steps of ``dt`` seconds."""
    path = Path(path)
    graph = load_nir(path)
    try:
        return nir_to_graph(graph, time_steps, dt)
    except _Refused as exc:
        raise UserError(f"{path}: {exc}") from None


def _kind(node) -> str:
    return type(node).__name__


def _array(node, field: str, name: str) -> np.ndarray:
    value = np.asarray(getattr(node, field), dtype=np.float64)
    if not np.all(np.isfinite(value)):
        raise _Refused(f"node {name}: {field} is not finite")
    return value


def _uniform(node, field: str, name: str) -> float:
    value = _array(node, field, name)
    if value.size == 0 or not np.allclose(value, value.flat[0], rtol=1e-6, atol=0.0):
        raise _Refused(f"node {name}: {field} differs between neurons (one value needed)")
    return float(value.flat[0])


def _shape(node, name: str, kind: str = "output") -> tuple[int, ...]:
    types = node.output_type if kind == "output" else node.input_type
    shape = None if types is None else list(types.values())[0]
    if shape is None:
        raise _Refused(f"node {name} has no {kind} shape")
    shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if not shape or min(shape) < 1 or np.prod(shape, dtype=np.float64) > MAX_NEURONS:
        raise _Refused(f"node {name}: shape {shape} is not a usable size")
    return shape


def _neuron(node, name: str, dt: float) -> tuple[float, float, float]:
    """(threshold, voltage decay = fraction lost per step, input gain) of a LIF/CubaLIF."""
    gain = 1.0
    if _kind(node) == "CubaLIF":
        tau_syn = _uniform(node, "tau_syn", name)
        if not np.isclose(tau_syn, dt, rtol=1e-6):
            raise _Refused(
                f"node {name}: CubaLIF tau_syn {tau_syn:g} keeps synaptic current across "
                f"steps (only tau_syn = dt = {dt:g}, current decay 1, maps to Loihi here)"
            )
        gain *= _uniform(node, "w_in", name) * dt / tau_syn
        tau = _uniform(node, "tau_mem", name)
    else:
        tau = _uniform(node, "tau", name)
    if not tau >= dt:
        raise _Refused(f"node {name}: tau {tau:g} is shorter than the step dt = {dt:g}")
    gain *= _uniform(node, "r", name) * dt / tau
    if np.any(_array(node, "v_leak", name)):
        raise _Refused(f"node {name}: a non-zero v_leak is not supported")
    if node.v_reset is not None and np.any(_array(node, "v_reset", name)):
        raise _Refused(f"node {name}: only reset to 0 is supported (v_reset is not 0)")
    threshold = _uniform(node, "v_threshold", name)
    if not np.isfinite(gain) or gain <= 0:
        raise _Refused(f"node {name}: input gain {gain:g} is not positive")
    if abs(gain - 1.0) < 1e-9:
        gain = 1.0
    return threshold / gain, dt / tau, gain


def _synapse_edges(node, name: str, src: str, src_shape: tuple[int, ...]) -> Edge:
    """The edge of synapse node ``name`` reading ``src`` (weights in float64)."""
    layer = name
    meta = getattr(node, "metadata", None) or {}
    if LAYER_KEY in meta:
        value = meta[LAYER_KEY]
        layer = value.decode() if isinstance(value, bytes) else str(value)
    weight = _array(node, "weight", name)
    if _kind(node) == "Conv2d":
        if len(src_shape) != 3:
            raise _Refused(f"node {name}: a Conv2d needs a (C, H, W) input, not {src_shape}")
        if weight.ndim != 4 or int(np.asarray(node.groups)) != 1:
            raise _Refused(f"node {name}: only 2-D convolutions with groups 1 are supported")
        if np.any(np.asarray(node.dilation) != 1):
            raise _Refused(f"node {name}: dilated convolutions are not supported")
        stride = np.asarray(node.stride).reshape(-1)
        padding = node.padding
        if isinstance(padding, str | bytes):
            padding = {"valid": 0, b"valid": 0}.get(padding)
            if padding is None:
                raise _Refused(f"node {name}: 'same' padding is not supported (give numbers)")
        padding = np.asarray(padding).reshape(-1)
        if len(set(stride.tolist())) != 1 or len(set(padding.tolist())) != 1:
            raise _Refused(f"node {name}: only equal stride and padding in H and W are supported")
        bias = _array(node, "bias", name) if getattr(node, "bias", None) is not None else None
        return Edge(layer, src, "", "conv", weight, int(stride[0]), int(padding[0]), bias)
    if weight.ndim != 2 or weight.shape[1] != int(np.prod(src_shape)):
        raise _Refused(
            f"node {name}: weight {weight.shape} does not read the {src_shape} of its source"
        )
    bias = _array(node, "bias", name) if _kind(node) == "Affine" else None
    return Edge(layer, src, "", "dense", weight, bias=bias)


def nir_to_graph(nir_graph, time_steps: int, dt: float = DT) -> Graph:
    """A ``nir.NIRGraph`` as a float body graph (see the module docstring for what maps)."""
    nodes = dict(nir_graph.nodes)
    pairs = [(str(a), str(b)) for a, b in nir_graph.edges]
    for name, node in nodes.items():
        kind = _kind(node)
        if kind not in ("Input", "Output", "Flatten", *SYNAPSES, *NEURONS):
            reason = "a subgraph (recurrent layer)" if kind == "NIRGraph" else f"a {kind} node"
            raise _Refused(f"node {name}: {reason} is not supported")
    order = _topological(nodes, pairs)
    inputs = [n for n in order if _kind(nodes[n]) == "Input"]
    outputs = [n for n in order if _kind(nodes[n]) == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise _Refused(
            f"needs one Input and one Output node (has {len(inputs)} and {len(outputs)})"
        )
    input_name = inputs[0]
    input_shape = _shape(nodes[input_name], input_name)
    if len(input_shape) != 3:
        raise _Refused(f"node {input_name}: the input must be (C, H, W), not {input_shape}")
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in pairs:
        preds[b].append(a)
        succs[a].append(b)

    graph = Graph(input_shape=input_shape, time_steps=time_steps)
    gains: dict[str, float] = {}

    def sources(name: str) -> list[tuple[str, str | None]]:
        """(population or INPUT, synapse node or None) pairs feeding a neuron/Output node."""
        found = []
        for p in preds[name]:
            kind = _kind(nodes[p])
            if kind in SYNAPSES:
                for q in preds[p]:
                    q_src = _through_flatten(q, nodes, preds, p)
                    found.append((_source_name(q_src, nodes, input_name, p), p))
            elif kind in NEURONS or kind == "Input":
                found.append((_source_name(p, nodes, input_name, name), None))
            else:
                raise _Refused(f"node {p}: a {kind} node must sit between a neuron and an Affine")
        if not found:
            raise _Refused(f"node {name} has no input")
        return found

    def edges_into(name: str) -> list[Edge]:
        result = []
        seen_synapse: set[str] = set()
        for src, synapse in sources(name):
            src_shape = graph.shape_of(src)
            if synapse is None:
                result.append(_identity(f"{src}.to.{name}", src, src_shape))
                continue
            edge = _synapse_edges(nodes[synapse], synapse, src, src_shape)
            if len(preds[synapse]) > 1:  # W (a + b) = W a + W b: one edge per source
                edge.layer = f"{edge.layer}.from.{src}"
            if synapse in seen_synapse:  # ... and the bias once
                edge.bias = None
            seen_synapse.add(synapse)
            result.append(edge.into(name))
        return result

    for name in order:
        node = nodes[name]
        if _kind(node) not in NEURONS:
            continue
        threshold, decay, gain = _neuron(node, name, dt)
        shape = _shape(node, name)
        edges = [_scaled(e.into(name), gain) for e in edges_into(name)]
        gains[name] = gain
        graph.populations.append(
            Population(name, shape, "lif", threshold, decay, np.zeros(shape[0]))
        )
        graph.edges.extend(edges)
    readout_edges = []
    for src, synapse in sources(outputs[0]):
        src_shape = graph.shape_of(src)
        if synapse is None:
            size = int(np.prod(src_shape))
            readout_edges.append(Edge(f"{src}.count", src, READOUT, "dense", np.eye(size)))
            continue
        edge = _synapse_edges(nodes[synapse], synapse, src, src_shape)
        if edge.kind == "conv":
            edge = _conv_as_dense(edge, src_shape, synapse)
        if any(e.layer == edge.layer for e in readout_edges):
            edge.bias = None
            edge.layer = f"{edge.layer}.from.{src}"
        readout_edges.append(edge.into(READOUT))
    sizes = {e.weight.shape[0] for e in readout_edges}
    if len(sizes) != 1:
        raise _Refused(f"node {outputs[0]}: its inputs have different sizes {sorted(sizes)}")
    classes = sizes.pop()
    graph.populations.append(
        Population(READOUT, (classes,), "readout", float("inf"), 0.0, np.zeros(classes))
    )
    graph.edges.extend(readout_edges)
    _check_sizes(graph)
    try:
        check_graph(graph)
    except ValueError as exc:
        raise _Refused(str(exc)) from None
    return graph


def _topological(nodes: dict, pairs: list[tuple[str, str]]) -> list[str]:
    """Node names in topological order; a cycle (recurrent edge) is refused, naming a node."""
    for a, b in pairs:
        for end in (a, b):
            if end not in nodes:
                raise _Refused(f"an edge names node {end}, which the graph does not have")
    indegree = {n: 0 for n in nodes}
    for _, b in pairs:
        indegree[b] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for a, b in pairs:
            if a == n:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    if len(order) != len(nodes):
        stuck = next(n for n in nodes if n not in order)
        raise _Refused(f"node {stuck}: a recurrent edge (cycle) cannot be mapped to the body")
    return order


def _through_flatten(name: str, nodes: dict, preds: dict, consumer: str) -> str:
    """Skip one Flatten (before an Affine/Linear: our dense edges flatten implicitly)."""
    if _kind(nodes[name]) != "Flatten":
        return name
    if _kind(nodes[consumer]) == "Conv2d":
        raise _Refused(f"node {name}: a Flatten before a Conv2d is not supported")
    if len(preds[name]) != 1:
        raise _Refused(f"node {name}: a Flatten must have exactly one input")
    return preds[name][0]


def _source_name(name: str, nodes: dict, input_name: str, consumer: str) -> str:
    kind = _kind(nodes[name])
    if kind == "Input":
        return INPUT
    if kind in NEURONS:
        return name
    raise _Refused(f"node {consumer}: reads a {kind} node ({name}); synapses must read neurons")


def _identity(layer: str, src: str, shape: tuple[int, ...]) -> Edge:
    """A neuron (or the input) read directly: identity synapses."""
    if len(shape) == 3:
        return Edge(layer, src, "", "conv", np.eye(shape[0])[:, :, None, None])
    return Edge(layer, src, "", "dense", np.eye(int(np.prod(shape))))


def _scaled(edge: Edge, gain: float) -> Edge:
    if gain == 1.0:
        return edge
    edge.weight = edge.weight * gain
    edge.bias = None if edge.bias is None else edge.bias * gain
    return edge


def _conv_as_dense(edge: Edge, src_shape: tuple[int, ...], name: str) -> Edge:
    """A read-out conv whose kernel covers its whole input map, as a dense edge."""
    if edge.weight.shape[1:] != tuple(src_shape) or edge.padding != 0:
        raise _Refused(
            f"node {name}: a Conv2d into the Output must cover its whole input map "
            f"(kernel {edge.weight.shape[1:]}, input {src_shape})"
        )
    weight = edge.weight.reshape(edge.weight.shape[0], -1)
    return Edge(edge.layer, edge.src, "", "dense", weight, bias=edge.bias)


def _check_sizes(graph: Graph) -> None:
    for edge in graph.edges:
        if edge.weight.size > MAX_NEURONS * 16:
            raise _Refused(f"{edge.layer}: {edge.weight.size} weights is too many")
        if edge.bias is not None and edge.bias.shape != (edge.weight.shape[0],):
            raise _Refused(
                f"{edge.layer}: bias of shape {edge.bias.shape} for {edge.weight.shape[0]} outputs"
            )

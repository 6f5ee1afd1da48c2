"""body.net: the quantised body in lava-dl NetX's HDF5 layer schema, plus a graph extension.

Standard part (what ``lava.lib.dl.netx.hdf5.Network`` reads): ``layer/0`` is the
input (``type``, ``shape`` as (C, H, W)); then one group per population in
topological order with ``type`` ('conv' or 'dense'), ``shape``, ``weight``
(conv [out, in, kH, kW], dense [out, in]: the integers the synapses apply, int16),
``bias`` (neuron bias mantissa,
exponent 6), ``stride``/``padding``/``dilation`` as (H, W), ``groups``, and
``neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}`` (the body's neuron,
:func:`gac_deploy.neurons.cuba.netx_fields`). A 'flatten'
layer precedes a dense layer that reads a (C, H, W) population. The standard
weight of a layer is its edge from the layer before it, so a plain chain is a
NetX network as it stands.

Extension (gac-deploy; NetX ignores it):
* root attributes ``format``, ``version``, ``time_steps``, ``payload_bits``,
  ``signed_input`` (0 or 1; absent in version 1 files, which are read as 0),
  ``window`` (the presentation window W >= T each neuron resets at; version 4, read
  as T from earlier files);
* per population group ``gac/``: attributes ``name``, ``role``, ``scale_exp``,
  ``layer``, ``delay`` and ``weight_exp`` of the standard edge, and
  ``gac/inputs/{j}/`` for every further incoming edge: attributes ``src``
  (population name or 'input'), ``layer``, ``kind``, ``stride``, ``padding``,
  ``delay``, ``weight_exp``, and dataset ``weight``.

``weight_exp`` (version 3; read as 0 from earlier files) is the edge's synapse weight
exponent x: a weight w is stored on the chip as the 8-bit mantissa w >> x. NetX's own
reader derives a layer's exponent from its weights (``optimize_weight_bits``) and
clips weights beyond [-256, 254], so a chain layer with x > 0 needs this extension.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from gac_deploy.body.graph import INPUT, Edge, Graph, Population, check_graph
from gac_deploy.body.loihi2 import check_formats
from gac_deploy.errors import UserError
from gac_deploy.fileio import write_bytes
from gac_deploy.neurons import BODY_NEURON, body_neuron

FORMAT = "gac-deploy body.net"
VERSION = 4


def _string(group: h5py.Group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _primary_edge(graph: Graph, pop: Population, previous: str) -> Edge:
    for edge in graph.incoming(pop.name):
        if edge.src == previous:
            return edge
    raise ValueError(f"population {pop.name} has no edge from the layer before it ({previous})")


def _write_population(layer: h5py.Group, graph: Graph, pop: Population, previous: str) -> None:
    primary = _primary_edge(graph, pop, previous)
    _string(layer, "type", primary.kind)
    layer.create_dataset("shape", data=np.array(pop.shape, dtype=np.int64))
    layer.create_dataset("weight", data=np.asarray(primary.weight, dtype=np.int16))
    layer.create_dataset("bias", data=np.asarray(pop.bias, dtype=np.int32))
    if primary.kind == "conv":
        layer.create_dataset("stride", data=np.array([primary.stride] * 2))
        layer.create_dataset("padding", data=np.array([primary.padding] * 2))
        layer.create_dataset("dilation", data=np.array([1, 1]))
        layer.create_dataset("groups", data=1)
    neuron = layer.create_group("neuron")
    fields = body_neuron().netx_fields(int(pop.threshold), int(pop.voltage_decay))
    for key, value in fields.items():
        if isinstance(value, str):
            _string(neuron, key, value)
        else:
            neuron.create_dataset(key, data=value)
    ext = layer.create_group("gac")
    ext.attrs["name"] = pop.name
    ext.attrs["role"] = pop.role
    ext.attrs["scale_exp"] = int(pop.scale_exp)
    ext.attrs["layer"] = primary.layer
    ext.attrs["delay"] = int(primary.delay)
    ext.attrs["weight_exp"] = int(primary.weight_exp)
    inputs = ext.create_group("inputs")
    extras = [e for e in graph.incoming(pop.name) if e is not primary]
    for j, edge in enumerate(extras):
        g = inputs.create_group(str(j))
        g.attrs["src"] = edge.src
        g.attrs["layer"] = edge.layer
        g.attrs["kind"] = edge.kind
        g.attrs["stride"] = int(edge.stride)
        g.attrs["padding"] = int(edge.padding)
        g.attrs["delay"] = int(edge.delay)
        g.attrs["weight_exp"] = int(edge.weight_exp)
        g.create_dataset("weight", data=np.asarray(edge.weight, dtype=np.int16))


def write_body(path: str | Path, graph: Graph) -> None:
    """Write a quantised graph (delays set) to ``path`` atomically.

    The HDF5 file is built in memory and written with one plain write, so a full disk
    is an ordinary ``OSError`` (HDF5 failing inside its own writes can crash the
    process)."""
    if not graph.quantized:
        raise ValueError("body.net holds quantised graphs only")
    check_graph(graph)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["time_steps"] = graph.time_steps
        f.attrs["window"] = graph.window
        f.attrs["payload_bits"] = graph.payload_bits
        f.attrs["signed_input"] = int(graph.signed_input)
        layers = f.create_group("layer")
        index = 0
        first = layers.create_group(str(index))
        _string(first, "type", "input")
        first.create_dataset("shape", data=np.array(graph.input_shape, dtype=np.int64))
        previous = INPUT
        for pop in graph.populations:
            if len(pop.shape) == 1 and len(graph.shape_of(previous)) == 3:
                index += 1
                flat = layers.create_group(str(index))
                _string(flat, "type", "flatten")
                flat.create_dataset("shape", data=np.array(graph.shape_of(previous)))
            index += 1
            _write_population(layers.create_group(str(index)), graph, pop, previous)
            previous = pop.name
    write_bytes(path, buffer.getvalue(), ".net")


def _read_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _integers(path: str | Path, dataset, what: str) -> np.ndarray:
    """A dataset's values, refused unless stored as integers (a float array can hide NaN
    or fractions that a cast would silently change)."""
    values = dataset[()]
    if not np.issubdtype(np.asarray(values).dtype, np.integer):
        raise UserError(
            f"{path}: {what} are stored as {np.asarray(values).dtype}, not integers; "
            "re-export the bundle"
        )
    return np.asarray(values)


def _flag(path: str | Path, attrs, key: str) -> bool:
    """A 0/1 attribute (absent: 0), refused if it holds anything else."""
    value = attrs.get(key, 0)
    if not (np.ndim(value) == 0 and np.asarray(value).dtype.kind in "biu" and value in (0, 1)):
        raise UserError(f"{path}: {key} is {value!r}, not 0 or 1; re-export the bundle")
    return bool(value)


def read_body(path: str | Path) -> Graph:
    """Read a body.net written by :func:`write_body` back into a quantised graph, refusing
    one whose values lie outside the Loihi 2 formats (:func:`check_formats`)."""
    try:
        with h5py.File(path, "r") as f:
            if _read_str(f.attrs.get("format", "")) != FORMAT:
                raise UserError(f"{path} is not a gac-deploy body.net; re-export the bundle")
            graph = Graph(
                input_shape=tuple(int(v) for v in f["layer/0/shape"][()]),
                time_steps=int(f.attrs["time_steps"]),
                window=int(f.attrs.get("window", 0)),
                payload_bits=int(f.attrs["payload_bits"]),
                signed_input=_flag(path, f.attrs, "signed_input"),
            )
            previous = INPUT
            for i in range(1, len(f["layer"])):
                layer = f[f"layer/{i}"]
                kind = _read_str(layer["type"][0])
                if kind == "flatten":
                    continue
                ext = layer["gac"]
                name = _read_str(ext.attrs["name"])
                neuron = layer["neuron"]
                model = _read_str(neuron["type"][0]) if "type" in neuron else "no"
                if model != BODY_NEURON:
                    raise UserError(
                        f"{path}: population {name} runs {model} neurons, not "
                        f"{BODY_NEURON}, the neuron the body runs; re-export the bundle"
                    )
                pop = Population(
                    name=name,
                    shape=tuple(int(v) for v in layer["shape"][()]),
                    role=_read_str(ext.attrs["role"]),
                    threshold=int(_integers(path, neuron["vThMant"], f"{name} vThMant")),
                    voltage_decay=int(_integers(path, neuron["vDecay"], f"{name} vDecay")),
                    bias=_integers(path, layer["bias"], f"{name} biases").astype(np.int32),
                    scale_exp=int(ext.attrs["scale_exp"]),
                )
                graph.populations.append(pop)
                stride = int(layer["stride"][0]) if kind == "conv" else 1
                padding = int(layer["padding"][0]) if kind == "conv" else 0
                graph.edges.append(
                    Edge(
                        _read_str(ext.attrs["layer"]),
                        previous,
                        name,
                        kind,
                        _integers(path, layer["weight"], f"{name} weights").astype(np.int32),
                        stride,
                        padding,
                        delay=int(ext.attrs["delay"]),
                        weight_exp=int(ext.attrs.get("weight_exp", 0)),
                    )
                )
                for j in range(len(ext["inputs"])):
                    g = ext[f"inputs/{j}"]
                    graph.edges.append(
                        Edge(
                            _read_str(g.attrs["layer"]),
                            _read_str(g.attrs["src"]),
                            name,
                            _read_str(g.attrs["kind"]),
                            _integers(path, g["weight"], f"{name} weights").astype(np.int32),
                            int(g.attrs["stride"]),
                            int(g.attrs["padding"]),
                            delay=int(g.attrs["delay"]),
                            weight_exp=int(g.attrs.get("weight_exp", 0)),
                        )
                    )
                previous = name
    except UserError:
        raise
    except (OSError, KeyError, IndexError, ValueError) as exc:
        raise UserError(f"{path} is corrupt or incomplete ({exc}); re-export the bundle") from None
    try:
        check_graph(graph)
    except ValueError as exc:
        raise UserError(f"{path} describes an inconsistent network ({exc}); re-export") from None
    try:
        check_formats(graph)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}; re-export the bundle") from None
    return graph

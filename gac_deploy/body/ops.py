"""The body's layers as an ANN counts them: which population each layer reads and its
multiply-accumulates (FLOPs) per time step. Pure functions of a body graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.config import ModelConfig


@dataclass(frozen=True)
class LayerSpec:
    """One layer as Eq. 11 sees it: ``input`` is the population whose spikes it reads
    (None for the stem, which reads the image); ``flops``: ANN MACs per time step."""

    name: str
    placement: str
    op: str
    flops: int
    input: str | None


def is_identity(edge: Edge) -> bool:
    """An edge that passes its source on unchanged (the encoder output O into the stream)."""
    w = edge.weight
    return (
        edge.kind == "conv"
        and w.shape[2:] == (1, 1)
        and w.shape[0] == w.shape[1]
        and edge.stride == 1
        and np.array_equal(w[:, :, 0, 0], np.eye(w.shape[0]))
    )


def layer_specs(graph: Graph, config: ModelConfig) -> list[LayerSpec]:
    """Stem conv (host, MAC) plus every body conv/fc layer (chip, AC), from a body graph.

    A layer is what the graph holds: a membrane shortcut appears as its composed edges
    (one layer per term of the stream it reads, FLOPs of the composed kernel); one that
    reads the encoder output has ``input`` = ``INPUT`` (its rate: the encoder's). The
    identity edges that carry O into the stream are no layer (no FLOPs)."""
    specs = [LayerSpec("encoder.conv", "host", "MAC", stem_flops(graph, config), None)]
    seen = set()
    for edge in graph.edges:
        if (edge.src == INPUT and is_identity(edge)) or edge.layer in seen:
            continue
        seen.add(edge.layer)
        src_shape = graph.shape_of(edge.src)
        if edge.kind == "conv":
            flops = edge_flops(graph, edge)
        else:
            # average pooling folded into the classifier: the ANN layer is C -> classes
            flops = int(graph.shape_of(edge.dst)[0] * src_shape[0])
        specs.append(LayerSpec(edge.layer, "chip", "AC", flops, edge.src))
    return specs


def stem_flops(graph: Graph, config: ModelConfig) -> int:
    c, h, w = graph.input_shape
    return config.stem_kernel**2 * config.in_channels * c * h * w


def edge_flops(graph: Graph, edge: Edge) -> int:
    """Dense-equivalent MACs of one edge per step (every synapse used once)."""
    if edge.kind == "conv":
        _, h, w = graph.shape_of(edge.dst)
        return int(np.prod(edge.weight.shape)) * h * w
    return int(edge.weight.size)

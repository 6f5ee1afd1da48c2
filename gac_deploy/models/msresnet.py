"""GAC-MS-ResNet: the GAC encoder (host) followed by a membrane-shortcut ResNet body (chip).

Read top to bottom: ``ConvBN`` -> ``MSBlock`` -> ``GACMSResNet``. Body tensors
are [T, N, C, H, W] (time first); a conv runs on the merged [T*N, C, H, W]
batch, so BatchNorm normalises over batch and time together (tdBN).

Shortcuts are spike-driven by default: a downsampling block's 1x1 conv reads the
block's own LIF spikes (the spikes its first conv reads), so every body conv sees
binary spikes. With ``shortcut="membrane"`` (the authors' code) the 1x1 conv reads
the real-valued stream; being linear, it is exported as one composed edge per term
of that stream (``compose_shortcut``), so the chip still only accumulates. Each
block knows how to describe itself as graph edges (``export_graph``), as lava-dl's
blocks know how to export themselves.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from gac_deploy.body.graph import (
    INPUT,
    Edge,
    Graph,
    Population,
    conv_output_shape,
)
from gac_deploy.config import LIFConfig, ModelConfig
from gac_deploy.errors import UserError
from gac_deploy.models.encoder import ENCODER_LIF, build_encoder, host_name
from gac_deploy.models.lif import LIF

INPUT_LAYER = "input"
"""The identity edge that carries the encoder's output O into the body."""
HEAD_LIF = "head.lif"
HEAD_FC = "head.fc"
"""The classifier: global average pooling folded into a dense layer to the read-out."""
READOUT = "readout"


@dataclass(frozen=True)
class BlockNames:
    """The graph names inside one body block: two LIF populations and up to three conv
    layers, each ``block{i}.{field}`` with i counted from 1 as the graph does."""

    lif1: str
    conv1: str
    lif2: str
    conv2: str
    downsample: str

    @classmethod
    def of(cls, index: int) -> BlockNames:
        return cls(**{part.name: f"block{index}.{part.name}" for part in fields(cls)})

    def shortcut_term(self, term_layer: str) -> str:
        """The layer name of this block's membrane downsample composed with one stream
        term: ``block{i}.downsample@{term}`` (e.g. ``block4.downsample@block3.conv2``;
        nested for terms that are composed already)."""
        return f"{self.downsample}{COMPOSED}{term_layer}"


COMPOSED = "@"
"""Joins a membrane downsample's layer name to the stream term it is composed with."""


def composed_parts(layer: str) -> tuple[str, str] | None:
    """``block4.downsample@block1.downsample@input`` -> (``block4.downsample``, its term
    ``block1.downsample@input``); None for a layer that is not composed."""
    if COMPOSED not in layer:
        return None
    downsample, term = layer.split(COMPOSED, 1)
    return downsample, term


def carries_downsample_bias(layer: str) -> bool:
    """True for the composed edge that holds its downsample's own (folded BN) bias: the
    one composed with the stream's first term, which is always the encoder output O
    (itself, or composed with earlier downsamples)."""
    parts = composed_parts(layer)
    return parts is not None and (
        parts[1] == INPUT_LAYER or parts[1].endswith(COMPOSED + INPUT_LAYER)
    )


def reads_membrane(config: ModelConfig, layer: str) -> bool:
    """True for a layer of the PyTorch model that reads the real-valued stream (a MAC
    layer there): the downsample convs of a membrane-shortcut model. The exported graph
    has no such layer: it holds the composed edges of :func:`compose_shortcut`."""
    return config.shortcut == "membrane" and layer.endswith(".downsample")


def compose_weights(downsample, term):
    """The 1x1 downsample D [C_out, C_in, 1, 1] after the conv W [C_in, C_src, k, k]: one
    k x k kernel sum_m D[o, m] W[m, i] [C_out, C_src, k, k]. numpy arrays or torch tensors
    (quantisation-aware training composes its trainable weights with this)."""
    einsum = torch.einsum if isinstance(term, torch.Tensor) else np.einsum
    return einsum("om,mikl->oikl", downsample[:, :, 0, 0], term)


def compose_shortcut(layer: str, downsample: Edge, term: Edge) -> Edge:
    """One stream term followed by the 1x1 downsample, as one edge from the term's source.

    ``downsample``: weight D [C_out, C_in, 1, 1], stride s, padding 0, bias d (BN folded).
    ``term``: weight W [C_in, C_src, k, k], stride s1, padding p1, bias b (or None).
    Output pixel y of D reads pixel s*y of W's output, which reads source pixels
    s1*s*y - p1 + [0, k): so D after W is one conv with weight sum_m D[o, m] W[m, i]
    (same k x k kernel), stride s1*s, padding p1 and bias D b. The downsample's own
    bias d is not added here (the caller adds it once). Sizes: with a = H + 2 p1 - k,
    floor(floor(a / s1) / s) = floor(a / (s1 s)), checked below on the shapes.
    """
    d = downsample.weight
    if d.shape[2:] != (1, 1) or downsample.padding != 0 or term.kind != "conv":
        raise ValueError(f"{layer}: only a 1x1, unpadded downsample of a conv term composes")
    if term.weight.shape[0] != d.shape[1]:
        raise ValueError(
            f"{layer}: {term.layer} gives {term.weight.shape[0]} channels, "
            f"the downsample reads {d.shape[1]}"
        )
    weight = compose_weights(d, term.weight)
    bias = None if term.bias is None else d[:, :, 0, 0] @ term.bias
    return Edge(
        layer, term.src, "", "conv", weight, term.stride * downsample.stride, term.padding, bias
    )


def _check_composed_size(graph: Graph, composed: Edge, downsample: Edge, term: Edge) -> None:
    """The composed conv's output size must equal the two-step size (conv W, then D)."""
    src = graph.shape_of(term.src)
    two_step = conv_output_shape(
        conv_output_shape(src, term.weight, term.stride, term.padding),
        downsample.weight,
        downsample.stride,
        downsample.padding,
    )
    one_step = conv_output_shape(src, composed.weight, composed.stride, composed.padding)
    if one_step != two_step:
        raise UserError(
            f"{composed.layer}: the composed shortcut gives {one_step} but the downsample "
            f"after {term.layer} gives {two_step}; this shortcut cannot be exported"
        )


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Fold eval-mode BatchNorm into a bias-free conv: returns (weight, bias) as float64."""
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.detach().double() * scale[:, None, None, None]
    bias = bn.bias.detach().double() - bn.running_mean.double() * scale
    return weight.numpy(), bias.numpy()


PACK_SPIKES = True
"""Store conv inputs that are spikes as bytes for the backward pass (False: as they are)."""


def _binary_as_bytes(spikes: torch.Tensor):
    """saved-tensor hooks that store ``spikes`` (0/1 values) as uint8 and restore them."""

    def pack(tensor: torch.Tensor):
        if tensor is spikes or (
            tensor.data_ptr() == spikes.data_ptr() and tensor.shape == spikes.shape
        ):
            return ("spikes", tensor.to(torch.uint8), tensor.dtype)
        return tensor

    def unpack(packed):
        if isinstance(packed, tuple):
            return packed[1].to(packed[2])
        return packed

    return pack, unpack


class ConvBN(nn.Module):
    """Bias-free conv + BatchNorm over [T, N, C, H, W]."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, binary: bool = True) -> torch.Tensor:
        """``x`` [T, N, C, H, W]. ``binary``: x holds spikes (exactly 0 or 1), which the conv
        then keeps for its backward in one byte each instead of four."""
        flat = x.flatten(0, 1)
        hooks = _binary_as_bytes(flat) if binary and PACK_SPIKES else None
        with torch.autograd.graph.saved_tensors_hooks(*hooks) if hooks else nullcontext():
            y = self.conv(flat)
        y = self.bn(y)
        return y.view(x.shape[0], x.shape[1], *y.shape[1:])

    def stream_term(self, layer: str, src: str) -> Edge:
        weight, bias = fold_batchnorm(self.conv, self.bn)
        return Edge(layer, src, "", "conv", weight, self.conv.stride[0], self.conv.padding[0], bias)


class MSBlock(nn.Module):
    """Membrane-shortcut block: stream x -> LIF -> conv1 -> LIF -> conv2, plus shortcut.

    The shortcut is x itself, or (when the shape changes) a 1x1 conv+BN of the
    first LIF's spikes (``shortcut="spike"``) or of x itself (``"membrane"``,
    the authors' code; a MAC layer in PyTorch, composed edges in the graph).
    Input and output are the real-valued stream [T, N, C, H, W].
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, lif: LIFConfig, shortcut: str = "spike"
    ) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.lif1 = LIF(lif)
        self.conv1 = ConvBN(c_in, c_out, 3, stride)
        self.lif2 = LIF(lif)
        self.conv2 = ConvBN(c_out, c_out, 3, 1)
        self.downsample = ConvBN(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lif1(x)
        out = self.conv2(self.lif2(self.conv1(a)))
        if self.downsample is None:
            return out + x
        if self.shortcut == "spike":
            return out + self.downsample(a)
        return out + self.downsample(x, binary=False)  # the real-valued stream

    def export_graph(
        self, graph: Graph, names: BlockNames, stream: list[Edge], lif: LIFConfig
    ) -> list[Edge]:
        """Add this block's two populations; return the stream that leaves the block."""
        pop1 = _add_population(graph, names.lif1, stream, lif)
        mid = self.conv1.stream_term(names.conv1, pop1)
        pop2 = _add_population(graph, names.lif2, [mid], lif)
        out = self.conv2.stream_term(names.conv2, pop2)
        if self.downsample is None:
            return [*stream, out]
        if self.shortcut == "spike":
            return [self.downsample.stream_term(names.downsample, pop1), out]
        # membrane: D(sum of terms) + d = sum of D(term) + d, each D(term) an edge from the
        # term's own source; d rides on the term composed with the encoder output
        down = self.downsample.stream_term(names.downsample, "")
        shortcut = []
        for term in stream:
            composed = compose_shortcut(names.shortcut_term(term.layer), down, term)
            _check_composed_size(graph, composed, down, term)
            if carries_downsample_bias(composed.layer):
                composed.bias = down.bias if composed.bias is None else composed.bias + down.bias
            shortcut.append(composed)
        return [*shortcut, out]


def _add_population(graph: Graph, name: str, stream: list[Edge], lif: LIFConfig) -> str:
    edges = [term.into(name) for term in stream]
    first = edges[0]
    shape = conv_output_shape(graph.shape_of(first.src), first.weight, first.stride, first.padding)
    graph.populations.append(
        Population(name, shape, "lif", lif.threshold, 1.0 - lif.tau, np.zeros(shape[0]))
    )
    graph.edges.extend(edges)
    return name


class GACMSResNet(nn.Module):
    """Image [N, C_in, H, W] -> class scores [N, classes], the mean over T steps (Eq. 6)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        blocks = []
        c_in = config.stem_channels
        for stage in config.stages:
            for i in range(stage.blocks):
                stride = stage.stride if i == 0 else 1
                blocks.append(MSBlock(c_in, stage.channels, stride, config.lif, config.shortcut))
                c_in = stage.channels
        self.blocks = nn.ModuleList(blocks)
        self.head_lif = LIF(config.lif)
        self.fc = nn.Linear(c_in, config.num_classes)

    def body(self, stream: torch.Tensor) -> torch.Tensor:
        """Encoder output O [T, N, C, H, W] -> per-step scores [T, N, classes]."""
        for block in self.blocks:
            stream = block(stream)
        spikes = self.head_lif(stream)
        return self.fc(spikes.mean(dim=(3, 4)))

    def forward_steps(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(self.encoder(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_steps(image).mean(dim=0)

    def named_blocks(self) -> list[tuple[BlockNames, MSBlock]]:
        """The body blocks with their graph names, in order."""
        return [(BlockNames.of(i), block) for i, block in enumerate(self.blocks, start=1)]

    def populations(self) -> dict[str, LIF]:
        """The LIF populations by graph name (the encoder's LIF is ``ENCODER_LIF``)."""
        pops = {ENCODER_LIF: self.encoder.lif} if hasattr(self.encoder, "lif") else {}
        for names, block in self.named_blocks():
            pops[names.lif1] = block.lif1
            pops[names.lif2] = block.lif2
        pops[HEAD_LIF] = self.head_lif
        return pops

    def body_layers(self) -> dict[str, ConvBN | nn.Linear]:
        """The body's conv/linear layers by graph layer name (the classifier last)."""
        layers: dict[str, ConvBN | nn.Linear] = {}
        for names, block in self.named_blocks():
            layers[names.conv1] = block.conv1
            if block.downsample is not None:
                layers[names.downsample] = block.downsample
            layers[names.conv2] = block.conv2
        layers[HEAD_FC] = self.fc
        return layers

    def layer_ops(self) -> dict[str, str]:
        """Every conv/linear layer and what it does per input: "MAC" (reads real values)
        or "AC" (reads binary spikes, so each synaptic event is an addition)."""
        ops = {
            host_name(name): "MAC"
            for name, m in self.encoder.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        }
        for name in self.body_layers():
            ops[name] = "MAC" if reads_membrane(self.config, name) else "AC"
        return ops

    def encoder_output_shape(self) -> tuple[int, int, int]:
        c = self.config
        size = (c.image_size + 2 * (c.stem_kernel // 2) - c.stem_kernel) // c.stem_stride + 1
        return (c.stem_channels, size, size)

    def export_graph(self) -> Graph:
        """The body as a float graph (BatchNorm folded; eval-mode statistics). A membrane
        shortcut becomes composed edges, one per term of the stream it reads."""
        shape = self.encoder_output_shape()
        graph = Graph(
            input_shape=shape,
            time_steps=self.config.time_steps,
            signed_input=self.encoder.signed_output,
        )
        identity = np.eye(shape[0])[:, :, None, None]
        stream = [Edge(INPUT_LAYER, INPUT, "", "conv", identity)]
        for names, block in self.named_blocks():
            stream = block.export_graph(graph, names, stream, self.config.lif)
        head = _add_population(graph, HEAD_LIF, stream, self.config.lif)
        c, h, w = graph.shape_of(head)
        # Global average pooling folded into the classifier: each spatial position
        # of channel c reaches class k with weight fc[k, c] / (H * W).
        fc = self.fc.weight.detach().double().numpy()
        dense = np.repeat(fc[:, :, None], h * w, axis=2).reshape(fc.shape[0], c * h * w) / (h * w)
        classes = self.config.num_classes
        graph.populations.append(
            Population(READOUT, (classes,), "readout", float("inf"), 0.0, np.zeros(classes))
        )
        graph.edges.append(
            Edge(
                HEAD_FC,
                head,
                READOUT,
                "dense",
                dense,
                bias=self.fc.bias.detach().double().numpy(),
            )
        )
        return graph

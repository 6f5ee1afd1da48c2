"""The body as a small typed graph: LIF populations (nodes) and synapses (edges).

The MS-ResNet body is not a chain: each block's first LIF reads a residual
stream that sums the encoder output and the outputs of earlier blocks. Here
every population lists all its incoming edges, and a population with several
edges sums them, as a Loihi compartment sums its synaptic inputs.

Units: in a float graph (``payload_bits == 0``) weights, biases and thresholds
are in the trained model's units. In a quantised graph they are Loihi integers
(weights as the integers the synapses apply, an 8-bit mantissa x 2 shifted left by
the edge's ``weight_exp``; thresholds as vThMant, decays out of 4096).
Layouts: conv weights [out, in, kH, kW] (PyTorch), dense weights [out, in] with
``in`` flattened in (C, H, W) order; population shapes (C, H, W) or (N,).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gac_deploy.body.formats import payload_range

INPUT = "input"
"""Source name of edges that read the host encoder's output O (graded spikes)."""


@dataclass
class Population:
    """A group of neurons that share threshold and decay.

    ``role`` is ``"lif"`` (spiking CUBA neurons) or ``"readout"`` (non-spiking;
    the voltage accumulated over T is the class score). ``voltage_decay`` is the
    fraction lost per step (1 - tau). ``bias`` is per channel [C] (or [N]).
    ``scale_exp`` (quantised graphs only): the population's integer unit is
    2**-scale_exp model units.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    threshold: float
    voltage_decay: float
    bias: np.ndarray
    scale_exp: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Edge:
    """Synapses from ``src`` (a population or ``INPUT``) into population ``dst``.

    ``layer`` names the model layer the weights come from (one layer can feed
    several populations through the residual stream). ``bias`` is the folded
    BatchNorm shift per output channel, float graphs only (quantisation moves it
    into the destination's neuron bias). ``delay`` is the number of extra steps
    the spikes wait before they arrive (set by delay balancing). ``weight_exp``
    (quantised graphs): the synapses' weight exponent x, so ``weight`` holds
    mantissa << x and :attr:`mantissa` the 8-bit mantissas the chip stores. While a
    model builds its graph, a residual-stream term is an Edge whose ``dst`` is not set
    yet (``into`` attaches it).
    """

    layer: str
    src: str
    dst: str
    kind: str
    weight: np.ndarray
    stride: int = 1
    padding: int = 0
    bias: np.ndarray | None = None
    delay: int = 0
    weight_exp: int = 0

    @property
    def name(self) -> str:
        return f"{self.layer}->{self.dst}"

    @property
    def mantissa(self) -> np.ndarray:
        """The stored mantissas of a quantised edge: ``weight`` >> ``weight_exp`` (int64)."""
        return np.asarray(self.weight, dtype=np.int64) >> self.weight_exp

    def into(self, dst: str) -> Edge:
        return replace(self, dst=dst)


@dataclass
class Graph:
    """Populations in topological order, edges, and what the input carries.

    ``signed_input``: the host sends signed real values (direct and rate coding) instead
    of O in [0, 1) (GAC and LIF coding); ``payload_bits``: the graded payload's
    fractional bits (quantised graphs; 0 in a float graph). ``window``: the steps W >= T
    the chip spends on one image (0 when built: T); the host sends input in the first T
    (:mod:`gac_deploy.body.timing`)."""

    input_shape: tuple[int, int, int]
    time_steps: int
    populations: list[Population] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    payload_bits: int = 0
    signed_input: bool = False
    window: int = 0

    def __post_init__(self) -> None:
        if self.window == 0:
            self.window = self.time_steps

    @property
    def quantized(self) -> bool:
        return self.payload_bits > 0

    @property
    def payload_range(self) -> tuple[int, int]:
        """The integers the host's graded payload can take (quantised graphs)."""
        return payload_range(self.payload_bits, self.signed_input)

    def population(self, name: str) -> Population:
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise KeyError(name)

    def incoming(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == name]

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.input_shape if name == INPUT else self.population(name).shape

    @property
    def readout(self) -> Population:
        return next(p for p in self.populations if p.role == "readout")

    def with_delays(self, delays: dict[str, int]) -> Graph:
        """A copy whose edges carry the given delays (keyed by edge name)."""
        edges = [replace(e, delay=delays[e.name]) for e in self.edges]
        return replace(self, edges=edges)


def conv_output_shape(
    in_shape: tuple[int, ...], weight: np.ndarray, stride: int, padding: int
) -> tuple[int, int, int]:
    """(C_out, H_out, W_out) of a conv with square kernel, stride and symmetric padding."""
    _, h, w = in_shape
    k_h, k_w = weight.shape[2:]
    return (
        weight.shape[0],
        (h + 2 * padding - k_h) // stride + 1,
        (w + 2 * padding - k_w) // stride + 1,
    )


def check_graph(graph: Graph) -> None:
    """Raise ValueError if the graph is not a consistent DAG in topological order."""
    seen = {INPUT}
    for pop in graph.populations:
        edges = graph.incoming(pop.name)
        if not edges:
            raise ValueError(f"population {pop.name} has no incoming edge")
        for edge in edges:
            if edge.src not in seen:
                raise ValueError(f"edge {edge.name} reads {edge.src}, which comes later")
            src_shape = graph.shape_of(edge.src)
            if edge.kind == "conv":
                out = conv_output_shape(src_shape, edge.weight, edge.stride, edge.padding)
            else:
                out = (edge.weight.shape[0],)
                if edge.weight.shape[1] != int(np.prod(src_shape)):
                    raise ValueError(f"edge {edge.name} expects {edge.weight.shape[1]} inputs")
            if tuple(out) != tuple(pop.shape):
                raise ValueError(f"edge {edge.name} produces {out}, population is {pop.shape}")
        seen.add(pop.name)

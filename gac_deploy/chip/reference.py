"""Layer-synchronous PyTorch runs of a body graph: what the chip must reproduce.

* ``run_float_graph``: the float graph with the trained LIF (checks the export).
* ``run_quantized_graph``: the integer graph, each population's dynamics run by
  lava-dl's own CUBA neuron (slayer) in Loihi fixed point, its synaptic input by plain
  dense torch convolutions (float32 where that is exact). This is the quantised
  reference that Lava's simulation and the emulator are compared against, spike for
  spike.

All signals are [T, N, ...] (time first). In the quantised run the read-out is
Lava's own voltage integer (a_in units << 6), so it can be compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gac_deploy.body.formats import ACTIVATION_SCALE
from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.body.quantize import max_synaptic_input
from gac_deploy.body.synapses import FLOAT32_EXACT, channel_bias, edge_current
from gac_deploy.body.timing import pad_to_window
from gac_deploy.config import LIFConfig
from gac_deploy.models.lif import lif_forward
from gac_deploy.neurons import body_neuron


@dataclass
class GraphRun:
    """Per-step spikes of every spiking population and the read-out voltage."""

    spikes: dict[str, torch.Tensor]
    readout: torch.Tensor

    @property
    def scores(self) -> torch.Tensor:
        """Read-out voltage after the last step [N, classes]."""
        return self.readout[-1]

    @property
    def predictions(self) -> torch.Tensor:
        return self.scores.argmax(dim=1)


def _edge_weight(graph: Graph, edge: Edge) -> torch.Tensor:
    """An edge's weights for :func:`edge_current`: float64, or float32 for a quantised
    graph's edge whose every partial sum stays below 2**24 (exact there, and faster)."""
    exact32 = graph.quantized and (
        max_synaptic_input(edge, graph.payload_bits, graph.signed_input) < FLOAT32_EXACT
    )
    return torch.as_tensor(edge.weight, dtype=torch.float32 if exact32 else torch.float64)


def _synaptic_input(graph: Graph, name: str, signals: dict[str, torch.Tensor]) -> torch.Tensor:
    """A population's summed synaptic input [T, N, *shape], in float64 (exact for a
    quantised graph)."""
    total = None
    for edge in graph.incoming(name):
        current = edge_current(edge, signals[edge.src], _edge_weight(graph, edge)).double()
        total = current if total is None else total + current
    return total


def run_float_graph(graph: Graph, encoded: torch.Tensor) -> GraphRun:
    """Run a float graph on encoder output O [T, N, C, H, W]."""
    signals = {INPUT: encoded}
    readout = None
    for pop in graph.populations:
        current = _synaptic_input(graph, pop.name, signals)
        for edge in graph.incoming(pop.name):
            if edge.bias is not None:
                current = current + channel_bias(edge.bias, pop.shape, torch.float64)
        current = current + channel_bias(pop.bias, pop.shape, torch.float64)
        if pop.role == "readout":
            readout = torch.cumsum(current, dim=0)
        else:
            lif = LIFConfig(threshold=pop.threshold, tau=1.0 - pop.voltage_decay)
            signals[pop.name] = lif_forward(current, lif)
    spikes = {k: v for k, v in signals.items() if k != INPUT}
    return GraphRun(spikes, readout)


def run_quantized_graph(graph: Graph, payload: torch.Tensor) -> GraphRun:
    """Run an integer graph on graded payload integers [T, N, C, H, W] with slayer CUBA neurons.

    The graph runs its whole presentation window (W steps, the payload padded with
    zeros): spikes are [W, N, ...]. The read-out is Lava's integer voltage (a_in << 6
    units) at each of the first T steps, [T, N, classes], where it is read.
    """
    if not graph.quantized:
        raise ValueError("run_quantized_graph needs a quantised graph")
    signals = {INPUT: pad_to_window(payload, graph.window)}
    readout = None
    with torch.no_grad():
        for pop in graph.populations:
            bias = channel_bias(pop.bias, pop.shape, torch.float64)
            a_in = _synaptic_input(graph, pop.name, signals) + bias
            neuron = body_neuron().integer_neuron(int(pop.threshold), int(pop.voltage_decay))
            x = (a_in / ACTIVATION_SCALE).to(torch.float32).movedim(0, -1)  # [N, ..., T]
            if pop.role == "readout":
                _, voltage = neuron.dynamics(x)
                readout = torch.round(voltage.double() * neuron.s_scale).movedim(-1, 0)
                readout = readout[: graph.time_steps]
            else:
                signals[pop.name] = neuron(x).movedim(-1, 0)
    spikes = {k: v for k, v in signals.items() if k != INPUT}
    return GraphRun(spikes, readout)

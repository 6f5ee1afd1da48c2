"""Energy per inference, layer by layer, in two conventions. Pure functions.

``paper`` is exactly Eq. 11:

    E = E_MAC * FL_conv1 + E_AC * T * (sum_n FL_conv^n * fr^n + sum_m FL_fc^m * fr^m)

FL is a layer's FLOPs counted as in an ANN (multiply-accumulates); fr the Eq. 12
firing rate of the layer's INPUT spikes (spikes / (neurons x T)). The stem conv
counts once at MAC price; body convs and the classifier at AC price; nothing else.

``complete`` counts everything that runs, per inference:
* host: the stem conv (once: the input is static), the encoder LIF's updates, the
  temporal attention (pooling and its tiny MLP), the spatial-channel attention (two
  KxK convs, once per image thanks to static-input factoring; ``naive_ops`` gives
  the per-step form's count), the sigmoid and the two gating products;
* chip: every synaptic event (each nonzero input times the synapses it reaches,
  borders included: exact when counted from spikes), including the graded adds of
  O into the body; every neuron update (each neuron, each step, read-out too); and
  every spike sent.

A membrane shortcut (the authors' 1x1 downsample of the real-valued stream, a MAC layer
in PyTorch: ``GACMSResNet.layer_ops``) is exported as composed edges, one from each
source of the stream it reads (``models.msresnet.compose_shortcut``). Both conventions
count them as the chip runs them: AC layers (graded AC from O) with their composed
kernels' FLOPs and their sources' rates; ``complete`` with exact events.

A profile is a named set of per-operation energies with its source
(:mod:`gac_deploy.registries.profiles`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gac_deploy.body.graph import INPUT, Graph
from gac_deploy.body.ops import LayerSpec, edge_flops
from gac_deploy.config import ModelConfig
from gac_deploy.models.encoder import HostOp, encoder_class
from gac_deploy.models.msresnet import ENCODER_LIF
from gac_deploy.registries.profiles import PAPER_PROFILE, EnergyProfile


@dataclass(frozen=True)
class LayerEnergy:
    """One row of a report: ``ops`` operations of kind ``op`` per inference."""

    name: str
    placement: str
    op: str
    flops: int | None
    firing_rate: float | None
    ops: float
    energy_pj: float
    naive_ops: float | None = None


@dataclass
class Activity:
    """What one inference does, averaged over the images measured.

    ``time_steps``: the steps one inference runs, those priced: on the chip the whole
    presentation window W, i.e. T plus ``padding_steps`` steps without input that the
    chip still runs (:mod:`gac_deploy.body.timing`). ``rates``: Eq. 12 firing rate per
    population over those steps (``encoder.lif`` included where the encoder spikes).
    ``events``: synaptic events per edge name; ``exact`` when they were counted from
    spikes, else estimated as FLOPs x input rate x T.
    """

    time_steps: int
    rates: dict[str, float]
    events: dict[str, float]
    exact: bool
    source: str
    accuracy: float | None = None
    padding_steps: int = 0


def paper_energy(
    specs: list[LayerSpec],
    firing_rates: dict[str, float],
    time_steps: int,
    profile: EnergyProfile = PAPER_PROFILE,
) -> list[LayerEnergy]:
    """Eq. 11 per layer. ``firing_rates``: population name -> Eq. 12 rate."""
    rows = []
    for spec in specs:
        if spec.op == "MAC":
            rate, ops, price = None, float(spec.flops), profile.mac
        else:
            rate = input_rate(firing_rates, spec.input)
            ops, price = spec.flops * rate * time_steps, profile.synop
        rows.append(
            LayerEnergy(spec.name, spec.placement, spec.op, spec.flops, rate, ops, ops * price)
        )
    return rows


def input_rate(rates: dict[str, float], src: str) -> float:
    """The Eq. 12 rate of what an edge from ``src`` reads: a population's own, or for the
    encoder output O the encoder LIF's (1.0 where the encoder does not spike: O is dense)."""
    return rates.get(ENCODER_LIF, 1.0) if src == INPUT else rates[src]


def estimated_events(graph: Graph, rates: dict[str, float], time_steps: int) -> dict[str, float]:
    """Synaptic events per edge if every input fires at its rate: FLOPs x rate x T."""
    return {
        e.name: edge_flops(graph, e) * input_rate(rates, e.src) * time_steps for e in graph.edges
    }


def encoder_ops(config: ModelConfig, graph: Graph) -> list[HostOp]:
    """Host operations of the encoder per inference, as its class reports them."""
    return encoder_class(config).host_ops(config, graph)


def complete_energy(
    config: ModelConfig, graph: Graph, activity: Activity, profile: EnergyProfile
) -> list[LayerEnergy]:
    """Everything that runs, per inference (see the module docstring)."""
    rows = []
    for name, op, count, naive in encoder_ops(config, graph):
        rate = activity.rates.get(name) if op == "host neuron update" else None
        rows.append(
            LayerEnergy(name, "host", op, None, rate, count, count * profile.price(op), naive)
        )
    t = activity.time_steps
    for edge in graph.edges:
        rate = activity.rates.get(ENCODER_LIF) if edge.src == INPUT else activity.rates[edge.src]
        op = "graded AC" if edge.src == INPUT else "AC"
        count = activity.events[edge.name]
        rows.append(
            LayerEnergy(
                edge.name,
                "chip",
                op,
                edge_flops(graph, edge),
                rate,
                count,
                count * profile.price(op),
            )
        )
    for pop in graph.populations:
        updates = float(pop.size * t)
        rows.append(
            LayerEnergy(
                f"{pop.name} (neurons)",
                "chip",
                "neuron update",
                None,
                None,
                updates,
                updates * profile.neuron,
            )
        )
        if pop.role == "lif":
            spikes = activity.rates[pop.name] * pop.size * t
            rows.append(
                LayerEnergy(
                    f"{pop.name} (spikes)",
                    "chip",
                    "spike",
                    None,
                    activity.rates[pop.name],
                    spikes,
                    spikes * profile.spike,
                )
            )
    return rows


def ann_energy(specs: list[LayerSpec], profile: EnergyProfile) -> float:
    """The ANN equivalent the paper compares with: every layer's FLOPs once, at MAC price."""
    return sum(spec.flops for spec in specs) * profile.mac

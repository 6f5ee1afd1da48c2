"""Per-layer energy by the paper's Eq. 11. Pure functions over layer specs and firing rates.

E = E_MAC * FL_conv1 + E_AC * T * (sum_n FL_conv^n * fr^n + sum_m FL_fc^m * fr^m)

FL is a layer's FLOPs counted as in an ANN (multiply-accumulates); fr is the
firing rate of the layer's INPUT spikes (Eq. 12: spikes / (neurons x T)). The
stem conv counts once, at MAC price; body convs and the classifier at AC price.
Nothing else is counted in this convention: not the GAU, not neuron updates, not
the identity route of O into the first block. Profile ``horowitz45-fp32``:
E_MAC 4.6 pJ, E_AC 0.9 pJ (45 nm, 32-bit float; Horowitz, ISSCC 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gac_deploy.config import ModelConfig
from gac_deploy.export.graph import INPUT, Graph


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    mac_pj: float
    ac_pj: float
    source: str


HOROWITZ45_FP32 = EnergyProfile(
    "horowitz45-fp32", 4.6, 0.9, "Horowitz, ISSCC 2014, 45 nm 32-bit float (paper Eq. 11)"
)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the network as Eq. 11 sees it.

    ``input`` is the population whose spikes the layer reads (None for the stem,
    which reads the image). ``flops``: ANN multiply-accumulates per time step.
    """

    name: str
    placement: str
    op: str
    flops: int
    input: str | None


@dataclass(frozen=True)
class LayerEnergy:
    name: str
    placement: str
    op: str
    flops: int
    firing_rate: float | None
    ops: float
    energy_pj: float


def layer_specs(graph: Graph, config: ModelConfig) -> list[LayerSpec]:
    """Stem conv (host, MAC) plus every body conv/fc layer (chip, AC), from a body graph."""
    c, h, w = graph.input_shape
    stem = config.stem_kernel**2 * config.in_channels * c * h * w
    specs = [LayerSpec("encoder.conv", "host", "MAC", stem, None)]
    seen = set()
    for edge in graph.edges:
        if edge.src == INPUT or edge.layer in seen:
            continue
        seen.add(edge.layer)
        src_shape = graph.shape_of(edge.src)
        dst_shape = graph.shape_of(edge.dst)
        if edge.kind == "conv":
            flops = int(np.prod(edge.weight.shape)) * dst_shape[1] * dst_shape[2]
        else:
            # average pooling folded into the classifier: the ANN layer is C -> classes
            flops = int(dst_shape[0] * src_shape[0])
        specs.append(LayerSpec(edge.layer, "chip", "AC", flops, edge.src))
    return specs


def paper_energy(
    specs: list[LayerSpec],
    firing_rates: dict[str, float],
    time_steps: int,
    profile: EnergyProfile = HOROWITZ45_FP32,
) -> list[LayerEnergy]:
    """Eq. 11 per layer. ``firing_rates``: population name -> Eq. 12 rate."""
    rows = []
    for spec in specs:
        if spec.op == "MAC":
            rate, ops, price = None, float(spec.flops), profile.mac_pj
        else:
            rate = firing_rates[spec.input]
            ops, price = spec.flops * rate * time_steps, profile.ac_pj
        rows.append(
            LayerEnergy(spec.name, spec.placement, spec.op, spec.flops, rate, ops, ops * price)
        )
    return rows


def firing_rate(spikes) -> float:
    """Eq. 12: spikes / (neurons x T) for spikes [T, N, ...], averaged over the N images."""
    t, n = spikes.shape[:2]
    neurons = int(np.prod(spikes.shape[2:]))
    return float(spikes.sum()) / (neurons * t * n)

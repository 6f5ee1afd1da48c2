"""Delay balancing: make every path through the body arrive in step. Pure functions.

On Loihi (and in Lava) each synaptic hop adds one time step: a spike sent at
step t reaches the next compartment at step t + 1. In the residual body a
population reads edges whose sources sit at different depths, so without
correction it would sum contributions from different reference time steps.

``balance_delays`` gives each population a latency (hops from the host input,
the longest path) and each edge the extra delay that makes it arrive exactly
then: delay = latency(dst) - latency(src) - 1. The chip then computes what the
layer-synchronous reference computes, shifted by the read-out's latency.

Presentation windows: each image occupies W >= T steps of a population's time (its
window, which starts at its latency); the first T carry the image, the W - T after
them carry no input but still run (biases drive neurons, spikes already on their way
arrive). The read-out is taken at the window's step T - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gac_deploy.body.graph import INPUT, Graph


@dataclass(frozen=True)
class Timing:
    """Latency of every population (hops after the host input) and delay of every edge."""

    latency: dict[str, int]
    delay: dict[str, int]

    @property
    def total_latency(self) -> int:
        """Hops from the host input to the deepest population (the read-out)."""
        return max(self.latency.values())


def balance_delays(graph: Graph) -> Timing:
    latency = {INPUT: 0}
    for pop in graph.populations:
        latency[pop.name] = max(latency[e.src] + 1 for e in graph.incoming(pop.name))
    delay = {e.name: latency[e.dst] - latency[e.src] - 1 for e in graph.edges}
    del latency[INPUT]
    return Timing(latency, delay)


MAX_WINDOW = 1024
"""The longest presentation window this package writes or runs (steps per image): far
beyond any T the paper uses, and short enough that a window's padding is no burden."""


def power_of_two_window(time_steps: int) -> int:
    """The presentation window W a bundle for the chip gets: the smallest power of two
    >= T (Loihi 2 resets neurons at power-of-two intervals; see
    :data:`gac_deploy.body.loihi2.HARDWARE`), e.g. 8 for T = 6, 4 for T = 4."""
    if time_steps < 1:
        raise ValueError(f"time_steps is {time_steps}, must be at least 1")
    return 1 << (time_steps - 1).bit_length()


def pad_to_window(payload: np.ndarray | torch.Tensor, window: int) -> np.ndarray | torch.Tensor:
    """Host payload [T, N, ...] (numpy or torch) -> [W, N, ...]: the T real steps, then
    W - T steps of zeros (the host sends nothing while the window runs out)."""
    steps = payload.shape[0]
    if steps > window:
        raise ValueError(f"a {steps}-step payload does not fit a {window}-step window")
    if steps == window:
        return payload
    pad_shape = (window - steps, *payload.shape[1:])
    if isinstance(payload, np.ndarray):
        return np.concatenate([payload, np.zeros(pad_shape, payload.dtype)])
    return torch.cat([payload, payload.new_zeros(pad_shape)])

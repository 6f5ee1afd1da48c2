"""Delay balancing: make every path through the body arrive in step. Pure functions.

On Loihi (and in Lava) each synaptic hop adds one time step: a spike sent at
step t reaches the next compartment at step t + 1. In the residual body a
population reads edges whose sources sit at different depths, so without
correction it would sum contributions from different reference time steps.

``balance_delays`` gives each population a latency (hops from the host input,
the longest path) and each edge the extra delay that makes it arrive exactly
then: delay = latency(dst) - latency(src) - 1. The chip then computes what the
layer-synchronous reference computes, shifted by the read-out's latency.
"""

from __future__ import annotations

from dataclasses import dataclass

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

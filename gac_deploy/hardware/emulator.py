"""A fast, bit-exact emulator of the exported body as Lava runs it.

Lava delivers a spike sent at step s to the next population at step s + 1 (+ the
edge's delay), and each population resets at the start of its own T-step window
(:mod:`gac_deploy.hardware.lava_runner`). With the delays that export balances,
step t of a population's window therefore reads step t of each source's window:
the emulator checks that and then runs each population over its whole window
at once, for a whole batch of images, in Loihi's integer arithmetic:

    u = a_in << 6                       (current decay 4096: nothing kept)
    v = sign(v) * (|v| * (4096 - dv) >> 12) + u + (bias << 6),   |v| < 2**23
    spike = v > vth << 6;  v = 0 where it spiked

All values are integers held in floating point where that is exact: synaptic
input is a convolution in float32 when its worst case stays below 2**24 (else
float64); the voltage is float64, where |v| (4096 - dv) < 2**35 and the shift
by 12 (a division by 4096, then truncation toward zero) are exact. Unlike the quantised
reference (lava-dl's CUBA neuron), this is a separate implementation of the
chip's arithmetic, checked against Lava spike for spike in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from gac_deploy.body.formats import ACTIVATION_SCALE, ACTIVATION_SHIFT, DECAY_UNITY, STATE_MAX
from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.body.quantize import max_synaptic_input
from gac_deploy.body.synapses import channel_bias, edge_current
from gac_deploy.body.timing import balance_delays

FLOAT32_EXACT = 1 << 24


@dataclass
class EmulatorRun:
    """Spikes [T, N, *shape] (uint8) per spiking population (its own window), the read-out
    voltage [T, N, classes] (Lava's integer), and exact synaptic events per edge, summed
    over images."""

    spikes: dict[str, torch.Tensor]
    readout: torch.Tensor
    synaptic_ops: dict[str, int]

    @property
    def predictions(self) -> torch.Tensor:
        return self.readout[-1].argmax(dim=1)


class _Synapses:
    """One edge, prepared once: weights in the float type that keeps its sums exact."""

    def __init__(
        self, edge: Edge, graph: Graph, in_hw: tuple[int, ...], out_hw: tuple[int, ...]
    ) -> None:
        self.edge = edge
        self.worst = max_synaptic_input(edge, graph.payload_bits, graph.signed_input)
        self.dtype = torch.float32 if self.worst < FLOAT32_EXACT else torch.float64
        self.weight = torch.as_tensor(edge.weight, dtype=self.dtype)
        if edge.kind == "conv":
            k = edge.weight.shape[2:]
            extra = [
                size - ((o - 1) * edge.stride - 2 * edge.padding + kk)
                for size, o, kk in zip(in_hw, out_hw, k, strict=True)
            ]
            # how many output neurons each input position reaches (borders included)
            self.reach = F.conv_transpose2d(
                torch.ones((1, 1, *out_hw), dtype=torch.float64),
                torch.ones((1, 1, *k), dtype=torch.float64),
                stride=edge.stride,
                padding=edge.padding,
                output_padding=tuple(extra),
            )[0, 0]

    def current(self, signal: torch.Tensor) -> torch.Tensor:
        """signal [T, N, ...] (integer values) -> synaptic input [T, N, *dst]."""
        return edge_current(self.edge, signal, self.weight)

    def events(self, per_position: torch.Tensor) -> int:
        """Every nonzero input times the synapses it reaches. ``per_position``: nonzero
        inputs per spatial position of the source (summed over steps, images, channels)."""
        fan_out = self.edge.weight.shape[0]
        if self.edge.kind == "conv":
            return int((per_position.double() @ self.reach.flatten()).item()) * fan_out
        return int(per_position.sum().item()) * fan_out


def active_per_position(signal: torch.Tensor) -> torch.Tensor:
    """Nonzero entries of [T, N, C, H, W] (or [T, N, F]) per position (H*W or F), int64."""
    active = signal if signal.dtype == torch.uint8 else signal.ne(0)
    width = signal.shape[-1] * signal.shape[-2] if signal.dim() == 5 else signal.shape[-1]
    return active.reshape(-1, width).sum(dim=0, dtype=torch.int64)


def prepare(graph: Graph) -> dict[str, _Synapses]:
    """Per-edge weights and reach maps, built once for many batches."""
    synapses = {}
    for edge in graph.edges:
        in_hw = tuple(graph.shape_of(edge.src)[1:])
        out_hw = tuple(graph.population(edge.dst).shape[1:])
        synapses[edge.name] = _Synapses(edge, graph, in_hw, out_hw)
    return synapses


def check_balanced(graph: Graph) -> None:
    """Raise ValueError unless every edge arrives exactly at its population's latency."""
    timing = balance_delays(graph)
    for edge in graph.edges:
        if edge.delay != timing.delay[edge.name]:
            raise ValueError(
                f"edge {edge.name} has delay {edge.delay}, the balanced "
                f"schedule needs {timing.delay[edge.name]}"
            )


def _worst_drive(graph: Graph, name: str, synapses: dict) -> float:
    """Largest |a_in + bias| << 6 the population can receive, from its weights alone."""
    worst = sum(synapses[e.name].worst for e in graph.incoming(name))
    return (worst + float(np.abs(graph.population(name).bias).max(initial=0))) * ACTIVATION_SCALE


def _state_dtype(keep: float, worst_drive: float) -> torch.dtype:
    """float32 when every value of the population is an exact float32 integer: the
    decay factor keep = (4096 - dv) / 4096 is a power of two (or 0), so v * keep
    only shifts, and the worst-case input a_in << 6 stays below 2**24."""
    power_of_two = keep == 0 or math.frexp(keep)[0] == 0.5
    return torch.float32 if power_of_two and worst_drive < FLOAT32_EXACT else torch.float64


def _decay(v: torch.Tensor, kept: int) -> torch.Tensor:
    """sign(v) * (|v| * kept >> 12): one exact division when kept divides 4096."""
    if DECAY_UNITY % kept == 0:
        return torch.div(v, DECAY_UNITY // kept, rounding_mode="trunc")
    return torch.div(v * kept, DECAY_UNITY, rounding_mode="trunc")


def _accumulate(drive: torch.Tensor) -> torch.Tensor:
    """A non-leaky read-out (dv = 0): v[t] = sum of drive up to t, saturating at 24 bits."""
    v = torch.cumsum(drive.to(torch.float64), dim=0)
    if v.abs().max() > STATE_MAX:  # saturation is sequential: replay step by step
        state = torch.zeros_like(v[0])
        for t in range(len(v)):
            state = (state + drive[t]).clamp(-STATE_MAX, STATE_MAX)
            v[t] = state
    return v.to(torch.int64)


def emulate(graph: Graph, payload: torch.Tensor, synapses: dict | None = None) -> EmulatorRun:
    """Emulate the body on graded payload integers [T, N, C, H, W]."""
    if not graph.quantized:
        raise ValueError("the emulator runs quantised graphs only")
    check_balanced(graph)
    synapses = synapses or prepare(graph)
    signals: dict[str, torch.Tensor] = {INPUT: payload.to(torch.float32)}
    ops = {}
    readout = None
    positions: dict[str, torch.Tensor] = {}  # per source, shared by all its edges
    for pop in graph.populations:
        a_in = None
        for edge in graph.incoming(pop.name):
            syn = synapses[edge.name]
            source = signals[edge.src]
            current = syn.current(source)
            a_in = current if a_in is None else a_in + current
            if edge.src not in positions:
                positions[edge.src] = active_per_position(source)
            ops[edge.name] = syn.events(positions[edge.src])
        kept = DECAY_UNITY - int(pop.voltage_decay)  # v keeps kept/4096 per step, toward 0
        keep = kept / DECAY_UNITY
        worst_drive = _worst_drive(graph, pop.name, synapses)
        dtype = _state_dtype(keep, worst_drive)
        bias = channel_bias(pop.bias, pop.shape, dtype)
        drive = (a_in.to(dtype) + bias) * ACTIVATION_SCALE  # << 6
        if pop.role == "readout" and keep == 1.0:
            readout = _accumulate(drive)
            continue
        threshold = float(int(pop.threshold) << ACTIVATION_SHIFT)
        # |v| <= max|drive| / (1 - keep): clamping to the 24-bit state can only matter beyond
        clamp = keep >= 1 or worst_drive / (1 - keep) > STATE_MAX
        v = torch.zeros_like(drive[0])
        out = []
        for t in range(drive.shape[0]):
            v = _decay(v, kept).add_(drive[t]) if kept else drive[t].clone()
            if clamp:
                v.clamp_(-STATE_MAX, STATE_MAX)
            spikes = v > threshold
            out.append(v.clone() if pop.role == "readout" else spikes)
            v.masked_fill_(spikes, 0.0)
        if pop.role == "readout":
            readout = torch.stack(out).to(torch.int64)
        else:
            signals[pop.name] = torch.stack(out).to(torch.uint8)  # 1 byte per spike
    spikes = {k: v for k, v in signals.items() if k != INPUT}
    return EmulatorRun(spikes, readout, ops)

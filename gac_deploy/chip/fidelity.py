"""How far the chip's fixed-point body departs from the float body, population by population.

Both bodies run on the same images: the float graph layer-synchronously on the encoder's
output O (in float32, as the trained model runs), the quantised graph in the emulator
(spike-exact with the quantised reference and Lava; each population's spikes in its own
window) on the graded payload the host sends. For each population:

* ``current_error``: RMS over neuron-steps of (chip current - float current) divided by
  the RMS of the float current. Both are fed the *float* run's input spikes (and O or
  its payload), so this is the error the population's own rounding adds (weights at its
  exponent, the payload, the bias), not what earlier layers passed on. The chip's
  current is its integer input (plus bias) times 2**-k, k the population's exponent.
* ``spike_mismatch``: the fraction of neuron-steps whose spike differs between the two
  free runs: what the errors of this and every earlier population have grown to here.
* firing rates of both runs.

Accuracy is the mean over T of the read-out (float) and the read-out voltage after T
steps (chip), as the model and ``simulate`` score. Signals are [T, N, ...], time first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gac_deploy.body.graph import INPUT, Graph
from gac_deploy.body.synapses import channel_bias, edge_current
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.chip.emulator import emulate, payload_tensor, prepare
from gac_deploy.config import LIFConfig
from gac_deploy.data import load_split
from gac_deploy.export.loading import Bundle
from gac_deploy.models.lif import lif_forward


@dataclass(frozen=True)
class PopulationFidelity:
    """One population's departure from float (see the module docstring)."""

    population: str
    scale_exp: int
    current_error: float
    spike_mismatch: float | None  # None for the read-out, which does not spike
    float_rate: float | None
    chip_rate: float | None


@dataclass(frozen=True)
class Fidelity:
    """Float against chip on ``samples`` test images."""

    samples: int
    float_accuracy: float
    chip_accuracy: float
    populations: list[PopulationFidelity]

    @property
    def cost_points(self) -> float:
        """Accuracy lost on the chip, in percentage points (negative: the chip gained)."""
        return 100.0 * (self.float_accuracy - self.chip_accuracy)

    def worst(self, count: int = 3) -> list[PopulationFidelity]:
        """The spiking populations whose spikes depart most from float, worst first."""
        spiking = [p for p in self.populations if p.spike_mismatch is not None]
        return sorted(spiking, key=lambda p: -p.spike_mismatch)[:count]

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "float_accuracy": self.float_accuracy,
            "chip_accuracy": self.chip_accuracy,
            "cost_points": self.cost_points,
            "populations": [vars(p) for p in self.populations],
        }


def _weights(graph: Graph, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {e.name: torch.as_tensor(e.weight, dtype=dtype) for e in graph.edges}


def _current(
    graph: Graph,
    name: str,
    signals: dict[str, torch.Tensor],
    weights: dict[str, torch.Tensor],
) -> torch.Tensor:
    """A population's input at every step [T, N, *shape]: its edges' currents and every
    bias (the population's and, in a float graph, its edges' folded BatchNorm shifts)."""
    pop = graph.population(name)
    dtype = next(iter(weights.values())).dtype
    total = channel_bias(pop.bias, pop.shape, dtype)
    for edge in graph.incoming(name):
        total = total + edge_current(edge, signals[edge.src], weights[edge.name])
        if edge.bias is not None:
            total = total + channel_bias(edge.bias, pop.shape, dtype)
    return total


class _Sums:
    """Running sums over batches for one population."""

    def __init__(self) -> None:
        self.error2 = self.float2 = 0.0
        self.mismatched = self.float_spikes = self.chip_spikes = self.steps = 0

    def rms_ratio(self) -> float:
        return (self.error2 / self.float2) ** 0.5 if self.float2 > 0 else 0.0


def measure_fidelity(
    float_graph: Graph,
    chip_graph: Graph,
    encoded: torch.Tensor,
    payload: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 32,
) -> Fidelity:
    """Float body on ``encoded`` O [T, N, C, H, W] against the quantised body on
    ``payload`` [T, N, C, H, W] (the integers the host sends for that O; ``chip_graph``
    the bundle's graph, delays balanced), scored against ``labels`` [N]; images are run
    ``batch_size`` at a time."""
    (fidelity,) = measure_fidelities(
        float_graph, [(chip_graph, payload)], encoded, labels, batch_size
    )
    return fidelity


def measure_fidelities(
    float_graph: Graph,
    chips: list[tuple[Graph, torch.Tensor]],
    encoded: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 32,
    progress: Callable[[int], Any] | None = None,
) -> list[Fidelity]:
    """:func:`measure_fidelity` of several quantised forms of one float body (each a chip
    graph with the payload it reads), the float body run once for all of them. A batch
    holds ``batch_size`` // len(chips) images (at least 1), so the chips' runs of a batch
    take the memory one chip's run of ``batch_size`` images takes; ``progress`` is called
    with the number of images of each batch done."""
    if float_graph.quantized or not all(graph.quantized for graph, _ in chips):
        raise ValueError("measure_fidelity compares a float graph with its quantised form")
    names = [p.name for p in float_graph.populations]
    sums = [{name: _Sums() for name in names} for _ in chips]
    float_weights = _weights(float_graph, torch.float32)
    chip_weights = [_weights(graph, torch.float32) for graph, _ in chips]
    prepared = [prepare(graph) for graph, _ in chips]
    float_right, chip_right = 0, [0] * len(chips)
    count = encoded.shape[1]
    step = max(1, batch_size // len(chips))
    with torch.no_grad():
        for start in range(0, count, step):
            part = slice(start, min(start + step, count))
            o = encoded[:, part].float()
            forced, runs = [], []  # per chip: the float run's spikes and its payload for O
            for c, (graph, payload) in enumerate(chips):
                q = payload[:, part].float()
                runs.append(emulate(graph, payload_tensor(q.numpy()), prepared[c]))
                chip_right[c] += int((runs[c].predictions == labels[part]).sum())
                forced.append({INPUT: q})
            float_signals = {INPUT: o}
            for pop in float_graph.populations:
                reference = _current(float_graph, pop.name, float_signals, float_weights)
                for c, (graph, _) in enumerate(chips):
                    chip = _current(graph, pop.name, forced[c], chip_weights[c])
                    chip = chip * 2.0 ** -graph.population(pop.name).scale_exp
                    s = sums[c][pop.name]
                    s.error2 += float(((chip - reference) ** 2).sum())
                    s.float2 += float((reference**2).sum())
                if pop.role == "readout":
                    scores = reference.sum(dim=0)
                    float_right += int((scores.argmax(dim=1) == labels[part]).sum())
                    continue
                lif = LIFConfig(threshold=pop.threshold, tau=1.0 - pop.voltage_decay)
                spikes = lif_forward(reference, lif)
                float_signals[pop.name] = spikes
                for c in range(len(chips)):
                    forced[c][pop.name] = spikes
                    on_chip = runs[c].spikes[pop.name][: len(spikes)]  # the T steps of W
                    s = sums[c][pop.name]
                    s.mismatched += int((spikes != on_chip).sum())
                    s.float_spikes += int(spikes.sum())
                    s.chip_spikes += int(on_chip.sum())
                    s.steps += spikes.numel()
            del runs, forced
            if progress is not None:
                progress(part.stop - part.start)
    return [
        _fidelity(graph, sums[c], count, float_right, chip_right[c])
        for c, (graph, _) in enumerate(chips)
    ]


def _fidelity(
    chip_graph: Graph, sums: dict[str, _Sums], count: int, float_right: int, chip_right: int
) -> Fidelity:
    populations = []
    for pop in chip_graph.populations:
        s = sums[pop.name]
        spiking = pop.role != "readout"
        populations.append(
            PopulationFidelity(
                population=pop.name,
                scale_exp=pop.scale_exp,
                current_error=s.rms_ratio(),
                spike_mismatch=s.mismatched / s.steps if spiking else None,
                float_rate=s.float_spikes / s.steps if spiking else None,
                chip_rate=s.chip_spikes / s.steps if spiking else None,
            )
        )
    return Fidelity(
        samples=count,
        float_accuracy=float_right / count,
        chip_accuracy=chip_right / count,
        populations=populations,
    )


def measure_bundle(
    checkpoint: str | Path, bundle: Bundle, samples: int | None = None, data_dir: str | None = None
) -> Fidelity:
    """:func:`measure_fidelity` of ``bundle`` (exported from ``checkpoint``) on its first
    ``samples`` test images (None: all), read from ``data_dir`` (default: where the data
    was); the host stage is the bundle's encoder.onnx. UserError when the data is not
    at hand."""
    images, labels = load_split(bundle.data_spec, data_dir).test_images(samples)
    encoded, payload = bundle.encode(images.numpy())
    float_graph = load_checkpoint(checkpoint).build().export_graph()
    return measure_fidelity(
        float_graph, bundle.graph, torch.from_numpy(encoded), torch.from_numpy(payload), labels
    )

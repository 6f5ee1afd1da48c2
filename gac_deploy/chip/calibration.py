"""The graded payload's bits chosen on data: the b whose chip body departs least from float.

:func:`gac_deploy.body.quantize.choose_format` picks b without data, by the RMS error
rounding adds to the input current with O taken as uniform. What the chip's accuracy
follows is how often a neuron's spike flips, and that depends on where the real O
lies against the thresholds (a GAC output near 0.5 feeding a threshold of 0.5 flips on
a small rounding). So when images are at hand, each b that fits is tried: the body
quantised with it (every other exponent as ``choose_format`` sets them, delays
balanced), run in the emulator on calibration images, and compared with the float body
(:func:`gac_deploy.chip.fidelity.measure_fidelity`). The b with the least mean spike
mismatch over the spiking populations wins (the finer on ties). Calibration images
come from the training split, never the test split the accuracy is reported on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from gac_deploy.body.graph import Graph
from gac_deploy.body.quantize import (
    MAX_PAYLOAD_BITS,
    QuantSpec,
    choose_format,
    quantize_graph,
    quantize_payload,
)
from gac_deploy.body.timing import balance_delays
from gac_deploy.chip.fidelity import Fidelity, measure_fidelities
from gac_deploy.data import Split

CALIBRATION_SEED = 0
"""Seed of the permutation that picks the calibration images from the training split."""


@dataclass(frozen=True)
class PayloadCalibration:
    """What calibrating the payload found: the format chosen, the mean spike mismatch
    (fraction of neuron-steps, over the spiking populations) for every b tried, and the
    b the data-free rule would have picked."""

    spec: QuantSpec
    mismatch: dict[int, float]
    rule_bits: int
    images: int

    @property
    def bits(self) -> int:
        return self.spec.payload_bits

    def describe(self) -> str:
        """One line: the b chosen, its mismatch and the rule's."""
        line = (
            f"payload {self.bits} bits chosen on {self.images} training images: spikes "
            f"differ from float in {self.mismatch[self.bits]:.2%} of neuron-steps"
        )
        if self.rule_bits != self.bits:
            line += (
                f" ({self.mismatch[self.rule_bits]:.2%} with the {self.rule_bits} bits "
                "chosen without data)"
            )
        return line


def mean_spike_mismatch(fidelity: Fidelity) -> float:
    """The mean over spiking populations of their fraction of neuron-steps that differ."""
    values = [p.spike_mismatch for p in fidelity.populations if p.spike_mismatch is not None]
    return sum(values) / len(values) if values else 0.0


def calibrate_payload(
    float_graph: Graph,
    encoded: torch.Tensor,
    labels: torch.Tensor,
    max_payload_bits: int = MAX_PAYLOAD_BITS,
    progress: bool = False,
) -> PayloadCalibration:
    """The format of ``float_graph`` with the payload bits (1..``max_payload_bits``, as
    far as the weights leave room) whose chip body departs least from float on
    ``encoded`` O [T, N, C, H, W] (time first) with ``labels`` [N], every width measured
    against one float run (:func:`measure_fidelities`); ``progress``: a bar over the
    images."""
    rule = choose_format(float_graph, max_payload_bits)
    candidates: dict[int, tuple[QuantSpec, Graph, torch.Tensor]] = {}
    for bits in range(max_payload_bits, 0, -1):
        try:
            spec = choose_format(float_graph, max_payload_bits, payload_bits=bits)
        except ValueError:
            continue  # the weights leave no room for this payload
        graph, _ = quantize_graph(float_graph, spec)
        graph = graph.with_delays(balance_delays(graph).delay)
        candidates[bits] = spec, graph, quantize_payload(encoded, bits, graph.signed_input)
    bar = tqdm(
        total=len(labels),
        desc=f"calibrating the payload ({len(candidates)} widths)",
        unit="image",
        disable=None if progress else True,
        leave=False,
    )
    fidelities = measure_fidelities(
        float_graph,
        [(graph, payload) for _, graph, payload in candidates.values()],
        encoded,
        labels,
        progress=bar.update,
    )
    bar.close()
    mismatch = {b: mean_spike_mismatch(f) for b, f in zip(candidates, fidelities, strict=True)}
    specs = {b: spec for b, (spec, _, _) in candidates.items()}
    best = min(mismatch, key=lambda b: (mismatch[b], -b))
    return PayloadCalibration(
        spec=specs[best], mismatch=mismatch, rule_bits=rule.payload_bits, images=len(labels)
    )


def calibration_images(split: Split, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` training images [N, C, H, W] (evaluation transform: no augmentation),
    picked by a permutation seeded with :data:`CALIBRATION_SEED`, and their labels."""
    generator = torch.Generator().manual_seed(CALIBRATION_SEED)
    order = torch.randperm(len(split.train), generator=generator)[:count]
    return split.train.batch(order)


def encode(model, images: torch.Tensor) -> torch.Tensor:
    """The model's encoder output O [T, N, C, H, W] for ``images``, in float32, without
    gradients (the float O the host computes, before the payload's rounding)."""
    model.eval()
    with torch.no_grad():
        return model.encoder(images).float()


CALIBRATION_IMAGES = 32
"""Training images the payload is calibrated on by default (export's ``--calibrate``, QAT)."""


def calibrate_model(
    model, split: Split, count: int = CALIBRATION_IMAGES, progress: bool = False
) -> PayloadCalibration:
    """:func:`calibrate_payload` of ``model``'s body on ``count`` training images of
    ``split`` (ValueError if its weights leave no room for any payload)."""
    images, labels = calibration_images(split, count)
    graph = model.export_graph()
    return calibrate_payload(graph, encode(model, images), labels, progress=progress)

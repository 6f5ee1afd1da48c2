"""``gac-deploy simulate``: run a bundle's host encoder and its body, compare with the reference.

The host stage runs in onnxruntime; the body runs in Lava (``backend='lava'``,
Loihi2SimCfg fixed point). The quantised PyTorch reference (lava-dl's CUBA
neurons, layer-synchronous) runs on the same payload; Lava's spikes are
compared with it population by population after the latency shift, and its
read-out voltage integer by integer.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from gac_deploy.data import load_split
from gac_deploy.errors import UserError
from gac_deploy.export.bundle import Bundle
from gac_deploy.export.reference import run_quantized_graph
from gac_deploy.hardware.energy import firing_rate

BACKENDS = ("lava",)


@dataclass
class PopulationCheck:
    population: str
    spikes: int
    mismatched_spikes: int
    firing_rate: float


@dataclass
class SimulationReport:
    backend: str
    samples: int
    accuracy: float
    reference_accuracy: float
    agreement: float
    readout_mismatches: int
    populations: list[PopulationCheck]
    latency_steps: int
    lava_steps: int
    build_s: float
    run_s: float
    wall_s: float

    @property
    def spike_exact(self) -> bool:
        return self.readout_mismatches == 0 and all(
            p.mismatched_spikes == 0 for p in self.populations
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spike_exact"] = self.spike_exact
        data["seconds_per_sample"] = self.run_s / max(self.samples, 1)
        return data


def test_images(bundle: Bundle, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` images and labels of the bundle's test split."""
    split = load_split(bundle.data_spec)
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if samples > len(split.x_test):
        raise UserError(f"--samples {samples} exceeds the {len(split.x_test)} test images")
    return split.x_test[:samples].numpy(), split.y_test[:samples].numpy()


def reference_accuracy(bundle: Bundle, samples: int | None = None) -> tuple[float, int]:
    """Accuracy of the quantised reference (what the chip computes) on the test split,
    and the number of images it was measured on."""
    split = load_split(bundle.data_spec)
    count = len(split.x_test) if samples is None else samples
    _, payload = bundle.encode(split.x_test[:count].numpy())
    run = run_quantized_graph(bundle.graph, torch.from_numpy(payload).double())
    return float((run.predictions == split.y_test[:count]).double().mean()), count


def simulate_bundle(
    bundle: Bundle, backend: str = "lava", samples: int = 16, progress: bool = True
) -> SimulationReport:
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; supported: {', '.join(BACKENDS)}")
    from gac_deploy.hardware.lava_runner import run_in_lava

    started = time.perf_counter()
    images, labels = test_images(bundle, samples)
    _, payload = bundle.encode(images)
    payload_int = np.rint(payload).astype(np.int32)
    reference = run_quantized_graph(bundle.graph, torch.from_numpy(payload_int).double())

    bar = tqdm(total=samples, desc="lava", unit="image", disable=not progress, leave=False)
    lava = run_in_lava(bundle.graph, payload_int, on_image=lambda i: bar.update(1))
    bar.close()

    checks = []
    for name, spikes in lava.spikes.items():
        ref = reference.spikes[name].numpy().astype(np.int8)
        checks.append(
            PopulationCheck(
                name, int(spikes.sum()), int((spikes != ref).sum()), firing_rate(spikes)
            )
        )
    ref_pred = reference.predictions.numpy()
    return SimulationReport(
        backend=backend,
        samples=samples,
        accuracy=float((lava.predictions == labels).mean()),
        reference_accuracy=float((ref_pred == labels).mean()),
        agreement=float((lava.predictions == ref_pred).mean()),
        readout_mismatches=int((lava.readout != reference.readout.numpy()).sum()),
        populations=checks,
        latency_steps=int(bundle.manifest["body"]["latency_steps"]),
        lava_steps=lava.steps,
        build_s=lava.build_s,
        run_s=lava.run_s,
        wall_s=time.perf_counter() - started,
    )

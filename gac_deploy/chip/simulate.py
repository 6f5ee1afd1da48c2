"""``gac-deploy simulate``: run a bundle's host encoder and its body; compare with the reference.

The host stage runs in onnxruntime. The body runs in the emulator
(``backend='emulator'``, the default: integer arithmetic, whole test sets in
seconds) or in Lava (``backend='lava'``: Loihi2SimCfg fixed point, a handful of
images), each a runner registered in :mod:`gac_deploy.registries.backends`. The
quantised PyTorch reference (lava-dl's CUBA neurons, layer by layer) runs on the same
payload; every population's spikes are compared with it after the latency shift, and
the read-out voltage integer by integer.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gac_deploy.body.timing import balance_delays, pad_to_window
from gac_deploy.chip.reference import GraphRun, run_quantized_graph
from gac_deploy.data import Split, load_split
from gac_deploy.errors import UserError
from gac_deploy.export.loading import Bundle
from gac_deploy.fileio import write_bytes
from gac_deploy.registries import resolve
from gac_deploy.registries.backends import BACKENDS, DEFAULT_BACKEND
from gac_deploy.world import World, block, gather

BATCH_SPIKE_BUDGET = 1 << 28  # bytes of uint8 spikes per emulator batch
SAMPLE = "sample"
"""``check`` value: the default sample of :func:`sampled_check`."""


def sampled_check(count: int) -> int:
    """The images of a ``count``-image run checked against the quantised reference by
    default: the first 32 + count // 10 (every image of a run of up to 35). The sample
    grows with the split (1,032 of CIFAR's 10,000 test images) while the run's time stays
    the emulator's: at paper size the reference costs about two emulator images per
    image it checks."""
    return min(count, 32 + count // 10)


@dataclass
class PopulationCheck:
    """One population's spikes, their mismatches against the reference, its firing rate,
    and (emulator) the neuron-steps where its 24-bit state overflowed."""

    population: str
    spikes: int
    mismatched_spikes: int
    firing_rate: float
    overflows: int = 0


@dataclass
class SimulationReport:
    """``accuracy`` and firing rates cover every image run; ``reference_accuracy``,
    ``agreement`` and the mismatch counts cover the first ``checked_samples`` of them,
    the images that also ran through the quantised reference (None when none did)."""

    backend: str
    samples: int
    accuracy: float
    reference_accuracy: float | None
    agreement: float | None
    readout_mismatches: int
    populations: list[PopulationCheck]
    latency_steps: int
    run_s: float
    wall_s: float
    synaptic_ops: dict[str, int] = field(default_factory=dict)
    checked_samples: int = 0
    test_split: int = 0
    """Images in the bundle's test split (``samples`` of them were run)."""
    processes: int = 1
    """Processes that ran the images between them (torchrun)."""

    @property
    def spike_exact(self) -> bool | None:
        """No mismatch on the checked images; None when no image was checked."""
        if self.checked_samples == 0:
            return None
        return self.readout_mismatches == 0 and all(
            p.mismatched_spikes == 0 for p in self.populations
        )

    @property
    def images_per_s(self) -> float:
        return self.samples / self.run_s if self.run_s > 0 else float("inf")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spike_exact"] = self.spike_exact
        data["seconds_per_sample"] = self.run_s / max(self.samples, 1)
        data["images_per_s"] = self.images_per_s
        return data


class Tally:
    """Running comparison of a backend with the reference, batch after batch."""

    def __init__(self) -> None:
        self.samples = self.correct = self.ref_correct = self.agree = self.readout_bad = 0
        self.checked = 0
        self.spikes: dict[str, int] = {}
        self.bad: dict[str, int] = {}
        self.slots: dict[str, int] = {}
        self.ops: dict[str, int] = {}
        self.overflows: dict[str, int] = {}

    @classmethod
    def merged(cls, tallies: list[Tally]) -> Tally:
        """One tally of the images of all ``tallies`` (disjoint images, in order)."""
        total = cls()
        for tally in tallies:
            for key, value in vars(tally).items():
                if isinstance(value, dict):
                    kept = getattr(total, key)
                    for name, count in value.items():
                        kept[name] = kept.get(name, 0) + count
                else:
                    setattr(total, key, getattr(total, key) + value)
        return total

    def add(
        self, spikes: dict, readout: np.ndarray, labels: np.ndarray, ref: GraphRun | None
    ) -> None:
        """One batch: spikes [T, N, ...], read-out [T, N, classes], labels [N]; ``ref`` ran
        the batch's first k <= N images (None: k = 0), which are compared with it."""
        pred = readout[-1].argmax(axis=1)
        self.samples += len(labels)
        self.correct += int((pred == labels).sum())
        k = 0 if ref is None else len(ref.predictions)
        if k:
            ref_pred = ref.predictions.numpy()
            self.checked += k
            self.ref_correct += int((ref_pred == labels[:k]).sum())
            self.agree += int((pred[:k] == ref_pred).sum())
            self.readout_bad += int((readout[:, :k] != ref.readout.numpy()).sum())
        for name, s in spikes.items():
            s = np.asarray(s)
            self.spikes[name] = self.spikes.get(name, 0) + int(s.sum())
            self.slots[name] = self.slots.get(name, 0) + s.size
            bad = int((s[:, :k] != ref.spikes[name].numpy()).sum()) if k else 0
            self.bad[name] = self.bad.get(name, 0) + bad

    def report(self, backend: str, bundle: Bundle, run_s: float, started: float):
        return SimulationReport(
            backend=backend,
            samples=self.samples,
            accuracy=self.correct / self.samples,
            reference_accuracy=self.ref_correct / self.checked if self.checked else None,
            agreement=self.agree / self.checked if self.checked else None,
            readout_mismatches=self.readout_bad,
            populations=[
                PopulationCheck(
                    population=n,
                    spikes=self.spikes[n],
                    mismatched_spikes=self.bad[n],
                    firing_rate=self.spikes[n] / self.slots[n],
                    overflows=self.overflows.get(n, 0),
                )
                for n in self.spikes
            ],
            latency_steps=int(bundle.manifest["body"]["latency_steps"]),
            run_s=run_s,
            wall_s=time.perf_counter() - started,
            synaptic_ops=self.ops,
            checked_samples=self.checked,
        )


def check_samples(split: Split, samples: int) -> None:
    """UserError unless 1 <= ``samples`` <= the test images of ``split``."""
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if samples > len(split.test):
        raise UserError(f"--samples {samples} exceeds the {len(split.test)} test images")


def test_images(split: Split, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` images [N, C, H, W] and labels [N] of ``split``'s test set."""
    check_samples(split, samples)
    x, y = split.test_images(samples)
    return x.numpy(), y.numpy()


def test_batches(
    split: Split, images: range, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The test images at ``images`` (a range of indices), ``batch_size`` at a time:
    (images [n, C, H, W], labels [n]) as numpy, each batch read from the dataset only
    when it is needed."""
    for lo in range(images.start, images.stop, batch_size):
        x, y = split.test_range(range(lo, min(lo + batch_size, images.stop)))
        yield x.numpy(), y.numpy()


def _reference(bundle: Bundle, payload: torch.Tensor, count: int | None) -> GraphRun | None:
    """The quantised reference on the first ``count`` images (None: all) of ``payload``
    [T, N, C, H, W]; None when there are none to check."""
    images = payload if count is None else payload[:, : max(count, 0)]
    if images.shape[1] == 0:
        return None
    return run_quantized_graph(bundle.graph, images.double())


@dataclass
class SimulationJob:
    """What a backend's runner is given (:mod:`gac_deploy.registries.backends`): the
    bundle, its test split, the test images to run (``images``, a range of indices: this
    process's block), the emulator's images per batch, how many of them (the first) to
    check against the quantised reference (``check``, None: all), the running tally to
    add every image to and a progress callback taking the number of images just run."""

    bundle: Bundle
    split: Split
    images: range
    batch_size: int
    check: int | None
    tally: Tally
    progress: Callable[[int], Any]


def simulate_bundle(
    bundle: Bundle,
    backend: str = DEFAULT_BACKEND,
    samples: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    check: int | str | None = None,
    data_dir: str | None = None,
    world: World | None = None,
) -> SimulationReport:
    """Run ``samples`` test images (None: the whole test split) through ``backend`` (a
    name registered in :mod:`gac_deploy.registries.backends`), and the first ``check`` of
    them (None: all; :data:`SAMPLE`: :func:`sampled_check`'s number) through the
    quantised reference too, which at paper size costs about twice the emulator's time
    per image. ``data_dir``: where the bundle's dataset lies
    now (default: where it was); it must hold the same test split. ``world``: the
    processes torchrun started (:mod:`gac_deploy.world`): each runs a contiguous block of
    the images and every process gets the merged report, equal to one process's but for
    the times (``run_s``: the slowest process's).

    ``batch_size`` None: as many images per emulator batch as keep every spike of a
    batch under ``BATCH_SPIKE_BUDGET`` bytes. The emulator reads, encodes, runs and checks
    one batch at a time and keeps only running counts, so its memory is bounded by the
    batch size, not by ``samples`` (a whole test split streams through).
    """
    runner = resolve(BACKENDS.get(backend).runner)
    if batch_size is None:
        per_image = bundle.graph.window * sum(p.size for p in bundle.graph.populations)
        batch_size = max(1, min(1024, BATCH_SPIKE_BUDGET // per_image))
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if check is not None and check != SAMPLE and check < 0:
        raise UserError(f"--check must be 0 or more images, or 'all', got {check}")
    world = world or World()
    started = time.perf_counter()
    split = load_split(bundle.data_spec, data_dir)
    count = len(split.test) if samples is None else samples
    check_samples(split, count)
    if check == SAMPLE:
        check = sampled_check(count)
    images = block(count, world)
    mine = None if check is None else max(0, min(check - images.start, len(images)))
    tally = Tally()
    shown = progress and world.is_main
    bar = tqdm(
        total=len(images), desc=backend, unit="image", disable=None if shown else True,
        leave=False,
    )  # fmt: skip
    run_s = 0.0
    if images:
        job = SimulationJob(bundle, split, images, batch_size, mine, tally, bar.update)
        run_s = runner(job)
    bar.close()
    shares = gather((tally, run_s), world)
    tally = Tally.merged([t for t, _ in shares])
    run_s = max(r for _, r in shares)  # the processes run side by side
    report = tally.report(backend, bundle, run_s, started)
    return replace(report, test_split=len(split.test), processes=world.size)


def run_lava(job: SimulationJob) -> float:
    """Backend ``lava``: every image at once through Lava's Loihi2SimCfg."""
    return _run_in_lava(job, hardware=False)


def run_loihi2(job: SimulationJob) -> float:
    """Backend ``loihi2``: the ``lava`` backend's network on the chip (Loihi2HwCfg)."""
    return _run_in_lava(job, hardware=True)


def _run_in_lava(job: SimulationJob, hardware: bool) -> float:
    """The lava and loihi2 backends: one Lava run of every image (``hardware``: Loihi
    2 itself, else its CPU simulation)."""
    from gac_deploy.chip.lava_runner import check_hardware, run_in_lava

    if hardware:
        check_hardware()  # before the host stage and the reference run
    bundle = job.bundle
    images, labels = (a.numpy() for a in job.split.test_range(job.images))
    _, payload = bundle.encode(images)
    payload = np.rint(payload).astype(np.int32)
    reference = _reference(bundle, torch.from_numpy(payload), job.check)
    lava = run_in_lava(
        bundle.graph, payload, on_image=lambda i: job.progress(1), hardware=hardware
    )
    job.tally.add(lava.spikes, lava.readout, labels, reference)
    return lava.run_s


def run_emulator(job: SimulationJob) -> float:
    """Backend ``emulator``: the bit-exact integer emulator, one batch at a time."""
    from gac_deploy.chip.emulator import emulate, payload_tensor, prepare

    bundle, tally = job.bundle, job.tally
    synapses = prepare(bundle.graph)
    run_s = 0.0
    for images, labels in test_batches(job.split, job.images, job.batch_size):
        _, payload = bundle.encode(images)
        payload = payload_tensor(payload)  # integers, channels last, as the body reads
        tick = time.perf_counter()
        run = emulate(bundle.graph, payload, synapses)
        run_s += time.perf_counter() - tick
        remaining = None if job.check is None else job.check - tally.checked
        reference = _reference(bundle, payload, remaining)
        spikes = {k: v.numpy() for k, v in run.spikes.items()}  # uint8, compared as is
        tally.add(spikes, run.readout.numpy(), labels, reference)
        for name, ops in run.synaptic_ops.items():
            tally.ops[name] = tally.ops.get(name, 0) + ops
        for name, count in run.overflows.items():
            tally.overflows[name] = tally.overflows.get(name, 0) + count
        job.progress(len(labels))
        del run, reference, spikes, payload  # nothing of a batch outlives it
    return run_s


def write_reference_spikes(bundle: Bundle, split: Split, count: int, path: str | Path) -> None:
    """The quantised reference's run of the first ``count`` test images, written to
    ``path`` (``.npz``, atomically) for a script that runs the bundle on Loihi 2 to compare
    against. Arrays (numbers only: ``np.load(path)`` reads them without pickle):

    * ``payload`` int32 [W, N, C, H, W]: what the host sends in each step of an image's
      window (zeros in the last W - T steps);
    * ``spikes/<population>`` uint8 [W, N, *shape] and ``latency/<population>`` int: that
      population's spikes in its own window; image i's window step t is Lava step
      1 + latency + i * W + t of a run that streams the images back to back from step 0;
    * ``readout`` int64 [T, N, classes]: the read-out voltage (Lava's integer, a_in << 6)
      at the first T steps of its window; the class is the argmax at step T - 1;
    * ``labels`` int64 [N], ``time_steps`` T and ``window`` W.
    """
    images, labels = test_images(split, count)
    _, payload = bundle.encode(images)
    payload = np.rint(payload).astype(np.int32)
    graph = bundle.graph
    run = run_quantized_graph(graph, torch.from_numpy(payload).double())
    latency = balance_delays(graph).latency
    arrays = {
        "payload": pad_to_window(payload, graph.window),
        "readout": run.readout.numpy().astype(np.int64),
        "labels": np.asarray(labels, np.int64),
        "time_steps": np.int64(graph.time_steps),
        "window": np.int64(graph.window),
    }
    for name, spikes in run.spikes.items():
        arrays[f"spikes/{name}"] = spikes.numpy().astype(np.uint8)
        arrays[f"latency/{name}"] = np.int64(latency[name])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue(), ".npz")

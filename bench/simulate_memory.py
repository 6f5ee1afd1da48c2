"""Emulator memory over a whole CIFAR-10-sized test split: resident memory batch by batch.

    python bench/simulate_memory.py [--images 10000] [--width 8] [--batch 64] [--check]

Writes a CIFAR-10 python folder with random pixels (``--images`` test images, 10 per
training file), an msresnet18-cifar (T=6) at channels / ``--width`` with random weights
whose BatchNorm statistics give 15-35 % firing (as bench/simulate_speed.py), exports it
and streams every test image through the emulator as ``simulate_bundle`` does (the
split read, encoded and emulated batch by batch); ``--check``: through ``simulate_bundle``
itself, which also runs the quantised reference on every batch (lava-dl's slayer neurons,
far slower than the emulator). The process's resident memory is read as each batch starts:
it must stay flat (bounded by the batch size), not grow with the images done.
"""

from __future__ import annotations

import argparse
import pickle
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.chip import emulator
from gac_deploy.chip.simulate import simulate_bundle, test_batches
from gac_deploy.data import load_cifar_split
from gac_deploy.export.loading import load_bundle
from gac_deploy.export.targets import export_bundle
from gac_deploy.models import build_model, default_config
from gac_deploy.testing import calibrate_rates_by_role


def rss_mib() -> float:
    """This process's resident memory now, MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def cifar_folder(root: Path, test_images: int) -> Path:
    """The official CIFAR-10 python layout with random pixels and labels."""
    gen = np.random.default_rng(0)
    root.mkdir()

    def write(name: str, count: int) -> None:
        batch = {
            b"data": gen.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8),
            b"labels": gen.integers(0, 10, count).tolist(),
        }
        (root / name).write_bytes(pickle.dumps(batch))

    for i in range(1, 6):
        write(f"data_batch_{i}", 10)
    write("test_batch", test_images)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=8, help="channels divided by this")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--check", action="store_true", help="simulate_bundle, with reference")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        split = load_cifar_split(cifar_folder(Path(tmp) / "cifar", args.images), 10)
        config = default_config("msresnet18-cifar")
        stages = tuple(replace(s, channels=s.channels // args.width) for s in config.stages)
        config = replace(config, stem_channels=config.stem_channels // args.width, stages=stages)
        torch.manual_seed(0)
        model = build_model(config)
        calibrate_rates_by_role(model, torch.randn(64, 3, 32, 32))
        save_checkpoint(
            Path(tmp) / "model.pt", Checkpoint(config, split.spec, model.state_dict(), {}, {})
        )
        bundle = load_bundle(export_bundle(Path(tmp) / "model.pt", Path(tmp) / "bundle").path)
        del split, model

        samples: list[float] = []
        real = emulator.emulate

        def measured(graph, payload, synapses=None):
            samples.append(rss_mib())
            return real(graph, payload, synapses)

        emulator.emulate = measured
        if args.check:
            report = simulate_bundle(bundle, "emulator", None, args.batch, progress=False)
            rates = [p.firing_rate for p in report.populations]
            done, rate = report.samples, report.images_per_s
            exact = f"spike-exact: {report.spike_exact}"
        else:
            synapses, spikes, slots, done, started = emulator.prepare(bundle.graph), 0, 0, 0, 0.0
            split = load_cifar_split(bundle.data_spec.data_dir, 10)
            for images, _ in test_batches(split, range(len(split.test)), args.batch):
                tick = time.perf_counter()
                payload = torch.from_numpy(np.rint(bundle.encode(images)[1]))
                run = emulator.emulate(bundle.graph, payload, synapses)
                started += time.perf_counter() - tick
                spikes += sum(int(s.sum()) for s in run.spikes.values())
                slots += sum(s.numel() for s in run.spikes.values())
                done += len(images)
                del run
            rates, rate, exact = [spikes / slots], done / started, "not checked (see --check)"
        emulator.emulate = real
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    marks = sorted(
        {i for i in (0, 1, 9, len(samples) // 2) if i < len(samples)} | {len(samples) - 1}
    )
    print(
        f"msresnet18-cifar channels/{args.width}, T={config.time_steps}: {done} images "
        f"in {len(samples)} batches of {args.batch}; {exact}; firing "
        f"{min(rates):.1%}-{max(rates):.1%}; emulator {rate:.1f} images/s"
    )
    print(
        "resident memory as a batch starts (MiB): "
        + ", ".join(f"batch {i + 1}: {samples[i]:.0f}" for i in marks)
    )
    later = samples[len(samples) // 10 :]
    growth = samples[-1] - samples[min(9, len(samples) - 1)]
    print(
        f"batches 10 % .. 100 %: {min(later):.0f}-{max(later):.0f} MiB; process peak "
        f"{peak:.0f} MiB; growth from batch 10 to the last: {growth:+.0f} MiB"
    )


if __name__ == "__main__":
    main()

"""Emulator versus Lava: images per second on the digits bundle, in one process.

    python bench/simulate_speed.py [--bundle DIR] [--lava-images 12]

Lava is measured fairly: one network is built and compiled once and the images
stream through it back to back (T steps each); the rate is taken between the end
of the first image and the end of the last, so compilation and start-up are left
out (they are printed separately). The emulator runs the whole test split in
batches, best of three. Both are checked against the quantised reference and must
be spike-exact. Also prints the emulator's rate for msresnet18-cifar with random
weights on 32x32 input.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gac_deploy.body.quantize import quantize_graph
from gac_deploy.body.timing import balance_delays
from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.config import ModelConfig, TrainConfig
from gac_deploy.data import DataSpec, load_split
from gac_deploy.export.bundle import export_bundle, load_bundle
from gac_deploy.hardware.emulator import emulate, prepare
from gac_deploy.hardware.lava_runner import run_in_lava
from gac_deploy.hardware.simulate import simulate_bundle
from gac_deploy.models import build_model, default_config
from gac_deploy.training.trainer import train


def digits_bundle(work: Path) -> Path:
    train(ModelConfig(), TrainConfig(epochs=10), work / "train", progress=False)
    export_bundle(work / "train" / "model.pt", work / "bundle")
    return work / "bundle"


def lava_rate(bundle, images: int) -> tuple[float, float]:
    x, _ = load_split(bundle.data_spec).test_images(images)
    _, payload = bundle.encode(x.numpy())
    stamps = []
    started = time.perf_counter()
    run = run_in_lava(
        bundle.graph,
        np.rint(payload).astype(np.int32),
        on_image=lambda i: stamps.append(time.perf_counter()),
    )
    first = stamps[0] - started
    steady = (images - 1) / (stamps[-1] - stamps[0])
    assert run.readout is not None
    return steady, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="a digits bundle (default: train and export one)")
    parser.add_argument("--lava-images", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.bundle) if args.bundle else digits_bundle(Path(tmp))
        bundle = load_bundle(path)

        lava_steady, lava_first = lava_rate(bundle, args.lava_images)
        check = simulate_bundle(bundle, "lava", 4, progress=False)
        print(
            f"lava: {lava_steady:.2f} images/s streaming {args.lava_images} images through one "
            f"run (first image incl. build and compile: {lava_first:.1f} s); "
            f"spike-exact: {check.spike_exact}"
        )

        best = None
        for _ in range(3):
            report = simulate_bundle(bundle, "emulator", None, batch_size=360, progress=False)
            if best is None or report.images_per_s > best.images_per_s:
                best = report
        print(
            f"emulator: {best.images_per_s:.0f} images/s on all {best.samples} test images "
            f"(spike-exact: {best.spike_exact}, accuracy {best.accuracy:.4f})"
        )
        print(f"ratio: {best.images_per_s / lava_steady:.0f}")

        config = default_config("msresnet18-cifar")
        torch.manual_seed(0)
        model = build_model(config).eval()
        ckpt = Path(tmp) / "cifar.pt"
        save_checkpoint(ckpt, Checkpoint(config, DataSpec("cifar10"), model.state_dict(), {}, {}))
        graph, _ = quantize_graph(model.export_graph())
        graph = graph.with_delays(balance_delays(graph).delay)
        synapses = prepare(graph)
        n = 16
        with torch.no_grad():
            payload = torch.round(model.encoder(torch.randn(n, 3, 32, 32)) * 2**graph.payload_bits)
        payload = payload.clamp(0, 2**graph.payload_bits - 1)
        started = time.perf_counter()
        emulate(graph, payload, synapses)
        elapsed = time.perf_counter() - started
        print(
            f"emulator msresnet18-cifar (random weights, 32x32, T={config.time_steps}): "
            f"{n / elapsed:.2f} images/s (batch of {n})"
        )


if __name__ == "__main__":
    main()

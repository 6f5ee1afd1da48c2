"""The authors' msresnet18-cifar at paper size through the whole deployment path.

    python bench/paper_scale.py [--images 256] [--lava-images 1] [--work DIR]

An authors-format state dict (their key names, ``module.`` prefix) of msresnet18-cifar
(T=6, 10 classes, membrane shortcuts) with random weights, its BatchNorm statistics
measured on the images so that every population fires at a realistic rate (the
calibration of ``gac_deploy.testing.calibrated_official``), is written to a .pth file.
Random CIFAR-format images (python layout) stand in for the test split. Then each
stage runs in its own process, as a user runs it:

    gac-deploy import-official CIFAR10_T=6.pth --arch msresnet18-cifar ... --data-dir D
    gac-deploy export model.pt --target loihi2 --chips 64 --calibrate 0 --samples 0
    gac-deploy simulate bundle --backend emulator --samples N   (the default check)
    gac-deploy simulate bundle --backend lava --samples M      (M = 0: not run)

and its wall time and peak resident memory (the largest of the stage's process and the
processes it started: Lava runs each population, synapse and relay as a process) are
printed, with the bundle's populations, synapses, cores and chips, and whether every
population is spike-exact against the quantised reference with zero read-out
mismatches.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gac_deploy.testing import bundle_facts, run_stage, work_directory


def make_inputs(work: Path, images: int) -> Path:
    """The authors-format .pth and a CIFAR-10 folder of random images; returns the .pth."""
    import torch

    from gac_deploy.data import load_dataset
    from gac_deploy.models.official import official_config
    from gac_deploy.testing import authors_state_dict, calibrated_official, write_cifar

    write_cifar(work / "cifar", 10, per_file=images, seed=0)
    calibration = load_dataset("cifar10", str(work / "cifar")).train.batch(torch.arange(16))[0]
    model = calibrated_official(official_config("msresnet18-cifar", 10, 6), calibration)
    path = work / "CIFAR10_T=6.pth"
    torch.save(authors_state_dict(model, prefix="module."), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="emulator images (>= 256)")
    parser.add_argument("--lava-images", type=int, default=1)
    parser.add_argument("--work", help="keep the files here (default: a temporary directory)")
    args = parser.parse_args()
    with work_directory(args.work) as work:
        started = time.perf_counter()
        pth = make_inputs(work, args.images)
        print(
            f"authors-format state dict and {args.images} CIFAR-format images written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        model, bundle = work / "model.pt", work / "bundle"
        run_stage(
            "import-official",
            [
                "import-official",
                str(pth),
                "--arch",
                "msresnet18-cifar",
                "--num-classes",
                "10",
                "-T",
                "6",
                "--out",
                str(model),
                "--data-dir",
                str(work / "cifar"),
            ],
        )
        _, out = run_stage(
            "export",
            [
                "export",
                str(model),
                "--target",
                "loihi2",
                "--out",
                str(bundle),
                "--chips",
                "64",
                "--calibrate",
                "0",  # random weights: a payload calibrated on them would measure nothing
                "--samples",
                "0",  # nor would float against chip accuracy
            ],
        )
        print(
            "  "
            + "\n  ".join(
                line
                for line in out.splitlines()
                if "Loihi 2 estimate" in line or "exported in" in line or line.startswith("note")
            )
        )
        f = bundle_facts(bundle)
        print(
            f"bundle: {f.populations} populations, {f.edges} edges, {f.neurons:,} neurons, "
            f"{f.synapses:,} synapses, {f.cores} cores, {f.chips} chip(s); "
            f"body.net {f.body_mb:.1f} MB"
        )
        for backend, samples in (("emulator", args.images), ("lava", args.lava_images)):
            if samples == 0:
                continue
            report = work / f"{backend}.json"
            run_stage(
                f"simulate --backend {backend}",
                [
                    "simulate",
                    str(bundle),
                    "--backend",
                    backend,
                    "--samples",
                    str(samples),
                    "--json",
                    str(report),
                    "--quiet",
                ],
            )
            data = json.loads(report.read_text())
            worst = max(p["mismatched_spikes"] for p in data["populations"])
            rates = [p["firing_rate"] for p in data["populations"]]
            speed = (
                f"{data['seconds_per_sample']:.1f} s per image (build and compile included)"
                if backend == "lava"
                else f"{data['images_per_s']:.2f} images/s"
            )
            print(
                f"  {backend}: {data['samples']} images ({data['checked_samples']} checked "
                f"against the quantised reference), spike-exact {data['spike_exact']} "
                f"(largest population mismatch {worst}, read-out mismatches "
                f"{data['readout_mismatches']}), firing rates {min(rates):.1%}-{max(rates):.1%}, "
                f"{speed}"
            )


if __name__ == "__main__":
    main()

"""msresnet34-imagenet at full size through export and simulate: time and peak memory.

    python bench/imagenet_scale.py [--images 1000] [--check 0] [--work DIR]

An ImageFolder tree of ``--images`` random 224x224 validation JPEGs (two classes, so the
read-out has two neurons; the body is the registered msresnet34-imagenet at full width
and depth, T=4) and a model with random weights whose BatchNorm statistics give
realistic firing rates (``gac_deploy.testing.calibrate_rates_by_role``) are written;
then each stage runs in its own process, as a user runs it:

    gac-deploy export model.pt --chips 64 --calibrate 0 --samples 0
    gac-deploy simulate bundle --samples N --check C

and its wall time and peak resident memory are printed, with the emulator's images/s
and whether the checked images are spike-exact against the quantised reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def write_inputs(work: Path, images: int) -> Path:
    """The ImageFolder tree and model.pt; returns model.pt."""
    import torch
    from PIL import Image

    from gac_deploy.checkpoint import Checkpoint, save_checkpoint
    from gac_deploy.data import load_dataset
    from gac_deploy.models import build_model, default_config
    from gac_deploy.testing import calibrate_rates_by_role

    rng = np.random.default_rng(0)
    for part, count in (("train", 2), ("val", images)):
        for c, cls in enumerate(("n01", "n02")):
            folder = work / "imagenet" / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(c, count, 2):
                pixels = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img{i}.JPEG")
    split = load_dataset("imagenet", str(work / "imagenet"))
    config = default_config("msresnet34-imagenet", num_classes=2)
    torch.manual_seed(0)
    model = build_model(config)
    calibrate_rates_by_role(model, split.test_images(4)[0])
    path = work / "model.pt"
    save_checkpoint(path, Checkpoint(config, split.spec, model.state_dict(), {}, {}))
    return path


def main() -> None:
    from gac_deploy.testing import bundle_facts, run_stage, work_directory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--check", type=int, default=0, help="images checked spike by spike")
    parser.add_argument("--work", help="keep the files here (default: a temporary directory)")
    args = parser.parse_args()
    with work_directory(args.work) as work:
        started = time.perf_counter()
        model = write_inputs(work, args.images)
        print(
            f"{args.images} ImageFolder images and msresnet34-imagenet model.pt written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        bundle = work / "bundle"
        run_stage(
            "export",
            ["export", str(model), "--out", str(bundle), "--chips", "64", "--calibrate", "0",
             "--samples", "0"],
        )  # fmt: skip
        f = bundle_facts(bundle)
        print(
            f"bundle: {f.populations} populations, {f.neurons:,} neurons, {f.cores} cores, "
            f"{f.chips} chip(s); body.net {f.body_mb:.1f} MB"
        )
        report = work / "simulate.json"
        run_stage(
            "simulate",
            ["simulate", str(bundle), "--samples", str(args.images), "--check", str(args.check),
             "--json", str(report), "--quiet"],
        )  # fmt: skip
        data = json.loads(report.read_text())
        rates = [p["firing_rate"] for p in data["populations"]]
        print(
            f"  emulator: {data['samples']} images at {data['images_per_s']:.2f} images/s "
            f"(body alone), {data['checked_samples']} checked, spike-exact "
            f"{data['spike_exact']}, firing rates {min(rates):.1%}-{max(rates):.1%}, "
            f"overflowed neuron-steps {sum(p['overflows'] for p in data['populations']):,}"
        )


if __name__ == "__main__":
    main()

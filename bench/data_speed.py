"""Training-image loading from an ImageFolder tree, in the training process or ahead of it
in loader processes.

    python bench/data_speed.py [--images 256] [--batch 32] [--workers 0 2]

Writes ``--images`` random JPEGs of ImageNet's typical size (500x375) into a temporary
ImageFolder tree, then loads them as the trainer does (random resized crop to 224, flip,
per-image seeds; :func:`gac_deploy.training.batches.load_steps`) and prints images/s for
each worker count. The images are identical whatever the count (tested).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gac_deploy.data import load_dataset
from gac_deploy.training.batches import load_steps, plan_step
from gac_deploy.world import World


def write_tree(root: Path, images: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, count in (("train", images), ("val", 2)):
        for c in range(2):
            folder = root / part / f"n{c:02d}"
            folder.mkdir(parents=True)
            for i in range(count // 2):
                pixels = rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.JPEG", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), args.images)
        split = load_dataset("imagenet", tmp)
        order = torch.randperm(len(split.train), generator=torch.Generator().manual_seed(0))
        plans = [
            plan_step(order[lo : lo + args.batch], World(), 0, step, 224)
            for step, lo in enumerate(range(0, len(order), args.batch))
        ]
        for workers in args.workers:
            started = time.perf_counter()
            count = sum(len(y) for _, (_, y) in load_steps(split.train, plans, workers))
            seconds = time.perf_counter() - started
            print(
                f"workers {workers}: {count / seconds:.0f} images/s ({count} images of "
                f"500x375 -> 224x224, batches of {args.batch})"
            )


if __name__ == "__main__":
    main()

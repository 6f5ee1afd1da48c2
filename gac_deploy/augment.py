"""Per-image training transforms, each drawn from its own generator: zero padding, random
crop and flip (CIFAR), random resized crop and flip, resize and centre crop (ImageNet).
Images are [C, H, W] tensors or Pillow images; nothing here knows about datasets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def generators(seeds: Sequence[int] | None, count: int) -> list[torch.Generator | None]:
    """One generator per image, seeded by ``seeds`` (None: torch's global generator)."""
    if seeds is None:
        return [None] * count
    if len(seeds) != count:
        raise ValueError(f"{len(seeds)} seeds for {count} images")
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def pad_crop_flip(image: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """One image [C, H, W]: a random crop after zero padding, and a random horizontal flip."""
    _, h, w = image.shape
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    crop = padded[:, dy : dy + h, dx : dx + w]
    return crop.flip(-1) if torch.rand(1, generator=generator).item() < 0.5 else crop


def random_resized_crop(img, size: int, generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """Random area fraction and aspect ratio (10 tries, then the centre), resized to size."""
    from PIL import Image

    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(*scale, generator=generator))
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio, generator=generator)))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    return resize_centre_crop(img, size, size)


def resize_centre_crop(img, resize: int, crop: int):
    from PIL import Image

    width, height = img.size
    scale = resize / min(width, height)
    img = img.resize(
        (max(crop, round(width * scale)), max(crop, round(height * scale))), Image.BILINEAR
    )
    width, height = img.size
    left, top = (width - crop) // 2, (height - crop) // 2
    return img.crop((left, top, left + crop, top + crop))

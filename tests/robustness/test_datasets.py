"""Damaged CIFAR batches are refused, naming the file, before arrays are built."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from gac_deploy.data import load_dataset
from gac_deploy.errors import UserError
from gac_deploy.testing import write_cifar


def replace_batch(root, data, labels) -> None:
    with open(root / "data_batch_2", "wb") as handle:
        pickle.dump({b"data": data, b"labels": labels}, handle, protocol=2)


rng = np.random.default_rng(0)
PIXELS = rng.integers(0, 256, size=(40, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    ("data", "labels", "message"),
    [
        (PIXELS, [1] * 37, "40 images but 37 labels"),
        (PIXELS.astype(np.float32) / 255, [1] * 40, "ndarray of float32, not an array of uint8"),
        (PIXELS[:, :1024], [1] * 40, r"shape \[40, 1024\]"),
        (PIXELS, [3] * 39 + [10], "outside 0..9"),
        (PIXELS, [-1] * 40, "outside 0..9"),
        (PIXELS, ["a"] * 40, "not integers"),
        (PIXELS.tolist(), [1] * 40, "'data' is a list"),
    ],
)
def test_damaged_cifar_batches(tmp_path, data, labels, message):
    root = tmp_path / "cifar"
    write_cifar(root, 10)
    replace_batch(root, data, labels)
    with pytest.raises(UserError, match=message) as info:
        load_dataset("cifar10", str(root))
    assert "data_batch_2" in str(info.value)


def test_a_row_referenced_a_million_times_is_refused_without_expanding_it(tmp_path):
    root = tmp_path / "cifar"
    write_cifar(root, 10)
    row = list(range(3072))
    replace_batch(root, [row] * 1_000_000, [0] * 1_000_000)  # pickled once, referenced 1e6x
    assert (root / "data_batch_2").stat().st_size < 20_000_000
    started = time.perf_counter()
    with pytest.raises(UserError, match="'data' is a list"):
        load_dataset("cifar10", str(root))
    assert time.perf_counter() - started < 30


def _truncated(path):
    path.write_bytes(path.read_bytes()[:200])


def _empty(path):
    path.write_bytes(b"")


def _text(path):
    path.write_text("this is not a picture\n")


def _bomb(path):
    from PIL import Image

    Image.new("L", (12_000, 12_000)).save(path, format="PNG")  # 144 M pixels, a small file


@pytest.mark.parametrize(
    ("damage", "workers"),
    [(_truncated, 0), (_empty, 0), (_text, 0), (_bomb, 0), (_truncated, 1)],
)
def test_damaged_images_are_refused_naming_the_file(tmp_path, damage, workers):
    """Policy: refuse, naming the file (skipping would shift every planned position)."""
    from PIL import Image

    from gac_deploy.testing import write_imagenet
    from gac_deploy.training.batches import load_ahead

    write_imagenet(tmp_path)
    bad = tmp_path / "train" / "n02" / "img1.JPEG"
    damage(bad)
    split = load_dataset("imagenet", str(tmp_path))
    items = [[(i, i) for i in range(len(split.train))]]
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 30_000_000  # the bomb is past twice this: Pillow refuses it
    try:
        with pytest.raises(UserError, match="img1.JPEG cannot be used as an image") as info:
            list(load_ahead(split.train, items, workers=workers))
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert "\n" not in str(info.value) and str(bad) in str(info.value)

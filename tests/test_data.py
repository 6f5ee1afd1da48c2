"""Datasets in their standard on-disk formats, built as tiny fixtures (gac_deploy.testing)."""

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from gac_deploy.cifar_files import read_cifar_batch
from gac_deploy.data import (
    STANDARD_NORMALIZATION,
    DataSpec,
    load_dataset,
    load_digits_split,
    load_split,
)
from gac_deploy.errors import UserError
from gac_deploy.testing import write_cifar, write_imagenet


def test_digits_split_is_stratified_and_seeded():
    split = load_digits_split(seed=0)
    assert len(split.train) == 1437 and len(split.test) == 360
    x, y = split.test_images()
    assert x.shape == (360, 1, 8, 8)
    counts = np.bincount(y.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    x_train, _ = split.train.batch(torch.arange(len(split.train)))
    assert abs(float(x_train.mean())) < 1e-5 and abs(float(x_train.std()) - 1) < 1e-3
    assert torch.equal(load_digits_split(seed=0).test_images()[0], x)
    assert not torch.equal(load_digits_split(seed=1).test_images()[1], y)


def test_load_split_rebuilds_the_same_split():
    split = load_digits_split(seed=3)
    rebuilt = load_split(split.spec)
    assert torch.equal(rebuilt.test_images()[0], split.test_images()[0])
    assert isinstance(split.spec, DataSpec) and split.spec.seed == 3


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_python_layout(tmp_path, classes):
    root = tmp_path / f"cifar{classes}"
    write_cifar(root, classes)
    split = load_dataset(f"cifar{classes}", str(root))
    assert split.num_classes == classes and split.in_channels == 3 and split.image_size == 32
    assert len(split.train) == (30 if classes == 10 else 6) and len(split.test) == 6
    x, y = split.test_images(4)
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    xa, _ = split.train.batch(torch.arange(4), train=True, seeds=[0, 1, 2, 3])
    xb, _ = split.train.batch(torch.tensor([2, 3]), train=True, seeds=[2, 3])
    assert torch.equal(xa[2:], xb)  # each image's augmentation follows its own seed
    plain, _ = split.train.batch(torch.arange(4))
    assert not torch.equal(xa, plain)


def test_cifar_errors_name_the_missing_files(tmp_path):
    with pytest.raises(UserError, match="missing data_batch_1.*cifar-10-batches-py folder"):
        load_dataset("cifar10", str(tmp_path))
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset("cifar10")


def test_cifar_reader_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(UserError, match=r"refusing to load (__builtin__|builtins)\.print"):
        read_cifar_batch(evil)


def test_imagenet_folder_layout(tmp_path):
    write_imagenet(tmp_path)
    split = load_dataset("imagenet", str(tmp_path))
    assert split.num_classes == 2 and len(split.train) == 6 and len(split.test) == 4
    x, y = split.test_images()
    assert x.shape == (4, 3, 224, 224) and y.tolist() == [0, 0, 1, 1]
    xt, _ = split.train.batch(torch.arange(6), train=True, seeds=range(6))
    assert xt.shape == (6, 3, 224, 224)
    (tmp_path / "val" / "n03").mkdir()
    with pytest.raises(UserError, match="not in train"):
        load_dataset("imagenet", str(tmp_path))
    with pytest.raises(UserError, match="missing train/"):
        load_dataset("imagenet", str(tmp_path / "val"))


def test_layout_names_each_dataset_pixel_scaling():
    from gac_deploy.registries.datasets import DATASETS

    assert DataSpec("digits").layout == "NCHW, float32, normalised: (pixel / 16 - mean) / std"
    assert DataSpec("cifar10").layout == "NCHW, float32, normalised: (pixel / 255 - mean) / std"
    assert all(DataSpec(name).layout for name in DATASETS.names())


def _raw_cifar_test(root):
    """The test_batch's pixels as [N, 3, 32, 32] floats in [0, 1], and its labels."""
    batch = read_cifar_batch(root / "test_batch")
    pixels = torch.from_numpy(batch["data"].reshape(-1, 3, 32, 32)).float() / 255.0
    return pixels, torch.tensor(batch["labels"])


def test_cifar_is_normalised_with_the_standard_constants_not_its_own_statistics(tmp_path):
    write_cifar(tmp_path / "c", 10)
    split = load_dataset("cifar10", str(tmp_path / "c"))
    mean, std = STANDARD_NORMALIZATION["cifar10"]
    assert (split.spec.mean, split.spec.std) == (mean, std)
    pixels, labels = _raw_cifar_test(tmp_path / "c")
    expected = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    x, y = split.test_images()
    assert torch.allclose(x, expected, atol=1e-6) and torch.equal(y, labels)
    given = load_dataset("cifar10", str(tmp_path / "c"), normalization=((0.5,), (0.25,)))
    assert torch.allclose(given.test_images()[0], (pixels - 0.5) / 0.25, atol=1e-6)
    with pytest.raises(UserError, match="3 channel.*2 mean value"):
        load_dataset("cifar10", str(tmp_path / "c"), normalization=((0.5, 0.5), (0.2,)))


def test_load_split_keeps_the_models_normalisation_and_checks_the_split(tmp_path):
    write_cifar(tmp_path / "c", 10)
    spec = replace(
        load_dataset("cifar10", str(tmp_path / "c")).spec, mean=(0.1, 0.2, 0.3), std=(0.5,)
    )
    pixels, _ = _raw_cifar_test(tmp_path / "c")
    shift = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    rebuilt = load_split(spec)
    assert rebuilt.spec.mean == (0.1, 0.2, 0.3)
    assert torch.allclose(rebuilt.test_images()[0], (pixels - shift) / 0.5, atol=1e-6)
    # the same split elsewhere is recognised by its hash
    (tmp_path / "c").rename(tmp_path / "moved")
    with pytest.raises(UserError, match="missing data_batch_1"):
        load_split(spec)
    assert torch.equal(
        load_split(spec, str(tmp_path / "moved")).test_images()[1], rebuilt.test_images()[1]
    )
    # another split (other pixels, same layout) is refused, naming the fix
    write_cifar(tmp_path / "other", 10, seed=1)
    with pytest.raises(UserError, match="not the test split the model was checked on.*--data-dir"):
        load_split(spec, str(tmp_path / "other"))


def test_test_split_hash_of_a_folder_names_files_sizes_and_labels(tmp_path):
    write_imagenet(tmp_path)
    first = load_dataset("imagenet", str(tmp_path)).spec.test_hash
    assert load_dataset("imagenet", str(tmp_path)).spec.test_hash == first
    (tmp_path / "val" / "n02" / "img1.JPEG").rename(tmp_path / "val" / "n01" / "img9.JPEG")
    assert load_dataset("imagenet", str(tmp_path)).spec.test_hash != first

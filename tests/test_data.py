"""Datasets in their standard on-disk formats, built as tiny fixtures (gac_deploy.testing)."""

import pickle

import numpy as np
import pytest
import torch

from gac_deploy.data import (
    DataSpec,
    load_dataset,
    load_digits_split,
    load_split,
    read_cifar_batch,
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
    from gac_deploy.config import DATASETS

    assert DataSpec("digits").layout == "NCHW, float32, normalised: (pixel / 16 - mean) / std"
    assert DataSpec("cifar10").layout == "NCHW, float32, normalised: (pixel / 255 - mean) / std"
    assert all(DataSpec(name).layout for name in DATASETS)

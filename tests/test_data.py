import numpy as np

from gac_deploy.data import DataSpec, load_digits_split, load_split


def test_digits_split_is_stratified_and_seeded():
    split = load_digits_split(seed=0)
    assert split.x_train.shape == (1437, 1, 8, 8) and split.x_test.shape == (360, 1, 8, 8)
    counts = np.bincount(split.y_test.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert abs(float(split.x_train.mean())) < 1e-5 and abs(float(split.x_train.std()) - 1) < 1e-3
    again = load_digits_split(seed=0)
    assert np.array_equal(split.x_test.numpy(), again.x_test.numpy())
    other = load_digits_split(seed=1)
    assert not np.array_equal(split.y_test.numpy(), other.y_test.numpy())


def test_load_split_rebuilds_the_same_split():
    split = load_digits_split(seed=3)
    rebuilt = load_split(split.spec)
    assert np.array_equal(rebuilt.x_test.numpy(), split.x_test.numpy())
    assert isinstance(split.spec, DataSpec) and split.spec.seed == 3

"""The registry mechanism, and every built-in entry naming an implementation that exists."""

import inspect

import pytest

from gac_deploy.errors import UserError
from gac_deploy.models.encoder import StemEncoder
from gac_deploy.registries import Registry, resolve
from gac_deploy.registries.backends import BACKENDS
from gac_deploy.registries.datasets import DATASETS, DatasetEntry
from gac_deploy.registries.encoders import ENCODERS
from gac_deploy.registries.profiles import PROFILES, EnergyProfile
from gac_deploy.registries.targets import TARGETS


def test_names_in_order_one_line_errors_and_temporary_entries():
    colours: Registry[int] = Registry("colour", setting="colour")
    colours.register("red", 1)
    colours.register("blue", 2)
    assert colours.names() == ("red", "blue") and colours.get("blue") == 2
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        colours.register("red", 3)
    with pytest.raises(UserError, match="unknown colour 'green'; choose one of: red, blue") as info:
        colours.get("green")
    assert info.value.setting == "colour"
    with colours.registered("green", 3):
        assert colours.get("green") == 3 and len(colours) == 3
    assert "green" not in colours and colours.names() == ("red", "blue")


def test_resolve_imports_a_reference_or_passes_an_object():
    assert resolve("gac_deploy.data:load_digits").__name__ == "load_digits"
    assert resolve(len) is len
    with pytest.raises(ValueError, match="not 'module:attribute'"):
        resolve("gac_deploy.data")


def test_every_built_in_reference_resolves():
    for _, entry in DATASETS.items():
        assert list(inspect.signature(resolve(entry.loader)).parameters) == ["request"]
    for _, entry in ENCODERS.items():
        assert issubclass(resolve(entry.implementation), StemEncoder)
    for _, entry in TARGETS.items():
        assert list(inspect.signature(resolve(entry.writer)).parameters) == ["job"]
        assert callable(resolve(entry.loader))
    for _, entry in BACKENDS.items():
        assert list(inspect.signature(resolve(entry.runner)).parameters) == ["job"]


def test_preset_names_are_unique_across_datasets():
    clash = DatasetEntry("gac_deploy.data:load_digits", "pixel", False, "x", {"cifar10-paper": {}})
    with pytest.raises(ValueError, match="preset 'cifar10-paper' is already registered"):
        DATASETS.register("clash", clash)
    assert "clash" not in DATASETS
    assert DATASETS.preset("imagenet-paper")["dataset"] == "imagenet"
    with pytest.raises(UserError, match="unknown preset 'x'; choose one of: cifar10-paper"):
        DATASETS.preset("x")


def test_a_profile_is_registered_under_its_own_name():
    paper = PROFILES.get("horowitz45-fp32")
    with pytest.raises(TypeError):
        EnergyProfile("x", 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, "s", "h")  # keywords only
    with pytest.raises(ValueError, match="profile 'horowitz45-fp32' registered as 'other'"):
        PROFILES.register("other", paper)
    assert (paper.price("MAC"), paper.price("AC"), paper.price("spike")) == (4.6, 0.9, 0.0)

"""The datasets: what each is called, how it is loaded, how its pixels reach [0, 1],
whether it reads the user's copy (``--data-dir``), and its training presets.

:func:`gac_deploy.data.load_dataset` loads through this registry; ``train`` and
``evaluate`` list its names, ``train --preset`` its presets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gac_deploy.errors import UserError
from gac_deploy.registries import Registry

Normalization = tuple[tuple[float, ...], tuple[float, ...]]
"""(mean, std) per channel, of pixels in [0, 1]."""


@dataclass(frozen=True)
class DataRequest:
    """What a loader is asked for: the dataset's name, where the user's copy lies (None:
    not given), the split's seed and test fraction (for datasets that split one set),
    and the normalisation to apply (None: the dataset's default)."""

    dataset: str
    data_dir: str | None
    seed: int = 0
    test_fraction: float = 0.2
    normalization: Normalization | None = None

    def root(self) -> Path:
        """The user's copy, or the one-line error saying to pass it."""
        if self.data_dir is None:
            raise UserError(f"--dataset {self.dataset} reads your local copy: pass --data-dir DIR")
        return Path(self.data_dir)


Loader = Callable[[DataRequest], Any]
"""A function from a request to a :class:`gac_deploy.data.Split`."""


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset. ``loader``: ``"module:function"`` or the function (see :data:`Loader`).
    ``pixel_scaling``: how a stored pixel becomes [0, 1] (recorded in every bundle's
    manifest). ``needs_data_dir``: it reads the user's copy rather than built-in data.
    ``presets``: training recipes by name (settings as in a YAML config file; the
    dataset itself is implied). ``help``: one line for ``--help``."""

    loader: str | Loader
    pixel_scaling: str
    needs_data_dir: bool
    help: str
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


class DatasetRegistry(Registry[DatasetEntry]):
    """Datasets, whose preset names are unique across all of them."""

    def register(self, name: str, entry: DatasetEntry) -> DatasetEntry:
        taken = set(self.presets())
        clash = sorted(taken & set(entry.presets))
        if clash:
            raise ValueError(f"preset {clash[0]!r} is already registered")
        return super().register(name, entry)

    def presets(self) -> dict[str, dict[str, Any]]:
        """Every preset of every dataset: its settings with the dataset named."""
        return {
            preset: {**settings, "dataset": name}
            for name, entry in self.items()
            for preset, settings in entry.presets.items()
        }

    def preset(self, name: str) -> dict[str, Any]:
        presets = self.presets()
        if name not in presets:
            raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(presets)}")
        return presets[name]


DATASETS = DatasetRegistry("dataset", setting="dataset")
DEFAULT_DATASET = "digits"

_CIFAR_RECIPE = {
    "model": "msresnet18-cifar",
    "time_steps": 6,
    "epochs": 250,
    "batch_size": 64,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "cutmix": 1.0,
}
"""The paper's CIFAR recipe (Supplementary B, Tables 4-5)."""

DATASETS.register(
    "digits",
    DatasetEntry(
        loader="gac_deploy.data:load_digits",
        pixel_scaling="pixel / 16",
        needs_data_dir=False,
        help="scikit-learn's 1797 8x8 digits, built in",
    ),
)
DATASETS.register(
    "cifar10",
    DatasetEntry(
        loader="gac_deploy.data:load_cifar10",
        pixel_scaling="pixel / 255",
        needs_data_dir=True,
        help="your CIFAR-10 python batches (cifar-10-batches-py)",
        presets={"cifar10-paper": _CIFAR_RECIPE},
    ),
)
DATASETS.register(
    "cifar100",
    DatasetEntry(
        loader="gac_deploy.data:load_cifar100",
        pixel_scaling="pixel / 255",
        needs_data_dir=True,
        help="your CIFAR-100 python files (cifar-100-python)",
        presets={"cifar100-paper": _CIFAR_RECIPE},
    ),
)
DATASETS.register(
    "imagenet",
    DatasetEntry(
        loader="gac_deploy.data:load_imagenet",
        pixel_scaling="pixel / 255",
        needs_data_dir=True,
        help="your ImageFolder tree (train/<class>/*.JPEG, val/<class>/*.JPEG)",
        presets={
            "imagenet-paper": {  # the paper's recipe (Supplementary B, Tables 4-5)
                "model": "msresnet18-imagenet",
                "time_steps": 4,
                "epochs": 250,
                "batch_size": 256,
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "label_smoothing": 0.1,
            }
        },
    ),
)
DATASETS.register(
    "synthetic",
    DatasetEntry(
        loader="gac_deploy.data:load_synthetic",
        pixel_scaling="pixel",
        needs_data_dir=False,
        help="a seeded toy set of bright squares, for tests",
    ),
)

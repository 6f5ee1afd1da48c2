"""Typed configuration: the model and the training run, serialised as plain dicts.

Plain dicts (str, int, float, bool, list) are what a checkpoint stores, so that
``torch.load(..., weights_only=True)`` can read it back and YAML/JSON can show it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from gac_deploy.errors import UserError, bad_setting
from gac_deploy.registries.datasets import DEFAULT_DATASET
from gac_deploy.registries.encoders import DEFAULT_ENCODER, ENCODERS


@dataclass(frozen=True)
class LIFConfig:
    """Leaky integrate-and-fire neuron (paper Eq. 1, Table 4 defaults).

    ``tau`` is the fraction of membrane potential kept per step; a neuron spikes
    when its potential exceeds ``threshold`` (``strict``: v > Vth, as Loihi and
    the authors' code do; otherwise v >= Vth) and is then reset to ``reset``.
    ``surrogate`` is ``"rectangle"`` (Eq. 22, window ``surrogate_width`` = a) or
    ``"triangle"`` (the authors' CIFAR code, gamma = ``surrogate_width``).
    """

    threshold: float = 0.5
    tau: float = 0.25
    reset: float = 0.0
    surrogate_width: float = 1.0
    strict: bool = True
    surrogate: str = "rectangle"

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise UserError(
                f"unknown surrogate {self.surrogate!r}; choose one of: {', '.join(SURROGATES)}",
                setting="surrogate",
            )
        _check_finite(self)
        if not 0.0 <= self.tau <= 1.0:
            raise bad_setting("tau", "in [0, 1] (the kept fraction)", self.tau)


def _check_finite(config: Any) -> None:
    """Refuse NaN and infinite values in a config's float fields (NaN passes every
    comparison-based range check)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise bad_setting(f.name, "a finite number", value)


def check_normalization(mean: Any, std: Any) -> None:
    """Refuse a normalisation (per-channel ``mean`` and ``std`` of pixels in [0, 1]) that
    is given half, holds anything but finite numbers, or divides by a std <= 0."""
    if (mean is None) != (std is None):
        given = "mean" if std is None else "std"
        raise UserError("--mean and --std go together: give both or neither", setting=given)
    for key, value in (("mean", mean), ("std", std)):
        if value is not None and not (
            isinstance(value, tuple | list)
            and value
            and all(isinstance(v, float | int) and math.isfinite(v) for v in value)
        ):
            raise bad_setting(key, "one finite number per channel", value)
    if std is not None and min(std) <= 0:
        raise bad_setting("std", "positive in every channel", list(std))


SURROGATES = ("rectangle", "triangle")
GAU_MODES = ("full", "ta", "sca")
SHORTCUTS = ("spike", "membrane")

AUTHORS_CIFAR_LIF = LIFConfig(threshold=1.0, tau=0.5, strict=True, surrogate="triangle")
"""The LIF of the authors' CIFAR code, which produced their released CIFAR weights."""


@dataclass(frozen=True)
class StageConfig:
    """One stage of MS-ResNet blocks; the first block carries the stride."""

    channels: int
    blocks: int
    stride: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """A GAC-MS-ResNet. Image input is [N, C, H, W]; time steps ``time_steps``.

    ``encoder``: a name registered in :mod:`gac_deploy.registries.encoders`: ``"gac"``
    (Eq. 5), ``"lif"`` (the stem's LIF spikes, no GAU), ``"direct"`` (the stem's real
    output repeated over T) or ``"rate"`` (Bernoulli spikes of the input through the
    stem at every step) are built in. ``gau``: which
    attention the GAC gate uses, ``"full"`` (TA and SCA, Eq. 4), ``"ta"`` or
    ``"sca"`` (the ablations of Fig. 4a). ``shortcut``: ``"spike"`` (the
    downsampling 1x1 conv reads the block's LIF spikes) or ``"membrane"`` (it
    reads the real-valued stream, as the authors' code does: a MAC layer).
    """

    arch: str = "digits-gac-msresnet"
    in_channels: int = 1
    image_size: int = 8
    num_classes: int = 10
    time_steps: int = 4
    stem_channels: int = 16
    stem_kernel: int = 3
    stem_stride: int = 1
    stages: tuple[StageConfig, ...] = (StageConfig(16, 1, 1), StageConfig(32, 1, 2))
    encoder: str = DEFAULT_ENCODER
    gau: str = "full"
    sca_kernel: int = 4
    ta_reduction: int = 2
    shortcut: str = "spike"
    lif: LIFConfig = field(default_factory=LIFConfig)

    def __post_init__(self) -> None:
        ENCODERS.get(self.encoder)  # a one-line error naming the registered encoders
        for key, allowed in (("gau", GAU_MODES), ("shortcut", SHORTCUTS)):
            value = getattr(self, key)
            if value not in allowed:
                raise UserError(
                    f"unknown {key} {value!r}; choose one of: {', '.join(allowed)}", setting=key
                )
        for key in (
            "in_channels",
            "image_size",
            "num_classes",
            "time_steps",
            "stem_channels",
            "stem_kernel",
            "stem_stride",
            "sca_kernel",
            "ta_reduction",
        ):
            if getattr(self, key) < 1:
                raise bad_setting(key, "at least 1", getattr(self, key))
        if self.time_steps // self.ta_reduction < 1:
            raise UserError(
                f"time_steps {self.time_steps} is smaller than ta_reduction "
                f"{self.ta_reduction}; use more time steps or a smaller reduction",
                setting="time_steps",
            )


@dataclass(frozen=True)
class TrainConfig:
    """How ``gac-deploy train`` trains: SGD with momentum, cosine learning rate to 0,
    cross-entropy on the mean output over T (paper Supplementary B). ``cutmix`` is the
    Beta(a, a) parameter of CutMix (0: off), applied to half of the batches. ``compile``:
    run the LIF recurrences through ``torch.compile`` (fused loops; the first step pays
    the compilation). ``mean`` / ``std``: the per-channel normalisation of pixels in
    [0, 1] (both or neither; None: the dataset's default, see ``data.STANDARD_NORMALIZATION``).
    ``dataset``: a name registered in :mod:`gac_deploy.registries.datasets`."""

    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    test_fraction: float = 0.2
    label_smoothing: float = 0.0
    cutmix: float = 0.0
    device: str = "cpu"
    checkpoint_every: int = 0
    tensorboard: bool = False
    compile: bool = False
    workers: int | None = None  # loader processes; None: 0 for in-memory data, else up to 8

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise bad_setting(key, "at least 1", getattr(self, key))
        _check_finite(self)
        self._check_normalization()
        if self.lr <= 0:
            raise bad_setting("lr", "positive", self.lr)
        ranges = (
            ("momentum", 0.0 <= self.momentum < 1.0, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
            ("cutmix", self.cutmix >= 0, "at least 0 (0 = off)"),
            ("checkpoint_every", self.checkpoint_every >= 0, "at least 0 (0 = per epoch only)"),
            ("workers", self.workers is None or self.workers >= 0, "at least 0"),
            ("test_fraction", 0.0 < self.test_fraction < 1.0, "in (0, 1)"),
            ("seed", 0 <= self.seed < 2**32, "in [0, 2**32)"),
        )
        for key, ok, rule in ranges:
            if not ok:
                raise bad_setting(key, rule, getattr(self, key))

    def _check_normalization(self) -> None:
        for key in ("mean", "std"):
            if isinstance(getattr(self, key), list):  # read back from JSON or YAML
                object.__setattr__(self, key, tuple(getattr(self, key)))
        check_normalization(self.mean, self.std)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(mean, std) as given, or None for the dataset's default."""
        return None if self.mean is None else (self.mean, self.std)


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as nested plain dicts and lists (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(config)


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    data = dict(data)
    try:
        data["lif"] = LIFConfig(**data.get("lif", {}))
        data["stages"] = tuple(StageConfig(**s) for s in data.get("stages", []))
        return ModelConfig(**data)
    except TypeError as exc:
        raise UserError(f"model config is malformed ({exc}); re-train or re-export it") from None


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig(**data)
    except TypeError as exc:
        raise UserError(f"train config is malformed ({exc}); check its keys") from None

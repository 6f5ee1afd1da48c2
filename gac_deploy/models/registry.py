"""Named model configurations, timm-style: ``build_model(default_config(name))``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gac_deploy.config import ModelConfig, StageConfig
from gac_deploy.errors import UserError
from gac_deploy.models.msresnet import GACMSResNet
from gac_deploy.models.size import check_model_size, model_size

_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}


def register_model(name: str) -> Callable[[Callable[[], ModelConfig]], Callable[[], ModelConfig]]:
    def decorate(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
        _REGISTRY[name] = fn
        return fn

    return decorate


@register_model("digits-gac-msresnet")
def digits_gac_msresnet() -> ModelConfig:
    """Small GAC-MS-ResNet for 8x8 digits: 16-channel stem, blocks 16 and 32 (stride 2)."""
    return ModelConfig()


@register_model("msresnet18-cifar")
def msresnet18_cifar() -> ModelConfig:
    """GAC-MS-ResNet-18 for 32x32 CIFAR: 3x3 stem, stages 128x3, 256x3 (s2), 512x2 (s2); T=6."""
    return ModelConfig(
        arch="msresnet18-cifar",
        in_channels=3,
        image_size=32,
        num_classes=10,
        time_steps=6,
        stem_channels=64,
        stages=(StageConfig(128, 3, 1), StageConfig(256, 3, 2), StageConfig(512, 2, 2)),
    )


def _imagenet(arch: str, blocks: tuple[int, int, int, int]) -> ModelConfig:
    channels = (64, 128, 256, 512)
    return ModelConfig(
        arch=arch,
        in_channels=3,
        image_size=224,
        num_classes=1000,
        time_steps=4,
        stem_channels=64,
        stem_kernel=7,
        stem_stride=2,
        stages=tuple(StageConfig(c, b, 2) for c, b in zip(channels, blocks, strict=True)),
    )


@register_model("msresnet18-imagenet")
def msresnet18_imagenet() -> ModelConfig:
    """GAC-MS-ResNet-18 for 224x224 ImageNet: 7x7 s2 stem, no max-pool, [2, 2, 2, 2], T=4."""
    return _imagenet("msresnet18-imagenet", (2, 2, 2, 2))


@register_model("msresnet34-imagenet")
def msresnet34_imagenet() -> ModelConfig:
    """GAC-MS-ResNet-34 for 224x224 ImageNet: 7x7 s2 stem, no max-pool, [3, 4, 6, 3], T=4."""
    return _imagenet("msresnet34-imagenet", (3, 4, 6, 3))


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def default_config(name: str, **overrides: Any) -> ModelConfig:
    """The registered configuration, with any field replaced (e.g. num_classes, time_steps)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return replace(_REGISTRY[name](), **overrides)


def count_parameters(config: ModelConfig) -> int:
    """All parameters, BatchNorm affine included (the authors' count); nothing is
    allocated, so any config can be counted."""
    return model_size(config).parameters


def build_model(config: ModelConfig) -> GACMSResNet:
    """The model of ``config``, refused before allocation if it cannot fit in memory
    (:func:`gac_deploy.models.size.check_model_size`)."""
    check_model_size(config)
    return GACMSResNet(config)

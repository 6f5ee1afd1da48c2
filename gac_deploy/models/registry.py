"""Named model configurations, timm-style: ``build_model(default_config(name))``."""

from __future__ import annotations

from collections.abc import Callable

from gac_deploy.config import ModelConfig
from gac_deploy.errors import UserError
from gac_deploy.models.msresnet import GACMSResNet

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


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def default_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]()


def build_model(config: ModelConfig) -> GACMSResNet:
    return GACMSResNet(config)

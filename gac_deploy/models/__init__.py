"""Model definitions shared by training, export, the chip simulators and energy accounting."""

from gac_deploy.models.msresnet import GACMSResNet
from gac_deploy.models.registry import build_model, default_config, list_models

__all__ = ["GACMSResNet", "build_model", "default_config", "list_models"]

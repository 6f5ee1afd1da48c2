"""Resolve a training run's settings: preset < YAML config file < command-line flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from gac_deploy.config import PRESETS, ModelConfig, TrainConfig
from gac_deploy.errors import UserError
from gac_deploy.models import default_config

MODEL_KEYS = ("time_steps", "encoder", "gau", "sca_kernel", "shortcut")
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def read_config_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"config file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{file} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{file} must hold a mapping of settings")
    if "train" in data or "model" in data and isinstance(data.get("model"), dict):
        # a config.yaml written by a run: {model: {...}, train: {...}}
        flat = dict(data.get("train", {}))
        model = data.get("model", {})
        flat["model"] = model.get("arch")
        flat.update({k: model[k] for k in MODEL_KEYS if k in model})
        return {k: v for k, v in flat.items() if v is not None}
    return data


def resolve(
    flags: dict[str, Any], preset: str | None = None, config_file: str | None = None
) -> tuple[ModelConfig, TrainConfig]:
    """Merge the layers of settings and build the typed configurations."""
    settings: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        settings.update(PRESETS[preset])
    if config_file is not None:
        settings.update(read_config_file(config_file))
    settings.update({k: v for k, v in flags.items() if v is not None})
    unknown = set(settings) - {"model", *MODEL_KEYS, *TRAIN_KEYS}
    if unknown:
        raise UserError(f"unknown settings: {', '.join(sorted(unknown))}")
    model = default_config(
        settings.get("model", "digits-gac-msresnet"),
        **{k: settings[k] for k in MODEL_KEYS if k in settings},
    )
    train = TrainConfig(**{k: settings[k] for k in TRAIN_KEYS if k in settings})
    return model, train

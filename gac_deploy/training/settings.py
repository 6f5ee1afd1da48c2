"""Resolve a training run's settings: preset < YAML config file < command-line flags."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

from gac_deploy.config import (
    ModelConfig,
    TrainConfig,
    model_config_from_dict,
    to_dict,
    train_config_from_dict,
)
from gac_deploy.errors import UserError, bad_setting
from gac_deploy.models import default_config
from gac_deploy.registries.datasets import DATASETS

MODEL_KEYS = ("time_steps", "encoder", "gau", "sca_kernel", "shortcut")
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def flag_for(setting: str) -> str:
    """The command-line flag that gives ``setting``: ``batch_size`` -> ``--batch-size``."""
    return "--" + setting.replace("_", "-")


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
        for section in ("train", "model"):
            if not isinstance(data.get(section, {}), dict):
                raise UserError(
                    f"{file}: {section} must hold a mapping of settings, got {data[section]!r}"
                )
        flat = dict(data.get("train", {}))
        model = data.get("model", {})
        flat["model"] = model.get("arch")
        flat.update({k: model[k] for k in MODEL_KEYS if k in model})
        return {k: v for k, v in flat.items() if v is not None}
    return data


_FIELD_TYPES = {
    **{f.name: f.type for f in dataclasses.fields(TrainConfig)},
    **{f.name: f.type for f in dataclasses.fields(ModelConfig) if f.name in MODEL_KEYS},
    "model": "str",
}


def _typed(key: str, value: Any) -> Any:
    """``value`` of setting ``key`` as its field's type (a YAML file may give 1e-1 as a
    string, or 3 where a float is meant); a clear error when it cannot be."""
    kind = str(_FIELD_TYPES[key])
    if value is None and kind.endswith("| None"):
        return None
    base = kind.removesuffix(" | None")
    if base == "tuple[float, ...]" and isinstance(value, list | tuple) and value:
        return tuple(_typed_number(key, v, "float") for v in value)
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "str" and isinstance(value, str):
        return value
    if base in ("int", "float"):
        return _typed_number(key, value, base)
    expected = {
        "bool": "true or false",
        "str": "a string",
        "tuple[float, ...]": "a list of numbers, one per channel",
    }[base]
    raise bad_setting(key, expected, value)


def _typed_number(key: str, value: Any, base: str) -> int | float:
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and base == "float":
            return number
        if number is not None and math.isfinite(number) and number == int(number):
            return int(number)
    raise bad_setting(key, f"a number ({base})", value)


def merge_settings(
    flags: dict[str, Any], preset: str | None = None, config_file: str | None = None
) -> dict[str, Any]:
    """The settings given explicitly: a preset, overridden by a YAML file, overridden by
    flags (``None`` flags are not given)."""
    settings: dict[str, Any] = {}
    if preset is not None:
        settings.update(DATASETS.preset(preset))
    if config_file is not None:
        settings.update(read_config_file(config_file))
    settings.update({k: v for k, v in flags.items() if v is not None})
    unknown = set(settings) - {"model", *MODEL_KEYS, *TRAIN_KEYS}
    if unknown:
        raise UserError(f"unknown settings: {', '.join(sorted(unknown))}")
    return {k: _typed(k, v) for k, v in settings.items()}


def build_configs(settings: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """The typed configurations of ``settings``, defaults for what is not given."""
    model = default_config(
        settings.get("model", "digits-gac-msresnet"),
        **{k: settings[k] for k in MODEL_KEYS if k in settings},
    )
    train = TrainConfig(**{k: settings[k] for k in TRAIN_KEYS if k in settings})
    return model, train


def resolve(
    flags: dict[str, Any], preset: str | None = None, config_file: str | None = None
) -> tuple[ModelConfig, TrainConfig]:
    """Merge the layers of settings and build the typed configurations."""
    return build_configs(merge_settings(flags, preset, config_file))


# what may differ when a run is resumed: where things are, not what is computed
RESUMABLE_CHANGES = ("data_dir", "device", "checkpoint_every", "tensorboard", "compile", "workers")


def resume_configs(
    state: dict[str, Any], settings: dict[str, Any], max_steps: int | None = None
) -> tuple[ModelConfig, TrainConfig, int | None]:
    """An interrupted run's configurations and step limit, read from its training state.

    ``settings`` (as :func:`merge_settings` gives them) may repeat the run's own, so the
    command that started a run can be relaunched with ``--resume``; a setting that
    differs is refused, except those in ``RESUMABLE_CHANGES``, which apply.
    """
    model = model_config_from_dict(state["model_config"])
    train = train_config_from_dict(state["train_config"])
    saved = {
        **to_dict(train),
        "model": model.arch,
        **{k: getattr(model, k) for k in MODEL_KEYS},
        "max_steps": state.get("max_steps"),
    }
    given = dict(settings) if max_steps is None else {**settings, "max_steps": max_steps}
    differ = [k for k, v in given.items() if k not in RESUMABLE_CHANGES and saved.get(k) != v]
    if differ:
        what = ", ".join(f"{flag_for(k)} {given[k]} (was {saved.get(k)})" for k in differ)
        raise UserError(
            f"--resume continues the run as it was set up, but {what}; drop the "
            "changed settings, or train into a new --out"
        )
    changes = {k: settings[k] for k in RESUMABLE_CHANGES if k in settings}
    return model, dataclasses.replace(train, **changes), state.get("max_steps")

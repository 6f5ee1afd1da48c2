"""model.pt: config + state dict + metrics, readable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from gac_deploy.config import ModelConfig, model_config_from_dict, to_dict
from gac_deploy.data import DataSpec
from gac_deploy.errors import UserError
from gac_deploy.fileio import write_torch
from gac_deploy.models import GACMSResNet, build_model
from gac_deploy.models.size import meta_model

FORMAT = "gac-deploy-checkpoint"
VERSION = 1


@dataclasses.dataclass
class Checkpoint:
    model_config: ModelConfig
    data: DataSpec
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, Any]
    train_config: dict[str, Any]
    quantization: dict[str, Any] | None = None
    """Fixed-point format fixed by quantisation-aware training (QuantSpec.to_dict)."""

    def build(self) -> GACMSResNet:
        """The model with these weights, in eval mode."""
        model = build_model(self.model_config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_dict(ckpt.model_config),
        "data": to_dict(ckpt.data),
        "train_config": ckpt.train_config,
        "metrics": ckpt.metrics,
        "quantization": ckpt.quantization,
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
    }
    write_torch(path, payload)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely (no unpickling of arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; train one with 'gac-deploy train'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path} is not a readable gac-deploy checkpoint ({first[:120]}); "
            "re-train or pass the model.pt that 'gac-deploy train' wrote"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a gac-deploy checkpoint; pass the model.pt from 'train'")
    if payload.get("version") != VERSION:
        raise UserError(f"{path} has checkpoint version {payload.get('version')}; re-train")
    _check_sections(path, payload)
    try:
        data = DataSpec(**payload["data"])
    except TypeError:
        raise UserError(f"{path} has a malformed data section; re-train") from None
    ckpt = Checkpoint(
        model_config=model_config_from_dict(payload["model_config"]),
        data=data,
        state_dict=payload["state_dict"],
        metrics=payload.get("metrics") or {},
        train_config=payload.get("train_config") or {},
        quantization=payload.get("quantization"),
    )
    _check_weights(path, ckpt)  # before anything is allocated
    try:
        ckpt.build()
    except RuntimeError as exc:
        raise UserError(
            f"{path}: weights do not fit the model config ({str(exc).splitlines()[0][:120]})"
        ) from None
    return ckpt


# section -> (required, allowed types)
_SECTIONS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "model_config": (True, (dict,)),
    "data": (True, (dict,)),
    "state_dict": (True, (dict,)),
    "metrics": (False, (dict, type(None))),
    "train_config": (False, (dict, type(None))),
    "quantization": (False, (dict, type(None))),
}


def _check_sections(path: Path, payload: dict) -> None:
    """Every section present (where required) and of its type; weights are tensors."""
    for key, (required, types) in _SECTIONS.items():
        if key not in payload:
            if required:
                raise UserError(f"{path} has no {key}; re-train or re-import it")
        elif not isinstance(payload[key], types):
            raise UserError(
                f"{path}: {key} is a {type(payload[key]).__name__}, not a mapping; re-train"
            )
    for name, value in payload["state_dict"].items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: state_dict entry {name!r} is not a tensor; re-train")


def _check_weights(path: Path, ckpt: Checkpoint) -> None:
    """The state dict has exactly the model's tensors, each of its shape, compared with a
    model built on the meta device: nothing is allocated for a config that asks for a huge
    model (building it then checks its size, :func:`gac_deploy.models.size.check_model_size`)."""
    expected = {k: tuple(v.shape) for k, v in meta_model(ckpt.model_config).state_dict().items()}
    given = {k: tuple(v.shape) for k, v in ckpt.state_dict.items()}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(expected) & set(given) if expected[k] != given[k])
    problem = (
        f"missing {missing[0]}"
        if missing
        else f"unexpected {unexpected[0]}"
        if unexpected
        else f"{wrong[0]} has shape {list(given[wrong[0]])}, the config needs "
        f"{list(expected[wrong[0]])}"
        if wrong
        else None
    )
    if problem:
        raise UserError(f"{path}: weights do not fit the model config ({problem}); re-train")

"""model.pt: config + state dict + metrics, readable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from gac_deploy.config import ModelConfig, model_config_from_dict, to_dict
from gac_deploy.data import DataSpec
from gac_deploy.errors import UserError
from gac_deploy.fileio import atomic_path
from gac_deploy.models import GACMSResNet, build_model

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
    with atomic_path(path, ".pt") as tmp:
        torch.save(payload, tmp)


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
    try:
        data = DataSpec(**payload["data"])
    except TypeError:
        raise UserError(f"{path} has a malformed data section; re-train") from None
    ckpt = Checkpoint(
        model_config=model_config_from_dict(payload["model_config"]),
        data=data,
        state_dict=payload["state_dict"],
        metrics=payload.get("metrics", {}),
        train_config=payload.get("train_config", {}),
        quantization=payload.get("quantization"),
    )
    try:
        ckpt.build()
    except RuntimeError as exc:
        raise UserError(
            f"{path}: weights do not fit the model config ({str(exc).splitlines()[0][:120]})"
        ) from None
    return ckpt

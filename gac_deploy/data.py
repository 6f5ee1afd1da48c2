"""Datasets. The embedded default: scikit-learn's handwritten digits (real, shipped in the wheel).

Images come out as float32 [N, 1, 8, 8], pixel values scaled to [0, 1] and then
normalised with the training split's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gac_deploy.errors import UserError


@dataclass(frozen=True)
class DataSpec:
    """Which data, which split, and the normalisation the model was trained with."""

    dataset: str = "digits"
    seed: int = 0
    test_fraction: float = 0.2
    mean: float = 0.0
    std: float = 1.0


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    spec: DataSpec


def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """The 1797 digits, split 80/20 stratified by class with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    mean, std = float(x_tr.mean()), float(x_tr.std())
    spec = DataSpec("digits", seed, test_fraction, mean, std)
    return Split(
        torch.from_numpy((x_tr - mean) / std),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy((x_te - mean) / std),
        torch.from_numpy(y_te).long(),
        spec,
    )


def load_split(spec: DataSpec) -> Split:
    """Rebuild the split a model was trained on (same seed, same normalisation)."""
    if spec.dataset != "digits":
        raise UserError(f"unknown dataset {spec.dataset!r}; this version supports 'digits'")
    split = load_digits_split(spec.seed, spec.test_fraction)
    if abs(split.spec.mean - spec.mean) > 1e-6 or abs(split.spec.std - spec.std) > 1e-6:
        raise UserError("the digits split no longer matches the model's normalisation; retrain")
    return split

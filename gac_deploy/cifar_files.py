"""The official CIFAR-10/100 "python version" files, read without running their code.

Those files are pickles; they are read with an unpickler that accepts only plain
containers and numpy arrays, so a file that tries to run code is refused, and each
batch's arrays are checked (dtype, shape, label count and range) before anything is
built from them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from gac_deploy.errors import UserError


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses any other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 rebuild bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> dict:
    """One file of the official CIFAR python layout, read without running its code."""
    try:
        with open(path, "rb") as handle:
            data = _ArraysOnly(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(
            f"{path} is not a CIFAR python batch ({exc}); use the official 'python version' archive"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a CIFAR python batch; use the official archive")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


CIFAR_PIXELS = 3 * 32 * 32


def check_cifar_arrays(
    path: Path, data: object, labels: object, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """A batch's images [N, 3, 32, 32] uint8 and labels [N] int64, checked before any array
    is built from them: the official layout is a uint8 array [N, 3072] and N labels in
    [0, classes). (A list that references one row millions of times is refused here, not
    expanded into gigabytes.)"""
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = (
            f"{type(data).__name__} of {data.dtype}"
            if isinstance(data, np.ndarray)
            else (type(data).__name__)
        )
        raise UserError(
            f"{path}: 'data' is a {kind}, not an array of uint8 pixels; use the official "
            "CIFAR python archive"
        )
    if data.ndim != 2 or data.shape[1] != CIFAR_PIXELS:
        raise UserError(
            f"{path}: 'data' has shape {list(data.shape)}, not [N, {CIFAR_PIXELS}] "
            "(32x32 RGB); use the official CIFAR python archive"
        )
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        count = len(labels) if isinstance(labels, list | np.ndarray) else type(labels).__name__
        raise UserError(f"{path}: {len(data)} images but {count} labels; the file is damaged")
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise UserError(f"{path}: labels are not integers; the file is damaged")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise UserError(
            f"{path}: labels run from {y.min()} to {y.max()}, outside 0..{classes - 1}; "
            f"is it CIFAR-{classes}?"
        )
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)

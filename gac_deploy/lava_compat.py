"""Every workaround gac-deploy needs to run lava-nc 0.10 / lava-dl 0.6 on Python 3.11.

Nothing in site-packages is edited and no Lava source is copied; the fixes are
applied at import time, from here only. Call :func:`import_lava` (or
:func:`import_slayer`) instead of importing Lava directly.

1. ``lava.magma.compiler.var_model`` declares dataclasses whose field default is
   an instance of the dataclass ``ByteEncoder``. Python 3.11 rejects defaults
   whose class is unhashable ("mutable default ... use default_factory"), so
   importing almost any Lava process fails. We make ``ByteEncoder`` hashable
   while that one module is executed (``unsafe_hash=True``), which restores the
   behaviour those classes had on Python 3.10, the version Lava supports.
2. ``import lava.lib.dl.slayer`` imports ``slayer.object_detection``, which needs
   OpenCV and torchvision (torchvision does not import beside our torch). We
   register an empty placeholder module under that name; the rest of slayer
   (neurons, synapses, blocks) and netx never use it.
3. Lava's multiprocessing message infrastructure calls
   ``multiprocessing.set_start_method('fork')`` when it is imported, without
   ``force``; if anything set a start method before (torch.onnx's exporter
   does), the import raises "context has already been set". We import that
   module with the call forced, so Lava gets the 'fork' method it requires.
4. Lava's ``Conv`` process models call ``lava.proc.conv.utils.conv``, which has
   its torch path switched off ("torch calls inside Lava PyProcess hangs") and
   falls back to ``conv_scipy``: one ``scipy.signal.convolve2d`` per (output,
   input) channel pair per time step, 5.8 million calls per step for the
   paper's msresnet18-cifar. We point ``utils.conv`` at :func:`conv_float64`:
   the same correlation as one ``torch.nn.functional.conv2d`` in float64 (as
   ``conv_scipy`` accumulates: integer sums are exact below 2^53), on one
   thread in each forked Lava process (OpenMP thread pools do not survive
   ``fork``, the hang Lava's note refers to); the process that imports Lava
   keeps its threads. Same arguments, same layout (x, y, f),
   same result; the test compares it with ``conv_scipy``.
5. Lava's ``Conv`` process takes ``weight_exp`` (its docstring: the weight is
   ``weight * pow(2, weight_exp)``, as NetX's conv blocks pass it for the chip),
   but its fixed-point CPU model ``PyConvModelFixed`` never applies it, while
   ``Dense``'s bit-accurate model shifts its accumulated input by it. We make the
   Conv model shift its accumulated input the same way before its 24-bit clamp
   (:func:`_conv_weight_exponent`); the test runs a Conv with ``weight_exp`` 3
   against the same weights multiplied by 8.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

VAR_MODEL = "lava.magma.compiler.var_model"
MESSAGE_INFRASTRUCTURE = "lava.magma.runtime.message_infrastructure.multiprocessing"
OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"
CONV_UTILS = "lava.proc.conv.utils"
CONV_MODELS = "lava.proc.conv.models"


@contextmanager
def _patched(owner: object, name: str, replacement: object) -> Iterator[None]:
    """Replace ``owner.name`` for the duration of one import."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _hashable_byte_encoder() -> None:
    """Import Lava's var_model with ByteEncoder hashable (workaround 1)."""
    if VAR_MODEL in sys.modules:
        return
    original = dataclasses.dataclass

    def dataclass(cls=None, /, **kwargs):
        def wrap(c):
            if c.__module__ == VAR_MODEL and c.__name__ == "ByteEncoder":
                kwargs.setdefault("unsafe_hash", True)
            return original(c, **kwargs)

        return wrap if cls is None else wrap(cls)

    with _patched(dataclasses, "dataclass", dataclass):
        importlib.import_module(VAR_MODEL)


def _skip_object_detection() -> None:
    """Stand in for slayer.object_detection, which needs cv2 and torchvision (workaround 2)."""
    if OBJECT_DETECTION not in sys.modules:
        placeholder = types.ModuleType(OBJECT_DETECTION)
        placeholder.__doc__ = "Not available in gac-deploy: needs OpenCV and torchvision."
        sys.modules[OBJECT_DETECTION] = placeholder


def _forced_fork_start_method() -> None:
    """Import Lava's multiprocessing backend even if a start method was set (workaround 3)."""
    if MESSAGE_INFRASTRUCTURE in sys.modules:
        return
    original = multiprocessing.set_start_method

    def set_start_method(method, force=False):
        original(method, force=True)

    with _patched(multiprocessing, "set_start_method", set_start_method):
        importlib.import_module(MESSAGE_INFRASTRUCTURE)


_lavas_conv = None  # lava.proc.conv.utils.conv as Lava ships it
_patched_in_pid: int | None = None  # the process that applied workaround 4
_single_threaded_pid: int | None = None


def conv_float64(input_, weight, kernel_size, stride, padding, dilation, groups):
    """Lava's ``utils.conv`` contract: ``input_`` [X, Y, C_in] (x-y-f), ``weight``
    [C_out, kX, kY, C_in], stride/padding/dilation as (x, y) -> [X', Y', C_out]
    of ``weight``'s dtype. Correlation with the kernel flipped in x and y, summed
    in float64 (workaround 4). ``kernel_size`` is implied by ``weight``."""
    global _single_threaded_pid
    import numpy as np
    import torch

    pid = os.getpid()
    if pid not in (_patched_in_pid, _single_threaded_pid):  # once in each forked Lava process
        torch.set_num_threads(1)
        _single_threaded_pid = pid
    x = torch.from_numpy(np.ascontiguousarray(input_.transpose(2, 1, 0), dtype=np.float64))
    w = np.ascontiguousarray(weight[:, ::-1, ::-1].transpose(0, 3, 2, 1), dtype=np.float64)
    out = torch.nn.functional.conv2d(
        x[None],
        torch.from_numpy(w),
        stride=[int(v) for v in stride[::-1]],
        padding=[int(v) for v in padding[::-1]],
        dilation=[int(v) for v in dilation[::-1]],
        groups=int(groups),
    )
    return out[0].numpy().transpose(2, 1, 0).astype(weight.dtype)


def _torch_convolution() -> None:
    """Point Lava's Conv process models at one float64 torch conv (workaround 4)."""
    global _patched_in_pid, _lavas_conv
    utils = importlib.import_module(CONV_UTILS)
    if utils.conv is not conv_float64:
        _lavas_conv = utils.conv
        utils.conv = conv_float64
        _patched_in_pid = os.getpid()


@contextmanager
def lavas_own_convolution() -> Iterator[None]:
    """Undo workaround 4 for a while (Lava networks run inside use Lava's
    ``conv_scipy``): for benchmarks that compare with Lava as shipped."""
    utils = import_lava(CONV_UTILS)
    with _patched(utils, "conv", _lavas_conv):
        yield


def _conv_weight_exponent() -> None:
    """Workaround 5: the fixed-point Conv model applies its process's ``weight_exp``."""
    model = importlib.import_module(CONV_MODELS).PyConvModelFixed
    if getattr(model, "_applies_weight_exp", False):
        return
    clamp = model.clamp_precision

    def clamp_precision(self, x):
        shift = int(self.weight_exp.flat[0]) if hasattr(self.weight_exp, "flat") else 0
        if shift:
            x = x * (1 << shift) if shift > 0 else x // (1 << -shift)
        return clamp(self, x)

    model.clamp_precision = clamp_precision
    model._applies_weight_exp = True


def apply() -> None:
    """Apply every workaround. Safe to call many times."""
    _hashable_byte_encoder()
    _skip_object_detection()
    _forced_fork_start_method()
    _torch_convolution()
    _conv_weight_exponent()


def import_lava(module: str) -> ModuleType:
    """Import a Lava module (e.g. ``lava.proc.lif.process``) with the workarounds applied."""
    apply()
    return importlib.import_module(module)


def import_slayer() -> ModuleType:
    """``lava.lib.dl.slayer`` with the workarounds applied."""
    return import_lava("lava.lib.dl.slayer")

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
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

VAR_MODEL = "lava.magma.compiler.var_model"
MESSAGE_INFRASTRUCTURE = "lava.magma.runtime.message_infrastructure.multiprocessing"
OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"


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


def apply() -> None:
    """Apply every workaround. Safe to call many times."""
    _hashable_byte_encoder()
    _skip_object_detection()
    _forced_fork_start_method()


def import_lava(module: str) -> ModuleType:
    """Import a Lava module (e.g. ``lava.proc.lif.process``) with the workarounds applied."""
    apply()
    return importlib.import_module(module)


def import_slayer() -> ModuleType:
    """``lava.lib.dl.slayer`` with the workarounds applied."""
    return import_lava("lava.lib.dl.slayer")

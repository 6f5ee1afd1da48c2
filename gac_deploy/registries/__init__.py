"""One registry per extension point: what the command line offers, and where the code is.

Each module of this package holds one registry of typed entries: :mod:`.datasets`,
:mod:`.encoders`, :mod:`.targets` (export), :mod:`.profiles` (energy) and
:mod:`.backends` (simulate). The commands read them for their choices, defaults and
help, and the package reads them to dispatch, so a name is listed where it works.

These modules are light (no torch, numpy or Lava): ``gac-deploy --help`` imports them.
An entry names its implementation lazily, as ``"module:attribute"`` (resolved when it
is used, by :func:`resolve`) or as the object itself (a registration made by a user's
script, which has imported it already). docs/extending.md shows how to add to each.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from gac_deploy.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in the order they were registered (the order ``--help`` lists).

    ``kind`` names what the entries are in messages ("unknown dataset 'x'; choose one
    of: ..."); ``setting`` is the configuration field an unknown name came from, when
    there is one (see :class:`gac_deploy.errors.UserError`)."""

    def __init__(self, kind: str, setting: str | None = None) -> None:
        self.kind = kind
        self.setting = setting
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a name already taken is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        del self._entries[name]

    @contextmanager
    def registered(self, name: str, entry: T) -> Iterator[T]:
        """``entry`` registered under ``name`` within the block only."""
        self.register(name, entry)
        try:
            yield entry
        finally:
            self.unregister(name)

    def get(self, name: str) -> T:
        """The entry of ``name``, or a one-line error listing the names there are."""
        if name not in self._entries:
            raise UserError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}",
                setting=self.setting,
            )
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> tuple[tuple[str, T], ...]:
        return tuple(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def resolve(reference: str | Callable[..., Any]) -> Any:
    """The object an entry names: ``"package.module:attribute"`` imported now, or the
    object itself when it was given directly."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    if not attribute:
        raise ValueError(f"reference {reference!r} is not 'module:attribute'")
    return getattr(importlib.import_module(module), attribute)

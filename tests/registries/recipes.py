"""The recipes of docs/extending.md, run as written: each section's python block is
executed, and whatever it registered is unregistered afterwards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gac_deploy.neurons import NEURONS
from gac_deploy.registries.backends import BACKENDS
from gac_deploy.registries.datasets import DATASETS
from gac_deploy.registries.encoders import ENCODERS
from gac_deploy.registries.profiles import PROFILES
from gac_deploy.registries.targets import TARGETS

PAGE = Path(__file__).parents[2] / "docs" / "extending.md"
REGISTRIES = (DATASETS, ENCODERS, TARGETS, PROFILES, BACKENDS, NEURONS)


def recipe_code(heading: str) -> str:
    """The one python block of the page's section ``## heading``."""
    sections = re.split(r"^## ", PAGE.read_text(), flags=re.M)
    (section,) = (s for s in sections if s.startswith(heading + "\n"))
    (code,) = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    return code


@contextmanager
def recipe(heading: str) -> Iterator[dict[str, Any]]:
    """Within: the recipe's registrations, and its namespace."""
    before = [set(registry.names()) for registry in REGISTRIES]
    namespace: dict[str, Any] = {"__name__": "recipe"}
    try:
        exec(compile(recipe_code(heading), f"{PAGE}#{heading}", "exec"), namespace)
        yield namespace
    finally:
        for registry, names in zip(REGISTRIES, before, strict=True):
            for name in set(registry.names()) - names:
                registry.unregister(name)

"""The simulation backends ``gac-deploy simulate`` runs a bundle's body on; its
``--backend`` lists them and :func:`gac_deploy.chip.simulate.simulate_bundle` runs the
one named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gac_deploy.registries import Registry

Runner = Callable[[Any], float]
"""A function from a :class:`gac_deploy.chip.simulate.SimulationJob` to the seconds its
body ran, having tallied every image in the job."""


@dataclass(frozen=True)
class BackendEntry:
    """A backend. ``runner``: ``"module:function"`` or the function (see :data:`Runner`).
    ``default_samples``: test images run when ``--samples`` is not given (None: all).
    ``help``: one line for ``--help``."""

    runner: str | Runner
    default_samples: int | None
    help: str


BACKENDS: Registry[BackendEntry] = Registry("backend")
DEFAULT_BACKEND = "emulator"

BACKENDS.register(
    "emulator",
    BackendEntry(
        runner="gac_deploy.chip.simulate:run_emulator",
        default_samples=None,
        help="bit-exact integer emulation, whole test sets",
    ),
)
BACKENDS.register(
    "lava",
    BackendEntry(
        runner="gac_deploy.chip.simulate:run_lava",
        default_samples=16,
        help="Lava's Loihi2SimCfg, a handful of images",
    ),
)
BACKENDS.register(
    "loihi2",
    BackendEntry(
        runner="gac_deploy.chip.simulate:run_loihi2",
        default_samples=16,
        help="the lava backend's network on Loihi 2 itself (needs lava-loihi)",
    ),
)

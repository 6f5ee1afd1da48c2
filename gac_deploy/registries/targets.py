"""The export targets: what a bundle's body is written as, by which function, and which
function opens such a bundle again. ``gac-deploy export --target`` lists them; the
manifest records the target's body file, where it runs and its schema
(:mod:`gac_deploy.export.manifest`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gac_deploy.registries import Registry

Writer = Callable[[Any], Any]
"""A function from a :class:`gac_deploy.export.targets.ExportJob` to the
:class:`gac_deploy.export.loading.Bundle` it wrote."""
Loader = Callable[[Any], Any]
"""A function from a bundle directory to its :class:`gac_deploy.export.loading.Bundle`."""


@dataclass(frozen=True)
class TargetEntry:
    """An export target. ``body_file``: the body's file in the bundle, beside
    encoder.onnx and manifest.json. ``runs_on`` and ``schema``: what the manifest says of
    it. ``writer`` and ``loader``: ``"module:function"`` or the function (see
    :data:`Writer`, :data:`Loader`). ``help``: one line for ``--help``."""

    body_file: str
    runs_on: str
    schema: str
    writer: str | Writer
    loader: str | Loader
    help: str


TARGETS: Registry[TargetEntry] = Registry("target")
DEFAULT_TARGET = "loihi2"

TARGETS.register(
    "loihi2",
    TargetEntry(
        body_file="body.net",
        runs_on="chip",
        schema="lava-dl netx hdf5 + gac extension (see gac_deploy/export/netx_hdf5.py)",
        writer="gac_deploy.export.targets:write_loihi2_bundle",
        loader="gac_deploy.export.loading:load_bundle",
        help="the quantised body for Loihi 2, as lava-dl NetX HDF5",
    ),
)
TARGETS.register(
    "nir",
    TargetEntry(
        body_file="body.nir",
        runs_on="any NIR reader",
        schema="NIR 1.0 graph (nir.write), float body; mapping in gac_deploy/export/nir_graph.py",
        writer="gac_deploy.export.targets:write_nir_bundle",
        loader="gac_deploy.export.loading:load_nir_bundle",
        help="the float body as a NIR graph, for other simulators and chips",
    ),
)

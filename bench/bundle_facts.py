"""What a bench prints about an exported bundle, read from its manifest in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gac_deploy.models.msresnet import COMPOSED


@dataclass(frozen=True)
class BundleFacts:
    """Counts of a Loihi 2 bundle; ``body_mb`` is body.net's size in MiB."""

    populations: int
    edges: int
    composed_edges: int
    neurons: int
    synapses: int
    cores: int
    chips: int
    chips_unrolled: int
    body_mb: float


def bundle_facts(bundle: Path) -> BundleFacts:
    manifest = json.loads((bundle / "manifest.json").read_text())
    body, res = manifest["body"], manifest["resources"]
    return BundleFacts(
        populations=len(body["populations"]),
        edges=len(body["edges"]),
        composed_edges=sum(COMPOSED in e["layer"] for e in body["edges"]),
        neurons=res["neurons"],
        synapses=res["synapses"],
        cores=res["cores"],
        chips=res["chips_needed"],
        chips_unrolled=res["chips_needed_unrolled"],
        body_mb=(bundle / "body.net").stat().st_size / 2**20,
    )

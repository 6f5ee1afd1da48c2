"""A deployment bundle's files and its manifest.json: what the files are called, what the
manifest records, and the checks that a manifest is exactly what was written.

A bundle is encoder.onnx (host) + body.net (chip) + manifest.json; a bundle of target
``nir`` holds body.nir (the float body as a NIR graph, see
:mod:`gac_deploy.export.nir_graph`) instead of body.net, with a manifest of the same
schema (no quantisation, timing or resources). Each target's body file, where it runs
and its schema are registered in :mod:`gac_deploy.registries.targets`. The manifest
records every artifact's sha256 (:func:`build_manifest`); :func:`check_manifest` refuses
one that leaves the schema, and :func:`check_replaceable` an output path that holds
anything but a bundle.
Writing bundles: :mod:`gac_deploy.export.targets`; opening them:
:mod:`gac_deploy.export.loading`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from gac_deploy import __version__
from gac_deploy.body.formats import payload_range
from gac_deploy.body.graph import Graph
from gac_deploy.body.loihi2 import Mapping
from gac_deploy.body.ops import LayerSpec
from gac_deploy.body.quantize import LayerQuantReport
from gac_deploy.body.timing import Timing
from gac_deploy.config import ModelConfig, to_dict
from gac_deploy.data import DataSpec
from gac_deploy.errors import UserError
from gac_deploy.export.onnx_encoder import OPSET
from gac_deploy.fileio import some_names
from gac_deploy.registries.targets import TARGETS

FORMAT = "gac-deploy-bundle"
FORMAT_VERSION = 3
ENCODER_FILE = "encoder.onnx"
MANIFEST_FILE = "manifest.json"
BODY_FILE = TARGETS.get("loihi2").body_file
NIR_BODY_FILE = TARGETS.get("nir").body_file


def artifacts_of(target: str) -> tuple[str, str]:
    """The files a bundle of ``target`` holds besides its manifest (manifest.json hashes
    them)."""
    return (ENCODER_FILE, TARGETS.get(target).body_file)


def bundle_files() -> set[str]:
    """Every file name a bundle of any registered target may hold."""
    return {ENCODER_FILE, MANIFEST_FILE, *(entry.body_file for _, entry in TARGETS.items())}


def check_replaceable(path: Path) -> None:
    """Refuse an output path that holds anything but a gac-deploy bundle: export replaces
    an existing bundle (or an empty directory), never a user's other files."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise UserError(
            f"output {path} exists and is not a directory; choose a new bundle directory"
        )
    names = sorted(p.name for p in path.iterdir())
    foreign = [n for n in names if n not in bundle_files()]
    if foreign:
        shown = some_names(foreign)
        raise UserError(
            f"output {path} exists and is not a gac-deploy bundle (it holds {shown}); "
            "choose a new directory, or remove it yourself if it may go"
        )
    if names and not _is_bundle_manifest(path / MANIFEST_FILE):
        raise UserError(
            f"output {path} holds bundle file names but no gac-deploy manifest; choose a "
            "new directory, or remove it yourself if it may go"
        )


def _is_bundle_manifest(file: Path) -> bool:
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def build_manifest(
    *,
    target: str,
    config: ModelConfig,
    data: DataSpec,
    float_test_accuracy: float | None,
    quantization_aware: bool,
    graph: Graph,
    timing: Timing | None,
    quantization: list[LayerQuantReport],
    layers: list[LayerSpec],
    mapping: Mapping | None,
    artifacts: dict[str, str],
    payload_bits: int | None = None,
    deployment: str = "simulation-only",
) -> dict[str, Any]:
    """manifest.json: what the host and the chip run, and how they were made.

    ``graph`` is the quantised body with its delays (``timing``); ``layers`` the float
    body's Eq. 11 layers; ``artifacts`` each file's sha256, which ``load_bundle`` checks.
    Target ``nir``: ``graph`` is the float body, ``timing`` and ``mapping`` are None (no
    latency, no resources) and ``payload_bits`` the bits encoder.onnx sends.
    ``deployment``: one of :data:`DEPLOYMENTS`."""
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"deployment {deployment!r} is not one of {', '.join(DEPLOYMENTS)}")
    kind = TARGETS.get(target)
    latency = timing.latency if timing else dict.fromkeys((p.name for p in graph.populations), 0)
    bits = graph.payload_bits if payload_bits is None else payload_bits
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gac_deploy_version": __version__,
        "target": target,
        "time_steps": graph.time_steps,
        "model": to_dict(config),
        "float_test_accuracy": float_test_accuracy,
        "quantization_aware": quantization_aware,
        "input": {
            "shape": [config.in_channels, config.image_size, config.image_size],
            "layout": data.layout,
            "normalization": {"mean": data.mean, "std": data.std},
            "data": to_dict(data),
        },
        "encoder": {
            "file": ENCODER_FILE,
            "runs_on": "host",
            "opset": OPSET,
            "outputs": {
                "encoded": "O [T, N, C, H, W], float, "
                + ("signed" if graph.signed_input else "in [0, 1)"),
                "payload": "round(O * 2**payload_bits), clipped to body.payload_range: "
                "graded spikes to the chip",
            },
        },
        "body": {
            "file": kind.body_file,
            "runs_on": kind.runs_on,
            "schema": kind.schema,
            "payload_bits": bits,
            "payload_range": list(payload_range(bits, graph.signed_input)),
            "latency_steps": timing.total_latency if timing else 0,
            "window_steps": graph.window,
            "deployment": deployment,
            "populations": [
                {
                    "name": p.name,
                    "shape": list(p.shape),
                    "role": p.role,
                    "latency": latency[p.name],
                }
                for p in graph.populations
            ],
            "edges": [
                {
                    "layer": e.layer,
                    "src": e.src,
                    "dst": e.dst,
                    "kind": e.kind,
                    "delay": e.delay,
                    "weight_exp": e.weight_exp,
                }
                for e in graph.edges
            ],
        },
        "quantization": [
            {
                "population": r.population,
                "scale_exp": r.scale_exp,
                "weight_max": r.weight_max,
                "clipped_weights": r.clipped_weights,
                "clipped_bias": r.clipped_bias,
                "weight_exp_max": r.weight_exp_max,
            }
            for r in quantization
        ],
        "layers": [to_dict(spec) for spec in layers],
        "resources": mapping.to_dict() if mapping else {},
        "artifacts": artifacts,
    }


# manifest.json's schema: every key build_manifest writes, with its type
MANIFEST_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "gac_deploy_version": str,
    "target": str,
    "time_steps": int,
    "model": dict,
    "float_test_accuracy": (float, int, type(None)),
    "quantization_aware": bool,
    "input": dict,
    "encoder": dict,
    "body": dict,
    "quantization": list,
    "layers": list,
    "resources": dict,
    "artifacts": dict,
}
INPUT_KEYS = ("shape", "layout", "normalization", "data")
BODY_KEYS = (
    "file",
    "runs_on",
    "schema",
    "payload_bits",
    "payload_range",
    "latency_steps",
    "window_steps",
    "deployment",
    "populations",
    "edges",
)
HEX = "0123456789abcdef"
DEPLOYMENTS = {
    "loihi2-hardware": "export checked the body against every Loihi 2 limit that Lava's "
    "CPU simulation does not enforce (gac_deploy.body.loihi2.HARDWARE)",
    "simulation-only": "not checked against those limits: for Lava's CPU simulation, the "
    "emulator, or another simulator",
}
"""What ``body.deployment`` in manifest.json can say, and what each means."""


def check_manifest(file: Path, manifest: Any) -> None:
    """Refuse a manifest that is not exactly what :func:`build_manifest` writes: its keys
    and their types, the input and data sections, hashes of exactly the bundle's own
    artifacts (mandatory), and one T throughout."""

    def refuse(problem: str) -> UserError:
        return UserError(f"{file}: {problem}; re-export the bundle")

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{file} is not a gac-deploy bundle manifest; re-export")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"bundle format version {manifest.get('format_version')} is not supported; re-export"
        )
    keys = set(manifest)
    if keys != set(MANIFEST_SCHEMA):
        odd = sorted(keys - set(MANIFEST_SCHEMA)) or sorted(set(MANIFEST_SCHEMA) - keys)
        raise refuse(f"{'unexpected' if keys - set(MANIFEST_SCHEMA) else 'missing'} {odd[0]}")
    for key, kind in MANIFEST_SCHEMA.items():
        if not isinstance(manifest[key], kind) or kind is int and isinstance(manifest[key], bool):
            raise refuse(f"{key} is a {type(manifest[key]).__name__}")
    if manifest["target"] not in TARGETS:
        raise refuse(f"target {manifest['target']!r} is not one of {', '.join(TARGETS.names())}")
    data_keys = {f.name for f in dataclasses.fields(DataSpec)}
    sections = (
        ("input", manifest["input"], set(INPUT_KEYS)),
        ("input.data", manifest["input"].get("data"), data_keys),
        ("body", manifest["body"], set(BODY_KEYS)),
        ("artifacts", manifest["artifacts"], set(artifacts_of(manifest["target"]))),
    )
    for name, section, expected in sections:
        if not isinstance(section, dict) or set(section) != expected:
            given = set(section) if isinstance(section, dict) else set()
            odd = sorted(given - expected) or sorted(expected - given) or [type(section).__name__]
            raise refuse(f"{name} must hold exactly {', '.join(sorted(expected))} (not {odd[0]})")
    for name, digest in manifest["artifacts"].items():
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= set(HEX)):
            raise refuse(f"the sha256 of {name} is not a 64-digit hex digest")
    if manifest["body"]["deployment"] not in DEPLOYMENTS:
        raise refuse(
            f"body.deployment {manifest['body']['deployment']!r} is not one of "
            f"{', '.join(DEPLOYMENTS)}"
        )
    if manifest["model"].get("time_steps") != manifest["time_steps"]:
        raise refuse(
            f"time_steps {manifest['time_steps']} differs from the model's "
            f"{manifest['model'].get('time_steps')}"
        )

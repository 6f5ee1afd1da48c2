"""The deployment bundle: encoder.onnx (host) + body.net (chip) + manifest.json.

``export_bundle`` writes all three into a temporary directory and renames it
into place, so an interrupted export leaves no half-written bundle.
``load_bundle`` verifies every artifact's sha256 against the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gac_deploy import __version__
from gac_deploy.body.graph import Graph
from gac_deploy.body.loihi2 import Mapping, check_deployable, check_fits
from gac_deploy.body.ops import LayerSpec, layer_specs
from gac_deploy.body.quantize import LayerQuantReport, QuantSpec, quantize_graph
from gac_deploy.body.timing import Timing, balance_delays
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.config import ModelConfig, model_config_from_dict, to_dict
from gac_deploy.data import DataSpec
from gac_deploy.errors import UserError
from gac_deploy.export.netx_hdf5 import read_body, write_body
from gac_deploy.export.onnx_encoder import (
    OPSET,
    check_encoder_onnx,
    export_encoder_onnx,
    run_encoder_onnx,
)
from gac_deploy.fileio import (
    atomic_directory,
    read_json,
    sha256_file,
    some_names,
    write_json,
)
from gac_deploy.models.encoder import encoder_class

FORMAT = "gac-deploy-bundle"
FORMAT_VERSION = 2
TARGETS = ("loihi2",)
ENCODER_FILE = "encoder.onnx"
BODY_FILE = "body.net"
MANIFEST_FILE = "manifest.json"
ARTIFACTS = (ENCODER_FILE, BODY_FILE)
"""The files manifest.json hashes."""
BUNDLE_FILES = (*ARTIFACTS, MANIFEST_FILE)


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    graph: Graph

    @property
    def model_config(self) -> ModelConfig:
        return model_config_from_dict(self.manifest["model"])

    @property
    def data_spec(self) -> DataSpec:
        return DataSpec(**self.manifest["input"]["data"])

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host stage by onnxruntime: images [N, C, H, W] -> (O, payload), each [T, N, C, H, W]."""
        expected = (self.graph.time_steps, *self.graph.input_shape)
        return run_encoder_onnx(self.path / ENCODER_FILE, images, expected)


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
    foreign = [n for n in names if n not in BUNDLE_FILES]
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
    timing: Timing,
    quantization: list[LayerQuantReport],
    layers: list[LayerSpec],
    mapping: Mapping,
    artifacts: dict[str, str],
) -> dict[str, Any]:
    """manifest.json: what the host and the chip run, and how they were made.

    ``graph`` is the quantised body with its delays (``timing``); ``layers`` the float
    body's Eq. 11 layers; ``artifacts`` each file's sha256, which ``load_bundle`` checks."""
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
            "file": BODY_FILE,
            "runs_on": "chip",
            "schema": "lava-dl netx hdf5 + gac extension (see gac_deploy/export/netx_hdf5.py)",
            "payload_bits": graph.payload_bits,
            "payload_range": list(graph.payload_range),
            "latency_steps": timing.total_latency,
            "populations": [
                {
                    "name": p.name,
                    "shape": list(p.shape),
                    "role": p.role,
                    "latency": timing.latency[p.name],
                }
                for p in graph.populations
            ],
            "edges": [
                {"layer": e.layer, "src": e.src, "dst": e.dst, "kind": e.kind, "delay": e.delay}
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
            }
            for r in quantization
        ],
        "layers": [to_dict(spec) for spec in layers],
        "resources": mapping.to_dict(),
        "artifacts": artifacts,
    }


def export_bundle(
    checkpoint: str | Path, out: str | Path, target: str = "loihi2", chips: int = 1
) -> Bundle:
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; supported: {', '.join(TARGETS)}")
    out = Path(out)
    check_replaceable(out)
    ckpt = load_checkpoint(checkpoint)
    check_deployable(ckpt.model_config)
    model = ckpt.build()
    float_graph = model.export_graph()
    spec = QuantSpec.from_dict(ckpt.quantization) if ckpt.quantization else None
    try:
        graph, report = quantize_graph(float_graph, spec)
    except ValueError as exc:
        raise UserError(f"cannot quantise this model for Loihi 2: {exc}") from None
    mapping = check_fits(graph, chips)
    timing = balance_delays(graph)
    graph = graph.with_delays(timing.delay)
    config = ckpt.model_config
    with atomic_directory(out, check_replaceable) as tmp:
        export_encoder_onnx(
            model.encoder,
            graph.payload_bits,
            (config.in_channels, config.image_size, config.image_size),
            tmp / ENCODER_FILE,
        )
        write_body(tmp / BODY_FILE, graph)
        manifest = build_manifest(
            target=target,
            config=config,
            data=ckpt.data,
            float_test_accuracy=ckpt.metrics.get("float_test_acc", ckpt.metrics.get("test_acc")),
            quantization_aware=ckpt.quantization is not None,
            graph=graph,
            timing=timing,
            quantization=report,
            layers=layer_specs(float_graph, config),
            mapping=mapping,
            artifacts={name: sha256_file(tmp / name) for name in ARTIFACTS},
        )
        write_json(tmp / MANIFEST_FILE, manifest)
    return load_bundle(out)


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
    "populations",
    "edges",
)
HEX = "0123456789abcdef"


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
    data_keys = {f.name for f in dataclasses.fields(DataSpec)}
    sections = (
        ("input", manifest["input"], set(INPUT_KEYS)),
        ("input.data", manifest["input"].get("data"), data_keys),
        ("body", manifest["body"], set(BODY_KEYS)),
        ("artifacts", manifest["artifacts"], set(ARTIFACTS)),
    )
    for name, section, expected in sections:
        if not isinstance(section, dict) or set(section) != expected:
            given = set(section) if isinstance(section, dict) else set()
            odd = sorted(given - expected) or sorted(expected - given) or [type(section).__name__]
            raise refuse(f"{name} must hold exactly {', '.join(sorted(expected))} (not {odd[0]})")
    for name, digest in manifest["artifacts"].items():
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= set(HEX)):
            raise refuse(f"the sha256 of {name} is not a 64-digit hex digest")
    if manifest["model"].get("time_steps") != manifest["time_steps"]:
        raise refuse(
            f"time_steps {manifest['time_steps']} differs from the model's "
            f"{manifest['model'].get('time_steps')}"
        )


def load_bundle(path: str | Path) -> Bundle:
    """Open a bundle directory, refusing it if its manifest does not follow the schema,
    any artifact's hash does not match, or body.net leaves the Loihi 2 formats."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"bundle not found: {path}; create it with 'gac-deploy export model.pt'")
    manifest = read_json(path / MANIFEST_FILE, "bundle manifest")
    check_manifest(path / MANIFEST_FILE, manifest)
    for name, digest in manifest["artifacts"].items():
        file = path / name
        if not file.is_file():
            raise UserError(f"bundle is missing {name}; re-export it")
        if sha256_file(file) != digest:
            raise UserError(
                f"{file} does not match its sha256 in the manifest; re-export the bundle"
            )
    check_encoder_onnx(path / ENCODER_FILE)
    graph = read_body(path / BODY_FILE)
    if graph.time_steps != manifest["time_steps"]:
        raise UserError(
            f"{path / BODY_FILE} runs T={graph.time_steps} steps but the encoder's T is "
            f"{manifest['time_steps']}; re-export the bundle"
        )
    config = model_config_from_dict(manifest["model"])  # a one-line error now, not later
    signed = encoder_class(config).signed_output
    if graph.signed_input != signed or manifest["body"]["payload_range"] != list(
        graph.payload_range
    ):
        raise UserError(
            f"{path / BODY_FILE} expects {'signed' if graph.signed_input else 'unsigned'} "
            f"graded input in {list(graph.payload_range)}, but the manifest's {config.encoder} "
            f"encoder sends {manifest['body']['payload_range']}; re-export the bundle"
        )
    return Bundle(path, manifest, graph)

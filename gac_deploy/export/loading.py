"""Opening a deployment bundle: its manifest checked, every artifact's sha256 verified.

``load_bundle`` opens a Loihi 2 bundle (body.net, refused if it leaves the Loihi 2
formats or disagrees with the manifest and the encoder), ``load_nir_bundle`` a NIR
bundle (its graph the float body read back from body.nir), ``load_any_bundle``
whichever a directory holds, by the loader its target registers
(:mod:`gac_deploy.registries.targets`). A :class:`Bundle` runs its host stage (encoder.onnx) by
onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gac_deploy.body.graph import Graph
from gac_deploy.config import ModelConfig, model_config_from_dict
from gac_deploy.data import DataSpec
from gac_deploy.errors import UserError
from gac_deploy.export.manifest import (
    BODY_FILE,
    ENCODER_FILE,
    MANIFEST_FILE,
    NIR_BODY_FILE,
    check_manifest,
)
from gac_deploy.export.netx_hdf5 import read_body
from gac_deploy.export.onnx_encoder import check_encoder_onnx, run_encoder_onnx
from gac_deploy.fileio import read_json, sha256_file
from gac_deploy.models.encoder import encoder_class
from gac_deploy.registries import resolve
from gac_deploy.registries.targets import TARGETS


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

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def encoder_payload_bits(self) -> int:
        """Bits of the graded payload encoder.onnx sends (the body's, for a Loihi 2 bundle)."""
        return int(self.manifest["body"]["payload_bits"])

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host stage by onnxruntime: images [N, C, H, W] -> (O, payload), each [T, N, C, H, W]."""
        expected = (self.graph.time_steps, *self.graph.input_shape)
        return run_encoder_onnx(self.path / ENCODER_FILE, images, expected)


def open_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the bundle at ``path``, checked, with every artifact's hash verified
    (what every target's loader does first)."""
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
    model_config_from_dict(manifest["model"])  # a one-line error now, not when first used
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    """Open a Loihi 2 bundle directory, refusing it if its manifest does not follow the
    schema, any artifact's hash does not match, or body.net leaves the Loihi 2 formats."""
    path = Path(path)
    manifest = open_manifest(path)
    if manifest["target"] == "nir":
        raise UserError(
            f"{path} is a NIR bundle (a float body for other simulators); make a Loihi 2 "
            f"bundle of it with 'gac-deploy import-nir {path} --out DIR'"
        )
    if manifest["target"] != "loihi2":
        raise UserError(f"{path} is a {manifest['target']} bundle, not a Loihi 2 bundle")
    graph = read_body(path / BODY_FILE)
    if graph.time_steps != manifest["time_steps"]:
        raise UserError(
            f"{path / BODY_FILE} runs T={graph.time_steps} steps but the encoder's T is "
            f"{manifest['time_steps']}; re-export the bundle"
        )
    if graph.window != manifest["body"]["window_steps"]:
        raise UserError(
            f"{path / BODY_FILE} presents each image for {graph.window} steps but the "
            f"manifest says {manifest['body']['window_steps']}; re-export the bundle"
        )
    config = model_config_from_dict(manifest["model"])
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


def load_nir_bundle(path: str | Path) -> Bundle:
    """Open a NIR bundle directory (export --target nir); its graph is the float body read
    back from body.nir."""
    from gac_deploy.export.nir_graph import read_nir

    path = Path(path)
    manifest = open_manifest(path)
    if manifest["target"] != "nir":
        raise UserError(f"{path} is a {manifest['target']} bundle, not a NIR bundle")
    graph = read_nir(path / NIR_BODY_FILE, manifest["time_steps"])
    return Bundle(path, manifest, graph)


def load_any_bundle(path: str | Path) -> Bundle:
    """A bundle of any registered target, opened by its target's loader (a manifest
    that names none is refused as :func:`load_bundle` refuses it)."""
    if not Path(path).is_dir():
        return load_bundle(path)
    manifest = read_json(Path(path) / MANIFEST_FILE, "bundle manifest")
    target = manifest.get("target") if isinstance(manifest, dict) else None
    if isinstance(target, str) and target in TARGETS:
        return resolve(TARGETS.get(target).loader)(path)
    return load_bundle(path)

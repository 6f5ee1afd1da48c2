"""The deployment bundle: encoder.onnx (host) + body.net (chip) + manifest.json.

``export_bundle`` writes all three into a temporary directory and renames it
into place, so an interrupted export leaves no half-written bundle.
``load_bundle`` verifies every artifact's sha256 against the manifest.

Target ``nir`` writes body.nir (the float body as a NIR graph, see
:mod:`gac_deploy.export.nir_graph`) instead of body.net, beside the same encoder.onnx
and a manifest of the same schema (no quantisation, timing or resources). ``import_nir``
turns a NIR graph back into a Loihi 2 bundle: the body from the NIR file, the host
encoder (encoder.onnx, the input section, the model and T) from a bundle, by default the
NIR bundle the file came in. The encoder.onnx of a NIR bundle sends the payload bits
that the model's Loihi 2 export uses, so such a round trip gives the same bundle.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gac_deploy import __version__
from gac_deploy.body.formats import payload_range
from gac_deploy.body.graph import Graph
from gac_deploy.body.loihi2 import Mapping, check_deployable, check_fits
from gac_deploy.body.ops import LayerSpec, layer_specs
from gac_deploy.body.quantize import (
    MAX_PAYLOAD_BITS,
    LayerQuantReport,
    QuantSpec,
    choose_format,
    quantize_graph,
)
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
    with_payload_bits,
)
from gac_deploy.fileio import (
    atomic_directory,
    read_json,
    sha256_file,
    some_names,
    write_bytes,
    write_json,
)
from gac_deploy.models.encoder import encoder_class

FORMAT = "gac-deploy-bundle"
FORMAT_VERSION = 2
TARGETS = ("loihi2", "nir")
ENCODER_FILE = "encoder.onnx"
BODY_FILE = "body.net"
NIR_BODY_FILE = "body.nir"
MANIFEST_FILE = "manifest.json"
BODY_FILES = {"loihi2": BODY_FILE, "nir": NIR_BODY_FILE}
ARTIFACTS = (ENCODER_FILE, BODY_FILE)
"""The files manifest.json hashes (a Loihi 2 bundle; :func:`artifacts_of` for any target)."""
BUNDLE_FILES = (ENCODER_FILE, BODY_FILE, NIR_BODY_FILE, MANIFEST_FILE)
NIR_SCHEMA = "NIR 1.0 graph (nir.write), float body; mapping in gac_deploy/export/nir_graph.py"


def artifacts_of(target: str) -> tuple[str, str]:
    """The files a bundle of ``target`` holds besides its manifest."""
    return (ENCODER_FILE, BODY_FILES[target])


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
    timing: Timing | None,
    quantization: list[LayerQuantReport],
    layers: list[LayerSpec],
    mapping: Mapping | None,
    artifacts: dict[str, str],
    payload_bits: int | None = None,
) -> dict[str, Any]:
    """manifest.json: what the host and the chip run, and how they were made.

    ``graph`` is the quantised body with its delays (``timing``); ``layers`` the float
    body's Eq. 11 layers; ``artifacts`` each file's sha256, which ``load_bundle`` checks.
    Target ``nir``: ``graph`` is the float body, ``timing`` and ``mapping`` are None (no
    latency, no resources) and ``payload_bits`` the bits encoder.onnx sends."""
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
            "file": BODY_FILES[target],
            "runs_on": "chip" if target == "loihi2" else "any NIR reader",
            "schema": NIR_SCHEMA
            if target == "nir"
            else "lava-dl netx hdf5 + gac extension (see gac_deploy/export/netx_hdf5.py)",
            "payload_bits": bits,
            "payload_range": list(payload_range(bits, graph.signed_input)),
            "latency_steps": timing.total_latency if timing else 0,
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
        "resources": mapping.to_dict() if mapping else {},
        "artifacts": artifacts,
    }


def export_bundle(
    checkpoint: str | Path, out: str | Path, target: str = "loihi2", chips: int = 1
) -> Bundle:
    """A checkpoint as a bundle of ``target``: ``loihi2`` (quantised body.net) or ``nir``
    (the float body as body.nir, for other simulators and chips)."""
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; supported: {', '.join(TARGETS)}")
    out = Path(out)
    check_replaceable(out)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build()
    float_graph = model.export_graph()
    spec = QuantSpec.from_dict(ckpt.quantization) if ckpt.quantization else None
    config = ckpt.model_config
    image_shape = (config.in_channels, config.image_size, config.image_size)

    def write_encoder(path: Path, payload_bits: int) -> None:
        export_encoder_onnx(model.encoder, payload_bits, image_shape, path)

    source = _Source(
        config,
        ckpt.data,
        ckpt.metrics.get("float_test_acc", ckpt.metrics.get("test_acc")),
        ckpt.quantization is not None,
        write_encoder,
    )
    if target == "nir":
        return _write_nir_bundle(out, float_graph, spec, source)
    check_deployable(config)
    return _write_loihi2_bundle(out, float_graph, spec, source, chips)


@dataclass
class _Source:
    """Where a bundle's host side comes from: the model config and data it reads, its
    float accuracy, and how to write its encoder.onnx for a given payload."""

    config: ModelConfig
    data: DataSpec
    float_test_accuracy: float | None
    quantization_aware: bool
    write_encoder: Callable[[Path, int], None]

    def manifest(self, float_graph: Graph, tmp: Path, **body: Any) -> dict[str, Any]:
        """:func:`build_manifest` of a bundle written in ``tmp`` from this host side and
        ``float_graph`` (its Eq. 11 layers); ``body`` names the target and what it runs."""
        return build_manifest(
            config=self.config,
            data=self.data,
            float_test_accuracy=self.float_test_accuracy,
            quantization_aware=self.quantization_aware,
            layers=layer_specs(float_graph, self.config),
            artifacts={name: sha256_file(tmp / name) for name in artifacts_of(body["target"])},
            **body,
        )


def _quantize(float_graph: Graph, spec: QuantSpec | None) -> tuple[Graph, list]:
    try:
        return quantize_graph(float_graph, spec)
    except ValueError as exc:
        raise UserError(f"cannot quantise this model for Loihi 2: {exc}") from None


def _write_loihi2_bundle(
    out: Path, float_graph: Graph, spec: QuantSpec | None, source: _Source, chips: int
) -> Bundle:
    graph, report = _quantize(float_graph, spec)
    mapping = check_fits(graph, chips)
    timing = balance_delays(graph)
    graph = graph.with_delays(timing.delay)
    with atomic_directory(out, check_replaceable) as tmp:
        source.write_encoder(tmp / ENCODER_FILE, graph.payload_bits)
        write_body(tmp / BODY_FILE, graph)
        manifest = source.manifest(
            float_graph,
            tmp,
            target="loihi2",
            graph=graph,
            timing=timing,
            quantization=report,
            mapping=mapping,
        )
        write_json(tmp / MANIFEST_FILE, manifest)
    return load_bundle(out)


def _write_nir_bundle(
    out: Path, float_graph: Graph, spec: QuantSpec | None, source: _Source
) -> Bundle:
    from gac_deploy.export.nir_graph import write_nir

    # encoder.onnx sends the payload the Loihi 2 export would (NIR readers take O itself)
    try:
        payload_bits = (spec or choose_format(float_graph)).payload_bits
    except ValueError:
        payload_bits = MAX_PAYLOAD_BITS
    with atomic_directory(out, check_replaceable) as tmp:
        source.write_encoder(tmp / ENCODER_FILE, payload_bits)
        write_nir(tmp / NIR_BODY_FILE, float_graph)
        manifest = source.manifest(
            float_graph,
            tmp,
            target="nir",
            graph=float_graph,
            timing=None,
            quantization=[],
            mapping=None,
            payload_bits=payload_bits,
        )
        write_json(tmp / MANIFEST_FILE, manifest)
    return load_nir_bundle(out)


def import_nir(
    source: str | Path,
    out: str | Path,
    encoder_from: str | Path | None = None,
    chips: int = 1,
    dt: float | None = None,
) -> Bundle:
    """A NIR graph as a Loihi 2 bundle (what ``gac-deploy import-nir`` writes).

    ``source``: a NIR bundle directory (export --target nir) or a ``.nir`` file. The host
    side (encoder.onnx, the input section, the model config and T) comes from
    ``encoder_from`` (a Loihi 2 or NIR bundle) or, by default, from the NIR bundle
    ``source`` is. The NIR body must read that encoder's output shape. It is quantised
    in the format :func:`choose_format` picks for it, payload bits included: the copied
    encoder.onnx sends that payload (:func:`with_payload_bits`), its O unchanged."""
    from gac_deploy.export.nir_graph import DT, read_nir

    out = Path(out)
    check_replaceable(out)
    source = Path(source)
    nir_file = source / NIR_BODY_FILE if source.is_dir() else source
    if encoder_from is None:
        if not source.is_dir():
            raise UserError(
                f"{source} is a bare NIR file with no host encoder; name a bundle whose "
                "encoder.onnx feeds it with --encoder-from (or pass a NIR bundle directory)"
            )
        encoder_from = source
    host = load_any_bundle(encoder_from)
    float_graph = read_nir(nir_file, host.graph.time_steps, DT if dt is None else dt)
    # NIR does not say what the input carries; the host's encoder does
    float_graph.signed_input = encoder_class(host.model_config).signed_output
    if float_graph.input_shape != host.graph.input_shape:
        raise UserError(
            f"{nir_file} reads an input of shape {list(float_graph.input_shape)} but the "
            f"encoder of {host.path} sends {list(host.graph.input_shape)}"
        )
    try:
        spec = choose_format(float_graph)
    except ValueError as exc:
        raise UserError(f"cannot quantise {nir_file} for Loihi 2: {exc}") from None
    encoder_bytes = (host.path / ENCODER_FILE).read_bytes()
    if spec.payload_bits != host.encoder_payload_bits:
        # the payload this body errs least with; O itself is the host's, unchanged
        encoder_bytes = with_payload_bits(
            encoder_bytes, spec.payload_bits, float_graph.signed_input
        )
    from_itself = host.path.resolve() == (source.resolve() if source.is_dir() else None)

    def copy_encoder(path: Path, payload_bits: int) -> None:
        write_bytes(path, encoder_bytes)

    host_side = _Source(
        host.model_config,
        host.data_spec,
        host.manifest["float_test_accuracy"] if from_itself else None,
        False,
        copy_encoder,
    )
    return _write_loihi2_bundle(out, float_graph, spec, host_side, chips)


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
    if manifest["target"] not in TARGETS:
        raise refuse(f"target {manifest['target']!r} is not one of {', '.join(TARGETS)}")
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
    if manifest["model"].get("time_steps") != manifest["time_steps"]:
        raise refuse(
            f"time_steps {manifest['time_steps']} differs from the model's "
            f"{manifest['model'].get('time_steps')}"
        )


def _open(path: Path) -> dict[str, Any]:
    """The manifest of the bundle at ``path``, checked, with every artifact's hash verified."""
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
    manifest = _open(path)
    if manifest["target"] != "loihi2":
        raise UserError(
            f"{path} is a NIR bundle (a float body for other simulators); make a Loihi 2 "
            f"bundle of it with 'gac-deploy import-nir {path} --out DIR'"
        )
    graph = read_body(path / BODY_FILE)
    if graph.time_steps != manifest["time_steps"]:
        raise UserError(
            f"{path / BODY_FILE} runs T={graph.time_steps} steps but the encoder's T is "
            f"{manifest['time_steps']}; re-export the bundle"
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
    manifest = _open(path)
    if manifest["target"] != "nir":
        raise UserError(f"{path} is a {manifest['target']} bundle, not a NIR bundle")
    graph = read_nir(path / NIR_BODY_FILE, manifest["time_steps"])
    return Bundle(path, manifest, graph)


def load_any_bundle(path: str | Path) -> Bundle:
    """A Loihi 2 or NIR bundle, whichever ``path`` holds."""
    if not Path(path).is_dir():
        return load_bundle(path)
    manifest = read_json(Path(path) / MANIFEST_FILE, "bundle manifest")
    if isinstance(manifest, dict) and manifest.get("target") == "nir":
        return load_nir_bundle(path)
    return load_bundle(path)

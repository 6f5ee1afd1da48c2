"""Writing deployment bundles: a checkpoint exported for a target, and a NIR graph imported.

``export_bundle`` hands an :class:`ExportJob` to the writer its target registers
(:mod:`gac_deploy.registries.targets`), which writes encoder.onnx, the body and
manifest.json into a temporary directory and renames it into place, so an interrupted
export leaves no half-written bundle. Target ``loihi2`` writes the quantised body as
body.net; target ``nir`` writes body.nir (the float body as a NIR graph, see
:mod:`gac_deploy.export.nir_graph`) beside the same encoder.onnx. ``import_nir`` turns
a NIR graph back into a Loihi 2 bundle: the body from the NIR file, the host encoder
(encoder.onnx, the input section, the model and T) from a bundle, by default the NIR
bundle the file came in. The encoder.onnx of a NIR
bundle sends the payload bits that the model's Loihi 2 export uses, so such a round trip
gives the same bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gac_deploy.body.graph import Graph
from gac_deploy.body.loihi2 import check_deployable, check_fits, check_hardware_limits
from gac_deploy.body.ops import layer_specs
from gac_deploy.body.quantize import MAX_PAYLOAD_BITS, QuantSpec, choose_format, quantize_graph
from gac_deploy.body.timing import MAX_WINDOW, balance_delays, power_of_two_window
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.config import ModelConfig
from gac_deploy.data import DataSpec
from gac_deploy.errors import UserError
from gac_deploy.export.loading import Bundle, load_any_bundle, load_bundle, load_nir_bundle
from gac_deploy.export.manifest import (
    BODY_FILE,
    ENCODER_FILE,
    MANIFEST_FILE,
    NIR_BODY_FILE,
    artifacts_of,
    build_manifest,
    check_replaceable,
)
from gac_deploy.export.netx_hdf5 import write_body
from gac_deploy.export.onnx_encoder import export_encoder_onnx, with_payload_bits
from gac_deploy.fileio import atomic_directory, sha256_file, write_bytes, write_json
from gac_deploy.models.encoder import encoder_class
from gac_deploy.registries import resolve
from gac_deploy.registries.targets import DEFAULT_TARGET, TARGETS


def export_bundle(
    checkpoint: str | Path,
    out: str | Path,
    target: str = DEFAULT_TARGET,
    chips: int = 1,
    quantization: QuantSpec | None = None,
    window: int | None = None,
    simulation_only: bool = False,
) -> Bundle:
    """A checkpoint as a bundle of ``target``, written by the target's registered writer
    (:mod:`gac_deploy.registries.targets`): ``loihi2`` (quantised body.net) or ``nir``
    (the float body as body.nir, for other simulators and chips) are built in.
    ``quantization``: the fixed-point format to use (e.g. one calibrated on data); by
    default the checkpoint's own (QAT) or, without one, :func:`choose_format`'s.
    ``window``, ``simulation_only``: see :class:`ExportJob`."""
    writer = resolve(TARGETS.get(target).writer)
    out = Path(out)
    check_replaceable(out)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build()
    float_graph = model.export_graph()
    spec = quantization
    if spec is None and ckpt.quantization:
        spec = QuantSpec.from_dict(ckpt.quantization)
    config = ckpt.model_config
    image_shape = (config.in_channels, config.image_size, config.image_size)

    def write_encoder(path: Path, payload_bits: int) -> None:
        export_encoder_onnx(model.encoder, payload_bits, image_shape, path)

    source = HostSide(
        config,
        ckpt.data,
        ckpt.metrics.get("float_test_acc", ckpt.metrics.get("test_acc")),
        ckpt.quantization is not None,
        write_encoder,
    )
    return writer(
        ExportJob(
            out=out,
            float_graph=float_graph,
            quantization=spec,
            host=source,
            chips=chips,
            window=window,
            simulation_only=simulation_only,
        )
    )


@dataclass
class HostSide:
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


@dataclass
class ExportJob:
    """What a target's writer is given: the bundle directory to write (``out``, replaced
    atomically), the float body, the checkpoint's quantisation format (None: unless
    fine-tuned, the writer chooses), the host side and the Loihi 2 chips available.
    ``window``: the presentation window W >= T the chip spends on one image (None: T for
    a simulation-only bundle, else the power of two >= T the chip needs);
    ``simulation_only``: skip the checks against the chip's own limits
    (:data:`gac_deploy.body.loihi2.HARDWARE`), and say so in the manifest."""

    out: Path
    float_graph: Graph
    quantization: QuantSpec | None
    host: HostSide
    chips: int
    window: int | None = None
    simulation_only: bool = False


def write_loihi2_bundle(job: ExportJob) -> Bundle:
    """Target ``loihi2``: encoder.onnx, the quantised body as body.net, manifest.json;
    refused if the model cannot run on Loihi 2 or does not fit ``job.chips``."""
    check_deployable(job.host.config)
    return _write_loihi2_bundle(job)


def _quantize(float_graph: Graph, spec: QuantSpec | None) -> tuple[Graph, list]:
    try:
        return quantize_graph(float_graph, spec)
    except ValueError as exc:
        raise UserError(f"cannot quantise this model for Loihi 2: {exc}") from None


def presentation_window(time_steps: int, window: int | None, simulation_only: bool) -> int:
    """The window W a bundle gets: ``window`` when given (at least T), else T for a
    simulation-only bundle and the power of two >= T for the chip."""
    if window is None:
        return time_steps if simulation_only else power_of_two_window(time_steps)
    if window < time_steps:
        raise UserError(
            f"--window {window} is shorter than the model's T={time_steps}; pass at least "
            f"{time_steps} (the chip needs a power of two: {power_of_two_window(time_steps)})"
        )
    if window > MAX_WINDOW:
        raise UserError(
            f"--window {window} is longer than the {MAX_WINDOW} steps gac-deploy runs; the "
            f"chip needs the power of two >= T: {power_of_two_window(time_steps)}"
        )
    return window


def _write_loihi2_bundle(job: ExportJob) -> Bundle:
    graph, report = _quantize(job.float_graph, job.quantization)
    mapping = check_fits(graph, job.chips)
    timing = balance_delays(graph)
    graph = replace(
        graph.with_delays(timing.delay),
        window=presentation_window(graph.time_steps, job.window, job.simulation_only),
    )
    if not job.simulation_only:
        check_hardware_limits(graph)
    with atomic_directory(job.out, check_replaceable) as tmp:
        job.host.write_encoder(tmp / ENCODER_FILE, graph.payload_bits)
        write_body(tmp / BODY_FILE, graph)
        manifest = job.host.manifest(
            job.float_graph,
            tmp,
            target="loihi2",
            graph=graph,
            timing=timing,
            quantization=report,
            mapping=mapping,
            deployment="simulation-only" if job.simulation_only else "loihi2-hardware",
        )
        write_json(tmp / MANIFEST_FILE, manifest)
    return load_bundle(job.out)


def write_nir_bundle(job: ExportJob) -> Bundle:
    """Target ``nir``: encoder.onnx, the float body as body.nir, manifest.json."""
    from gac_deploy.export.nir_graph import write_nir

    float_graph = job.float_graph
    # encoder.onnx sends the payload the Loihi 2 export would (NIR readers take O itself)
    try:
        payload_bits = (job.quantization or choose_format(float_graph)).payload_bits
    except ValueError:
        payload_bits = MAX_PAYLOAD_BITS
    with atomic_directory(job.out, check_replaceable) as tmp:
        job.host.write_encoder(tmp / ENCODER_FILE, payload_bits)
        write_nir(tmp / NIR_BODY_FILE, float_graph)
        manifest = job.host.manifest(
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
    return load_nir_bundle(job.out)


def import_nir(
    source: str | Path,
    out: str | Path,
    encoder_from: str | Path | None = None,
    chips: int = 1,
    dt: float | None = None,
    window: int | None = None,
    simulation_only: bool = False,
) -> Bundle:
    """A NIR graph as a Loihi 2 bundle (what ``gac-deploy import-nir`` writes).
    ``window``, ``simulation_only``: see :class:`ExportJob`.

    ``source``: a NIR bundle directory (export --target nir) or a ``.nir`` file. The host
    side (encoder.onnx, the input section, the model config and T) comes from
    ``encoder_from`` (a Loihi 2 or NIR bundle) or, by default, from the NIR bundle
    ``source`` is. The NIR body must read that encoder's output shape. It is quantised
    in the format :func:`choose_format` picks for it, payload bits included (for a NIR
    bundle's own body, the bits its encoder.onnx already sends, which its export chose,
    perhaps on data): the copied encoder.onnx is re-targeted to send that payload
    (:func:`with_payload_bits`), its O unchanged."""
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
    from_itself = host.path.resolve() == (source.resolve() if source.is_dir() else None)
    try:
        spec = choose_format(float_graph)
    except ValueError as exc:
        raise UserError(f"cannot quantise {nir_file} for Loihi 2: {exc}") from None
    if from_itself and host.encoder_payload_bits != spec.payload_bits:
        # the NIR bundle's own body: keep the payload its export chose (perhaps on data)
        try:
            spec = choose_format(float_graph, payload_bits=host.encoder_payload_bits)
        except ValueError:
            pass
    encoder_bytes = (host.path / ENCODER_FILE).read_bytes()
    if spec.payload_bits != host.encoder_payload_bits:
        # the payload this body has room for; O itself is the host's, unchanged
        encoder_bytes = with_payload_bits(
            encoder_bytes, spec.payload_bits, float_graph.signed_input
        )

    def copy_encoder(path: Path, payload_bits: int) -> None:
        write_bytes(path, encoder_bytes)

    host_side = HostSide(
        host.model_config,
        host.data_spec,
        host.manifest["float_test_accuracy"] if from_itself else None,
        False,
        copy_encoder,
    )
    return _write_loihi2_bundle(
        ExportJob(
            out=out,
            float_graph=float_graph,
            quantization=spec,
            host=host_side,
            chips=chips,
            window=window,
            simulation_only=simulation_only,
        )
    )

"""``gac-deploy export``: a model.pt as a Loihi 2 bundle (encoder.onnx, body.net,
manifest.json), or with ``--target nir`` as a NIR bundle (encoder.onnx, body.nir,
manifest.json), or as a bundle of any target registered in
:mod:`gac_deploy.registries.targets`."""

from __future__ import annotations

import time
from pathlib import Path

from gac_deploy.cli.common import (
    activity_warnings,
    add_chip_args,
    add_data_dir_arg,
    add_registry_option,
    samples_arg,
)
from gac_deploy.registries.targets import DEFAULT_TARGET, TARGETS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export model.pt as a Loihi 2 (or NIR) bundle",
        description="Write encoder.onnx (host), body.net (NetX HDF5) and "
        "manifest.json into a bundle directory; --target nir writes the float body as "
        "body.nir (NIR graph) instead of body.net.",
    )
    p.add_argument("checkpoint", help="model.pt written by 'gac-deploy train'")
    add_registry_option(
        p, "--target", TARGETS, "what the body is written as", default=DEFAULT_TARGET
    )
    p.add_argument("--out", help="bundle directory (default: 'bundle' beside the checkpoint)")
    add_chip_args(p)
    p.add_argument(
        "--samples",
        type=samples_arg,
        default=512,
        help="test images on which float and chip accuracy are compared, population by "
        "population, when the data is at hand (default 512; 'all'; 0 skips)",
    )
    p.add_argument(
        "--calibrate",
        type=int,
        default=32,
        metavar="N",
        help="training images on which each payload width is tried, keeping the one whose "
        "spikes depart least from float, when the data is at hand and the checkpoint has "
        "no QAT format (default 32; 0 chooses without data)",
    )
    add_data_dir_arg(p)


WARN_COST_POINTS = 2.0
"""A chip that loses more accuracy than this against float is a loud warning."""


def run(args) -> dict:
    from gac_deploy.cli.paths import expect
    from gac_deploy.errors import UserError
    from gac_deploy.export.targets import export_bundle

    if args.samples != "all" and args.samples < 0:
        raise UserError(
            f"--samples must be 0 (skip), a positive number or 'all', got {args.samples}"
        )
    if args.calibrate < 0:
        raise UserError(f"--calibrate must be 0 (no calibration) or more, got {args.calibrate}")
    samples = None if args.samples == "all" else args.samples
    expect(args.checkpoint, "checkpoint")
    out = args.out or str(Path(args.checkpoint).parent / "bundle")
    started = time.perf_counter()
    calibration = None
    if args.target in ("loihi2", "nir") and args.calibrate:
        calibration = calibrate(args.checkpoint, args.calibrate, args.data_dir)
    bundle = export_bundle(
        args.checkpoint,
        out,
        target=args.target,
        chips=args.chips,
        quantization=calibration.spec if calibration else None,
        window=args.window,
        simulation_only=args.simulation_only,
    )
    if bundle.target == "nir":
        return report_nir(bundle, out, started)
    if bundle.target != "loihi2":
        return report_files(bundle, out, started)
    report = report_loihi2(bundle, out, started)
    if samples == 0:
        return report
    fidelity = measure(args.checkpoint, bundle, samples, args.data_dir)
    if fidelity is not None:
        report_fidelity(fidelity)
        report.update(
            reference_accuracy=fidelity.chip_accuracy,
            float_accuracy=fidelity.float_accuracy,
            samples=fidelity.samples,
        )
    return report


def calibrate(checkpoint: str, count: int, data_dir: str | None):
    """The payload calibrated on ``count`` training images, printed in one line; None
    (and a note) when the data is not at hand, and None when the checkpoint carries the
    format it was fine-tuned in or the model cannot be quantised (export says why)."""
    from gac_deploy.body.loihi2 import check_deployable
    from gac_deploy.checkpoint import load_checkpoint
    from gac_deploy.chip.calibration import calibrate_model
    from gac_deploy.data import load_split
    from gac_deploy.errors import UserError

    ckpt = load_checkpoint(checkpoint)
    if ckpt.quantization:
        return None  # QAT trained this format; export keeps it
    check_deployable(ckpt.model_config)
    try:
        split = load_split(ckpt.data, data_dir)
    except UserError as exc:
        print(f"(payload chosen without data: {exc})")
        return None
    try:
        calibration = calibrate_model(ckpt.build(), split, count, progress=True)
    except ValueError:
        return None
    print(calibration.describe())
    return calibration


def report_files(bundle, out: str, started: float) -> dict:
    """What any target's export wrote (a target without a report of its own here)."""
    from gac_deploy.export.manifest import MANIFEST_FILE, artifacts_of

    files = [*artifacts_of(bundle.target), MANIFEST_FILE]
    print(f"{bundle.target} bundle exported in {time.perf_counter() - started:.1f} s")
    print(f"wrote {', '.join(f'{out}/{name}' for name in files)}")
    return {"bundle": out}


def report_nir(bundle, out: str, started: float) -> dict:
    from gac_deploy.export.nir_graph import DT

    m = bundle.manifest
    lif = sum(1 for p in bundle.graph.populations if p.role == "lif")
    print(
        f"NIR graph: {lif} LIF populations, {len(bundle.graph.edges)} synapse layers, "
        f"read-out of {bundle.graph.readout.size} classes (sum the Output over "
        f"T={m['time_steps']} steps); readers step with dt = {DT:g} s"
    )
    print(f"exported in {time.perf_counter() - started:.1f} s")
    print(f"wrote {out}/encoder.onnx, {out}/body.nir, {out}/manifest.json")
    return {"bundle": out}


def report_loihi2(bundle, out: str, started: float) -> dict:
    """Print a Loihi 2 bundle's table, resources and reference accuracy."""
    from gac_deploy.table import format_table

    m = bundle.manifest
    rows = [
        [
            q["population"],
            q["scale_exp"],
            q["clipped_weights"],
            q["clipped_bias"],
            next(p["latency"] for p in m["body"]["populations"] if p["name"] == q["population"]),
        ]
        for q in m["quantization"]
    ]
    print(format_table(["population", "scale exp", "clipped w", "clipped b", "latency"], rows))
    res = m["resources"]
    print(
        f"Loihi 2 estimate: {res['neurons']:,} neurons, {res['synapses']:,} synapses "
        f"(unrolled); {res['cores']} cores on {res['chips_needed']} of {res['chips']} chip(s) "
        f"with conv kernels stored once per core ({res['cores_unrolled']} cores, "
        f"{res['chips_needed_unrolled']} chip(s) if every synapse were stored)"
    )
    exceeding = res["state_bound_exceeds_24_bits"]
    if exceeding:
        worst = max(exceeding, key=lambda b: max(b["current"], b["voltage"]))
        print(
            f"note: for the worst input their weights allow, {len(exceeding)} population(s) "
            f"could leave Loihi's 24-bit state (largest bound: {worst['population']}, "
            f"{max(worst['current'], worst['voltage']):.3g}); the chip wraps the current and "
            "saturates the voltage there, as Lava and the emulator do, and 'simulate' counts "
            "every neuron-step where it happens"
        )
    body = m["body"]
    padding = body["window_steps"] - m["time_steps"]
    print(
        f"payload {body['payload_bits']} bits, latency {body['latency_steps']} steps, window "
        f"{body['window_steps']} steps per image (T={m['time_steps']}"
        + (f" + {padding} padding" if padding else "")
        + f"), {body['deployment']}; exported in {time.perf_counter() - started:.1f} s"
    )
    print(f"wrote {out}/encoder.onnx, {out}/body.net, {out}/manifest.json")
    return {"bundle": out, "reference_accuracy": None}


def measure(checkpoint: str, bundle, samples: int | None, data_dir: str | None):
    """Float against chip on the first ``samples`` test images (None: all), or None with a
    note when the model's data is not at hand."""
    from gac_deploy.chip.fidelity import measure_bundle
    from gac_deploy.errors import UserError

    try:
        return measure_bundle(checkpoint, bundle, samples, data_dir)
    except UserError as exc:
        print(f"(float against chip not measured: {exc})")
        return None


def report_fidelity(fidelity) -> None:
    """The per-population departure from float, the accuracy of both and the cost."""
    from gac_deploy.table import format_table

    def percent(value: float | None) -> float | None:
        return None if value is None else round(100 * value, 2)

    rows = [
        [
            p.population,
            p.scale_exp,
            percent(p.current_error),
            percent(p.spike_mismatch),
            percent(p.float_rate),
            percent(p.chip_rate),
        ]
        for p in fidelity.populations
    ]
    headers = ["population", "scale exp", "current err %", "spikes differ %", "rate %", "chip %"]
    print(format_table(headers, rows))
    print(
        f"test accuracy on {fidelity.samples} test images: float {fidelity.float_accuracy:.4f}, "
        f"chip {fidelity.chip_accuracy:.4f} (emulated, = the quantised reference): "
        f"deployment cost {fidelity.cost_points:+.2f} points"
    )
    rates = {p.population: p.chip_rate for p in fidelity.populations if p.chip_rate is not None}
    for line in activity_warnings(rates, fidelity.samples):
        print(line)
    if fidelity.cost_points > WARN_COST_POINTS:
        worst = ", ".join(
            f"{p.population} ({100 * p.spike_mismatch:.1f} % of spikes differ, "
            f"current error {100 * p.current_error:.1f} %, exponent {p.scale_exp})"
            for p in fidelity.worst()
        )
        print(
            f"WARNING: the chip loses {fidelity.cost_points:.1f} points of accuracy; the "
            f"populations that depart most from float: {worst}. Fine-tune in the chip's "
            "format with 'gac-deploy train --qat --init MODEL.pt'"
        )

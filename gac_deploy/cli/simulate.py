"""``gac-deploy simulate``: run a bundle (emulator or Lava) against the quantised reference."""

from __future__ import annotations

from gac_deploy.cli.common import (
    activity_warnings,
    add_data_dir_arg,
    add_registry_option,
    samples_arg,
    write_json_report,
)
from gac_deploy.registries.backends import BACKENDS, DEFAULT_BACKEND


def add_parser(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a bundle on the chip, emulated (default, the whole test split) or in "
        "Lava's CPU simulation of Loihi 2",
        description="Run the host encoder (onnxruntime) and the body (the integer "
        "emulator by default, or Lava's fixed-point simulation with --backend lava) on test "
        "images; compare with the quantised reference spike by spike.",
    )
    p.add_argument("bundle", help="bundle directory written by 'gac-deploy export'")
    add_registry_option(p, "--backend", BACKENDS, "what runs the body", default=DEFAULT_BACKEND)
    defaults = ", ".join(
        f"{'all' if entry.default_samples is None else entry.default_samples} for {name}"
        for name, entry in BACKENDS.items()
    )
    p.add_argument(
        "--samples",
        type=samples_arg,
        help=f"test images to run, or 'all' (default: {defaults})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="images per emulator batch (default: as many as fit 256 MB of spikes)",
    )
    p.add_argument(
        "--check",
        type=samples_arg,
        help="compare the first N images with the quantised reference spike by spike, or "
        "'all'; 0 checks none (default: the first 32 + a tenth of the images run, all of "
        "a run of up to 35; the reference costs about two emulator images per image at "
        "paper size)",
    )
    add_data_dir_arg(p)
    p.add_argument(
        "--save-spikes",
        metavar="FILE.npz",
        help="also write the quantised reference's payload, spikes and read-out for the "
        "first --save-images test images, for a Loihi 2 run to be compared with",
    )
    p.add_argument(
        "--save-images",
        type=int,
        default=4,
        metavar="N",
        help="test images whose reference --save-spikes writes (default 4)",
    )
    p.add_argument("--json", help="also write the report to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> dict:
    from gac_deploy.chip.simulate import SAMPLE, simulate_bundle, write_reference_spikes
    from gac_deploy.cli.paths import expect
    from gac_deploy.data import load_split
    from gac_deploy.errors import UserError
    from gac_deploy.export.loading import load_bundle
    from gac_deploy.table import format_table
    from gac_deploy.world import join_for_images

    expect(args.bundle, "bundle")
    if args.save_spikes and args.save_images < 1:
        raise UserError(f"--save-images must be at least 1, got {args.save_images}")
    bundle = load_bundle(args.bundle)
    if args.save_spikes:  # checked before the run, written after it
        split = load_split(bundle.data_spec, args.data_dir)
        if args.save_images > len(split.test):
            raise UserError(
                f"--save-images {args.save_images} exceeds the {len(split.test)} test images"
            )
    world = join_for_images()
    default = BACKENDS.get(args.backend).default_samples
    samples = args.samples if args.samples is not None else default or "all"
    report = simulate_bundle(
        bundle,
        args.backend,
        None if samples == "all" else samples,
        args.batch_size,
        progress=not args.quiet,
        check={None: SAMPLE, "all": None}.get(args.check, args.check),
        data_dir=args.data_dir,
        world=world,
    )
    if not world.is_main:  # under torchrun, rank 0 reports
        return report.to_dict()
    rows = [
        [p.population, p.spikes, p.firing_rate, p.mismatched_spikes] for p in report.populations
    ]
    print(format_table(["population", "spikes", "firing rate", "mismatched"], rows))
    rates = {p.population: p.firing_rate for p in report.populations}
    for line in activity_warnings(rates, report.samples):
        print(line)
    timing = (
        f"{report.run_s / report.samples:.2f} s per image (compile included)"
        if report.backend == "lava"
        else f"{report.images_per_s:,.{0 if report.images_per_s >= 100 else 2}f} images/s"
    ) + (f" ({report.processes} processes side by side)" if report.processes > 1 else "")
    if report.checked_samples:
        checked = report.checked_samples
        scope = "" if checked == report.samples else f" on the first {checked:,} images"
        if scope and args.check is None:
            scope += " (the default sample; --check all checks every image)"
        compared = f"reference {report.reference_accuracy:.4f}  agreement {report.agreement:.4f}"
        if scope:
            compared = f"({compared}{scope})"
        print(f"samples {report.samples}  accuracy {report.accuracy:.4f}  {compared}")
        print(
            f"spike-exact against the reference{scope}: "
            f"{'yes' if report.spike_exact else 'NO'} "
            f"(read-out mismatches {report.readout_mismatches}); {report.backend} {timing}"
        )
    else:
        print(f"samples {report.samples}  accuracy {report.accuracy:.4f}")
        print(f"not compared with the reference (--check 0); {report.backend} {timing}")
    float_accuracy = bundle.manifest.get("float_test_accuracy")
    if float_accuracy is not None:
        print(deployment_cost_line(float_accuracy, report))
    overflowed = [p for p in report.populations if p.overflows]
    if overflowed:
        print(
            f"24-bit state overflowed in {sum(p.overflows for p in overflowed):,} neuron-steps "
            f"({', '.join(f'{p.population} {p.overflows:,}' for p in overflowed[:4])}): the "
            "chip wraps the current and saturates the voltage there (so do the emulator and "
            "Lava), where the float model does not"
        )
    if report.synaptic_ops:
        total = sum(report.synaptic_ops.values())
        print(f"synaptic events: {total / report.samples:,.0f} per image (exact, from spikes)")
    if args.save_spikes:
        write_reference_spikes(bundle, split, args.save_images, args.save_spikes)
        print(
            f"wrote {args.save_spikes}: the reference's payload, spikes and read-out for "
            f"{args.save_images} test images, {bundle.graph.window}-step windows"
        )
    data = report.to_dict()
    write_json_report(args.json, data)
    return data


def deployment_cost_line(float_accuracy: float, report) -> str:
    """Float, quantised-reference and chip accuracy side by side, and the points the chip
    loses. The float figure is the model's on its whole test split (recorded at export),
    so it compares exactly only when the whole split was run."""
    whole = "" if report.samples == report.test_split else f"; chip on {report.samples:,}"
    reference = (
        f"  reference {report.reference_accuracy:.4f}"
        if report.checked_samples == report.samples
        else ""
    )
    cost = 100 * (float_accuracy - report.accuracy)
    return (
        f"float {float_accuracy:.4f} (whole test split, at export){reference}  chip "
        f"{report.accuracy:.4f}: deployment cost {cost:+.2f} points{whole}"
    )

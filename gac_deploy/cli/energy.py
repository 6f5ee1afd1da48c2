"""``gac-deploy energy``: per-layer energy, the paper's Eq. 11 and the complete count."""

from __future__ import annotations

from gac_deploy.cli.common import add_data_dir_arg, add_registry_option, write_json_report
from gac_deploy.config import SHORTCUTS
from gac_deploy.registries.encoders import ENCODERS
from gac_deploy.registries.profiles import DEFAULT_PROFILE, PROFILES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "energy",
        help="per-layer energy report: the paper's Eq. 11 and the complete count",
        description="Energy per inference of a bundle, a model.pt, or an architecture with "
        "assumed firing rates (--arch). Both conventions are computed: 'paper' (Eq. 11) "
        "and 'complete' (every host op, synaptic event, neuron update and spike).",
    )
    p.add_argument("path", nargs="?", help="bundle directory or model.pt")
    p.add_argument(
        "--samples", type=int, default=64, help="test images used to measure activity (default 64)"
    )
    p.add_argument(
        "--convention",
        choices=("paper", "complete"),
        default="paper",
        help="which table to print (default paper; both totals are always printed)",
    )
    add_registry_option(
        p, "--profile", PROFILES, "the energy per operation", default=DEFAULT_PROFILE
    )
    p.add_argument("--arch", help="what-if: a registered architecture instead of a path")
    p.add_argument("-T", "--time-steps", type=int, help="what-if: time steps")
    add_registry_option(
        p, "--encoder", ENCODERS, "what-if: the encoder (default: the architecture's)"
    )
    p.add_argument(
        "--shortcut",
        choices=SHORTCUTS,
        help="what-if: spike (default) or membrane (the authors'; its downsample runs as "
        "composed synapses from every source of the stream)",
    )
    p.add_argument("--firing-rate", type=float, help="what-if: one rate for every population")
    p.add_argument("--rates", help="what-if: JSON file {population: rate}")
    p.add_argument("--plot", help="write a per-layer bar chart (PNG) here")
    p.add_argument("--compare", help="a second bundle or model.pt to put side by side")
    add_data_dir_arg(p)
    p.add_argument("--json", help="also write the report to this JSON file")


def run(args) -> dict:
    from gac_deploy.cli.paths import expect
    from gac_deploy.energy.report import (
        check_samples,
        format_comparison,
        format_report,
        load_rates,
        report_for_path,
        report_what_if,
        what_if_config,
    )
    from gac_deploy.errors import UserError
    from gac_deploy.world import World, join_for_images

    profile = PROFILES.get(args.profile)
    check_samples(args.samples)
    world = World()
    if args.arch is not None:
        config = what_if_config(args.arch, args.time_steps, args.encoder, args.shortcut)
        report = report_what_if(config, load_rates(args.firing_rate, args.rates), profile)
    elif args.path is None:
        raise UserError("give a bundle, a model.pt, or --arch NAME with --firing-rate")
    else:
        expect(args.path, "bundle", "checkpoint")
        world = join_for_images()
        report = report_for_path(args.path, args.samples, profile, args.data_dir, world)
    if args.compare:
        expect(args.compare, "bundle", "checkpoint")
        other = report_for_path(args.compare, args.samples, profile, args.data_dir, world)
    if not world.is_main:  # under torchrun, rank 0 reports
        return report.to_dict()
    print(format_report(report, args.convention))
    data = report.to_dict()
    if args.compare:
        print()
        print(format_comparison(report, other))
        data = {"a": data, "b": other.to_dict()}
    if args.plot:
        from gac_deploy.energy.plot import plot_energy

        plot_energy(report, args.convention, args.plot)
        print(f"wrote {args.plot}")
    write_json_report(args.json, data)
    return data if not args.compare else data["a"]

"""Pieces the commands share."""

from __future__ import annotations

import argparse
from typing import Any

from gac_deploy.errors import UserError
from gac_deploy.registries import Registry


def write_json_report(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` (atomically) when a path was given, and say so."""
    if path:
        from gac_deploy.fileio import write_json

        write_json(path, data)
        print(f"wrote {path}")


def samples_arg(text: str) -> int | str:
    """argparse type: a number of images, or 'all'."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


def add_normalization_args(parser: argparse.ArgumentParser, default: str) -> None:
    """``--mean M.. --std S..``: the per-channel normalisation a model is trained with
    (pixels in [0, 1]); ``default`` says what applies when they are not given."""
    parser.add_argument(
        "--mean",
        type=float,
        nargs="+",
        help=f"per-channel mean of pixels in [0, 1], with --std (default: {default})",
    )
    parser.add_argument("--std", type=float, nargs="+", help="per-channel std, with --mean")


def add_data_dir_arg(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: where a model's or bundle's dataset lies now; the test split found
    there must be the one it recorded (its hash)."""
    parser.add_argument(
        "--data-dir",
        help="where the dataset lies now (default: where it was); it must hold the same test split",
    )


def add_chip_args(parser: argparse.ArgumentParser) -> None:
    """``--chips``, ``--window`` and ``--simulation-only``: what a Loihi 2 bundle is
    written for (:class:`gac_deploy.export.targets.ExportJob`)."""
    parser.add_argument("--chips", type=int, default=1, help="Loihi 2 chips available (default 1)")
    parser.add_argument(
        "--window",
        type=int,
        metavar="W",
        help="steps the chip spends on each image, at least T; the first T carry the "
        "image (default: the power of two >= T that the chip's reset interval needs, or T "
        "with --simulation-only)",
    )
    parser.add_argument(
        "--simulation-only",
        action="store_true",
        help="write a bundle for Lava's CPU simulation only: the chip's own limits "
        "(power-of-two window, NetX delays, input message bits) are not checked, and the "
        "manifest says so",
    )


def activity_warnings(rates: dict[str, float], images: int) -> list[str]:
    """Warnings for spiking populations that never fired, or fired at every step, on the
    ``images`` measured (``rates``: population -> firing rate): a silent population
    passes nothing on, a saturated one passes no information."""
    lines = []
    for rate, what in ((0.0, "never fired"), (1.0, "fired at every neuron-step")):
        names = [name for name, value in rates.items() if value == rate]
        if names:
            lines.append(
                f"warning: {len(names)} of {len(rates)} populations {what} on {images:,} "
                f"test images: {', '.join(names)}"
            )
    return lines


def add_registry_option(
    parser: argparse.ArgumentParser,
    flag: str,
    registry: Registry[Any],
    summary: str,
    *,
    default: str | None = None,
    marked: str | None = None,
) -> None:
    """``flag``, whose value is a name in ``registry``: argparse lists the names (in the
    usage line and in the help, each with its entry's ``help``) and refuses any other
    with the registry's own message. ``default``: the value when the flag is not given;
    ``marked``: a name shown as the default without being stored (the flag then stays
    None when not given, for a later setting to decide)."""

    def registered(name: str) -> str:
        try:
            registry.get(name)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return name

    shown = default or marked
    entries = "; ".join(
        f"{name}{' (default)' if name == shown else ''}: {entry.help}"
        for name, entry in registry.items()
    )
    parser.add_argument(
        flag,
        type=registered,
        choices=registry.names(),
        default=default,
        help=f"{summary}: {entries}".replace("%", "%%"),
    )

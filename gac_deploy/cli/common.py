"""Pieces the commands share."""

from __future__ import annotations

import argparse


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

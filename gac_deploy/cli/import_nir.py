"""``gac-deploy import-nir``: a NIR graph (ours or another framework's) as a Loihi 2 bundle.

What it writes: a Loihi 2 bundle (encoder.onnx, body.net, manifest.json), as ``export
--target loihi2`` does, so ``simulate`` and ``energy`` run on it. A NIR graph carries no
host encoder, so the bundle's encoder.onnx (and its input section, model config and T)
is copied from a bundle: the NIR bundle itself when SOURCE is one (export --target nir),
otherwise the bundle named by ``--encoder-from``.
"""

from __future__ import annotations

import time
from pathlib import Path

from gac_deploy.cli.common import add_chip_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import-nir",
        help="turn a NIR graph into a Loihi 2 bundle",
        description="Read a NIR graph of Conv2d/Affine/Linear synapses and LIF/CubaLIF "
        "neurons (chains or DAGs with sums) and write a Loihi 2 bundle. The host encoder "
        "comes from the NIR bundle SOURCE is, or from --encoder-from.",
    )
    p.add_argument("source", help="a NIR bundle directory (export --target nir) or a .nir file")
    p.add_argument(
        "--encoder-from",
        help="a bundle (loihi2 or nir) whose encoder.onnx feeds the graph (needed for a "
        "bare .nir file)",
    )
    p.add_argument("--out", help="bundle directory (default: SOURCE's name + '-loihi2', beside it)")
    add_chip_args(p)
    p.add_argument(
        "--dt",
        type=float,
        default=None,
        help="seconds per time step the NIR time constants are read with (default 1e-4)",
    )


def run(args) -> dict:
    from gac_deploy.cli.export import report_loihi2
    from gac_deploy.errors import UserError
    from gac_deploy.export.targets import import_nir

    if args.dt is not None and not (args.dt > 0 and args.dt < float("inf")):
        raise UserError(f"--dt must be a positive number of seconds, got {args.dt}")
    source = Path(args.source)
    out = args.out or str(source.parent / f"{source.stem or source.name}-loihi2")
    started = time.perf_counter()
    bundle = import_nir(
        source,
        out,
        encoder_from=args.encoder_from,
        chips=args.chips,
        dt=args.dt,
        window=args.window,
        simulation_only=args.simulation_only,
    )
    print(f"imported {source} ({len(bundle.graph.populations)} populations)")
    return report_loihi2(bundle, out, started)

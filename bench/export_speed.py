"""Export time of msresnet18-cifar with random weights (target: under 60 s).

    python bench/export_speed.py [--official]

Writes a random-weight checkpoint, then times ``export_bundle`` (quantisation,
hardware checks with enough chips, ONNX encoder, body.net, manifest). ``--official``:
instead, each of the authors' three architectures (msresnet18-cifar, msresnet18/34-
imagenet) at full size, random weights written in their key format, goes through
``gac-deploy import-official`` and ``gac-deploy export --target loihi2``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.data import DataSpec
from gac_deploy.export.targets import export_bundle
from gac_deploy.models import build_model, default_config
from gac_deploy.testing import authors_state_dict, bundle_facts


def official_exports(work: Path) -> None:
    """The authors' architectures through import-official and export, as a user runs them."""
    from gac_deploy.cli import main as cli
    from gac_deploy.models.official import official_config

    for arch, classes, steps in (
        ("msresnet18-cifar", 10, 6),
        ("msresnet18-imagenet", 1000, 4),
        ("msresnet34-imagenet", 1000, 4),
    ):
        torch.manual_seed(0)
        source = build_model(official_config(arch, classes, steps)).eval()
        pth, model, bundle = work / f"{arch}.pth", work / f"{arch}.pt", work / arch
        torch.save(authors_state_dict(source, prefix="module."), pth)
        del source
        args = [str(pth), "--arch", arch, "--num-classes", str(classes), "-T", str(steps)]
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(["import-official", *args, "--out", str(model)]) == 0
            started = time.perf_counter()
            code = cli(["export", str(model), "--out", str(bundle), "--chips", "1024"])
        elapsed = time.perf_counter() - started
        if code:
            print(f"{arch}: export failed (exit {code})")
            continue
        f = bundle_facts(bundle)
        print(
            f"{arch}: exported in {elapsed:.1f} s; {f.populations} populations, {f.edges} edges "
            f"({f.composed_edges} composed shortcuts), {f.neurons:,} neurons, {f.synapses:,} "
            f"synapses unrolled; {f.cores} cores on {f.chips} chip(s) with conv kernels stored "
            f"once per core ({f.chips_unrolled} unrolled); body.net {f.body_mb:.1f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", action="store_true", help="the authors' three networks")
    if parser.parse_args().official:
        with tempfile.TemporaryDirectory() as tmp:
            official_exports(Path(tmp))
        return
    config = default_config("msresnet18-cifar")
    torch.manual_seed(0)
    model = build_model(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        save_checkpoint(ckpt, Checkpoint(config, DataSpec("cifar10"), model.state_dict(), {}, {}))
        started = time.perf_counter()
        bundle = Path(tmp) / "bundle"
        export_bundle(ckpt, bundle, chips=64)
        elapsed = time.perf_counter() - started
        size = sum(f.stat().st_size for f in bundle.iterdir())
        f = bundle_facts(bundle)
        print(
            f"export msresnet18-cifar (random weights): {elapsed:.1f} s, "
            f"bundle {size / 1e6:.1f} MB, "
            f"{f.cores} cores on {f.chips} chips with conv kernels stored once "
            f"per core ({f.chips_unrolled} chips unrolled)"
        )


if __name__ == "__main__":
    main()

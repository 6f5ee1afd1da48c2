"""The emulator of an earlier commit against this tree's, alternating in one process.

    python bench/emulator_ab.py --base REV --bundle DIR [--calls 100] [--batch 360]

Machines drift (here by up to 1.5x within minutes), so two runs of simulate_speed a
few minutes apart cannot tell a 15 % change from noise. This loads the emulator of
git revision REV beside the working tree's (REV's ``gac_deploy`` extracted with ``git
archive`` and imported as ``gac_deploy_base``), checks that both give the same spikes,
read-out, synaptic events and overflows on one batch of the bundle's test images, then
times ``emulate`` on that batch, alternating the two, and prints each one's median and
fastest call and the median of the per-pair ratios (base / this tree). REV's numba
passes compile on first use (not timed).
"""

from __future__ import annotations

import gac_deploy  # noqa: F401  (before torch, like the CLI: its OpenMP default applies)

# isort: split
import argparse
import importlib
import importlib.util
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from gac_deploy.chip import emulator
from gac_deploy.chip.simulate import test_batches
from gac_deploy.data import load_split
from gac_deploy.export.loading import load_bundle

BASE = "gac_deploy_base"


def base_emulator(rev: str, into: Path):
    """REV's emulator module (gac_deploy.chip.emulator, or gac_deploy.hardware.emulator in
    revisions before the package was split), its package renamed to gac_deploy_base and
    loaded from ``into`` by importlib (the import path is left alone)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", rev, "gac_deploy"], cwd=root, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "gac_deploy").rename(into / BASE)
    for source in (into / BASE).rglob("*.py"):
        source.write_text(re.sub(r"\bgac_deploy\b", BASE, source.read_text()))
    package = into / BASE
    spec = importlib.util.spec_from_file_location(
        BASE, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[BASE] = module
    spec.loader.exec_module(module)
    room = "chip" if (package / "chip" / "emulator.py").exists() else "hardware"
    return importlib.import_module(f"{BASE}.{room}.emulator")


def same(a, b) -> bool:
    return (
        a.spikes.keys() == b.spikes.keys()
        and all(torch.equal(a.spikes[k], b.spikes[k]) for k in a.spikes)
        and torch.equal(a.readout, b.readout)
        and a.synaptic_ops == b.synaptic_ops
        and _nonzero(a.overflows) == _nonzero(b.overflows)
    )


def _nonzero(counts: dict) -> dict:
    return {k: v for k, v in counts.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="a git revision")
    parser.add_argument("--bundle", required=True, help="an exported bundle")
    parser.add_argument("--calls", type=int, default=100, help="timed calls of each")
    parser.add_argument("--batch", type=int, default=360, help="images per call")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = load_bundle(args.bundle)
    graph = bundle.graph
    split = load_split(bundle.data_spec)
    images, _ = next(iter(test_batches(split, range(args.batch), args.batch)))
    payload = emulator.payload_tensor(bundle.encode(images)[1])
    with tempfile.TemporaryDirectory() as tmp:
        old = base_emulator(args.base, Path(tmp))
        prepared = {old: old.prepare(graph), emulator: emulator.prepare(graph)}
        runs = [module.emulate(graph, payload, prepared[module]) for module in prepared]
        if not same(*runs):
            sys.exit(f"{args.base}'s emulator and this tree's disagree on this batch")
        times: dict = {module: [] for module in prepared}
        for _ in range(args.calls):
            for module, synapses in prepared.items():
                started = time.perf_counter()
                module.emulate(graph, payload, synapses)
                times[module].append(time.perf_counter() - started)
    ratios = [a / b for a, b in zip(times[old], times[emulator], strict=True)]
    for name, module in ((args.base, old), ("this tree", emulator)):
        ms = [t * 1e3 for t in times[module]]
        print(f"{name}: median {statistics.median(ms):.1f} ms, fastest {min(ms):.1f} ms per call")
    print(
        f"{len(payload[0])} images per call, {args.calls} alternating calls each, results "
        f"identical; median ratio {args.base} / this tree: {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()

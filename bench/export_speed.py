"""Export time of msresnet18-cifar with random weights (target: under 60 s).

    python bench/export_speed.py

Writes a random-weight checkpoint, then times ``export_bundle`` (quantisation,
hardware checks with enough chips, ONNX encoder, body.net, manifest).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.data import DataSpec
from gac_deploy.export.bundle import export_bundle
from gac_deploy.models import build_model, default_config


def main() -> None:
    config = default_config("msresnet18-cifar")
    torch.manual_seed(0)
    model = build_model(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        save_checkpoint(ckpt, Checkpoint(config, DataSpec("cifar10"), model.state_dict(), {}, {}))
        started = time.perf_counter()
        bundle = export_bundle(ckpt, Path(tmp) / "bundle", chips=64)
        elapsed = time.perf_counter() - started
        size = sum(f.stat().st_size for f in (Path(tmp) / "bundle").iterdir())
        res = bundle.manifest["resources"]
        print(
            f"export msresnet18-cifar (random weights): {elapsed:.1f} s, "
            f"bundle {size / 1e6:.1f} MB, "
            f"{res['cores']} cores on {res['chips_needed']} chips with conv kernels stored once "
            f"per core ({res['chips_needed_unrolled']} chips unrolled)"
        )


if __name__ == "__main__":
    main()

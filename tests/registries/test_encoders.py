"""The encoder recipe: an encoder registered in-process is trained, exported (as
encoder.onnx), simulated and priced through the command line."""

import json

import numpy as np
import torch

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.data import load_split
from gac_deploy.export.loading import load_bundle
from gac_deploy.registries.encoders import ENCODERS
from tests.cli.test_cli import cli
from tests.registries.recipes import recipe


def test_a_registered_encoder_trains_exports_and_runs(tmp_path):
    run, bundle_dir = tmp_path / "run", tmp_path / "bundle"
    with recipe("An encoder") as namespace:
        trained = cli(
            "train", "--encoder", "lif-half", "--epochs", "1", "--max-steps", "3",
            "--out", str(run), "--quiet",
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        ckpt = load_checkpoint(run / "model.pt")
        assert ckpt.model_config.encoder == "lif-half"
        model = ckpt.build()
        assert isinstance(model.encoder, namespace["HalfLIFEncoder"])
        images, _ = load_split(ckpt.data).test_images(16)
        with torch.no_grad():
            encoded = model.encoder(images)
        assert set(encoded.unique().tolist()) == {0.0, 0.5}

        exported = cli("export", str(run / "model.pt"), "--out", str(bundle_dir), "--samples", "0")
        assert exported.returncode == 0, exported.stderr
        onnx_encoded, _ = load_bundle(bundle_dir).encode(images.numpy())
        assert np.array_equal(onnx_encoded, encoded.numpy())

        report = tmp_path / "simulate.json"
        ran = cli("simulate", str(bundle_dir), "--samples", "64", "--quiet", "--json", str(report))
        assert ran.returncode == 0, ran.stderr
        assert json.loads(report.read_text())["spike_exact"] is True

        priced = tmp_path / "energy.json"
        result = cli("energy", str(run / "model.pt"), "--samples", "8", "--json", str(priced))
        assert result.returncode == 0, result.stderr
        rows = {r["name"]: r for r in json.loads(priced.read_text())["complete"]}
        c, h, w = model.export_graph().input_shape
        assert rows["encoder.half"]["op"] == "mul"
        assert rows["encoder.half"]["ops"] == c * h * w * ckpt.model_config.time_steps
        assert "encoder.lif" in json.loads(priced.read_text())["firing_rates"]
    assert "lif-half" not in ENCODERS

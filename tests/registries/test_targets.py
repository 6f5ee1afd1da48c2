"""The export-target recipe: a target registered in-process is listed, exported to
through the command line, and its bundle opened, hashes verified, as the others are."""

import json
import shutil

import numpy as np
import pytest

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.errors import UserError
from gac_deploy.export.loading import load_any_bundle
from tests.cli.test_choices import help_text
from tests.cli.test_cli import cli
from tests.registries.recipes import recipe


def test_a_registered_target_exports_and_opens(trained_dir, tmp_path):
    model, out = str(trained_dir / "model.pt"), tmp_path / "json"
    with recipe("An export target"):
        listing = help_text("export")
        assert "json: the float body as JSON" in listing

        exported = cli("export", model, "--target", "json", "--out", str(out))
        assert exported.returncode == 0, exported.stderr
        assert f"{out}/body.json" in exported.stdout
        assert sorted(p.name for p in out.iterdir()) == [
            "body.json",
            "encoder.onnx",
            "manifest.json",
        ]
        bundle = load_any_bundle(out)
        assert bundle.target == "json" and bundle.manifest["body"]["runs_on"] == "a JSON reader"
        assert set(bundle.manifest["artifacts"]) == {"encoder.onnx", "body.json"}
        expected = load_checkpoint(model).build().export_graph()
        assert [p.name for p in bundle.graph.populations] == [p.name for p in expected.populations]
        for a, b in zip(bundle.graph.edges, expected.edges, strict=True):
            assert a.name == b.name and np.array_equal(a.weight, b.weight)
        images = np.zeros((2, *bundle.manifest["input"]["shape"]), np.float32)
        encoded, _ = bundle.encode(images)  # the host stage runs from the bundle
        assert encoded.shape[:2] == (bundle.graph.time_steps, 2)

        again = cli("export", model, "--target", "json", "--out", str(out))
        assert again.returncode == 0, again.stderr  # its own bundle may be replaced

        refused = cli("simulate", str(out))
        assert (
            refused.returncode == 2 and "is a json bundle, not a Loihi 2 bundle" in refused.stderr
        )

        tampered = tmp_path / "tampered"
        shutil.copytree(out, tampered)
        body = json.loads((tampered / "body.json").read_text())
        body["time_steps"] += 1
        (tampered / "body.json").write_text(json.dumps(body))
        with pytest.raises(UserError, match="sha256"):
            load_any_bundle(tampered)
    with pytest.raises(UserError, match="target 'json' is not one of loihi2, nir"):
        load_any_bundle(out)
    unknown = cli("export", model, "--target", "json", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "unknown target 'json'" in unknown.stderr

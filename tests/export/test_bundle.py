import json

import pytest

from gac_deploy.errors import UserError
from gac_deploy.export.loading import load_bundle
from gac_deploy.export.targets import export_bundle


def test_bundle_contents(bundle_dir):
    names = sorted(p.name for p in bundle_dir.iterdir())
    assert names == ["body.net", "encoder.onnx", "manifest.json"]
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["target"] == "loihi2" and manifest["time_steps"] == 4
    assert manifest["input"]["shape"] == [1, 8, 8]
    assert set(manifest["artifacts"]) == {"body.net", "encoder.onnx"}
    assert manifest["body"]["latency_steps"] == 6
    assert [q["population"] for q in manifest["quantization"]][-1] == "readout"


def test_export_is_deterministic(trained_dir, bundle_dir, tmp_path):
    again = tmp_path / "again"
    export_bundle(trained_dir / "model.pt", again)
    for name in ("body.net", "manifest.json"):
        assert (again / name).read_bytes() == (bundle_dir / name).read_bytes(), name


def test_tampered_bundle_is_refused(bundle_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    data = bytearray((copy / "body.net").read_bytes())
    data[-1] ^= 1
    (copy / "body.net").write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        load_bundle(copy)


def test_failed_export_keeps_existing_bundle(trained_dir, tmp_path):
    out = tmp_path / "bundle"
    export_bundle(trained_dir / "model.pt", out)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="unknown target"):
        export_bundle(trained_dir / "model.pt", out, target="truenorth")
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]

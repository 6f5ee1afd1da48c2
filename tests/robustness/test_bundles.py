"""Bundles whose files were replaced and re-hashed consistently: refused, one line."""

from __future__ import annotations

import json
import shutil

import pytest

from gac_deploy.fileio import sha256_file
from tests.cli.test_cli import assert_user_error, run_cli


def rehash(bundle, name: str) -> None:
    """Record ``name``'s new sha256 in the manifest, as a careful attacker would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifacts"][name] = sha256_file(bundle / name)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def copy_bundle(bundle_dir, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    return copy


def _garbage(path, tmp_path):
    path.write_bytes(b"\x00garbage" * 100)


def _other_model(path, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
    )
    onnx.save(helper.make_model(graph), str(path))


def _external_data(path, tmp_path):
    import onnx

    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin",
              size_threshold=0)


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        (_garbage, ["encoder.onnx", "not an ONNX model"]),
        (_other_model, ["encoder.onnx", "not a gac-deploy encoder"]),
        (_external_data, ["encoder.onnx", "external files"]),
    ],
)
def test_replaced_encoder_is_refused(bundle_dir, tmp_path, replace, words):
    bundle = copy_bundle(bundle_dir, tmp_path)
    replace(bundle / "encoder.onnx", tmp_path)
    rehash(bundle, "encoder.onnx")
    assert_user_error(run_cli("simulate", str(bundle), "--samples", "4"), *words)

"""Bundles whose files were replaced and re-hashed consistently: refused, one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gac_deploy.errors import UserError
from gac_deploy.export.loading import load_bundle
from gac_deploy.export.manifest import MANIFEST_SCHEMA, check_manifest
from gac_deploy.fileio import sha256_file
from tests.cli.test_cli import assert_user_error, cli


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
    assert_user_error(cli("simulate", str(bundle), "--samples", "4"), *words)


def _edit_body(bundle, edit) -> None:
    import h5py

    with h5py.File(bundle / "body.net", "r+") as f:
        edit(f)
    rehash(bundle, "body.net")


def _set_weights(values):
    def edit(f):
        weight = f["layer/1/weight"]
        data = np.full(weight.shape, values[0], dtype=values[1])
        del f["layer/1/weight"]
        f["layer/1"].create_dataset("weight", data=data)

    return edit


def _set_attr(where, key, value):
    def edit(f):
        f[where].attrs[key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_weights((np.nan, np.float32)), "weights are stored as float32, not integers"),
        (_set_weights((30000, np.int16)), "weights run from 30000"),
        (_set_weights((3, np.int16)), "even integers"),
        (_set_attr("/", "time_steps", 0), "time_steps is 0"),
        (_set_attr("/", "time_steps", 2), "T=2 steps but the encoder's T"),
        (_set_attr("/", "window", 2), "window 2 must be in time_steps 4..1024"),
        (_set_attr("/", "window", 2**40), "window 1099511627776 must be in time_steps 4..1024"),
        (_set_attr("/", "window", 8), "each image for 8 steps but the manifest says 4"),
        (_set_attr("/", "payload_bits", 0), "payload_bits is 0"),
        (_set_attr("layer/1/gac", "delay", -1), "delay -1"),
    ],
)
def test_body_net_outside_the_loihi_formats_is_refused(bundle_dir, tmp_path, edit, message):
    bundle = copy_bundle(bundle_dir, tmp_path)
    _edit_body(bundle, edit)
    with pytest.raises(UserError, match=message):
        load_bundle(bundle)


def _manifest_edit(edit):
    def apply(manifest):
        edit(manifest)
        return manifest

    return apply


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: [], "not a gac-deploy bundle manifest"),
        (_manifest_edit(lambda m: m.pop("body")), "missing body"),
        (_manifest_edit(lambda m: m.pop("artifacts")), "missing artifacts"),
        (_manifest_edit(lambda m: m.update(extra=1)), "unexpected extra"),
        (_manifest_edit(lambda m: m["input"]["data"].update(x=1)), "input.data must hold"),
        (_manifest_edit(lambda m: m["artifacts"].update({"../../x": "0" * 64})), "artifacts"),
        (_manifest_edit(lambda m: m["artifacts"].pop("body.net")), "artifacts must hold"),
        (_manifest_edit(lambda m: m["artifacts"].update({"body.net": "zz"})), "hex digest"),
        (_manifest_edit(lambda m: m.update(time_steps=5)), "differs from the model's"),
        (_manifest_edit(lambda m: m.update(time_steps="4")), "time_steps is a str"),
        (_manifest_edit(lambda m: m["model"].update(lif=[1])), "model config is malformed"),
    ],
)
def test_manifest_outside_its_schema_is_refused(bundle_dir, tmp_path, edit, message):
    bundle = copy_bundle(bundle_dir, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps(edit(manifest)))
    with pytest.raises(UserError, match=message):
        load_bundle(bundle)


def test_schema_names_every_key_build_manifest_writes(bundle_dir):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert set(manifest) == set(MANIFEST_SCHEMA)
    check_manifest(bundle_dir / "manifest.json", manifest)


def test_tampered_body_from_the_command_line(bundle_dir, tmp_path):
    bundle = copy_bundle(bundle_dir, tmp_path)
    _edit_body(bundle, _set_attr("/", "time_steps", 2))
    assert_user_error(cli("energy", str(bundle)), "T=2")
    assert_user_error(cli("simulate", str(bundle)), "T=2")

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from gac_deploy.body.quantize import quantize_payload
from gac_deploy.errors import UserError
from gac_deploy.export.onnx_encoder import (
    HostEncoder,
    export_encoder_onnx,
    run_encoder_onnx,
    with_payload_bits,
)
from tests.conftest import random_model, small_config


def test_onnxruntime_matches_pytorch(tmp_path):
    model = random_model(small_config(), seed=2)
    path = tmp_path / "encoder.onnx"
    export_encoder_onnx(model.encoder, 6, (1, 6, 6), path)
    images = torch.randn(7, 1, 6, 6) * 2  # batch size differs from the export example
    encoded, payload = run_encoder_onnx(path, images.numpy())
    with torch.no_grad():
        ref_encoded, ref_payload = HostEncoder(model.encoder, 6)(images)
    assert encoded.shape == (4, 7, 4, 6, 6)
    assert np.abs(encoded - ref_encoded.numpy()).max() < 1e-5
    assert np.array_equal(payload, ref_payload.numpy())
    assert payload.max() <= 63 and payload.min() >= 0
    assert np.array_equal(payload, np.rint(payload))

    # the same encoder re-targeted to other payloads: O unchanged, payload round(O * 2**b)
    three = with_payload_bits(path.read_bytes(), 3, False)
    for bits, signed in ((3, False), (8, False), (2, True)):
        retargeted = tmp_path / f"encoder{bits}.onnx"
        retargeted.write_bytes(with_payload_bits(three, bits, signed))  # a second time
        names = [t.name for t in onnx.load(str(retargeted)).graph.initializer]
        assert len(names) == len(set(names))  # each constant once, the latest
        o, q = run_encoder_onnx(retargeted, images.numpy())
        assert np.array_equal(o, encoded)
        assert np.array_equal(q, quantize_payload(encoded, bits, signed))
        assert q.max() == np.rint(encoded.max() * 2**bits) or q.max() == 2**bits - 1


def test_a_payload_in_another_form_is_not_retargeted():
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1])
    outs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("encoded", "payload")
    ]
    nodes = [
        helper.make_node("Identity", ["image"], ["encoded"]),
        helper.make_node("Floor", ["encoded"], ["payload"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "other", [x], outs))
    with pytest.raises(UserError, match="round"):
        with_payload_bits(model.SerializeToString(), 4, False)
    onnx.checker.check_model(model)

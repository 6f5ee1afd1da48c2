import numpy as np
import torch

from gac_deploy.export.onnx_encoder import HostEncoder, export_encoder_onnx, run_encoder_onnx
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

"""encoder.onnx: the host-side MAC stage (stem conv+BN, encoder LIF, GAU, gating) for all T steps.

Input ``image`` [N, C_in, H, W] (already normalised, float32). Outputs
``encoded`` O [T, N, C, H, W] (float, in [0, 1)) and ``payload``
round(O * 2**b) clipped to b bits (float tensor of integers): the graded spikes
the chip receives.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gac_deploy.body.quantize import quantize_payload
from gac_deploy.models.encoder import StemEncoder

OPSET = 18


class HostEncoder(nn.Module):
    """The encoder plus the payload quantisation, as exported."""

    def __init__(self, encoder: StemEncoder, payload_bits: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.payload_bits = payload_bits

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.encoder(image)
        return encoded, quantize_payload(encoded, self.payload_bits)


def export_encoder_onnx(
    encoder: StemEncoder, payload_bits: int, image_shape: tuple[int, int, int], path: Path
) -> None:
    """Export with a dynamic batch dimension (torch.onnx, dynamo exporter, opset 18)."""
    host = HostEncoder(encoder, payload_bits).eval()
    example = torch.zeros(2, *image_shape)
    batch = torch.export.Dim("batch")
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # it warns about torchvision ops we do not use
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            host,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["encoded", "payload"],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=({0: batch},),
            external_data=False,
        )
    onnx_log.setLevel(level)


def run_encoder_onnx(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run encoder.onnx with onnxruntime: images [N, C, H, W] -> (encoded, payload) [T, N, ...]."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    encoded, payload = session.run(None, {"image": np.ascontiguousarray(images, np.float32)})
    return encoded, payload

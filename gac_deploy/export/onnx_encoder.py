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

from gac_deploy.body.formats import payload_range
from gac_deploy.body.quantize import quantize_payload
from gac_deploy.errors import UserError
from gac_deploy.models.encoder import StemEncoder

OPSET = 18


class HostEncoder(nn.Module):
    """The encoder plus the payload quantisation, as exported (signed for an encoder
    whose output is: direct and rate coding)."""

    def __init__(self, encoder: StemEncoder, payload_bits: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.payload_bits = payload_bits

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.encoder(image)
        signed = self.encoder.signed_output
        return encoded, quantize_payload(encoded, self.payload_bits, signed)


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
    # no_grad: torch.export traces an inference graph (no autograd joint), about 1 s
    # less per export and fewer nodes; onnxruntime matches PyTorch either way (tested)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
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


def with_payload_bits(model_bytes: bytes, payload_bits: int, signed: bool) -> bytes:
    """An encoder.onnx this package wrote, re-targeted to a ``payload_bits`` payload: its
    ``payload`` output Clip(Round(Mul(encoded, 2**b)), low, high) gets the new scale and
    :func:`~gac_deploy.body.formats.payload_range`; ``encoded`` and everything before it are
    untouched. Raises UserError when the payload is not computed in that form."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    producer = {out: node for node in model.graph.node for out in node.output}
    clip = producer.get("payload")
    rounded = producer.get(clip.input[0]) if clip is not None else None
    scaled = producer.get(rounded.input[0]) if rounded is not None else None
    if (
        clip is None
        or (clip.op_type, len(clip.input)) != ("Clip", 3)
        or rounded.op_type != "Round"
        or scaled is None
        or scaled.op_type != "Mul"
        or "encoded" not in scaled.input
    ):
        raise UserError("encoder.onnx does not compute its payload as round(O * 2**b), clipped")
    low, high = payload_range(payload_bits, signed)
    constants = {
        "payload_scale": (scaled, 1 - list(scaled.input).index("encoded"), 2.0**payload_bits),
        "payload_low": (clip, 1, float(low)),
        "payload_high": (clip, 2, float(high)),
    }
    kept = [t for t in model.graph.initializer if t.name not in constants]  # re-targeted before
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    for name, (node, slot, value) in constants.items():
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
        node.input[slot] = name
    return model.SerializeToString()


INPUTS = ("image",)
OUTPUTS = ("encoded", "payload")


def check_encoder_onnx(path: Path) -> None:
    """Refuse a file that is not an encoder this package wrote: not ONNX, external data
    (weights read from other files), or other inputs/outputs than ``image`` ->
    ``encoded``, ``payload``."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for garbage
        raise UserError(
            f"{path} is not an ONNX model ({type(exc).__name__}); re-export the bundle"
        ) from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise UserError(f"{path} reads weights from external files; re-export the bundle")
    inputs = tuple(i.name for i in model.graph.input)
    outputs = tuple(o.name for o in model.graph.output)
    if inputs != INPUTS or outputs != OUTPUTS:
        raise UserError(
            f"{path} is not a gac-deploy encoder (inputs {list(inputs)}, outputs "
            f"{list(outputs)}; expected {list(INPUTS)} -> {list(OUTPUTS)}); re-export the bundle"
        )


def run_encoder_onnx(
    path: Path, images: np.ndarray, expected: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run encoder.onnx with onnxruntime: images [N, C, H, W] -> (encoded, payload) [T, N, ...].

    ``expected`` (T, C, H, W), when given, is the shape each output must have around the
    batch dimension. (A bundle checks its file once, with :func:`check_encoder_onnx`, when it
    is opened.)"""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        encoded, payload = session.run(None, {"image": np.ascontiguousarray(images, np.float32)})
    except Exception as exc:  # onnxruntime's Fail, InvalidArgument, ... for a bad model
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise UserError(f"{path} does not run ({reason}); re-export the bundle") from None
    if expected is not None:
        t, *image = expected
        want = [t, len(images), *image]
        for name, out in zip(OUTPUTS, (encoded, payload), strict=True):
            if list(out.shape) != want:
                raise UserError(
                    f"{path}: {name} has shape {list(out.shape)}, the body needs {want}; "
                    "re-export the bundle"
                )
    return encoded, payload

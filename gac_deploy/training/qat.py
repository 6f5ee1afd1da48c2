"""Quantisation-aware fine-tuning: the body trained as Loihi 2 will run it.

The body is taken in its deployed form (BatchNorm folded, the residual graph of
:mod:`gac_deploy.body.graph`) and run in fixed point: every weight is the
8-bit mantissa it will be exported as (even integers at the destination
population's unit 2**-k shifted by the edge's weight exponent, straight-through
gradients), biases are 13-bit, the
encoder output reaches the body as its b-bit graded payload, and every
population runs lava-dl's CUBA neuron in Loihi arithmetic
(:func:`gac_deploy.models.lif.loihi_lif_forward`). The format (each k, b) is
fixed at the start and stored with the checkpoint, so the export uses it.
The encoder stays float (it runs on the host).

The trainable parameters are the model's layers, BatchNorm folded (one weight and bias
per conv/linear layer, the membrane downsamples included). A membrane shortcut's
composed edges are recomposed from them at every step
(:func:`gac_deploy.models.msresnet.compose_weights`) and quantised as exported: its
weights at the destination's unit, those from the graded input at 2**-(k - b).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gac_deploy.body.formats import BIAS_LIMIT, WEIGHT_MAX, WEIGHT_MIN, WEIGHT_STEP
from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.body.quantize import QuantSpec, quantize_payload, weight_shift
from gac_deploy.body.synapses import channel_bias, edge_current
from gac_deploy.models.lif import loihi_lif_forward
from gac_deploy.models.msresnet import (
    INPUT_LAYER,
    ConvBN,
    GACMSResNet,
    carries_downsample_bias,
    compose_weights,
    composed_parts,
    fold_batchnorm,
)


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Value of q, gradient of x."""
    return x + (q - x).detach()


def fake_quant_weight(w: torch.Tensor, k: int) -> torch.Tensor:
    """Weights as exported at unit 2**-k: even integers in [-256, 254]."""
    scale = 2.0**k
    q = torch.clamp(WEIGHT_STEP * torch.round(w * scale / WEIGHT_STEP), WEIGHT_MIN, WEIGHT_MAX)
    q = q / scale
    return _ste(w, q)


def fake_quant_edge_weight(w: torch.Tensor, unit: int) -> torch.Tensor:
    """An edge's weights as exported at unit 2**-``unit``: 8-bit mantissas at the edge's
    own weight exponent (:func:`gac_deploy.body.quantize.weight_shift`, from the current
    largest weight), so they are the values :func:`quantize_edge_weight` will store."""
    return fake_quant_weight(w, unit - weight_shift(float(w.detach().abs().max()), unit))


def fake_quant_bias(b: torch.Tensor, k: int) -> torch.Tensor:
    scale = 2.0**k
    return _ste(b, torch.clamp(torch.round(b * scale), -BIAS_LIMIT - 1, BIAS_LIMIT) / scale)


def _key(layer: str) -> str:
    return layer.replace(".", "__")


class QATBody(nn.Module):
    """The body graph with trainable float weights, run in Loihi fixed point.

    Input: encoder output O [T, N, C, H, W]. Output: class scores [N, classes]
    (the read-out's accumulated input / T, in model units).
    """

    def __init__(self, model: GACMSResNet, spec: QuantSpec) -> None:
        super().__init__()
        self.graph: Graph = model.export_graph()
        self.spec = spec
        self.lif = model.config.lif
        self.weight = nn.ParameterDict()
        self.bias = nn.ParameterDict()
        for layer, module in model.body_layers().items():
            if isinstance(module, ConvBN):
                weight, bias = fold_batchnorm(module.conv, module.bn)
            else:
                weight, bias = module.weight.detach(), module.bias.detach()
            self.weight[_key(layer)] = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))
            self.bias[_key(layer)] = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32))

    def _dense_weight(self, layer: str, src_shape: tuple[int, ...]) -> torch.Tensor:
        """The classifier with global average pooling folded in: [classes, C*H*W]."""
        fc = self.weight[_key(layer)]
        hw = src_shape[1] * src_shape[2]
        return fc[:, :, None].expand(-1, -1, hw).reshape(fc.shape[0], -1) / hw

    def layer_weight(self, layer: str, channels: int) -> torch.Tensor:
        """The float weight of a graph layer: a model layer's own, the identity for the
        encoder output (``channels`` wide), or a downsample composed with its term."""
        if layer == INPUT_LAYER:
            return torch.eye(channels)[:, :, None, None]
        parts = composed_parts(layer)
        if parts is None:
            return self.weight[_key(layer)]
        downsample, term = parts
        inner = self.layer_weight(term, channels)
        return compose_weights(self.weight[_key(downsample)], inner)

    def layer_bias(self, layer: str, channels: int) -> torch.Tensor:
        """The folded shift a graph layer adds (as the exported graph sums them)."""
        if layer == INPUT_LAYER:
            return torch.zeros(channels)
        parts = composed_parts(layer)
        if parts is None:
            return self.bias[_key(layer)]
        downsample, term = parts
        d = self.weight[_key(downsample)][:, :, 0, 0]
        bias = d @ self.layer_bias(term, channels)
        return bias + self.bias[_key(downsample)] if carries_downsample_bias(layer) else bias

    def _current(self, edge: Edge, src: torch.Tensor, k: int) -> torch.Tensor:
        """One edge's synaptic input in model units, its weights quantised as exported."""
        channels = self.graph.input_shape[0]
        if edge.layer == INPUT_LAYER:  # identity edge: exact at any k >= b
            return src
        if edge.kind == "dense":
            w = fake_quant_edge_weight(self._dense_weight(edge.layer, src.shape[2:]), k)
        else:
            scale = k - self.spec.payload_bits if edge.src == INPUT else k
            w = fake_quant_edge_weight(self.layer_weight(edge.layer, channels), scale)
        return edge_current(edge, src, w)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        b = self.spec.payload_bits
        signed = self.graph.signed_input
        signals = {INPUT: _ste(encoded, quantize_payload(encoded, b, signed) / 2.0**b)}
        channels = self.graph.input_shape[0]
        for pop in self.graph.populations:
            k = self.spec.scale_exp[pop.name]
            current, bias = 0.0, encoded.new_zeros(pop.shape[0])
            for edge in self.graph.incoming(pop.name):
                current = current + self._current(edge, signals[edge.src], k)
                bias = bias + self.layer_bias(edge.layer, channels)
            current = current + channel_bias(fake_quant_bias(bias, k), pop.shape)
            if pop.role == "readout":
                return current.mean(dim=0)
            signals[pop.name] = loihi_lif_forward(current, self.lif, k)
        raise ValueError("the body graph has no read-out")


class QATModel(nn.Module):
    """Float host encoder + fixed-point body: image [N, C, H, W] -> scores [N, classes]."""

    def __init__(self, model: GACMSResNet, spec: QuantSpec) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.body = QATBody(model, spec)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(self.encoder(image))


@torch.no_grad()
def write_back(model: GACMSResNet, body: QATBody) -> None:
    """Store the fine-tuned body in ``model``: each conv holds the folded weights and its
    BatchNorm becomes the identity plus the folded shift (what folding gives back)."""
    for layer, module in model.body_layers().items():
        weight = body.weight[_key(layer)].detach()
        bias = body.bias[_key(layer)].detach()
        if isinstance(module, ConvBN):
            module.conv.weight.copy_(weight)
            bn = module.bn
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        else:
            module.weight.copy_(weight)
            module.bias.copy_(bias)


def check_round_trip(model: GACMSResNet, body: QATBody) -> float:
    """Largest difference between the body's weights and the model's folded ones."""
    worst = 0.0
    for layer, module in model.body_layers().items():
        if isinstance(module, ConvBN):
            weight = fold_batchnorm(module.conv, module.bn)[0]
        else:
            weight = module.weight.detach().double().numpy()
        diff = np.abs(weight - body.weight[_key(layer)].detach().double().numpy())
        worst = max(worst, float(diff.max()))
    return worst

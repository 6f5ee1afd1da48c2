"""Encoders: the host-side MAC stage that turns a static image into T steps.

Input: a static image [N, C_in, H, W]. Output: O [T, N, C, H', W']. For Gated
Attention Coding (paper Eq. 2-5), O is real in [0, 1) and zero wherever the
stem's LIF did not spike. The coding baselines have the same interface.

Static-input factoring: the image is the same at every step, so the stem conv
f(X), the temporal attention's pooled inputs and the spatial-channel attention
SCA(f(X)) are computed once per image and broadcast over T. Only the LIF spikes
and the temporal weights M vary with t.

Each encoder class reports the host operations one inference costs
(``host_ops``), counted with that factoring; the energy report prices them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from gac_deploy.body.graph import Graph
from gac_deploy.body.ops import stem_flops
from gac_deploy.config import ModelConfig
from gac_deploy.models.lif import LIF
from gac_deploy.registries import resolve
from gac_deploy.registries.encoders import ENCODERS


def host_name(part: str) -> str:
    """The graph/report name of an encoder part: ``encoder.`` + its module name."""
    return f"encoder.{part}"


ENCODER_LIF = host_name("lif")
"""The encoder's LIF population (host side): where a spiking encoder's rate is reported."""


class HostOp(NamedTuple):
    """One host operation per inference: ``count`` operations of kind ``op`` ("MAC",
    "mul", "add" or "host neuron update"); ``naive``: the count if it were evaluated at
    every step instead of once per image (None where the two are the same)."""

    name: str
    op: str
    count: float
    naive: float | None


class TemporalAttention(nn.Module):
    """F_T (Eq. 2): shared MLP T -> T/r -> T on the avg- and max-pooled steps, summed.

    Takes the static stem output [N, C, H, W]; every step pools to the same value,
    so the MLP's input is that value repeated T times. Returns M [N, T].
    """

    def __init__(self, time_steps: int, reduction: int) -> None:
        super().__init__()
        self.time_steps = time_steps
        hidden = time_steps // reduction
        self.mlp = nn.Sequential(
            nn.Linear(time_steps, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, time_steps, bias=False),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        avg = features.mean(dim=(1, 2, 3))
        peak = features.amax(dim=(1, 2, 3))
        ones = features.new_ones(1, self.time_steps)
        return self.mlp(avg[:, None] * ones) + self.mlp(peak[:, None] * ones)


class SpatialChannelAttention(nn.Module):
    """F_SC (Eq. 3): conv KxK -> ReLU -> conv KxK, C -> C, PyTorch 'same' padding.

    [N, C, H, W] -> [N, C, H, W]; computed once per image (static input). For an
    even K, 'same' pads (K-1)//2 before and the rest after, as PyTorch does; the
    padding is explicit so that the ONNX graph carries exactly that.
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        before = (kernel - 1) // 2
        self.pad = (before, kernel - 1 - before, before, kernel - 1 - before)
        self.conv1 = nn.Conv2d(channels, channels, kernel, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, kernel, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.conv1(F.pad(features, self.pad)))
        return self.conv2(F.pad(hidden, self.pad))


class StemEncoder(nn.Module):
    """The shared stem f(X): a bias-free conv + BatchNorm, once per image.

    ``signed_output``: O is real and signed (direct, rate coding) rather than in [0, 1)."""

    signed_output = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.stem_channels
        self.time_steps = config.time_steps
        self.conv = nn.Conv2d(
            config.in_channels,
            c,
            config.stem_kernel,
            stride=config.stem_stride,
            padding=config.stem_kernel // 2,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(c)

    def stem(self, image: torch.Tensor) -> torch.Tensor:
        """f(X): [N, C_in, H, W] -> [N, C, H', W']."""
        return self.bn(self.conv(image))

    def repeat(self, features: torch.Tensor) -> torch.Tensor:
        """[N, ...] -> [T, N, ...] (a view; the input is the same at every step)."""
        return features.unsqueeze(0).expand(self.time_steps, *features.shape)

    @classmethod
    def host_ops(cls, config: ModelConfig, graph: Graph) -> list[HostOp]:
        """Host operations per inference feeding ``graph`` (O per step is graph.input_shape):
        the stem conv once, the input being static (T times in the per-step form)."""
        stem = float(stem_flops(graph, config))
        return [HostOp(host_name("conv"), "MAC", stem, stem * config.time_steps)]


class DirectEncoder(StemEncoder):
    """Direct coding (Wu et al. 2019): O = f(X) at every step, real-valued."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.repeat(self.stem(image))


class LIFEncoder(StemEncoder):
    """The stem's LIF spikes, O = SN(f(X)): GAC without its gated attention unit."""

    signed_output = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.lif = LIF(config.lif)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.lif(self.repeat(self.stem(image)))

    @classmethod
    def host_ops(cls, config: ModelConfig, graph: Graph) -> list[HostOp]:
        """The stem, then one LIF update per neuron of O and step."""
        c, h, w = graph.input_shape
        updates = c * h * w * config.time_steps
        return [
            *super().host_ops(config, graph),
            HostOp(ENCODER_LIF, "host neuron update", updates, None),
        ]


class GACEncoder(LIFEncoder):
    """O = sigmoid(F_T(f(X)) * F_SC(f(X))) * SN(f(X))   (Eq. 4-5).

    ``config.gau`` selects the gate: ``"full"`` as above, ``"ta"`` sigmoid(M)
    or ``"sca"`` sigmoid(N) (the ablations of Fig. 4a).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.gau = config.gau
        if config.gau in ("full", "ta"):
            self.ta = TemporalAttention(config.time_steps, config.ta_reduction)
        if config.gau in ("full", "sca"):
            self.sca = SpatialChannelAttention(config.stem_channels, config.sca_kernel)

    def gate(self, features: torch.Tensor) -> torch.Tensor:
        """sigmoid(M * N) broadcast to [T, N, C, H, W] (or [1, ...] for the SCA-only gate)."""
        if self.gau == "sca":
            return torch.sigmoid(self.sca(features)).unsqueeze(0)
        m = self.ta(features).transpose(0, 1)[:, :, None, None, None]  # [T, N, 1, 1, 1]
        if self.gau == "ta":
            return torch.sigmoid(m)
        return torch.sigmoid(m * self.sca(features).unsqueeze(0))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.stem(image)
        return self.gate(features) * self.lif(self.repeat(features))

    @classmethod
    def host_ops(cls, config: ModelConfig, graph: Graph) -> list[HostOp]:
        """The stem and its LIF, then the gate ``config.gau`` selects: TA pools the stem output
        (avg and max, once per image) into its T -> T/r -> T MLP (twice: avg and max); SCA's
        two KxK convs run once per image; a sigmoid per gate value (priced as one MAC), the
        product M * N (full gate) and the gating of the spikes."""
        c, h, w = graph.input_shape
        t, chw = config.time_steps, c * h * w
        ops = super().host_ops(config, graph)
        if config.gau in ("full", "ta"):
            hidden = t // config.ta_reduction
            ops += [
                HostOp(host_name("ta.pool"), "add", 2.0 * chw, 2.0 * chw * t),
                HostOp(host_name("ta.mlp"), "MAC", 2.0 * 2 * t * hidden, None),
            ]
        if config.gau in ("full", "sca"):
            sca = 2.0 * c * c * config.sca_kernel**2 * h * w
            ops.append(HostOp(host_name("sca"), "MAC", sca, sca * t))
        sigmoid = {"full": chw * t, "ta": float(t), "sca": float(chw)}[config.gau]
        ops.append(HostOp(host_name("gate.sigmoid"), "MAC", sigmoid, None))
        if config.gau == "full":
            ops.append(HostOp(host_name("gate.product"), "mul", chw * t, None))  # M * N
        ops.append(HostOp(host_name("gating"), "mul", chw * t, None))  # sigmoid(...) * spikes
        return ops


class RateEncoder(StemEncoder):
    """Rate coding: Bernoulli spikes with probability clamp(x, 0, 1) of the normalised
    input pixel x at every step, then the stem conv + BN per step (real output).

    In training the draws come from torch's global generator (seeded by the run). In
    eval mode pixel x spikes at step t where x > ``dither[t, c, h, w]``, a fixed table of
    uniform draws made from ``RATE_SEED`` (not saved: rebuilt identically): the same
    spikes for the same image in any batch, in PyTorch and in the exported encoder.onnx,
    where the table is a constant (onnxruntime's own random draws would differ).
    """

    RATE_SEED = 0

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        generator = torch.Generator().manual_seed(self.RATE_SEED)
        shape = (config.time_steps, config.in_channels, config.image_size, config.image_size)
        self.register_buffer("dither", torch.rand(shape, generator=generator), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        p = image.clamp(0.0, 1.0).unsqueeze(0).expand(self.time_steps, *image.shape)
        if self.training:
            spikes = torch.bernoulli(p)
        else:
            spikes = (p > self.dither.unsqueeze(1)).to(p.dtype)
        out = self.stem(spikes.flatten(0, 1))
        return out.view(self.time_steps, image.shape[0], *out.shape[1:])

    @classmethod
    def host_ops(cls, config: ModelConfig, graph: Graph) -> list[HostOp]:
        """The stem conv at every step: its input, the spikes, changes with t."""
        stem = float(stem_flops(graph, config))
        return [HostOp(host_name("conv"), "MAC", stem * config.time_steps, None)]


def encoder_class(config: ModelConfig) -> type[StemEncoder]:
    """The class of ``config.encoder``, as :mod:`gac_deploy.registries.encoders` names it."""
    return resolve(ENCODERS.get(config.encoder).implementation)


def build_encoder(config: ModelConfig) -> StemEncoder:
    return encoder_class(config)(config)

"""A fast, bit-exact emulator of the exported body as Lava runs it.

Lava delivers a spike sent at step s to the next population at step s + 1 (+ the
edge's delay), and each population resets at the start of its own T-step window
(:mod:`gac_deploy.hardware.lava_runner`). With the delays that export balances,
step t of a population's window therefore reads step t of each source's window:
the emulator checks that and then runs each population over its whole window
at once, for a whole batch of images, in Loihi's integer arithmetic:

    u = a_in << 6                       (current decay 4096: nothing kept)
    v = sign(v) * (|v| * (4096 - dv) >> 12) + u + (bias << 6),   |v| < 2**23
    spike = v > vth << 6;  v = 0 where it spiked

All values are integers held in floating point where that is exact. The weights
and biases are stored times 64 (the << 6), a power of two, so every sum is 64
times the integer sum with the same rounding: synaptic input is a convolution in
float32 when its worst case (a_in, before << 6) stays below 2**24, else float64,
and a population's currents are added in float32 while their worst cases sum below
2**24. The voltage is float32 when the decay keeps a power of two ((4096 - dv) /
4096: the decay is then a division by a power of two and a truncation, both exact)
and every |v| provably stays below 2**24, from the weights or from this batch's
largest drive (|v| <= max|drive| / (1 - keep)); else float64, where |v| (4096 - dv)
< 2**35 and the shift by 12 (a division by 4096, then truncation toward zero) are
exact. Unlike the quantised reference (lava-dl's CUBA neuron), this is a
separate implementation of the chip's arithmetic, checked against Lava spike for
spike in the tests.

Less work than a dense float network, with the same integers:
- spikes (and host payloads below 128) are convolved by oneDNN's int8 kernels,
  int32 sums returned in float32 times a power of two (:mod:`int8_conv`, probed
  once against float64; float convolution where they are missing or the weights
  do not fit in int8);
- a 1x1 edge whose weight matrix is diagonal (the host payload's identity edges)
  is a per-channel scale, another 1x1 edge without int8 weights a matrix product;
- edges that read the same source through the same weights (the residual stream's
  terms, which reach several populations) are computed once;
- all-zero frames (one image at one step) are left out of every edge, and when under
  15/16 of a source's input channels (dense features) carry any spike in the batch,
  only those enter a float convolution (weight[:, active], signal[:, active]);
- a population's bias joins its first current (the convolution's own bias) when no
  current can wrap;
- everything runs channels_last, the payload arrives that way
  (:func:`payload_tensor`), and a dense edge reads an image source in (H, W, C)
  order through weights permuted once;
- the LIF writes its spikes over its drive, keeping one step's voltage; spikes leave
  as one byte each (bool, returned as uint8 [T, N, ...], possibly strided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from gac_deploy.body.formats import ACTIVATION_SCALE, ACTIVATION_SHIFT, DECAY_UNITY, STATE_MAX
from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.body.quantize import max_synaptic_input
from gac_deploy.body.synapses import channel_bias
from gac_deploy.body.timing import balance_delays
from gac_deploy.hardware import int8_conv
from gac_deploy.hardware.int8_conv import INPUT_MAX, Int8Conv, int8_weight

FLOAT32_EXACT = 1 << 24
GATHER_BELOW = 15 / 16  # gather the active channels when fewer than this fraction carry spikes


@dataclass
class EmulatorRun:
    """Spikes [T, N, *shape] (uint8) per spiking population (its own window), the read-out
    voltage [T, N, classes] (Lava's integer), exact synaptic events per edge, summed
    over images, and per population the neuron-steps where the 24-bit state overflowed
    (the current wrapped or the voltage saturated, as on the chip)."""

    spikes: dict[str, torch.Tensor]
    readout: torch.Tensor
    synaptic_ops: dict[str, int]
    overflows: dict[str, int]

    @property
    def predictions(self) -> torch.Tensor:
        return self.readout[-1].argmax(dim=1)


class Source:
    """One source's signal [T, N, ...] for a batch, ready for its edges: which frames
    (images at one step) carry any nonzero value, ``positions``: the nonzero entries per
    spatial position H*W (F when flat; summed over steps, images, channels) for events,
    and, per edge kind, the values as frames with the channels (features) that carry
    any nonzero value: "conv" float32 [T * N, C, H, W] channels_last, "dense" float32
    [T * N, F] ((H, W, C) order for images: a view of the channels_last frames) and
    "int8" uint8 [T * N, C, H, W] channels_last (only when ``small_unsigned``: every
    value in 0 .. int8_conv.INPUT_MAX)."""

    def __init__(
        self, signal: torch.Tensor, binary: bool = False, as_uint8: torch.Tensor | None = None
    ) -> None:
        """``binary``: every value is 0 or 1 (spikes, in any dtype); bool and uint8 are.
        ``as_uint8``: the same signal as uint8, when the caller already has it."""
        binary = binary or signal.dtype in (torch.bool, torch.uint8)
        if signal.dtype == torch.bool:
            signal = signal.view(torch.uint8)  # uint8 converts to float several times faster
        self.steps_images = tuple(signal.shape[:2])
        frames = signal.flatten(0, 1)
        self.shape = tuple(frames.shape[1:])
        if frames.dim() == 4:  # one transposition here, then every edge reads channels_last
            frames = frames.to(torch.float32, memory_format=torch.channels_last)
            rows = frames.permute(0, 2, 3, 1).reshape(len(frames), -1)  # a view: (H, W, C)
        else:
            frames = frames.to(torch.float32)
            rows = frames
        self.frames = frames
        if binary:
            self.small_unsigned = True
            marks = rows
        else:
            low, high = torch.aminmax(rows) if rows.numel() else (0, 0)
            self.small_unsigned = 0 <= float(low) and float(high) <= INPUT_MAX
            # 1 where nonzero: integers capped at 1 (float arithmetic, faster than ne)
            marks = rows.clamp(max=1.0) if float(low) >= 0 else rows.abs().clamp_(max=1.0)
        self._uint8 = None if as_uint8 is None else as_uint8.flatten(0, 1)
        if max(marks.shape) >= FLOAT32_EXACT:
            marks = marks.double()
        # row and column sums count the nonzero entries per frame and per column; integer
        # counts below 2**24 (float32) or 2**53 (float64) are exact
        per_frame = marks.sum(dim=1)
        per_column = marks.sum(dim=0)
        self.active_frames = _indices(per_frame > 0)
        if frames.dim() == 4:
            channels = self.shape[0]
            per_column = per_column.double()
            self._active = {"dense": per_column > 0}  # (H, W, C) order
            per_column = per_column.view(-1, channels)  # [H*W, C]
            self.positions = per_column.sum(dim=1).to(torch.int64)
            self._active["conv"] = per_column.amax(dim=0) > 0
        else:
            self.positions = per_column.to(torch.int64)
            self._active = {"dense": per_column > 0}
        self._operands: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._gathered: dict[tuple[str, bool], torch.Tensor] = {}

    def operand(self, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frames for a ``kind`` edge and its active channels (None: all active)."""
        if kind not in self._operands:
            frames = self.frames
            if kind == "int8":
                frames = self._uint8 if self._uint8 is not None else frames
                frames = frames.to(torch.uint8, memory_format=torch.channels_last)
            elif kind == "dense" and frames.dim() == 4:
                frames = frames.permute(0, 2, 3, 1).reshape(len(frames), -1)  # a view
            active = self._active["conv" if kind == "int8" else kind]
            self._operands[kind] = frames, _indices(active)
        return self._operands[kind]

    def gathered(self, kind: str, channels: bool) -> torch.Tensor:
        """The active frames (and, if ``channels``, only the active channels), cached;
        [n, C, H, W] frames stay channels_last."""
        if (kind, channels) not in self._gathered:
            x, active = self.operand(kind)
            image = x.dim() == 4
            if image:  # gather on the (n, H, W, C) view, a contiguous tensor
                x = x.permute(0, 2, 3, 1)
            if self.active_frames is not None:
                x = x.index_select(0, self.active_frames)
            if channels:
                x = x.index_select(-1 if image else 1, active)
            self._gathered[kind, channels] = x.permute(0, 3, 1, 2) if image else x
        return self._gathered[kind, channels]


def _indices(mask: torch.Tensor) -> torch.Tensor | None:
    """Indices where ``mask`` holds; None when it holds everywhere (nothing to gather)."""
    return None if bool(mask.all()) else mask.nonzero().flatten()


class _Synapses:
    """One edge, prepared once: weights x 64 (the << 6) in the float type that keeps
    its sums exact; ``share`` names an earlier edge with the same source and weights,
    whose current this edge reuses. A 1x1 convolution without padding is computed as
    what it is: a per-channel scale when its weight matrix is diagonal (the host
    payload's identity edges), else a matrix product over the channels, on the
    source's positions taken every ``stride``."""

    def __init__(
        self, edge: Edge, graph: Graph, in_hw: tuple[int, ...], out_hw: tuple[int, ...]
    ) -> None:
        self.edge = edge
        self.share: str | None = None
        self.worst = max_synaptic_input(edge, graph.payload_bits, graph.signed_input)
        self.dtype = torch.float32 if self.worst < FLOAT32_EXACT else torch.float64
        weight = torch.as_tensor(edge.weight, dtype=self.dtype) * ACTIVATION_SCALE
        self.mode = edge.kind  # "conv", "dense", "pointwise" or "scale"
        if edge.kind == "dense" and len(in_hw) == 2:  # columns (C, H, W) -> (H, W, C),
            channels = edge.weight.shape[1] // math.prod(in_hw)  # as the source's frames
            weight = weight.view(-1, channels, *in_hw).permute(0, 2, 3, 1).reshape(len(weight), -1)
        if edge.kind == "conv" and edge.weight.shape[2:] == (1, 1) and edge.padding == 0:
            weight = weight[:, :, 0, 0]
            diagonal = weight.shape[0] == weight.shape[1] and torch.equal(
                weight, torch.diag(torch.diagonal(weight))
            )
            self.mode = "scale" if diagonal else "pointwise"
            if diagonal:
                weight = torch.diagonal(weight).view(-1, 1, 1).clone()
        elif edge.kind == "conv":
            weight = weight.contiguous(memory_format=torch.channels_last)
        # spikes (and payloads below 128) through int8 weights: oneDNN's integer kernels
        self.int8: Int8Conv | None = None
        if self.mode in ("conv", "pointwise") and self.dtype == torch.float32 and graph.quantized:
            packed = int8_weight(edge.weight) if int8_conv.available() else None
            if packed is not None:
                int8, factor = packed
                self.int8 = Int8Conv(int8, factor * ACTIVATION_SCALE, edge.stride, edge.padding)
        if edge.kind == "conv":
            k = edge.weight.shape[2:]
            extra = [
                size - ((o - 1) * edge.stride - 2 * edge.padding + kk)
                for size, o, kk in zip(in_hw, out_hw, k, strict=True)
            ]
            # how many output neurons each input position reaches (borders included)
            self.reach = F.conv_transpose2d(
                torch.ones((1, 1, *out_hw), dtype=torch.float64),
                torch.ones((1, 1, *k), dtype=torch.float64),
                stride=edge.stride,
                padding=edge.padding,
                output_padding=tuple(extra),
            )[0, 0].flatten()
        self.weight = weight
        self.out_shape = (edge.weight.shape[0], *out_hw)

    def _apply(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """x [n, C, H, W] or [n, F] -> synaptic input x 64 (+ ``bias`` [C_out, 1, 1] or
        [F_out]), [n, C_out, H', W'] channels_last or [n, F_out]."""
        x = x.to(self.dtype)
        stride = self.edge.stride
        flat = None if bias is None else bias.flatten()
        if self.mode == "conv":
            return F.conv2d(x, weight, flat, stride=stride, padding=self.edge.padding)
        if self.mode == "dense":
            return x @ weight.T if bias is None else torch.addmm(flat, x, weight.T)
        if stride > 1:
            x = x[:, :, ::stride, ::stride]
        n, _, h, w = x.shape
        if self.mode == "scale":  # channels_last in, channels_last out
            return x * weight if bias is None else torch.addcmul(bias, x, weight)
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, -1)  # a view when channels_last
        out = rows @ weight.T if bias is None else torch.addmm(flat, rows, weight.T)
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)

    def current(self, source: Source, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Synaptic input x 64 [T, N, *dst] from ``source``, plus ``bias`` (per output
        channel, this edge's dtype) when given, computed only over the source's active
        frames and, when enough are silent, its active channels (the sum is the same)."""
        steps_images = source.steps_images
        shape = (steps_images[0] * steps_images[1], *self.out_shape)
        frames = source.active_frames
        _, channels = source.operand(self.edge.kind)
        if (channels is not None and not len(channels)) or (frames is not None and not len(frames)):
            out = _filled(shape, self.dtype, bias)
            return out.view(*steps_images, *self.out_shape)
        if self.int8 is not None and source.small_unsigned:
            out = self.int8(source.gathered("int8", False), bias)
        else:
            gather = (
                self.mode != "scale"
                and channels is not None
                and len(channels) < GATHER_BELOW * self.weight.shape[1]
            )
            weight = self.weight.index_select(1, channels) if gather else self.weight
            out = self._apply(source.gathered(self.edge.kind, gather), weight, bias)
        if frames is not None:
            out = _filled(shape, self.dtype, bias).index_copy_(0, frames, out)
        return out.view(*steps_images, *self.out_shape)

    def events(self, per_position: torch.Tensor) -> int:
        """Every nonzero input times the synapses it reaches. ``per_position``: nonzero
        inputs per spatial position of the source (summed over steps, images, channels)."""
        fan_out = self.edge.weight.shape[0]
        if self.edge.kind == "conv":
            return int(per_position.double().dot(self.reach)) * fan_out
        return int(per_position.sum()) * fan_out


def _filled(shape: tuple[int, ...], dtype: torch.dtype, bias: torch.Tensor | None) -> torch.Tensor:
    """Frames [n, *shape[1:]] holding ``bias`` (None: zeros); images channels_last."""
    layout = torch.channels_last if len(shape) == 4 else torch.contiguous_format
    out = torch.empty(shape, dtype=dtype, memory_format=layout)
    return out.fill_(0) if bias is None else out.copy_(bias.expand(shape))


def payload_tensor(payload: np.ndarray) -> torch.Tensor:
    """The host's payload [T, N, C, H, W] (or [T, N, F]), rounded to integers in float32, as
    a tensor of that shape laid out channels last ([T, N, H, W, C] in memory), the layout
    the emulator's convolutions read: one rounding pass writes it, so :func:`emulate`
    does not transpose it."""
    if payload.ndim != 5:
        return torch.from_numpy(np.rint(payload).astype(np.float32, copy=False))
    out = np.empty(payload.shape[:2] + payload.shape[3:] + payload.shape[2:3], np.float32)
    np.rint(payload.transpose(0, 1, 3, 4, 2), out=out)
    return torch.from_numpy(out).permute(0, 1, 4, 2, 3)


def active_per_position(signal: torch.Tensor) -> torch.Tensor:
    """Nonzero entries of [T, N, C, H, W] (or [T, N, F]) per position (H*W or F), int64."""
    active = signal if signal.dtype in (torch.uint8, torch.bool) else signal.ne(0)
    dims = (0, 1, 2) if signal.dim() == 5 else (0, 1)
    return active.sum(dim=dims, dtype=torch.int64).flatten()


class _Neurons:
    """One population's constants, prepared once: its incoming edges, decay (v keeps
    ``kept`` / 4096 per step), threshold and bias x 64, the largest drive its weights
    allow, and the state dtype that keeps that exact (:func:`_state_dtype`)."""

    def __init__(self, graph: Graph, name: str, synapses: dict) -> None:
        pop = graph.population(name)
        self.incoming = graph.incoming(name)
        self.kept = DECAY_UNITY - int(pop.voltage_decay)
        self.keep = self.kept / DECAY_UNITY
        self.worst_drive = _worst_drive(graph, name, synapses)
        self.dtype = _state_dtype(self.keep, self.worst_drive)
        self.threshold = float(int(pop.threshold) << ACTIVATION_SHIFT)
        bias = channel_bias(pop.bias, pop.shape, torch.float64) * ACTIVATION_SCALE
        self.bias = {dtype: bias.to(dtype) for dtype in (torch.float32, torch.float64)}
        self.largest_bias = float(bias.abs().max()) if bias.numel() else 0.0
        # float32 sums of the currents are exact while their worst cases add below 2**24
        self.wide = sum(synapses[e.name].worst for e in self.incoming) >= FLOAT32_EXACT


class Prepared(dict):
    """Per-edge synapses by edge name, per-population constants (``neurons``), and the
    edge delays already checked as balanced."""

    checked_delays: tuple[int, ...] | None = None
    neurons: dict[str, _Neurons] | None = None  # quantised graphs only


def prepare(graph: Graph) -> Prepared:
    """Per-edge weights and reach maps, built once for many batches; edges that repeat an
    earlier edge's source and weights share its current."""
    synapses = Prepared()
    first: dict[tuple, list[str]] = {}
    for edge in graph.edges:
        in_hw = tuple(graph.shape_of(edge.src)[1:])
        out_hw = tuple(graph.population(edge.dst).shape[1:])
        syn = _Synapses(edge, graph, in_hw, out_hw)
        key = (edge.src, edge.kind, edge.stride, edge.padding, edge.weight.shape, out_hw)
        for earlier in first.get(key, []):
            if np.array_equal(synapses[earlier].edge.weight, edge.weight):
                syn.share = synapses[earlier].share or earlier
                break
        first.setdefault(key, []).append(edge.name)
        synapses[edge.name] = syn
    if graph.quantized:  # thresholds and decays are chip integers only then
        synapses.neurons = _population_constants(graph, synapses)
    return synapses


def _population_constants(graph: Graph, synapses: dict) -> dict[str, _Neurons]:
    return {pop.name: _Neurons(graph, pop.name, synapses) for pop in graph.populations}


def check_balanced(graph: Graph) -> None:
    """Raise ValueError unless every edge arrives exactly at its population's latency."""
    timing = balance_delays(graph)
    for edge in graph.edges:
        if edge.delay != timing.delay[edge.name]:
            raise ValueError(
                f"edge {edge.name} has delay {edge.delay}, the balanced "
                f"schedule needs {timing.delay[edge.name]}"
            )


def _worst_drive(graph: Graph, name: str, synapses: dict) -> float:
    """Largest |a_in + bias| << 6 the population can receive, from its weights alone."""
    worst = sum(synapses[e.name].worst for e in graph.incoming(name))
    return (worst + float(np.abs(graph.population(name).bias).max(initial=0))) * ACTIVATION_SCALE


def _state_dtype(keep: float, worst_drive: float) -> torch.dtype:
    """float32 when every value of the population is an exact float32 integer: the
    decay factor keep = (4096 - dv) / 4096 is a power of two (or 0), so v * keep
    only shifts, and the largest |v| stays below 2**24."""
    power_of_two = keep == 0 or math.frexp(keep)[0] == 0.5
    # |v| <= worst_drive / (1 - keep), and never beyond the 24-bit clamp plus one drive
    bound = min(worst_drive / (1 - keep) if keep < 1 else math.inf, STATE_MAX + worst_drive)
    return torch.float32 if power_of_two and bound < FLOAT32_EXACT else torch.float64


def _accumulate(drive: torch.Tensor) -> torch.Tensor:
    """A non-leaky read-out (dv = 0): v[t] = sum of drive up to t, saturating at 24 bits."""
    v = torch.cumsum(drive.to(torch.float64), dim=0)
    if v.abs().max() > STATE_MAX:  # saturation is sequential: replay step by step
        state = torch.zeros_like(v[0])
        for t in range(len(v)):
            state = (state + drive[t]).clamp(-STATE_MAX, STATE_MAX)
            v[t] = state
    return v.to(torch.int64)


def _decay_(v: torch.Tensor, kept: int) -> torch.Tensor:
    """sign(v) * (|v| * kept >> 12), in place: one exact division when kept divides 4096
    (float32 or float64), else |v| * kept < 2**35 first (float64)."""
    if DECAY_UNITY % kept == 0:
        return v.div_(DECAY_UNITY // kept, rounding_mode="trunc")
    return v.mul_(kept).div_(DECAY_UNITY, rounding_mode="trunc")


STATE_WRAP = STATE_MAX + 1  # 2**23


def _wrap_current_(u: torch.Tensor) -> int:
    """Lava's (and the chip's) 24-bit current, in place: u > 2**23 becomes u - 2**24 and
    u <= -2**23 becomes u + 2**24. Returns how many values wrapped."""
    high, low = u > STATE_WRAP, u <= -STATE_WRAP
    wrapped = int(high.sum()) + int(low.sum())
    if wrapped:
        u.sub_(high.to(u.dtype) * (2 * STATE_WRAP)).add_(low.to(u.dtype) * (2 * STATE_WRAP))
    return wrapped


def _fire(
    drive: torch.Tensor, kept: int, threshold: float, clamp: bool
) -> tuple[torch.Tensor, int]:
    """LIF spikes [T, N, ...] (0 or 1, in drive's dtype) from drive [T, N, ...], written
    over the drive itself (its memory is the last one touched, so still in cache), and
    how many voltages saturated at the 24-bit state (counted only when ``clamp``).

    v[t] = decay(v[t-1]) + drive[t], where v[t-1] was reset to 0 where it spiked; one
    step's voltage is kept at a time. Float arithmetic only: v and the threshold are
    integers, so clamp(v - threshold, 0, 1) is 1 exactly where v > threshold, and
    v - v * spike is the reset voltage."""
    saturated = 0
    v = torch.empty_like(drive[0])
    for t in range(drive.shape[0]):
        if t and kept:
            torch.add(drive[t], _decay_(v, kept), out=v)
        else:
            v.copy_(drive[t])
        if clamp:
            saturated += int((v.abs() > STATE_MAX).sum())
            v.clamp_(-STATE_MAX, STATE_MAX)
        spike = torch.sub(v, threshold, out=drive[t]).clamp_(0.0, 1.0)
        if kept and t < drive.shape[0] - 1:
            v.addcmul_(v, spike, value=-1.0)  # the reset, kept for the next step's decay
    return drive, saturated


def _leaky_readout(drive: torch.Tensor, kept: int, threshold: float, clamp: bool) -> torch.Tensor:
    """The voltage [T, N, classes] (int64) of a leaky read-out, before each step's reset."""
    v = torch.zeros_like(drive[0])
    out = []
    for t in range(drive.shape[0]):
        v = _decay_(v.clone(), kept).add_(drive[t]) if kept else drive[t].clone()
        if clamp:
            v.clamp_(-STATE_MAX, STATE_MAX)
        out.append(v.clone())
        v.masked_fill_(v > threshold, 0.0)
    return torch.stack(out).to(torch.int64)


def emulate(graph: Graph, payload: torch.Tensor, synapses: dict | None = None) -> EmulatorRun:
    """Emulate the body on graded payload integers [T, N, C, H, W]."""
    if not graph.quantized:
        raise ValueError("the emulator runs quantised graphs only")
    synapses = prepare(graph) if synapses is None else synapses
    delays = tuple(edge.delay for edge in graph.edges)
    if getattr(synapses, "checked_delays", None) != delays:
        check_balanced(graph)
        if isinstance(synapses, Prepared):
            synapses.checked_delays = delays
    readers: dict[str, int] = {}  # edges still to read each source / shared current
    for edge in graph.edges:
        share = synapses[edge.name].share or edge.name
        readers[edge.src] = readers.get(edge.src, 0) + 1
        readers[share] = readers.get(share, 0) + 1
    sources: dict[str, Source] = {INPUT: Source(payload)}
    spikes: dict[str, torch.Tensor] = {}
    currents: dict[str, torch.Tensor] = {}
    ops = {}
    overflows: dict[str, int] = {}
    readout = None
    neurons = getattr(synapses, "neurons", None) or _population_constants(graph, synapses)
    for pop in graph.populations:
        cell = neurons[pop.name]
        incoming, kept, keep = cell.incoming, cell.kept, cell.keep
        worst_drive, dtype, threshold = cell.worst_drive, cell.dtype, cell.threshold
        # the bias joins the first current when nothing can wrap (the chip wraps the
        # current before it adds the bias) and that current is yet to be computed, for
        # this edge alone
        first = synapses[incoming[0].name] if incoming else None
        fold = (
            first is not None
            and worst_drive <= STATE_WRAP
            and not cell.wide
            and dtype == first.dtype
            and readers[first.share or first.edge.name] == 1
            and (first.share or first.edge.name) not in currents
        )
        drive = None
        owned = False  # whether drive is this population's own tensor (free to change)
        for edge in incoming:
            syn = synapses[edge.name]
            share = syn.share or edge.name
            source = sources[edge.src]
            if share not in currents:
                folded = cell.bias[syn.dtype] if fold and drive is None else None
                currents[share] = syn.current(source, folded)
            current = currents[share]
            readers[share] -= 1
            if not readers[share]:
                del currents[share]
            ops[edge.name] = syn.events(source.positions)
            readers[edge.src] -= 1
            if not readers[edge.src]:
                del sources[edge.src]
            if drive is None and cell.wide:
                drive, owned = current.to(torch.float64, copy=True), True
            elif drive is None:
                drive, owned = current, not readers[share]
            elif owned and current.dtype.itemsize <= drive.itemsize:
                drive.add_(current)
            else:
                drive, owned = torch.add(drive, current), True
        # the current a_in << 6 is 24-bit: the chip (and Lava) wraps it beyond 2**23
        wrapped = 0
        if worst_drive > STATE_WRAP:
            if float(drive.abs().max()) > STATE_WRAP:
                if not owned or drive.dtype != torch.float64:
                    drive, owned = drive.to(torch.float64, copy=True), True
                wrapped = _wrap_current_(drive)
        if dtype == torch.float64 and drive.dtype == torch.float32:
            # this batch's largest drive may prove float32 exact where the weights cannot
            largest = float(drive.abs().max()) + cell.largest_bias
            dtype = _state_dtype(keep, largest)
            worst_drive = min(worst_drive, largest)
        if fold:
            pass
        elif owned and drive.dtype == dtype:
            drive.add_(cell.bias[dtype])
        else:
            drive, owned = torch.add(drive.to(dtype), cell.bias[dtype]), True
        if pop.role == "readout" and keep == 1.0:
            readout = _accumulate(drive)
            continue
        # |v| <= max|drive| / (1 - keep): clamping to the 24-bit state can only matter beyond
        clamp = keep >= 1 or worst_drive / (1 - keep) > STATE_MAX
        if pop.role == "readout":
            readout = _leaky_readout(drive, kept, threshold, clamp)
            continue
        if not owned:  # a shared current: the spikes need memory of their own
            drive = drive.clone()
        fired, saturated = _fire(drive, kept, threshold, clamp)
        overflows[pop.name] = wrapped + saturated
        del drive
        # 1 byte per spike; float -> bool is vectorised where float -> uint8 is not
        spikes[pop.name] = fired.to(torch.bool).view(torch.uint8)
        if readers.get(pop.name):
            sources[pop.name] = Source(fired, binary=True, as_uint8=spikes[pop.name])
        del fired
    return EmulatorRun(spikes, readout, ops, overflows)

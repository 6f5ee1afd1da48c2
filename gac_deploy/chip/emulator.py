"""A fast, bit-exact emulator of the exported body as Lava runs it.

Lava delivers a spike sent at step s to the next population at step s + 1 (+ the
edge's delay), and each population resets at the start of its own window of W >= T
steps (:mod:`gac_deploy.body.timing`, :mod:`gac_deploy.chip.lava_runner`). With the
delays that export balances, step t of a population's window therefore reads step t
of each source's window:
the emulator checks that and then runs each population over its whole window
at once, for a whole batch of images: its edges' synaptic input first, for all
steps, then the chip's neuron arithmetic in one compiled pass
(:mod:`gac_deploy.chip.neuron_passes`, which states it).

Weights are stored times 64 (the chip's << 6 of a_in), a power of two, so every sum
is 64 times the integer sum with the same rounding. An edge's input is computed in
float32 when its worst case (a_in, before << 6) stays below 2**24, else float64: both
exact. Unlike the quantised reference (lava-dl's CUBA neuron), this is a separate
implementation of the chip's arithmetic, checked against Lava spike for spike in the
tests.

Less work than a dense float network, with the same integers:
- spikes (and host payloads below 128) are convolved by oneDNN's int8 kernels (a
  dense edge as a 1x1 convolution of its features), int32 sums returned in float32
  times a power of two (:mod:`int8_conv`, probed once against float64; float
  convolution where they are missing or the weights do not fit in int8);
- a 1x1 edge whose weight matrix is diagonal (the host payload's identity edges)
  is a per-channel scale, another 1x1 edge without int8 weights a matrix product;
- edges that read the same source through the same weights (the residual stream's
  terms, which reach several populations) are computed once;
- all-zero frames (one image at one step) are left out of every edge (an edge's
  input holds only the frames that had any, :class:`neuron_passes.Current`), and when under
  15/16 of a source's input channels (dense features) carry any spike in the batch,
  only those enter a float convolution (weight[:, active], signal[:, active]);
- everything runs channels_last, the payload arrives that way (:func:`payload_tensor`),
  and a dense edge reads an image source in (H, W, C) order through weights permuted
  once;
- a population's neurons take one pass, which also counts the spikes its edges need
  (per frame, per channel, per position); spikes leave as one byte each (uint8
  [T, N, ...], channels-last memory for images).

Why one module of about 450 lines: the sources, synapses and neurons above share one
memory layout and one set of counts (which frames, channels and positions are active);
they are kept together so that the layout is decided in one place.
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
from gac_deploy.body.synapses import FLOAT32_EXACT
from gac_deploy.body.timing import balance_delays, pad_to_window
from gac_deploy.chip import int8_conv, neuron_passes
from gac_deploy.chip.int8_conv import INPUT_MAX, Int8Conv, int8_weight
from gac_deploy.chip.neuron_passes import STATE_WRAP

GATHER_BELOW = 15 / 16  # gather the active channels when fewer than this fraction carry spikes


@dataclass
class EmulatorRun:
    """Spikes [W, N, *shape] (uint8) per spiking population (its own window of W steps),
    the read-out voltage [T, N, classes] (Lava's integer, the window's first T steps),
    exact synaptic events per edge, summed over images and every window step, and per
    population the neuron-steps where the 24-bit state overflowed (the current wrapped
    or the voltage saturated, as on the chip)."""

    spikes: dict[str, torch.Tensor]
    readout: torch.Tensor
    synaptic_ops: dict[str, int]
    overflows: dict[str, int]

    @property
    def predictions(self) -> torch.Tensor:
        return self.readout[-1].argmax(dim=1)


class Source:
    """One source's signal [T, N, ...] for a batch, ready for its edges: which frames
    (images at one step) carry any nonzero value (``active_frames``, int64 indices, None
    when all do), ``positions``: the nonzero entries per spatial position H*W (F when
    flat; summed over steps, images, channels) for events, :meth:`channels`: per edge
    kind ("conv", "dense") the channels (features, in (H, W, C) order for images) that
    carry any, and the active frames as each kind of edge reads them (:meth:`gathered`):
    "conv" [n, C, H, W] channels_last, "dense" [n, F], in float32, or in uint8 for the
    int8 kernels (only when ``small_unsigned``: every value in 0 .. int8_conv.INPUT_MAX).

    ``frames``: the signal as [T * N, C, H, W] (channels_last) or [T * N, F], uint8 for
    spikes, float32 for graded values; ``frame_counts`` (numpy int64 [T * N]) and
    ``column_counts`` (numpy int64, per entry of a frame in memory order: (H, W, C) for
    images) count its nonzero entries."""

    def __init__(
        self,
        frames: torch.Tensor,
        steps_images: tuple[int, int],
        frame_counts: np.ndarray,
        column_counts: np.ndarray,
        small_unsigned: bool,
    ) -> None:
        self.frames = frames
        self.steps_images = steps_images
        self.shape = tuple(frames.shape[1:])
        self.small_unsigned = small_unsigned
        self.column_counts = column_counts
        active = frame_counts > 0
        self.active_frames = None
        # each frame's row among the active frames (-1: silent), as edges return them
        self.rows = np.arange(len(frames))
        if not active.all():
            indices = np.flatnonzero(active)
            self.active_frames = torch.from_numpy(indices)
            self.rows.fill(-1)
            self.rows[indices] = np.arange(len(indices))
        if frames.dim() == 4:
            self.positions = column_counts.reshape(-1, self.shape[0]).sum(axis=1)
        else:
            self.positions = column_counts
        self._channels: dict[str, torch.Tensor | None] = {}
        self._gathered: dict[tuple, torch.Tensor] = {}

    @classmethod
    def of(cls, signal: torch.Tensor) -> Source:
        """Any signal [T, N, C, H, W] or [T, N, F]: spikes (bool or uint8) or graded
        integers in a float dtype (the host payload)."""
        steps_images = tuple(signal.shape[:2])
        if signal.dtype in (torch.bool, torch.uint8):
            signal, small_unsigned = signal.view(torch.uint8), True
        elif signal.dim() == 5:  # one transposition here, then every edge reads channels_last
            frames = signal.flatten(0, 1).to(torch.float32, memory_format=torch.channels_last)
            signal = frames.view(*steps_images, *frames.shape[1:])
        else:
            signal = signal.to(torch.float32)
        frame_counts, column_counts, low, high = neuron_passes.count_nonzero(signal)
        if signal.dtype != torch.uint8:
            small_unsigned = 0 <= low and high <= INPUT_MAX
        frames = signal.flatten(0, 1)
        return cls(frames, steps_images, frame_counts, column_counts, small_unsigned)

    @classmethod
    def fired(cls, fired: neuron_passes.Fired) -> Source:
        """A population's spikes, with the counts its LIF pass made."""
        spikes = fired.spikes
        steps_images = tuple(spikes.shape[:2])
        frames = spikes.flatten(0, 1)
        return cls(frames, steps_images, fired.frame_counts, fired.column_counts, True)

    def channels(self, kind: str) -> torch.Tensor | None:
        """The channels (features: (H, W, C) order for images) a ``kind`` edge reads that
        carry any nonzero value, int64 indices; None when all do."""
        if kind not in self._channels:
            active = self.column_counts > 0
            if kind == "conv" and len(self.shape) == 3:
                active = active.reshape(-1, self.shape[0]).any(axis=0)
            indices = None if active.all() else torch.from_numpy(np.flatnonzero(active))
            self._channels[kind] = indices
        return self._channels[kind]

    def gathered(
        self, kind: str, channels: bool, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The active frames (and, if ``channels``, only the active channels) as a ``kind``
        edge reads them, in ``dtype`` (uint8 for the int8 kernels: ``small_unsigned``
        sources only), cached; gathered first, converted after."""
        if (kind, channels, dtype) not in self._gathered:
            x = self.frames
            image = x.dim() == 4
            if image:  # (n, H, W, C): the memory of channels_last frames, contiguous
                x = x.permute(0, 2, 3, 1)
                if kind == "dense":
                    x = x.reshape(len(x), -1)
            if self.active_frames is not None:
                x = x.index_select(0, self.active_frames)
            if channels:
                x = x.index_select(-1, self.channels(kind))
            x = x.to(dtype)
            self._gathered[kind, channels, dtype] = x.permute(0, 3, 1, 2) if x.dim() == 4 else x
        return self._gathered[kind, channels, dtype]


class _Synapses:
    """One edge, prepared once: weights x 64 (the << 6) in the float type that keeps
    its sums exact; ``share`` names an earlier edge with the same source and weights,
    whose current this edge reuses. A 1x1 convolution without padding is computed as
    what it is: a per-channel scale when its weight matrix is diagonal (the host
    payload's identity edges), else a matrix product over the channels, on the
    source's positions taken every ``stride``. Edges whose weights fit in int8 run on
    the int8 kernels when their source's values do (a dense edge as a 1x1 kernel)."""

    def __init__(
        self, edge: Edge, graph: Graph, in_hw: tuple[int, ...], out_hw: tuple[int, ...]
    ) -> None:
        self.edge = edge
        self.share: str | None = None
        self.worst = max_synaptic_input(edge, graph.payload_bits, graph.signed_input)
        self.dtype = torch.float32 if self.worst < FLOAT32_EXACT else torch.float64
        integers = torch.as_tensor(edge.weight, dtype=torch.float64)
        self.mode = edge.kind  # "conv", "dense", "pointwise" or "scale"
        if edge.kind == "dense" and len(in_hw) == 2:  # columns (C, H, W) -> (H, W, C),
            channels = edge.weight.shape[1] // math.prod(in_hw)  # as the source's frames
            integers = integers.view(-1, channels, *in_hw).permute(0, 2, 3, 1).flatten(1)
        weight = integers.to(self.dtype) * ACTIVATION_SCALE
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
        if self.mode != "scale" and self.dtype == torch.float32 and graph.quantized:
            kernel = integers if integers.dim() == 4 else integers[:, :, None, None]  # dense: 1x1
            packed = int8_weight(kernel.numpy()) if int8_conv.available() else None
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
            reach = F.conv_transpose2d(
                torch.ones((1, 1, *out_hw), dtype=torch.float64),
                torch.ones((1, 1, *k), dtype=torch.float64),
                stride=edge.stride,
                padding=edge.padding,
                output_padding=tuple(extra),
            )
            self.reach = reach.flatten().numpy().astype(np.int64)
        self.weight = weight
        # a diagonal 1x1 edge of stride 1 is read straight from its source's frames, each
        # column (memory order: channel fastest) times its channel's weight, by the kernel
        self.column_scale = None
        if self.mode == "scale" and edge.stride == 1:
            self.column_scale = weight.flatten().repeat(math.prod(in_hw))
        self.out_shape = (edge.weight.shape[0], *out_hw)

    def _apply(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x [n, C, H, W] or [n, F] -> synaptic input x 64, [n, C_out, H', W']
        channels_last or [n, F_out]."""
        x = x.to(self.dtype)
        stride = self.edge.stride
        if self.mode == "conv":
            return F.conv2d(x, weight, stride=stride, padding=self.edge.padding)
        if self.mode == "dense":
            return x @ weight.T
        if stride > 1:
            x = x[:, :, ::stride, ::stride]
        n, _, h, w = x.shape
        if self.mode == "scale":  # channels_last in, channels_last out
            return x * weight
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, -1)  # a view when channels_last
        return (rows @ weight.T).view(n, h, w, -1).permute(0, 3, 1, 2)

    def current(self, source: Source) -> neuron_passes.Current | None:
        """Synaptic input x 64 from ``source`` over its active frames (None when it has
        none, or no active channel), computed, when enough channels are silent, from
        its active channels only (the sum is the same)."""
        frames = source.active_frames
        if frames is not None and not len(frames):
            return None
        if self.column_scale is not None:
            values = neuron_passes.memory_order(source.frames.to(self.dtype), leading=1)
            return neuron_passes.Current(values, np.arange(len(values)), self.column_scale)
        channels = source.channels(self.edge.kind)
        if channels is not None and not len(channels):
            return None
        if self.int8 is not None and source.small_unsigned and self.mode == "dense":
            out = self.int8(source.gathered("dense", False, torch.uint8)[:, :, None, None])
        elif self.int8 is not None and source.small_unsigned:
            out = self.int8(source.gathered("conv", False, torch.uint8))
        else:
            gather = (
                self.mode != "scale"
                and channels is not None
                and len(channels) < GATHER_BELOW * self.weight.shape[1]
            )
            weight = self.weight.index_select(1, channels) if gather else self.weight
            out = self._apply(source.gathered(self.edge.kind, gather), weight)
        return neuron_passes.Current(neuron_passes.memory_order(out, leading=1), source.rows)

    def events(self, per_position: np.ndarray) -> int:
        """Every nonzero input times the synapses it reaches. ``per_position``: nonzero
        inputs per spatial position of the source (int64; summed over steps, images,
        channels)."""
        fan_out = self.edge.weight.shape[0]
        if self.edge.kind == "conv":
            return int(per_position.dot(self.reach)) * fan_out
        return int(per_position.sum()) * fan_out


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


def active_per_position(signal: torch.Tensor) -> np.ndarray:
    """Nonzero entries of [T, N, C, H, W] (or [T, N, F]) per position (H*W or F), numpy
    int64, as :meth:`_Synapses.events` reads them."""
    _, columns, _, _ = neuron_passes.count_nonzero(signal)  # per (H, W, C) column for images
    return columns.reshape(-1, signal.shape[2]).sum(axis=1) if signal.dim() == 5 else columns


class _Neurons:
    """One population's constants, prepared once: its incoming edges, decay (v keeps
    ``kept`` / 4096 per step), threshold x 64, bias x 64 per neuron in memory order
    ([P]: (H, W, C) for images; in the state's dtype, float64 for a read-out), and from
    the largest drive its weights allow, whether its current can wrap or its voltage
    saturate (``checked``) and the dtype that holds every value exactly
    (:func:`_state_dtype`)."""

    def __init__(self, graph: Graph, name: str, synapses: dict) -> None:
        pop = graph.population(name)
        self.incoming = graph.incoming(name)
        self.kept = DECAY_UNITY - int(pop.voltage_decay)
        self.threshold = float(int(pop.threshold) << ACTIVATION_SHIFT)
        bias = np.asarray(pop.bias, dtype=np.float64) * ACTIVATION_SCALE
        positions = math.prod(pop.shape[1:]) if len(pop.shape) == 3 else 1
        self.bias = np.ascontiguousarray(np.tile(bias, positions))
        current = sum(synapses[e.name].worst for e in self.incoming) * ACTIVATION_SCALE
        drive = current + float(np.abs(bias).max(initial=0))
        keep = self.kept / DECAY_UNITY
        bound = drive / (1 - keep) if keep < 1 else math.inf  # |v| <= max|drive| / (1 - keep)
        self.checked = current > STATE_WRAP or bound > STATE_MAX
        self.dtype = _state_dtype(keep, min(bound, STATE_MAX + drive))
        if pop.role != "readout":  # a read-out's voltage is always float64
            self.bias = self.bias.astype(neuron_passes.state_type(self.dtype))


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
        synapses.neurons = {p.name: _Neurons(graph, p.name, synapses) for p in graph.populations}
        for pop in graph.populations:  # compiled now, not in the first batch
            cell = synapses.neurons[pop.name]
            currents = [synapses[edge.name].dtype for edge in cell.incoming]
            neuron_passes.load(cell.dtype, currents, cell.checked, pop.role == "readout")
    return synapses


def _state_dtype(keep: float, bound: float) -> torch.dtype:
    """float32 when every value of a population is an exact float32 integer: the decay
    factor keep = (4096 - dv) / 4096 is a power of two (or 0), so v * keep only shifts,
    and |v|, |drive| <= ``bound`` < 2**24; else float64."""
    power_of_two = keep == 0 or math.frexp(keep)[0] == 0.5
    return torch.float32 if power_of_two and bound < FLOAT32_EXACT else torch.float64


def check_balanced(graph: Graph) -> None:
    """Raise ValueError unless every edge arrives exactly at its population's latency."""
    timing = balance_delays(graph)
    for edge in graph.edges:
        if edge.delay != timing.delay[edge.name]:
            raise ValueError(
                f"edge {edge.name} has delay {edge.delay}, the balanced "
                f"schedule needs {timing.delay[edge.name]}"
            )


def emulate(graph: Graph, payload: torch.Tensor, synapses: dict | None = None) -> EmulatorRun:
    """Emulate the body on graded payload integers [T, N, C, H, W] over its presentation
    window: spikes [W, N, ...], the read-out at the first T steps [T, N, classes]
    (:func:`gac_deploy.chip.reference.run_quantized_graph` does the same)."""
    if not graph.quantized:
        raise ValueError("the emulator runs quantised graphs only")
    synapses = prepare(graph) if synapses is None else synapses
    delays = tuple(edge.delay for edge in graph.edges)
    if getattr(synapses, "checked_delays", None) != delays:
        check_balanced(graph)
        if isinstance(synapses, Prepared):
            synapses.checked_delays = delays
    neurons = getattr(synapses, "neurons", None)
    if neurons is None:
        neurons = {p.name: _Neurons(graph, p.name, synapses) for p in graph.populations}
    readers: dict[str, int] = {}  # edges still to read each source / shared current
    for edge in graph.edges:
        share = synapses[edge.name].share or edge.name
        readers[edge.src] = readers.get(edge.src, 0) + 1
        readers[share] = readers.get(share, 0) + 1
    sources: dict[str, Source] = {INPUT: Source.of(pad_to_window(payload, graph.window))}
    steps_images = sources[INPUT].steps_images
    spikes: dict[str, torch.Tensor] = {}
    computed: dict[str, neuron_passes.Current | None] = {}
    ops = {}
    overflows: dict[str, int] = {}
    readout = None
    for pop in graph.populations:
        cell = neurons[pop.name]
        currents = []
        for edge in cell.incoming:
            syn = synapses[edge.name]
            share = syn.share or edge.name
            source = sources[edge.src]
            if share not in computed:
                computed[share] = syn.current(source)
            if computed[share] is not None:
                currents.append(computed[share])
            ops[edge.name] = syn.events(source.positions)
            for done in (share, edge.src):  # free what no edge reads any more
                readers[done] -= 1
                if not readers[done]:
                    computed.pop(done, None)
                    sources.pop(done, None)
        if pop.role == "readout":
            readout, overflows[pop.name] = neuron_passes.voltage(
                currents, cell.bias, cell.kept, cell.threshold, steps_images, pop.size
            )
            continue
        fired = neuron_passes.spiking(
            currents,
            cell.bias,
            cell.kept,
            cell.threshold,
            steps_images,
            tuple(pop.shape),
            dtype=cell.dtype,
            checked=cell.checked,
        )
        del currents
        overflows[pop.name] = fired.overflows
        spikes[pop.name] = fired.spikes
        if readers.get(pop.name):
            sources[pop.name] = Source.fired(fired)
    return EmulatorRun(spikes, readout[: graph.time_steps], ops, overflows)

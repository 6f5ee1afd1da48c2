"""Run a quantised body graph in Lava's CPU simulation of Loihi 2 (``Loihi2SimCfg``, fixed point).

Processes built from the graph:

* each population -> ``LIFReset`` (bit-accurate LIF; current decay 4096, voltage
  decay dv, vThMant, bias mantissa with exponent 6) whose state is reset every W
  steps (the graph's presentation window, W >= T; a power of two for the chip) at the
  start of its own window, so images can stream through one run;
* each conv edge -> ``Conv`` (graded, ``num_message_bits`` = payload bits, when it
  reads the host input); each dense edge -> ``Dense`` on the (C, H, W)-flattened
  source, as lava-dl netx connects a flatten;
* an edge with delay D from a population reads the D-th of a chain of relay
  populations (LIF that fires when it receives a spike, no memory); an edge with
  delay D from the host input reads a source whose stream starts D steps later;
* a ``RingBuffer`` per distinct input delay plays the payload of all images back
  to back, W steps per image (T of payload, then W - T of zeros); an ``Extractor``
  per spiking population streams its spikes to this process, one array per step,
  drained after every image (a ``Monitor`` hands its record back one value per
  message, which takes hours for the 1.4 million neurons of msresnet18-cifar); a
  ``Monitor`` records the read-out voltage (classes values per step).

Lava layouts are x-y-f, i.e. (W, H, C); our arrays are (C, H, W) and are
transposed at this boundary only. Time: image i's step t reaches population p at
Lava step 1 + latency(p) + i*W + t.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gac_deploy.body.formats import (
    BIAS_EXP,
    DECAY_MAX,
    LAVA_CURRENT_DECAY,
    payload_message_bits,
)
from gac_deploy.body.graph import INPUT, Edge, Graph
from gac_deploy.body.timing import Timing, balance_delays, pad_to_window
from gac_deploy.errors import UserError
from gac_deploy.lava_compat import import_lava

RELAY_WEIGHT = 2


@dataclass
class LavaRun:
    """Spikes [W, N, *shape] per spiking population (its whole window) and read-out
    voltage [T, N, classes] (the window's first T steps, where it is read)."""

    spikes: dict[str, np.ndarray]
    readout: np.ndarray
    steps: int
    build_s: float
    run_s: float

    @property
    def predictions(self) -> np.ndarray:
        return self.readout[-1].argmax(axis=1)


def _xyz(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(shape))


def _lava_conv_weight(weight: np.ndarray) -> np.ndarray:
    """PyTorch [out, in, kH, kW] -> Lava Conv [out, kW, kH, in], spatially flipped
    (Lava's Conv flips back before calling torch's correlation)."""
    return np.ascontiguousarray(weight.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :]).astype(np.int32)


class _Builder:
    def __init__(self, graph: Graph, timing: Timing) -> None:
        self.graph = graph
        self.timing = timing
        self.window = graph.window
        self.lif = import_lava("lava.proc.lif.process")
        self.conv = import_lava("lava.proc.conv.process")
        self.dense = import_lava("lava.proc.dense.process")
        self.neurons: dict[str, object] = {}
        self.relays: dict[tuple[str, int], object] = {}
        self.message_bits = payload_message_bits(graph.payload_bits, graph.signed_input)

    def population(self, pop) -> object:
        shape = _xyz(pop.shape)
        bias = np.broadcast_to(np.asarray(pop.bias, dtype=np.int32), shape).copy()
        offset = (1 + self.timing.latency[pop.name]) % self.window
        neuron = self.lif.LIFReset(
            shape=shape,
            vth=int(pop.threshold),
            du=LAVA_CURRENT_DECAY,
            dv=int(pop.voltage_decay),
            bias_mant=bias,
            bias_exp=BIAS_EXP,
            reset_interval=self.window,
            reset_offset=offset,
            name=pop.name,
        )
        self.neurons[pop.name] = neuron
        return neuron

    def relay(self, src: str, delay: int) -> object:
        """Spikes of ``src`` delayed by ``delay`` steps (0: the population itself)."""
        if delay == 0:
            return self.neurons[src]
        key = (src, delay)
        if key not in self.relays:
            previous = self.relay(src, delay - 1)
            shape = previous.s_out.shape
            relay = self.lif.LIF(
                shape=shape, vth=0, du=LAVA_CURRENT_DECAY, dv=DECAY_MAX, name=f"{src}.relay{delay}"
            )
            c = shape[-1]
            identity = RELAY_WEIGHT * np.eye(c, dtype=np.int32)[:, None, None, :]
            link = self.conv.Conv(weight=identity, input_shape=shape)
            previous.s_out.connect(link.s_in)
            link.a_out.connect(relay.a_in)
            self.relays[key] = relay
        return self.relays[key]

    def edge(self, edge: Edge, sources: dict[int, object]) -> None:
        dst = self.neurons[edge.dst]
        graded = edge.src == INPUT
        if graded:
            out_port = sources[edge.delay].s_out
            in_shape = _xyz(self.graph.input_shape)
        else:
            out_port = self.relay(edge.src, edge.delay).s_out
            in_shape = _xyz(self.graph.shape_of(edge.src))
        if edge.kind == "conv":
            synapse = self.conv.Conv(
                weight=_lava_conv_weight(edge.mantissa),
                weight_exp=edge.weight_exp,
                input_shape=in_shape,
                padding=(edge.padding, edge.padding),
                stride=(edge.stride, edge.stride),
                num_message_bits=self.message_bits if graded else 0,
                name=edge.name,
            )
            out_port.connect(synapse.s_in)
        else:
            synapse = self.dense.Dense(
                weights=edge.mantissa.astype(np.int32),
                weight_exp=edge.weight_exp,
                num_message_bits=self.message_bits if graded else 0,
                name=edge.name,
            )
            out_port.transpose([2, 1, 0]).flatten().connect(synapse.s_in)
        synapse.a_out.connect(dst.a_in)


def _play_back(payload: np.ndarray, delay: int, steps: int) -> np.ndarray:
    """Payload [steps per image, N, C, H, W] (a window each, padded) -> RingBuffer data
    [width, height, C, steps], ``delay`` steps late."""
    t, n = payload.shape[:2]
    stream = payload.transpose(1, 0, 4, 3, 2).reshape(n * t, *payload.shape[:1:-1])
    data = np.zeros((*stream.shape[1:], steps), dtype=np.int32)
    data[..., delay : delay + n * t] = np.moveaxis(stream, 0, -1)
    return data


def _windows(record: np.ndarray, latency: int, n: int, t: int) -> np.ndarray:
    """Monitor record [steps, *xyz] -> [t, N, *shape] for the population's own windows of
    ``t`` steps (W) per image."""
    window = record[latency : latency + n * t].reshape(n, t, *record.shape[1:])
    spatial = tuple(range(window.ndim - 1, 1, -1))
    return window.transpose(1, 0, *spatial)


LAVA_LOIHI_MODULE = "lava.proc.embedded_io"
"""A module only Intel's lava-loihi brings (the chip's I/O adapters); lava-loihi is for
INRC members and is not on the package registries."""


def check_hardware() -> None:
    """UserError unless this machine can run a bundle on Loihi 2 itself: lava-loihi must
    be installed, and the chip's input and output adapters (``embedded_io``'s
    PyToNxAdapter / NxToPyAdapter between the host's streams and the cores) are not yet
    inserted by this package, so a run there is refused too, saying so."""
    import importlib.util

    try:
        found = importlib.util.find_spec(LAVA_LOIHI_MODULE) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise UserError(
            "--backend loihi2 needs Intel's lava-loihi (INRC members; not on the package "
            "registries) and a Loihi 2 system; --backend lava runs the same network in "
            "Lava's CPU simulation of the chip"
        )
    raise UserError(
        "lava-loihi is installed, but gac-deploy does not yet insert the chip's I/O "
        "adapters (embedded_io) between the host streams and the body; run --backend lava "
        "for the same network in Lava's CPU simulation"
    )


def run_config(hardware: bool = False):
    """The run configuration of a bundle's Lava network: ``Loihi2SimCfg`` in fixed point
    (Lava's bit-accurate CPU simulation of Loihi 2) or, with ``hardware``,
    ``Loihi2HwCfg`` (the chip; see :func:`check_hardware`). The Extractor that streams
    spikes back carries no tag, so its model is named for both."""
    run_cfg = import_lava("lava.magma.core.run_configs")
    extractor_mod = import_lava("lava.proc.io.extractor")
    models = {extractor_mod.Extractor: extractor_mod.PyLoihiExtractorModel}
    if hardware:
        return run_cfg.Loihi2HwCfg(exception_proc_model_map=models)
    return run_cfg.Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)


def run_in_lava(
    graph: Graph,
    payload: np.ndarray,
    monitor_spikes: bool = True,
    on_image: Callable[[int], None] | None = None,
    hardware: bool = False,
) -> LavaRun:
    """Stream ``payload`` [T, N, C, H, W] (integers) through the graph in Lava, fixed point,
    one presentation window (W steps, the payload padded with zeros) per image.

    One network is built and compiled once; the run advances image by image
    (``on_image(i)`` is called after image i's read-out window has closed).
    ``hardware``: on Loihi 2 itself (:func:`run_config`, :func:`check_hardware`),
    else Lava's CPU simulation of it.
    """
    if not graph.quantized:
        raise ValueError("Lava runs quantised graphs only")
    if hardware:
        check_hardware()
    source_mod = import_lava("lava.proc.io.source")
    extractor_mod = import_lava("lava.proc.io.extractor")
    monitor_mod = import_lava("lava.proc.monitor.process")
    run_cond = import_lava("lava.magma.core.run_conditions")

    started = time.perf_counter()
    timing = balance_delays(graph)
    graph = graph.with_delays(timing.delay)
    payload = pad_to_window(payload, graph.window)
    t, n = payload.shape[:2]
    steps = timing.total_latency + n * t
    builder = _Builder(graph, timing)
    for pop in graph.populations:
        builder.population(pop)
    input_delays = sorted({e.delay for e in graph.edges if e.src == INPUT})
    sources = {d: source_mod.RingBuffer(data=_play_back(payload, d, steps)) for d in input_delays}
    for edge in graph.edges:
        builder.edge(edge, sources)

    first_chunk = timing.total_latency + t
    readout_neuron = builder.neurons[graph.readout.name]
    readout_monitor = monitor_mod.Monitor()
    readout_monitor.probe(readout_neuron.v, steps)
    extractors = {}
    for pop in graph.populations:
        if pop.role != "readout" and monitor_spikes:
            s_out = builder.neurons[pop.name].s_out
            extractor = extractor_mod.Extractor(shape=s_out.shape, buffer_size=first_chunk)
            s_out.connect(extractor.in_port)
            extractors[pop.name] = extractor
    build_s = time.perf_counter() - started

    started = time.perf_counter()
    anchor = builder.neurons[graph.populations[0].name]
    config = run_config(hardware)
    streamed: dict[str, list[np.ndarray]] = {name: [] for name in extractors}
    for i in range(n):
        chunk = first_chunk if i == 0 else t
        anchor.run(condition=run_cond.RunSteps(num_steps=chunk), run_cfg=config)
        for name, extractor in extractors.items():
            streamed[name].extend(extractor.receive().astype(np.int8) for _ in range(chunk))
        if on_image is not None:
            on_image(i)
    records = {name: np.stack(frames) for name, frames in streamed.items()}
    data = readout_monitor.get_data()[readout_neuron.name]
    records[graph.readout.name] = next(iter(data.values()))
    anchor.stop()
    run_s = time.perf_counter() - started

    spikes, readout = {}, None
    for pop in graph.populations:
        if pop.name not in records:
            continue
        windows = _windows(records[pop.name], timing.latency[pop.name], n, t)
        if pop.role == "readout":
            readout = windows[: graph.time_steps].astype(np.int64)
        else:
            spikes[pop.name] = windows.astype(np.int8)
    return LavaRun(spikes, readout, steps, build_s, run_s)

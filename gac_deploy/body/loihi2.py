"""What a Loihi 2 chip holds, and whether a quantised body fits. Pure functions.

Each figure carries its public source. Chip-level figures are Intel's published
maxima (Intel Labs, "Taking Neuromorphic Computing to the Next Level with Loihi 2",
technology brief, 2021); number formats are those of Lava's bit-accurate process
models (lava-nc 0.10, ``lava/proc/lif/models.py``, ``lava/proc/dense/models.py``).

Two mapping estimates; a population never shares a core with another:

* unrolled: every connection is a stored synapse; cores per population =
  max(neurons / neurons per core, synapses / the chip's synapse budget per core);
* shared (used for ``--chips``): a convolution's kernel is stored once per core and
  serves every neuron of its output channels there, the form Lava's ``Conv`` process
  keeps its weights in "because this is the format that Loihi conv feature uses"
  (lava-nc 0.10, ``lava/proc/conv/process.py``) and that Intel's lava-dl 0.3.0 release
  notes name "Loihi 2's convolutional network compression"
  (github.com/lava-nc/lava-dl/discussions/111). Intel publishes no byte layout or
  compression factor: a stored weight is counted as one synapse of the same per-core
  budget, and a population's output channels are spread over its cores, each core
  storing the kernels of its own channels. Dense layers are stored unrolled in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gac_deploy.body.formats import (
    ACTIVATION_SCALE,
    BIAS_BITS,
    BIAS_LIMIT,
    DECAY_BITS,
    DECAY_UNITY,
    PAYLOAD_PORT_BITS,
    SPIKING_THRESHOLD_MAX,
    STATE_BITS,
    STATE_MAX,
    THRESHOLD_BITS,
    THRESHOLD_MAX,
    WEIGHT_BITS,
    WEIGHT_EXP_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    WEIGHT_STEP,
    payload_message_bits,
)
from gac_deploy.body.graph import Graph
from gac_deploy.body.quantize import MAX_PAYLOAD_BITS, MAX_SCALE_EXP, max_synaptic_input
from gac_deploy.body.timing import MAX_WINDOW
from gac_deploy.config import ModelConfig
from gac_deploy.errors import UserError


@dataclass(frozen=True)
class Limit:
    value: int
    source: str


BRIEF = "Intel Labs, Loihi 2 technology brief (2021)"
LAVA_LIF = "Lava 0.10 PyLifModelBitAcc"

LOIHI2 = {
    "cores_per_chip": Limit(128, f"{BRIEF}: 128 neuromorphic cores per chip"),
    "neurons_per_core": Limit(8192, f"{BRIEF}: up to 8,192 neurons per core"),
    "neurons_per_chip": Limit(1_048_576, f"{BRIEF}: up to 1M neurons per chip"),
    "synapses_per_chip": Limit(120_000_000, f"{BRIEF}: up to 120M synapses per chip"),
    "weight_bits": Limit(
        WEIGHT_BITS, "Lava Dense/Conv bit-accurate models: 8-bit weights (+ exponent)"
    ),
    "state_bits": Limit(STATE_BITS, f"{LAVA_LIF}: current u and voltage v are 24-bit"),
    "threshold_bits": Limit(THRESHOLD_BITS, f"{LAVA_LIF}: vth is unsigned 17-bit (applied << 6)"),
    "bias_bits": Limit(BIAS_BITS, f"{LAVA_LIF}: bias_mant is signed 13-bit"),
    "decay_bits": Limit(DECAY_BITS, f"{LAVA_LIF}: du and dv are unsigned 12-bit"),
    "payload_bits": Limit(
        PAYLOAD_PORT_BITS, "Lava Conv/Dense fixed-point ports: 24-bit graded payloads"
    ),
}
"""The chip's capacities, and its number formats as :mod:`gac_deploy.body.formats` defines them."""


def _limit(name: str) -> int:
    return LOIHI2[name].value


LAVA_DL = "lava-dl 0.6"
NETX_MAX_DELAY = 62
INPUT_ADAPTER_MESSAGE_BITS = 16


@dataclass(frozen=True)
class HardwareLimit:
    """A limit Loihi 2 itself (or the path onto it) imposes that Lava's CPU simulation
    does not enforce: ``rule`` says what must hold, ``source`` quotes where it is
    stated, ``fix`` what the user can do; ``check(graph)`` is None when the graph
    keeps the limit, else what breaks it, in words."""

    name: str
    rule: str
    source: str
    fix: str
    check: Callable[[Graph], str | None]


def _window_not_power_of_two(graph: Graph) -> str | None:
    w = graph.window
    if w & (w - 1) == 0:
        return None
    return f"each neuron resets every {w} steps (T={graph.time_steps})"


def _delay_beyond_netx(graph: Graph) -> str | None:
    edge = max(graph.edges, key=lambda e: e.delay, default=None)
    if edge is None or edge.delay <= NETX_MAX_DELAY:
        return None
    return f"edge {edge.name} waits {edge.delay} steps"


def _message_bits_beyond_adapter(graph: Graph) -> str | None:
    bits = payload_message_bits(graph.payload_bits, graph.signed_input)
    if bits <= INPUT_ADAPTER_MESSAGE_BITS:
        return None
    return f"the graded payload needs {bits}-bit messages ({graph.payload_bits} fractional bits)"


HARDWARE: tuple[HardwareLimit, ...] = (
    HardwareLimit(
        name="reset_interval",
        rule="a neuron's reset interval (the presentation window W) is a power of two",
        source=f"{LAVA_DL} tutorials/lava/lib/dl/netx/mnist/run.ipynb: 'n_tsteps = 32 # "
        "Since reset_interval on Loihi-2 Hardware has to be a power of 2.'",
        fix="export without --window (W is then the power of two >= T), or pass "
        "--simulation-only for a bundle that only Lava's CPU simulation runs",
        check=_window_not_power_of_two,
    ),
    HardwareLimit(
        name="synaptic_delay",
        rule=f"a synaptic delay as NetX reads it is at most {NETX_MAX_DELAY} steps",
        source=f"{LAVA_DL} lava/lib/dl/netx/hdf5.py clips delays above {NETX_MAX_DELAY} "
        "('Clamping the delays'); lava/lib/dl/netx/utils.py: 'Max delay exceeded limit of "
        f"{NETX_MAX_DELAY}.'",
        fix="use a shallower network (delays balance residual paths: they grow with depth), "
        "or pass --simulation-only",
        check=_delay_beyond_netx,
    ),
    HardwareLimit(
        name="input_message_bits",
        rule=f"graded input reaches the chip in messages of at most "
        f"{INPUT_ADAPTER_MESSAGE_BITS} bits",
        source=f"{LAVA_DL} tutorials/lava/lib/dl/netx/pilotnet_snn/utils.py feeds the chip "
        f"through eio.spike.PyToN3ConvAdapter(num_message_bits={INPUT_ADAPTER_MESSAGE_BITS})",
        fix="export with fewer payload bits (a QAT format or --calibrate with a smaller "
        "payload), or pass --simulation-only",
        check=_message_bits_beyond_adapter,
    ),
)
"""Every limit of the chip that Lava's CPU simulation does not enforce and that export
checks (:func:`check_hardware_limits`); capacities per core and chip are :data:`LOIHI2`,
checked by :func:`check_fits`."""


@dataclass(frozen=True)
class PopulationMapping:
    """One population's neurons, unrolled synapses, stored weights (one byte each) and
    cores: ``cores`` with convolution kernels stored once per core, ``cores_unrolled``
    with every connection stored."""

    population: str
    neurons: int
    synapses: int
    weight_bytes: int
    cores: int
    cores_unrolled: int


@dataclass(frozen=True)
class StateBound:
    """The largest |u| and |v| (Loihi units: a_in << 6) a population could reach for the
    worst input its weights allow: every positive synapse active, every negative one
    silent (or the reverse), at the largest payload, at every step."""

    population: str
    current: float
    voltage: float

    @property
    def exceeds(self) -> bool:
        return max(self.current, self.voltage) > STATE_MAX


def state_bounds(graph: Graph) -> list[StateBound]:
    """Worst-case |u| = max|a_in| << 6 and |v| <= (|u| + |bias| << 6) * 4096 / dv
    (the geometric series of the voltage decay; T times that without decay) per
    spiking population. A bound, not a prediction: trained networks stay far below it."""
    bounds = []
    for pop in graph.populations:
        if pop.role != "lif":
            continue
        drive = sum(
            max_synaptic_input(e, graph.payload_bits, graph.signed_input)
            for e in graph.incoming(pop.name)
        )
        current = drive * ACTIVATION_SCALE
        bias = float(np.abs(pop.bias).max(initial=0)) * ACTIVATION_SCALE
        decay = int(pop.voltage_decay)
        steps = DECAY_UNITY / decay if decay else graph.time_steps
        bounds.append(StateBound(pop.name, current, (current + bias) * steps))
    return bounds


@dataclass(frozen=True)
class Mapping:
    rows: list[PopulationMapping]
    chips: int
    state: list[StateBound]

    @property
    def cores(self) -> int:
        return sum(r.cores for r in self.rows)

    @property
    def chips_needed(self) -> int:
        return max(1, math.ceil(self.cores / _limit("cores_per_chip")))

    @property
    def cores_unrolled(self) -> int:
        return sum(r.cores_unrolled for r in self.rows)

    @property
    def chips_needed_unrolled(self) -> int:
        return max(1, math.ceil(self.cores_unrolled / _limit("cores_per_chip")))

    def to_dict(self) -> dict:
        return {
            "chips": self.chips,
            "chips_needed": self.chips_needed,
            "cores": self.cores,
            "cores_unrolled": self.cores_unrolled,
            "chips_needed_unrolled": self.chips_needed_unrolled,
            "neurons": sum(r.neurons for r in self.rows),
            "synapses": sum(r.synapses for r in self.rows),
            "weight_bytes": sum(r.weight_bytes for r in self.rows),
            "populations": [r.__dict__ for r in self.rows],
            "limits": {k: {"value": v.value, "source": v.source} for k, v in LOIHI2.items()},
            "hardware_limits": {h.name: {"rule": h.rule, "source": h.source} for h in HARDWARE},
            "state_bound_exceeds_24_bits": [b.__dict__ for b in self.state if b.exceeds],
            "note": "cores and chips_needed: conv kernels stored once per core (Lava's Conv, "
            "Loihi 2's convolutional compression); *_unrolled: every connection stored",
        }


def _fan_in(edge) -> int:
    return int(np.prod(edge.weight.shape[1:]))


def _synapses_per_core() -> int:
    return _limit("synapses_per_chip") // _limit("cores_per_chip")


def shared_cores(channels: int, neurons: int, fan_in: int) -> int:
    """Cores for a population of ``channels`` output channels (``neurons`` in all) whose
    kernels are stored once per core: each channel needs ``fan_in`` stored weights (its
    kernels over every incoming edge) on every core that holds any of its neurons."""
    per_core = _synapses_per_core()
    by_neurons = math.ceil(neurons / _limit("neurons_per_core"))
    if fan_in > per_core:  # one channel's kernels exceed a core: its fan-in is split too
        return max(by_neurons, channels * math.ceil(fan_in / per_core))
    return max(by_neurons, math.ceil(channels / (per_core // fan_in)))


def estimate_mapping(graph: Graph, chips: int = 1) -> Mapping:
    """Neurons, synapses, stored weights and cores (both estimates) per population."""
    rows = []
    for pop in graph.populations:
        edges = graph.incoming(pop.name)
        synapses = sum(_unrolled_synapses(e, pop.shape) for e in edges)
        unrolled = max(
            math.ceil(pop.size / _limit("neurons_per_core")),
            math.ceil(synapses / _synapses_per_core()),
        )
        shared = shared_cores(pop.shape[0], pop.size, sum(_fan_in(e) for e in edges))
        rows.append(
            PopulationMapping(
                population=pop.name,
                neurons=pop.size,
                synapses=synapses,
                weight_bytes=sum(int(e.weight.size) for e in edges),
                cores=shared,
                cores_unrolled=unrolled,
            )
        )
    return Mapping(rows=rows, chips=chips, state=state_bounds(graph))


def _unrolled_synapses(edge, dst_shape: tuple[int, ...]) -> int:
    """Connections into dst: each output neuron reads its kernel window (borders ignored)."""
    if edge.kind == "dense":
        return int(edge.weight.size)
    c_out, h, w = dst_shape
    return c_out * h * w * _fan_in(edge)


ROLES = ("lif", "readout")


def check_formats(graph: Graph) -> None:
    """Raise ValueError, naming the population or edge, the field and its range, for any
    value of a quantised graph outside the Loihi 2 formats this package writes: weight
    mantissas (even, 8-bit) and exponents (0..WEIGHT_EXP_MAX), 13-bit biases,
    thresholds (spiking ones at most ``SPIKING_THRESHOLD_MAX``, see
    :mod:`gac_deploy.body.quantize`), 12-bit decays,
    payload bits, scale exponents, delays, T >= 1 and the window W >= T. A graph read from a file is
    checked with this before anything runs it."""
    if graph.time_steps < 1:
        raise ValueError(f"time_steps is {graph.time_steps}, must be at least 1")
    if not graph.time_steps <= graph.window <= MAX_WINDOW:
        raise ValueError(
            f"window {graph.window} must be in time_steps {graph.time_steps}..{MAX_WINDOW}"
        )
    if not 1 <= graph.payload_bits <= MAX_PAYLOAD_BITS:
        raise ValueError(f"payload_bits is {graph.payload_bits}, must be in 1..{MAX_PAYLOAD_BITS}")
    max_delay = len(graph.populations)  # balanced delays never exceed the longest path
    for edge in graph.edges:
        if not 0 <= edge.weight_exp <= WEIGHT_EXP_MAX:
            raise ValueError(
                f"edge {edge.name}: weight exponent {edge.weight_exp} is outside "
                f"0..{WEIGHT_EXP_MAX}"
            )
        w = edge.mantissa
        exact = not np.any(np.asarray(edge.weight, dtype=np.int64) - (w << edge.weight_exp))
        if w.size and (
            w.min() < WEIGHT_MIN or w.max() > WEIGHT_MAX or np.any(w % WEIGHT_STEP) or not exact
        ):
            raise ValueError(
                f"edge {edge.name}: weights run from {np.min(edge.weight)} to "
                f"{np.max(edge.weight)} at weight exponent {edge.weight_exp}; Loihi's 8-bit "
                f"mantissas are even integers in [{WEIGHT_MIN}, {WEIGHT_MAX}], shifted left "
                "by the exponent"
            )
        if not 0 <= edge.delay <= max_delay:
            raise ValueError(f"edge {edge.name}: delay {edge.delay} is outside 0..{max_delay}")
        if edge.stride < 1 or edge.padding < 0:
            raise ValueError(f"edge {edge.name}: stride {edge.stride}, padding {edge.padding}")
    for pop in graph.populations:
        limit = SPIKING_THRESHOLD_MAX if pop.role == "lif" else THRESHOLD_MAX
        low, high = np.min(pop.bias, initial=0), np.max(pop.bias, initial=0)
        checks = (
            ("role", pop.role in ROLES, f"one of {', '.join(ROLES)}", pop.role),
            ("threshold", 0 <= pop.threshold <= limit, f"in 0..{limit}", pop.threshold),
            (
                "voltage decay",
                0 <= pop.voltage_decay <= DECAY_UNITY,
                f"in 0..{DECAY_UNITY}",
                pop.voltage_decay,
            ),
            (
                "bias",
                -BIAS_LIMIT - 1 <= low and high <= BIAS_LIMIT,
                f"in {-BIAS_LIMIT - 1}..{BIAS_LIMIT}",
                f"{low}..{high}",
            ),
            (
                "scale exponent",
                abs(pop.scale_exp) <= 2 * MAX_SCALE_EXP,
                f"in {-2 * MAX_SCALE_EXP}..{2 * MAX_SCALE_EXP}",
                pop.scale_exp,
            ),
        )
        for field, ok, rule, value in checks:
            if not ok:
                raise ValueError(f"population {pop.name}: {field} {value} must be {rule}")


def check_fits(graph: Graph, chips: int = 1) -> Mapping:
    """Refuse, naming the population and the limit, what Loihi 2 cannot hold or represent.

    The 24-bit state is not refused on its worst case (:func:`state_bounds`): no real
    input reaches it in the authors' networks, and where one would, Loihi wraps the
    current and saturates the voltage, as Lava and the emulator do; the mapping lists
    the populations whose bound exceeds the state, and ``simulate`` counts the
    neuron-steps where it happens."""
    if chips < 1:
        raise UserError(f"--chips must be at least 1, got {chips}")
    for pop in graph.populations:
        if pop.role == "lif" and int(pop.threshold) > THRESHOLD_MAX:
            raise UserError(f"{pop.name}: threshold {pop.threshold} exceeds Loihi's 17-bit vThMant")
        if np.abs(pop.bias).max(initial=0) > BIAS_LIMIT:
            raise UserError(f"{pop.name}: bias beyond Loihi's 13-bit bias mantissa")
    mapping = estimate_mapping(graph, chips)
    if mapping.chips_needed > chips:
        big = max(mapping.rows, key=lambda r: r.cores)
        raise UserError(
            f"Loihi 2 limit cores_per_chip: the body needs {mapping.cores} cores "
            f"({mapping.chips_needed} chips of {_limit('cores_per_chip')}; largest: "
            f"{big.population} with {big.cores} cores for {big.neurons:,} neurons and "
            f"{big.synapses:,} synapses; source: {LOIHI2['cores_per_chip'].source}); pass "
            f"--chips {mapping.chips_needed}"
        )
    return mapping


def check_deployable(config: ModelConfig) -> None:
    """Refuse, with the fix, what the Loihi 2 body cannot represent."""
    if not config.lif.strict or config.lif.reset != 0.0:
        raise UserError(
            "Loihi's CUBA neuron spikes when v > threshold and resets to 0; retrain with a "
            "strict threshold and reset 0"
        )


def check_hardware_limits(graph: Graph) -> None:
    """Refuse, in one line naming the limit, its source and the fix, a quantised graph
    (delays and window set) that breaks a limit of :data:`HARDWARE`."""
    for limit in HARDWARE:
        problem = limit.check(graph)
        if problem is not None:
            raise UserError(
                f"Loihi 2 limit {limit.name}: {limit.rule}, but {problem} (source: "
                f"{limit.source}); {limit.fix}"
            )

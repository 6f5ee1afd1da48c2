"""Float graph -> Loihi 2 fixed point. Pure functions, no Lava.

Each population p gets a power-of-two scale 2**k_p: its integer unit is
2**-k_p model units. Every edge into p is expressed in that unit, as the synapses
into one Loihi compartment add into one dendritic sum.

* weights: an edge e applies mantissa << x_e, the mantissa an even integer in
  [-256, 254] (an 8-bit signed mantissa times 2, the form lava-dl's quantize_8bit
  and Lava's 8-bit synapses hold) and x_e its synapses' weight exponent in
  0..WEIGHT_EXP_MAX (:func:`weight_shift`: the smallest at which its largest weight
  fits). So an edge of large weights (a BatchNorm-folded composed shortcut) costs
  only its own precision, not its population's: k_p is bounded by the threshold and
  the bias, and by the largest weight only where it needs more than WEIGHT_EXP_MAX.
* threshold: vThMant = round(Vth * 2**k_p); Loihi spikes when v > vThMant << 6.
  vThMant stays at most SPIKING_THRESHOLD_MAX, where lava-dl's CUBA neuron (the
  quantised reference) decides the strict comparison exactly in float32.
* bias: the folded BatchNorm shifts of all incoming edges, summed per channel,
  as a 13-bit neuron bias mantissa (applied with exponent 6, i.e. in a_in units).
* decays: current decay 4096 (none kept), voltage decay round(4096 * (1 - tau)).
* graded input: the host sends q = round(O * 2**b), b = ``payload_bits``; an
  edge from it into p is quantised at unit 2**-(k_p - b) (an identity edge has
  weight 2**(k_p - b)). b trades the payload's precision
  against the input weights' (their unit 2**-(k_p - b) coarsens as b grows): it is the
  b <= 8 whose rounding adds the least RMS error to the input current
  (:func:`graded_input_error`), not simply the largest that fits.
* read-out: non-spiking (threshold at the 17-bit maximum); its scale is chosen
  so that T steps of accumulated voltage cannot leave the 24-bit state.

The chip's number formats themselves are in :mod:`gac_deploy.body.formats`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from gac_deploy.body.formats import (
    ACTIVATION_SCALE,
    ACTIVATION_SHIFT,
    BIAS_LIMIT,
    SPIKING_THRESHOLD_MAX,
    THRESHOLD_MAX,
    WEIGHT_EXP_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    WEIGHT_STEP,
    payload_range,
    threshold_mant,
    voltage_decay_int,
)
from gac_deploy.body.graph import INPUT, Edge, Graph, Population

MAX_PAYLOAD_BITS = 8
MAX_SCALE_EXP = 16


@dataclass(frozen=True)
class LayerQuantReport:
    """What quantising one population did: its exponent and how much was clipped."""

    population: str
    scale_exp: int
    weight_max: float
    clipped_weights: int
    clipped_bias: int
    weight_exp_max: int = 0
    """The largest weight exponent of an edge into the population."""


def quantize_weight(weight: np.ndarray, scale_exp: int) -> tuple[np.ndarray, int]:
    """Float weights -> even integers in [-256, 254] at unit 2**-scale_exp.

    Returns (integers, number of weights clipped)."""
    scaled = WEIGHT_STEP * np.round(weight * 2.0**scale_exp / WEIGHT_STEP)
    clipped = int(np.count_nonzero((scaled > WEIGHT_MAX) | (scaled < WEIGHT_MIN)))
    return np.clip(scaled, WEIGHT_MIN, WEIGHT_MAX).astype(np.int32), clipped


def weight_exponent(max_abs_weight: float) -> int:
    """Largest k with max|w| * 2**k <= 254 (after rounding to even); ``MAX_SCALE_EXP`` if w == 0."""
    if max_abs_weight <= 0:
        return MAX_SCALE_EXP
    return min(MAX_SCALE_EXP, math.floor(math.log2(WEIGHT_MAX / max_abs_weight)))


def weight_shift(max_abs_weight: float, unit: int) -> int:
    """The weight exponent x (0..WEIGHT_EXP_MAX) of an edge whose largest |weight| is
    ``max_abs_weight`` at unit 2**-``unit``: the smallest at which that weight fits an
    8-bit mantissa, mantissa << x (the largest allowed where none does)."""
    return min(WEIGHT_EXP_MAX, max(0, unit - weight_exponent(max_abs_weight)))


def quantize_edge_weight(weight: np.ndarray, unit: int) -> tuple[np.ndarray, int, int]:
    """Float weights at unit 2**-``unit`` -> (the integers the synapses apply, mantissa
    << x; x, the edge's weight exponent; how many weights were clipped). The mantissas
    are :func:`quantize_weight`'s at unit 2**-(``unit`` - x)."""
    shift = weight_shift(float(np.abs(weight).max(initial=0.0)), unit)
    mantissa, clipped = quantize_weight(weight, unit - shift)
    return (mantissa.astype(np.int64) << shift).astype(np.int32), shift, clipped


def _summed_bias(graph: Graph, pop: Population) -> np.ndarray:
    bias = np.array(pop.bias, dtype=np.float64)
    for edge in graph.incoming(pop.name):
        if edge.bias is not None:
            bias = bias + edge.bias
    return bias


def _readout_exponent(graph: Graph, pop: Population, edges: list[Edge], bias: np.ndarray) -> int:
    """Largest exponent whose worst-case T-step accumulation stays inside the 24-bit state."""
    k = weight_exponent(max(float(np.abs(e.weight).max()) for e in edges))
    while k > -8:
        worst = sum(np.abs(quantize_weight(e.weight, k)[0]).sum(axis=1) for e in edges)
        worst = worst + np.abs(np.round(bias * 2.0**k))
        if graph.time_steps * worst.max() * ACTIVATION_SCALE < THRESHOLD_MAX << ACTIVATION_SHIFT:
            return k
        k -= 1
    return k


@dataclass(frozen=True)
class QuantSpec:
    """The fixed-point format of a body: each population's exponent k (its integer
    unit is 2**-k model units) and the graded payload's bits."""

    scale_exp: dict[str, int]
    payload_bits: int

    def to_dict(self) -> dict:
        return {"scale_exp": dict(self.scale_exp), "payload_bits": self.payload_bits}

    @staticmethod
    def from_dict(data: dict) -> QuantSpec:
        return QuantSpec(
            {k: int(v) for k, v in data["scale_exp"].items()}, int(data["payload_bits"])
        )


def choose_format(
    graph: Graph, max_payload_bits: int = MAX_PAYLOAD_BITS, payload_bits: int | None = None
) -> QuantSpec:
    """The largest exponents at which every weight, bias and threshold fits, and the
    graded payload's bits (at most ``max_payload_bits``) that err least with them, or
    ``payload_bits`` when given (ValueError if the weights leave no room for it)."""
    exponents: dict[str, int] = {}
    for pop in graph.populations:
        edges = [e for e in graph.incoming(pop.name) if e.src != INPUT]
        bias = _summed_bias(graph, pop)
        if pop.role == "readout":
            exponents[pop.name] = _readout_exponent(graph, pop, edges, bias)
            continue
        max_w = max((float(np.abs(e.weight).max()) for e in edges), default=0.0)
        k = weight_exponent(max_w) + WEIGHT_EXP_MAX if max_w > 0 else MAX_SCALE_EXP
        if np.abs(bias).max() > 0:
            k = min(k, math.floor(math.log2(BIAS_LIMIT / np.abs(bias).max())))
        k = min(k, math.floor(math.log2(SPIKING_THRESHOLD_MAX / pop.threshold)))
        exponents[pop.name] = min(k, MAX_SCALE_EXP)

    input_consumers = graded_input_consumers(graph)
    largest = min([max_payload_bits] + [exponents[name] - 1 for name in input_consumers])
    if largest < 1:
        raise ValueError(
            "weights into a population that reads the encoder output are too large "
            "for any graded payload; retrain with weight decay"
        )

    def with_payload(bits: int) -> dict[str, int]:
        # weights w on graded input are stored at unit 2**(k - b): the largest must fit,
        # shifted by at most WEIGHT_EXP_MAX
        return {
            name: min(
                exponents[name],
                bits + weight_exponent(_input_weight_max(graph, name)) + WEIGHT_EXP_MAX,
            )
            for name in input_consumers
        }

    if payload_bits is None:
        # the payload whose rounding, with the input weights' own, errs least (finer on ties)
        payload_bits = min(
            range(largest, 0, -1), key=lambda b: payload_error(graph, with_payload(b), b)
        )
    elif not 1 <= payload_bits <= largest:
        raise ValueError(f"a {payload_bits}-bit payload does not fit (at most {largest} bits)")
    exponents.update(with_payload(payload_bits))
    return QuantSpec(exponents, payload_bits)


def graded_input_consumers(graph: Graph) -> list[str]:
    """The populations that read the host's graded input, by name."""
    return sorted({e.dst for e in graph.edges if e.src == INPUT})


def payload_error(graph: Graph, scale_exp: dict[str, int], payload_bits: int) -> float:
    """The largest :func:`graded_input_error` over the populations that read the graded
    input, at exponents ``scale_exp`` (by population) and a ``payload_bits`` payload."""
    return max(
        (
            graded_input_error(graph, name, scale_exp[name], payload_bits, graph.signed_input)
            for name in graded_input_consumers(graph)
        ),
        default=0.0,
    )


def _input_weight_max(graph: Graph, name: str) -> float:
    return max(float(np.abs(e.weight).max()) for e in graph.incoming(name) if e.src == INPUT)


@functools.cache
def payload_moments(payload_bits: int, signed: bool = False) -> tuple[float, ...]:
    """E[O], E[Q], Var O, Var Q, Cov(O, Q) of one input O and its payload Q = round(O * 2**b)
    / 2**b (clipped), for O uniform in [0, 1) (GAC, LIF coding) or standard normal (signed
    real input, a BatchNorm output), by quadrature on a fine grid."""
    if signed:
        o = np.linspace(-8.0, 8.0, 1 << 16)
        p = np.exp(-0.5 * o**2)
    else:
        o = (np.arange(1 << 16) + 0.5) / (1 << 16)
        p = np.ones_like(o)
    p /= p.sum()
    q = quantize_payload(o, payload_bits, signed) * 2.0**-payload_bits
    mean_o, mean_q = float(p @ o), float(p @ q)
    return (
        mean_o,
        mean_q,
        float(p @ (o - mean_o) ** 2),
        float(p @ (q - mean_q) ** 2),
        float(p @ ((o - mean_o) * (q - mean_q))),
    )


def graded_input_error(
    graph: Graph, name: str, scale_exp: int, payload_bits: int, signed: bool = False
) -> float:
    """RMS error, in units of the population's threshold, that rounding adds to the current
    one step of graded input gives population ``name`` (its worst output channel), when its
    exponent is k = ``scale_exp`` and the payload has b = ``payload_bits``.

    A neuron's error is sum_i (q_i Q_i - w_i O_i) over its inputs, with q_i the weight
    rounded at unit 2**-(k - b) (:func:`quantize_edge_weight`) and Q_i the payload
    (:func:`payload_moments`); for
    independent inputs its mean square is sum_i Var(q_i Q_i - w_i O_i) + (sum_i E[...])**2.
    The data is not known here: O is taken as uniform in [0, 1), or standard normal for
    signed real input. A larger b makes the payload finer and the weights coarser."""
    mean_o, mean_q, var_o, var_q, cov = payload_moments(payload_bits, signed)
    unit = scale_exp - payload_bits
    spread = bias = 0.0
    for edge in graph.incoming(name):
        if edge.src != INPUT:
            continue
        w = edge.weight.reshape(edge.weight.shape[0], -1).astype(np.float64)
        q = quantize_edge_weight(w, unit)[0] * 2.0**-unit
        spread = spread + (q**2 * var_q + w**2 * var_o - 2 * q * w * cov).sum(axis=1)
        bias = bias + (q * mean_q - w * mean_o).sum(axis=1)
    pop = graph.population(name)
    threshold = pop.threshold if pop.role != "readout" and pop.threshold > 0 else 1.0
    return math.sqrt(float(np.max(spread + bias**2))) / threshold


def quantize_graph(
    graph: Graph, spec: QuantSpec | None = None
) -> tuple[Graph, list[LayerQuantReport]]:
    """Quantise a float graph in ``spec``'s format (chosen by :func:`choose_format` if None).
    Returns the integer graph and a per-population report."""
    if graph.quantized:
        raise ValueError("graph is already quantised")
    spec = spec or choose_format(graph)
    exponents, payload_bits = spec.scale_exp, spec.payload_bits
    if set(exponents) != {p.name for p in graph.populations}:
        raise ValueError("the quantisation format does not name this graph's populations")
    populations, edges, report = [], [], []
    for pop in graph.populations:
        k = exponents[pop.name]
        bias = _summed_bias(graph, pop)
        clipped_weights = 0
        max_w = 0.0
        shifts = [0]
        for edge in graph.incoming(pop.name):
            scale = k - payload_bits if edge.src == INPUT else k
            weight, shift, clipped = quantize_edge_weight(edge.weight, scale)
            clipped_weights += clipped
            shifts.append(shift)
            if edge.src != INPUT:
                max_w = max(max_w, float(np.abs(edge.weight).max()))
            edges.append(replace(edge, weight=weight, weight_exp=shift, bias=None))
        bias_int = np.round(bias * 2.0**k)
        clipped_bias = int(np.count_nonzero(np.abs(bias_int) > BIAS_LIMIT))
        bias_int = np.clip(bias_int, -BIAS_LIMIT - 1, BIAS_LIMIT).astype(np.int32)
        if pop.role == "readout":
            threshold = THRESHOLD_MAX
        else:
            threshold = threshold_mant(pop.threshold, k)
        populations.append(
            replace(
                pop,
                threshold=threshold,
                voltage_decay=voltage_decay_int(pop.voltage_decay),
                bias=bias_int,
                scale_exp=k,
            )
        )
        report.append(
            LayerQuantReport(
                population=pop.name,
                scale_exp=k,
                weight_max=max_w,
                clipped_weights=clipped_weights,
                clipped_bias=clipped_bias,
                weight_exp_max=max(shifts),
            )
        )
    quantized = replace(graph, populations=populations, edges=edges, payload_bits=payload_bits)
    return quantized, report


def quantize_payload(o, payload_bits: int, signed: bool = False):
    """Encoder output -> graded payload integers round(O * 2**b), clipped to
    :func:`~gac_deploy.body.formats.payload_range` (O in [0, 1), or signed real input)
    with round half to even, as ONNX rounds. Takes and returns a tensor or an ndarray."""
    if isinstance(o, np.ndarray):
        return quantize_payload(torch.from_numpy(o), payload_bits, signed).numpy()
    low, high = payload_range(payload_bits, signed)
    return torch.clamp(torch.round(o * 2.0**payload_bits), float(low), float(high))


def max_synaptic_input(edge: Edge, payload_bits: int, signed_input: bool = False) -> float:
    """Largest |synaptic input| one step of ``edge`` can give a neuron: the biggest row sum
    of |weights|, times the largest |payload| when the edge carries graded spikes."""
    worst = float(np.abs(edge.weight).reshape(edge.weight.shape[0], -1).sum(axis=1).max())
    if edge.src != INPUT:
        return worst
    low, high = payload_range(payload_bits, signed_input)
    return worst * max(-low, high)

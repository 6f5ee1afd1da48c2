"""The emulator's neuron arithmetic: one compiled (numba) pass per population over its
whole window, and the statistics of a graded signal.

A population's pass sums its currents, runs Loihi's CUBA arithmetic (every value x 64,
the << 6 of the chip's activations; current decay 4096, nothing kept) and, for a spiking
population, writes its spikes with the counts its outgoing edges need:

    a = sum of the currents a_in << 6,  wrapped to 24 bits: a > 2**23 -> a - 2**24,
                                                       a <= -2**23 -> a + 2**24
    v = trunc(v * kept / 4096) + a + (bias << 6),  saturated to |v| <= 2**23 - 1
    spike = v > vth << 6;  v = 0 where it spiked (a read-out resets only if leaky)

Each wrap and each saturation counts as one overflow. All values are integers held in
float64, where every step is exact: |v| kept / 4096 < 2**35, the factor kept / 4096 is
exact, and so are the truncation and the sums. Writing this with PyTorch operations
took five to ten passes over [T, N, ...] tensors and as many fresh allocations; here it
is one pass, with the currents read where their edges left them.

Layout: a frame is one image at one step, frame f = t * N + n. Values are in memory
order, P = H * W * C for channels-last images (position-major, channel fastest) and
P = F for flat populations. Every pass reads two currents (an empty stand-in where a
population has one; more are summed first), so numba compiles each pass once per
dtype and caches the machine code on disk (beside this module, or in numba's user
cache where that is read-only).

Why one module of about 450 lines: the passes share inlined helpers that numba compiles
into each pass (one neuron's arithmetic, reading two currents), and the list of
signatures that ``compile_all`` caches must name every pass; split, the cache and the
passes could drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from gac_deploy.body.formats import DECAY_UNITY, STATE_MAX

STATE_WRAP = STATE_MAX + 1  # 2**23: the 24-bit current wraps here


@dataclass
class Current:
    """One edge's synaptic input x 64 over a batch: ``values`` [M, P] (float32 or float64,
    memory order) for the M frames that had input, in frame order (times ``scale`` where
    given), ``rows`` int64 [T * N]: frame f's row in ``values``, -1 where the frame had
    none (input 0)."""

    values: torch.Tensor
    rows: np.ndarray
    scale: torch.Tensor | None = None
    """Per column [P], in the values' dtype: the input is values * scale (a diagonal 1x1
    edge, read straight from its source's frames)."""


@dataclass
class Fired:
    """A population's spikes as one byte each, uint8 [T, N, *shape] (channels-last memory
    for images), and what its outgoing edges read: nonzero entries per frame (numpy
    int64 [T * N]) and per column of the memory order (numpy int64 [P]); and its
    overflows (current wraps and voltage saturations)."""

    spikes: torch.Tensor
    frame_counts: np.ndarray
    column_counts: np.ndarray
    overflows: int


@njit(inline="always")
def _wrap(a, real):  # pragma: no cover
    """The 24-bit current: ``a`` wrapped, in the state's scalar type ``real``, and 1 if it
    wrapped (every constant typed, so that float32 states stay float32)."""
    a, half = real(a), real(STATE_WRAP)
    if a > half:
        return a - (half + half), 1
    if a <= -half:
        return a + (half + half), 1
    return a, 0


@njit(inline="always")
def _saturate(v, real):  # pragma: no cover
    top = real(STATE_MAX)
    if v > top:
        return top, 1
    if v < -top:
        return -top, 1
    return v, 0


@njit(inline="always")
def _count_spikes(spikes, columns):  # pragma: no cover
    count = 0
    for p in range(len(spikes)):
        count += spikes[p]
        columns[p] += spikes[p]
    return count


@njit(inline="always")
def _neuron(a, p, v, bias, keep, threshold, out, checked):  # pragma: no cover
    """Neuron p of one frame: its input ``a``, voltage v[p] (updated, reset if it spiked),
    its spike written to out[p]; ``checked``: the current wraps and the voltage saturates,
    and the overflows are returned. Every value stays in v's dtype (a plain 0 or float
    would make the select, and so the whole loop, float64)."""
    real = v.dtype.type
    wrapped = saturated = 0
    if checked:
        a, wrapped = _wrap(a, real)
        x, saturated = _saturate(np.trunc(v[p] * keep) + a + bias[p], real)
    else:
        x = np.trunc(v[p] * keep) + a + bias[p]
    fired = x > threshold
    out[p] = fired
    v[p] = real(0) if fired else x
    return wrapped + saturated


@njit(inline="always")
def _step(drive, v, bias, keep, threshold, out, checked):  # pragma: no cover
    """One frame of a population with one unscaled current, ``drive`` [P], read as it
    lies (float32 currents into a float64 state widen per value, exactly)."""
    overflows = 0
    for p in range(len(v)):
        overflows += _neuron(drive[p], p, v, bias, keep, threshold, out, checked)
    return overflows


@njit(inline="always")
def _inputs(currents, rows, frame, silent):  # pragma: no cover
    """Frame ``frame``'s rows of the two currents, ``silent`` (zeros) where one has none."""
    row, other = rows[0, frame], rows[1, frame]
    first = currents[0][row] if row >= 0 else silent
    return first, currents[1][other] if other >= 0 else silent


@njit(inline="always")
def _input_sum(first, scale0, second, scale1, p, real):  # pragma: no cover
    """Neuron p's input: both currents times their scales, summed in the state's type."""
    return real(first[p] * scale0[p]) + real(second[p] * scale1[p])


@njit(inline="always")
def _step_pair(
    first, scale0, second, scale1, v, bias, keep, threshold, out, checked
):  # pragma: no cover
    """One frame with two scaled currents (or one, beside a silent one), summed in the
    state's dtype per neuron."""
    real = v.dtype.type
    overflows = 0
    for p in range(len(v)):
        a = _input_sum(first, scale0, second, scale1, p, real)
        overflows += _neuron(a, p, v, bias, keep, threshold, out, checked)
    return overflows


@njit(nogil=True, cache=True)
def _spiking(
    currents, scales, rows, direct, checked, bias, keep, threshold, spikes, frames, columns,
    first, last,
):  # pragma: no cover  # fmt: skip
    """The LIF pass over images [first, last), its state in the bias's dtype, from two
    currents (the second may be an empty stand-in): a single unscaled one (``direct``)
    read where it lies, in its own dtype, else both times their scales, summed per
    neuron in the state's dtype; ``checked``: with wraps and saturations (counted). The
    literal True/False below let each loop compile without the other's branch."""
    steps, images, size = spikes.shape
    overflows = 0
    v = np.zeros(size, bias.dtype)
    silent = np.zeros(size, currents[0].dtype)
    for n in range(first, last):
        v[:] = 0
        for t in range(steps):
            frame = t * images + n
            out = spikes[t, n]
            drive, other = _inputs(currents, rows, frame, silent)
            if direct and checked:
                overflows += _step(drive, v, bias, keep, threshold, out, True)
            elif direct:
                overflows += _step(drive, v, bias, keep, threshold, out, False)
            else:
                if checked:
                    overflows += _step_pair(
                        drive, scales[0], other, scales[1], v, bias, keep, threshold, out, True
                    )
                else:
                    overflows += _step_pair(
                        drive, scales[0], other, scales[1], v, bias, keep, threshold, out, False
                    )
            frames[frame] = _count_spikes(out, columns)
    return overflows


@njit(nogil=True, cache=True)
def _voltage(currents, scales, rows, bias, keep, threshold, reset, voltage):  # pragma: no cover
    """A read-out's voltage before each step's reset (float64, checked), from the same two
    currents as :func:`_spiking`; it resets only when ``reset`` (a leaky read-out)."""
    steps, images, size = voltage.shape
    overflows = 0
    v = np.zeros(size)
    silent = np.zeros(size, currents[0].dtype)
    for n in range(images):
        v[:] = 0
        for t in range(steps):
            first, second = _inputs(currents, rows, t * images + n, silent)
            for p in range(size):
                a = _input_sum(first, scales[0], second, scales[1], p, np.float64)
                wrapped, w = _wrap(a, np.float64)
                x, s = _saturate(np.trunc(v[p] * keep) + wrapped + bias[p], np.float64)
                overflows += w + s
                voltage[t, n, p] = x
                v[p] = 0.0 if reset and x > threshold else x
    return overflows


@njit(nogil=True, cache=True)
def _add_rows(total, values, scale, rows, first, last, assign):  # pragma: no cover
    """total[f] (=, or +=) values[rows[f]] * scale for frames f in [first, last)."""
    for frame in range(first, last):
        out = total[frame]
        row = rows[frame]
        if row < 0:
            if assign:
                out[:] = 0
            continue
        source = values[row]
        if assign:
            for p in range(len(out)):
                out[p] = source[p] * scale[p]
        else:
            for p in range(len(out)):
                out[p] += source[p] * scale[p]
    return 0


@njit(nogil=True, cache=True)
def _count(values, frames, columns, first, last):  # pragma: no cover
    low = high = values[first, 0]
    for m in range(first, last):
        count = 0
        row = values[m]
        for p in range(values.shape[1]):
            x = row[p]
            nonzero = x != 0
            count += nonzero
            columns[p] += nonzero
            low = min(low, x)
            high = max(high, x)
        frames[m] = count
    return low, high


def memory_order(signal: torch.Tensor, leading: int = 2) -> torch.Tensor:
    """A signal [*lead, C, H, W] (or [*lead, F]) as the contiguous [*lead, P] of its memory,
    ``leading`` dims kept: a view when the images are channels last (or the features
    contiguous), else a copy in that order."""
    if signal.dim() == leading + 3:
        signal = signal.movedim(leading, -1)
    return signal.contiguous().view(*signal.shape[:leading], math.prod(signal.shape[leading:]))


_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}  # the states' dtypes


def state_type(dtype: torch.dtype) -> type:
    """The numpy scalar type of a state ``dtype`` (float32 or float64) as the passes hold it."""
    return _NUMPY[dtype]


MOST_CURRENTS = 2  # read by the pass as they are; more are summed first


def _operands(currents: list[Current], size: int, frames: int, state: torch.dtype) -> tuple:
    """The currents as the tuple of two [M, P] arrays of one dtype that the passes read
    (their own, float64 if any is; beyond MOST_CURRENTS, all summed into one in the
    ``state`` dtype; an empty stand-in where there are fewer), their scales [2, P] (1
    where they have none), row maps int64 [2, T * N] (-1: no input), and whether the
    first can be read as it is (the only current, unscaled)."""
    if len(currents) > MOST_CURRENTS:
        currents = [_summed(currents, state)]
    wide = any(c.values.dtype == torch.float64 for c in currents)
    dtype = np.float64 if wide else np.float32
    values = tuple(c.values.numpy().astype(dtype, copy=False) for c in currents)
    values += (np.zeros((0, size), dtype),) * (MOST_CURRENTS - len(currents))
    scales = np.ones((MOST_CURRENTS, size), dtype)
    rows = np.full((MOST_CURRENTS, frames), -1)
    for i, current in enumerate(currents):
        rows[i] = current.rows
        if current.scale is not None:
            scales[i] = current.scale.numpy()
    direct = len(currents) < MOST_CURRENTS and all(c.scale is None for c in currents)
    return values, scales, rows, direct


def _summed(currents: list[Current], dtype: torch.dtype) -> Current:
    """Several currents as one over every frame, summed in ``dtype`` (exact where the
    caller chose it for the population's values), one compiled pass per current."""
    count, size = len(currents[0].rows), currents[0].values.shape[1]
    total = np.empty((count, size), state_type(dtype))
    parts = _parts(count, size)
    for i, current in enumerate(currents):
        values = current.values.numpy()
        scale = np.ones(size, values.dtype) if current.scale is None else current.scale.numpy()
        rows = current.rows

        def run(_, lo, hi, values=values, scale=scale, rows=rows, first=i == 0):
            return _add_rows(total, values, scale, rows, lo, hi, first)

        _in_parallel(parts, run)
    return Current(torch.from_numpy(total), np.arange(count))


def spiking(
    currents: list[Current],
    bias: np.ndarray,
    kept: int,
    threshold: float,
    steps_images: tuple[int, int],
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float64,
    checked: bool = True,
) -> Fired:
    """Spikes of a LIF population of ``shape`` (C, H, W) or (F,) over T steps and N images
    (``steps_images``), from its currents and ``bias`` (x 64, [P], memory order); v keeps
    ``kept`` / 4096 per step, ``threshold`` is vth x 64. The state is held in ``dtype``:
    float32 only where the caller has shown every value exact in it (a decay that keeps a
    power of two and |v| < 2**24; the currents are float32 then too); ``checked`` False
    only where no current can wrap and no voltage saturate. The images are split over
    torch's intra-op thread count."""
    steps, images = steps_images
    size = math.prod(shape)
    spikes = np.empty((steps, images, size), np.uint8)
    frames = np.empty(steps * images, np.int64)
    values, scales, rows, direct = _operands(currents, size, len(frames), dtype)
    real = state_type(dtype)
    parts = _parts(images, steps * size)
    columns = np.zeros((len(parts), size), np.int64)
    arguments = (values, scales, rows, direct, checked, bias.astype(real, copy=False))
    arguments += (real(kept / DECAY_UNITY), real(threshold), spikes, frames)
    overflows = _in_parallel(parts, lambda i, lo, hi: _spiking(*arguments, columns[i], lo, hi))
    out = torch.from_numpy(spikes)
    if len(shape) == 3:  # [T, N, C, H, W], channels-last memory
        out = out.view(steps, images, *shape[1:], shape[0]).permute(0, 1, 4, 2, 3)
    else:
        out = out.view(steps, images, *shape)
    return Fired(out, frames, columns.sum(axis=0), sum(overflows))


def voltage(
    currents: list[Current],
    bias: np.ndarray,
    kept: int,
    threshold: float,
    steps_images: tuple[int, int],
    size: int,
) -> tuple[torch.Tensor, int]:
    """A flat read-out's voltage before each step's reset, int64 [T, N, size] (float64
    arithmetic, checked), and its overflows; it resets (to 0, where v > ``threshold``)
    only when it leaks (kept < 4096)."""
    steps, images = steps_images
    voltage = np.empty((steps, images, size))
    values, scales, rows, _ = _operands(currents, size, steps * images, torch.float64)
    reset = kept < DECAY_UNITY
    overflows = _voltage(
        values,
        scales,
        rows,
        bias.astype(np.float64),
        kept / DECAY_UNITY,
        float(threshold),
        reset,
        voltage,
    )
    return torch.from_numpy(voltage).to(torch.int64), int(overflows)


def count_nonzero(signal: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Nonzero entries of ``signal`` [T, N, *shape] per frame (numpy int64 [T * N]) and per
    column of the memory order (numpy int64 [P], see :func:`memory_order`), and its
    smallest and largest value (0, 0 when empty)."""
    values = memory_order(signal)
    if values.dtype == torch.bool:
        values = values.view(torch.uint8)
    values = values.flatten(0, 1).numpy()
    frames = np.zeros(len(values), np.int64)
    if not values.size:
        return frames, np.zeros(values.shape[1], np.int64), 0.0, 0.0
    parts = _parts(len(values), values.shape[1])
    columns = np.zeros((len(parts), values.shape[1]), np.int64)
    ranges = _in_parallel(parts, lambda i, lo, hi: _count(values, frames, columns[i], lo, hi))
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    return frames, columns.sum(axis=0), float(low), float(high)


def load(
    dtype: torch.dtype, currents: list[torch.dtype], checked: bool, readout: bool = False
) -> None:
    """Compile (or load from numba's disk cache) the pass that a population with its state
    in ``dtype`` and incoming currents of the dtypes ``currents`` runs, by running it on
    one neuron: the cost moves to start-up, out of the first batch. The graded payload's
    count is loaded with it."""
    zero = np.zeros(1, np.int64)
    inputs = [Current(torch.zeros(1, 1, dtype=c), zero) for c in currents]
    bias = np.zeros(1)
    if readout:
        voltage(inputs, bias, DECAY_UNITY, 0.0, (1, 1), 1)
    else:
        spiking(inputs, bias, DECAY_UNITY, 0.0, (1, 1), (1,), dtype, checked)
    count_nonzero(torch.zeros(1, 1, 1))


def compile_all() -> None:
    """Compile into numba's disk cache every pass the emulator can run (11 signatures):
    spiking with float32 currents and state, float32 currents into a float64 state, or
    float64 both, the pass that sums currents beyond MOST_CURRENTS into each state, the
    read-outs of float32 or float64 currents, and the counts of float32, float64 and
    uint8 signals. ``make install`` runs this, so that tests and first simulations load
    them (a few seconds each to compile, a few milliseconds to load)."""
    f32, f64 = torch.float32, torch.float64
    for state, values in ((f32, f32), (f64, f32), (f64, f64)):
        load(state, [values], checked=False)
        load(state, [values] * (MOST_CURRENTS + 1), checked=False)  # the summing pass
    for values in (f32, f64):
        load(f64, [values], True, readout=True)
    for dtype in (f32, f64, torch.uint8):
        count_nonzero(torch.zeros(1, 1, 1, dtype=dtype))


MIN_PART = 1 << 16  # values per thread below which splitting costs more than it saves


def _parts(count: int, cost_each: int) -> list[tuple[int, int]]:
    """``count`` items (each ``cost_each`` values) split into contiguous [lo, hi) ranges, one
    per torch intra-op thread, fewer when the ranges would be small."""
    parts = max(1, min(torch.get_num_threads(), count, count * cost_each // MIN_PART))
    bounds = [count * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


_pools: dict[int, ThreadPoolExecutor] = {}  # by worker count


def _in_parallel(parts: list[tuple[int, int]], run: Callable[[int, int, int], object]) -> list:
    """run(i, lo, hi) for each part, the passes releasing the GIL: the first in this
    thread, the others in a shared pool; their results in order."""
    workers = len(parts) - 1
    if workers and workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="gac-kernel")
    others = [_pools[workers].submit(run, i, lo, hi) for i, (lo, hi) in enumerate(parts) if i]
    return [run(0, *parts[0])] + [future.result() for future in others]

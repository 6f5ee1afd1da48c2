"""Loihi 2 fixed-point formats: every number format of the chip's CUBA neuron and synapses.

The one place for these numbers; everything else imports them. Formats are those of
Lava's bit-accurate process models (lava-nc 0.10: ``lava/proc/lif/models.py``
PyLifModelBitAcc, ``lava/proc/dense/models.py``) and of lava-dl NetX's HDF5 neuron
(``lava/lib/dl/netx/hdf5.py``). One step of a CUBA neuron, all integers:

    u = u * (4096 - du') >> 12 + (a_in << 6)       du' = du + 1 (Lava's ds_offset)
    v = v * (4096 - dv) >> 12 + u + (bias_mant << bias_exp),   |u|, |v| < 2**23
    spike when v > vth << 6, then v = 0

(``>> 12`` is sign(x) (|x| >> 12), i.e. truncation toward zero). The body keeps no
current (NetX iDecay 4096, Lava du 4095) and applies the bias with exponent 6, so
bias_mant is in a_in units and v is in a_in units << 6.
"""

from __future__ import annotations

WEIGHT_BITS = 8
"""Synaptic weights are 8-bit signed mantissas, shifted by their edge's weight exponent."""
WEIGHT_STEP = 2
"""Lava stores an 8-bit mixed-sign weight shifted left by 1: weights are even integers."""
WEIGHT_MAX = (2 ** (WEIGHT_BITS - 1) - 1) * WEIGHT_STEP  # 254
WEIGHT_MIN = -(2 ** (WEIGHT_BITS - 1)) * WEIGHT_STEP  # -256

BIAS_BITS = 13
"""bias_mant is signed 13-bit."""
BIAS_LIMIT = 2 ** (BIAS_BITS - 1) - 1  # 4095; the mantissa range is [-BIAS_LIMIT - 1, BIAS_LIMIT]

THRESHOLD_BITS = 17
"""vth (vThMant) is unsigned 17-bit."""
THRESHOLD_MAX = 2**THRESHOLD_BITS - 1
SPIKING_THRESHOLD_MAX = 4095
"""Largest vThMant of a spiking population (the chip's own limit is THRESHOLD_MAX).
lava-dl's CUBA neuron (the quantised reference) decides v > vth in float32 as
v >= vth + 0.01/4096 in a_in / 64 units; that margin survives float32 rounding while
vth / 64 < 64 (its spacing there is 2**-18 < 2 x 0.01/4096), i.e. vThMant < 4096.
``tests/neurons/test_cuba.py`` checks the reference against Loihi's integer rule
at this limit, inputs up to 32 thresholds either side."""

WEIGHT_EXP_MAX = 7
"""Largest synapse weight exponent x this package uses: an edge applies mantissa << x
(Lava's ``Dense``/``Conv`` ``weight_exp``; NetX sets it per layer). 0..7 lies within
the signed 4-bit exponent of Loihi's synapse groups (-8..7); negative exponents are
not needed, since a population's unit 2**-k is already chosen as fine as fits."""

STATE_BITS = 24
"""Current u and voltage v are signed 24-bit."""
STATE_MAX = 2 ** (STATE_BITS - 1) - 1  # |u|, |v| saturate here

DECAY_BITS = 12
"""du and dv are unsigned 12-bit; a decay d keeps (4096 - d) / 4096 per step."""
DECAY_UNITY = 2**DECAY_BITS  # 4096: a decay of DECAY_UNITY keeps nothing
DECAY_MAX = DECAY_UNITY - 1  # 4095: the largest du or dv
CURRENT_DECAY = DECAY_UNITY
"""Every population's current decay (NetX iDecay): no current is kept between steps."""
LAVA_CURRENT_DECAY = CURRENT_DECAY - 1
"""The same as Lava's ``du``, to which its LIF adds ds_offset = 1."""

ACTIVATION_SHIFT = 6
"""Lava's LIF shifts a_in and vth left by 6 (act_shift, vth_shift)."""
ACTIVATION_SCALE = 2**ACTIVATION_SHIFT  # 64: one a_in unit in voltage units
BIAS_EXP = ACTIVATION_SHIFT
"""The bias exponent the body uses: bias_mant << 6 puts the bias in a_in units."""

PAYLOAD_PORT_BITS = 24
"""Lava Conv/Dense fixed-point ports carry graded payloads of up to 24 bits."""
SIGNED_PAYLOAD_INTEGER_BITS = 7
"""A signed graded payload (direct and rate coding send the stem's real, signed output)
holds values in [-2**7, 2**7) model units at b fractional bits: 8 + b <= 16 bits, inside
the 24-bit port. The host encoder clips stem outputs beyond that range (BatchNorm
outputs of a trained stem are of order 1)."""


def payload_range(payload_bits: int, signed: bool) -> tuple[int, int]:
    """The integers a graded payload with b = ``payload_bits`` fractional bits can take:
    [0, 2**b - 1] for O in [0, 1) (GAC, LIF coding), or [-2**(b + 7), 2**(b + 7) - 1]
    for signed real input (direct, rate coding)."""
    if signed:
        top = 2 ** (payload_bits + SIGNED_PAYLOAD_INTEGER_BITS)
        return -top, top - 1
    return 0, 2**payload_bits - 1


def payload_message_bits(payload_bits: int, signed: bool) -> int:
    """Bits of one graded spike's payload (Lava's ``num_message_bits``)."""
    return payload_bits + (SIGNED_PAYLOAD_INTEGER_BITS + 1 if signed else 0)


def threshold_mant(threshold: float, scale_exp: int) -> int:
    """vThMant of a threshold in model units, at the population's unit 2**-scale_exp."""
    return int(round(threshold * 2.0**scale_exp))


def voltage_decay_int(voltage_decay: float) -> int:
    """dv of a voltage decay 1 - tau (the fraction lost per step): round(4096 (1 - tau))."""
    return int(round(DECAY_UNITY * voltage_decay))

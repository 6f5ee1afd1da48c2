"""Loihi 2's number formats: each derived from its bit width, and used as the chip table says."""

from gac_deploy.body import formats
from gac_deploy.body.loihi2 import LOIHI2


def test_formats_are_lavas():
    assert (formats.WEIGHT_MIN, formats.WEIGHT_MAX) == (-256, 254)
    assert formats.BIAS_LIMIT == 4095 and formats.THRESHOLD_MAX == 2**17 - 1
    assert formats.STATE_MAX == 2**23 - 1 and formats.DECAY_UNITY == 4096
    assert formats.ACTIVATION_SCALE == 64 and formats.BIAS_EXP == 6
    # NetX hands Lava du = iDecay - 1: current decay 4096 keeps nothing
    assert formats.LAVA_CURRENT_DECAY == formats.CURRENT_DECAY - 1 == 4095


def test_the_chip_table_states_the_same_widths():
    widths = {
        "weight_bits": formats.WEIGHT_BITS,
        "state_bits": formats.STATE_BITS,
        "threshold_bits": formats.THRESHOLD_BITS,
        "bias_bits": formats.BIAS_BITS,
        "decay_bits": formats.DECAY_BITS,
        "payload_bits": formats.PAYLOAD_PORT_BITS,
    }
    assert {name: LOIHI2[name].value for name in widths} == widths

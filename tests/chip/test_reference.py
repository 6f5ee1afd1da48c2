"""The quantised reference (lava-dl's CUBA neuron) against Loihi's arithmetic written out."""

import numpy as np
import torch

from gac_deploy.body.formats import ACTIVATION_SCALE as SLAYER_SCALE
from gac_deploy.body.formats import SPIKING_THRESHOLD_MAX
from gac_deploy.models.lif import slayer_cuba_neuron


def loihi_cuba(a_in: np.ndarray, vth: int, dv: int) -> tuple[np.ndarray, np.ndarray]:
    """Loihi CUBA compartment (current decay 4096) by hand. a_in [..., T] integers."""
    v = np.zeros(a_in.shape[:-1], dtype=np.int64)
    spikes, volts = [], []
    for t in range(a_in.shape[-1]):
        decayed = v * (4096 - dv)
        v = np.sign(decayed) * (np.abs(decayed) >> 12) + (a_in[..., t].astype(np.int64) << 6)
        s = v > (vth << 6)
        spikes.append(s)
        volts.append(v.copy())
        v = np.where(s, 0, v)
    return np.stack(spikes, -1), np.stack(volts, -1)


def run_slayer(a_in: np.ndarray, vth: int, dv: int):
    neuron = slayer_cuba_neuron(vth, dv)
    x = torch.from_numpy(a_in / SLAYER_SCALE).float()
    with torch.no_grad():
        spikes = neuron(x).numpy() > 0
        _, v = neuron.dynamics(x)
    return spikes, np.round(v.double().numpy() * neuron.s_scale).astype(np.int64)


def test_slayer_neuron_is_loihi_exact_on_random_inputs():
    rng = np.random.default_rng(0)
    for vth in (1, 64, 512, 1023, 2048, SPIKING_THRESHOLD_MAX):
        a_in = rng.integers(-2 * vth, 3 * vth, size=(50, 12, 6))
        expected_s, expected_v = loihi_cuba(a_in, vth, 3072)
        spikes, volts = run_slayer(a_in, vth, 3072)
        assert (spikes == expected_s).all(), vth
        assert (volts == expected_v).all(), vth


def test_slayer_neuron_is_exact_far_from_threshold_at_the_limit():
    """Inputs of 32 thresholds either side (the voltage far outside its usual range)."""
    rng = np.random.default_rng(1)
    vth = SPIKING_THRESHOLD_MAX
    a_in = rng.integers(-32 * vth, 32 * vth, size=(200, 50, 6))
    expected_s, expected_v = loihi_cuba(a_in, vth, 3072)
    spikes, volts = run_slayer(a_in, vth, 3072)
    assert (spikes == expected_s).all() and (volts == expected_v).all()


def test_voltage_exactly_at_threshold_does_not_spike():
    for vth in (512, SPIKING_THRESHOLD_MAX):
        a_in = np.array([[[vth, vth, 0, vth + 1]]])
        spikes, _ = run_slayer(a_in, vth, 3072)
        expected, _ = loihi_cuba(a_in, vth, 3072)
        assert spikes.tolist() == expected.tolist() == [[[False, True, False, True]]]


def test_above_the_limit_slayer_float32_test_is_not_strict():
    """Why quantisation keeps vThMant below 4096: slayer then spikes at v == vth."""
    vth = SPIKING_THRESHOLD_MAX + 1
    a_in = np.array([[[vth, 0, 0, 0]]])
    spikes, _ = run_slayer(a_in, vth, 3072)
    expected, _ = loihi_cuba(a_in, vth, 3072)
    assert not expected[0, 0, 0] and spikes[0, 0, 0]

"""The CUBA neuron's description: its integer step (lava-dl's CUBA neuron, the quantised
reference) against Loihi's arithmetic written out, its chip parameters, its NetX fields,
its NIR node and its float step."""

import numpy as np
import pytest
import torch

from gac_deploy.body.formats import ACTIVATION_SCALE as SLAYER_SCALE
from gac_deploy.body.formats import SPIKING_THRESHOLD_MAX
from gac_deploy.config import LIFConfig
from gac_deploy.errors import UserError
from gac_deploy.neurons import BODY_NEURON, NEURONS, Neuron, body_neuron, cuba


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
    neuron = cuba.integer_neuron(vth, dv)
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


def test_device_params():
    params = cuba.device_params(LIFConfig(threshold=0.5, tau=0.75), scale_exp=7)
    assert params == cuba.CubaParams(threshold=64, voltage_decay=1024)


def test_netx_fields_are_lava_dls_cuba_neuron():
    assert cuba.netx_fields(64, 1024) == {
        "type": "CUBA",
        "iDecay": 4096,
        "vDecay": 1024,
        "vThMant": 64,
        "refDelay": 1,
        "gradedSpike": False,
    }


def test_float_step_at_unit_scale_is_the_integer_step():
    """At unit scale (vThMant = Vth) with half the voltage kept per step (tau 0.5, dv
    2048), the float neuron and lava-dl's integer neuron spike alike on integer inputs:
    over 6 steps no halving of v (in a_in / 64 units) is truncated."""
    rng = np.random.default_rng(1)
    a_in = rng.integers(-20, 40, size=(8, 30, 6))
    _, float_spikes = cuba.float_dynamics(
        torch.from_numpy(a_in).double().movedim(-1, 0).flatten(1), 0.5, 16.0, 0.0, True
    )
    int_spikes, _ = run_slayer(a_in, 16, 2048)
    assert 0.1 < int_spikes.mean() < 0.9
    expected = torch.from_numpy(int_spikes).movedim(-1, 0).flatten(1).double()
    assert torch.equal(float_spikes, expected)


def test_nir_node_steps_as_the_float_neuron():
    """The NIR LIF's forward-Euler step with dt is v = (1 - dt/tau) v + (r dt/tau) I."""
    dt = 1e-4
    node = cuba.nir_node(0.5, 0.75, (2, 3, 3), dt)
    assert node.tau.shape == (2, 3, 3)
    assert np.allclose(1 - dt / node.tau, 0.25) and np.allclose(node.r * dt / node.tau, 1.0)
    assert np.allclose(node.v_threshold, 0.5) and not node.v_leak.any() and not node.v_reset.any()
    with pytest.raises(UserError, match="no NIR LIF time constant"):
        cuba.nir_node(0.5, 0.0, (1,), dt)


def test_cuba_is_the_registered_body_neuron():
    assert NEURONS.names() == ("CUBA",) and BODY_NEURON == cuba.NAME == "CUBA"
    assert body_neuron() is cuba
    members = [name for name in Neuron.__dict__ if not name.startswith("_")]
    members += list(Neuron.__annotations__)
    assert members and all(hasattr(cuba, name) for name in members)
    with pytest.raises(UserError, match="unknown neuron 'LIF'; choose one of: CUBA"):
        NEURONS.get("LIF")

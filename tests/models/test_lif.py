import pytest
import torch

from gac_deploy.config import AUTHORS_CIFAR_LIF, LIFConfig
from gac_deploy.errors import UserError
from gac_deploy.models.lif import SurrogateSpike, lif_forward


def test_lif_dynamics_match_paper_equation():
    cfg = LIFConfig(threshold=0.5, tau=0.25)
    x = torch.tensor([[0.3], [0.3], [0.3], [0.6], [0.0]])
    # v: 0.3, 0.375, 0.39375, 0.698 -> spike, reset to 0 -> 0.0
    assert lif_forward(x, cfg).flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_strict_and_non_strict_threshold():
    x = torch.tensor([[0.5], [0.5]])
    assert lif_forward(x, LIFConfig()).flatten().tolist() == [0.0, 1.0]
    assert lif_forward(x, LIFConfig(strict=False)).flatten().tolist() == [1.0, 1.0]


def test_reset_value():
    x = torch.tensor([[0.6], [0.0]])
    spikes = lif_forward(x, LIFConfig(reset=0.4, tau=0.5))
    # after the spike v = 0.4 (reset), not decayed; next step 0.4 + 0 = 0.4 -> no spike
    assert spikes.flatten().tolist() == [1.0, 0.0]


def test_rectangle_surrogate_window():
    x = torch.tensor([-0.6, -0.4, 0.0, 0.4, 0.6], requires_grad=True)
    SurrogateSpike.apply(x, True, "rectangle", 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_triangle_surrogate_of_authors_cifar_code():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 1.0], requires_grad=True)
    SurrogateSpike.apply(x, True, "triangle", 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.5, 1.0, 0.75, 0.0]


def test_authors_cifar_setting():
    assert (AUTHORS_CIFAR_LIF.threshold, AUTHORS_CIFAR_LIF.tau) == (1.0, 0.5)
    x = torch.tensor([[0.6], [0.6], [0.6]])
    # v: 0.6, 0.9, 1.05 -> spike at the third step
    assert lif_forward(x, AUTHORS_CIFAR_LIF).flatten().tolist() == [0.0, 0.0, 1.0]


def test_bad_surrogate_is_a_user_error():
    with pytest.raises(UserError, match="surrogate"):
        LIFConfig(surrogate="sigmoid")


def test_float_and_loihi_modes_agree_away_from_rounding_boundaries():
    from gac_deploy.models.lif import LIF

    k = 8
    torch.manual_seed(0)
    x = torch.round(torch.rand(6, 400) * 0.8 * 2**k) / 2**k  # exactly representable inputs
    cfg = LIFConfig()
    float_spikes = lif_forward(x.double(), cfg)
    lif = LIF(cfg)
    lif.scale_exp = k
    loihi_spikes = lif(x)
    # float membrane potential before each spike decision
    v, margin = torch.zeros(400, dtype=torch.float64), torch.full((400,), 1e9, dtype=torch.float64)
    for t in range(6):
        v = v + x[t].double()
        margin = torch.minimum(margin, (v - cfg.threshold).abs())
        v = cfg.tau * v * (1 - float_spikes[t])
    clear = margin > 2.0**-k  # decay rounding on Loihi is below one unit
    assert clear.sum() > 300
    assert torch.equal(float_spikes[:, clear].float(), loihi_spikes[:, clear].float())
    assert float_spikes.sum() > 100


def test_loihi_mode_has_gradients():
    from gac_deploy.models.lif import LIF

    lif = LIF(LIFConfig())
    lif.scale_exp = 6
    x = (torch.rand(4, 50) * 0.9).requires_grad_()
    lif(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "cfg",
    [
        LIFConfig(),
        LIFConfig(strict=False, reset=0.1),
        AUTHORS_CIFAR_LIF,
        LIFConfig(surrogate="triangle", surrogate_width=0.5, tau=0.9),
    ],
)
def test_hand_written_backward_equals_autograd(cfg):
    from gac_deploy.models.lif import LIFOverTime, lif_forward_autograd

    torch.manual_seed(0)
    x = (torch.rand(6, 3, 50, dtype=torch.float64) * 1.5).requires_grad_()
    weights = torch.randn(6, 3, 50, dtype=torch.float64)
    ref = lif_forward_autograd(x, cfg)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    out = LIFOverTime.apply(x, cfg)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    assert torch.equal(out, ref)
    torch.testing.assert_close(grad, grad_ref, atol=1e-12, rtol=1e-10)
    assert grad.abs().sum() > 0


def test_compiled_recurrences_agree_with_the_eager_loops():
    from gac_deploy.models import lif

    cfg = LIFConfig(surrogate="triangle", surrogate_width=0.5, tau=0.75)
    torch.manual_seed(0)
    x = (torch.rand(4, 2, 3, 40) * 1.5).requires_grad_()
    weights = torch.randn(4, 2, 3, 40)
    out = {}
    for compiled in (False, True):
        with lif.compiled_recurrences(compiled):
            spikes = lif.LIFOverTime.apply(x, cfg)
            (grad,) = torch.autograd.grad((spikes * weights).sum(), x)
        out[compiled] = spikes, grad
    assert set(lif._compiled) == {"forward", "backward"}  # the compiled loops ran
    assert not lif._use_compiled  # and the context put the eager loops back
    assert torch.equal(out[True][0], out[False][0])
    torch.testing.assert_close(out[True][1], out[False][1], atol=1e-6, rtol=1e-5)
    assert out[False][1].abs().sum() > 0

"""bench/train_speed.py compares against a straightforward form of the same math: it must
give the same loss and gradients as the model's own (factored, hand-written backward)."""

from gac_deploy.testing import check_equal


def test_straightforward_form_has_the_same_gradients():
    assert check_equal("digits-gac-msresnet", 4) < 1e-10


def test_byte_spikes_leave_gradients_unchanged_in_both_shortcut_modes():
    import torch
    from torch.nn import functional as F

    import gac_deploy.models.msresnet as msresnet
    from gac_deploy.models import build_model, default_config

    for shortcut in ("spike", "membrane"):
        torch.manual_seed(0)
        model = build_model(default_config("digits-gac-msresnet", shortcut=shortcut)).double()
        image = torch.randn(4, 1, 8, 8, dtype=torch.float64) * 2
        grads = []
        for pack in (True, False):
            msresnet.PACK_SPIKES = pack
            model.zero_grad()
            F.cross_entropy(model.eval()(image), torch.tensor([0, 1, 2, 3])).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        msresnet.PACK_SPIKES = True
        for a, b in zip(*grads, strict=True):
            assert torch.equal(a, b), shortcut

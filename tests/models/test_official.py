"""Import of the authors' checkpoints, tested on state dicts made in their key format."""

import pytest
import torch

from gac_deploy.errors import UserError
from gac_deploy.models import build_model
from gac_deploy.models.official import import_official, official_config
from gac_deploy.testing import authors_state_dict


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    model = build_model(official_config("msresnet18-cifar", 100, 6))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_config_is_the_authors():
    config = official_config("msresnet18-cifar", 100, 6)
    assert config.shortcut == "membrane"
    assert (config.lif.threshold, config.lif.tau, config.lif.surrogate) == (1.0, 0.5, "triangle")
    assert official_config("msresnet18-imagenet", 1000, 4).lif.threshold == 0.5


@pytest.mark.parametrize(
    ("aliases", "prefix"), [(False, ""), (True, "module."), (False, "module.")]
)
def test_import_reproduces_forward(source, aliases, prefix):
    state = authors_state_dict(source, aliases, prefix)
    model = import_official(state, official_config("msresnet18-cifar", 100, 6))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        diff = (model(x) - source(x)).abs().max().item()
    assert diff < 1e-4


def test_both_alias_sets_at_once(source):
    state = {**authors_state_dict(source), **authors_state_dict(source, aliases=True)}
    import_official(state, official_config("msresnet18-cifar", 100, 6))


def test_missing_and_misshapen_keys_are_listed(source):
    state = authors_state_dict(source)
    del state["layer2.1.conv2.weight"]
    with pytest.raises(UserError, match=r"missing 1: layer2\.1\.conv2\.weight"):
        import_official(state, official_config("msresnet18-cifar", 100, 6))
    with pytest.raises(UserError, match=r"misshapen: fc1\.weight \(100, 512\)"):
        import_official(authors_state_dict(source), official_config("msresnet18-cifar", 10, 6))


def test_hand_checkable_network():
    """Zero weights everywhere except BatchNorm shifts: every spike follows from Eq. 1.

    Stem: f(X) = 2 > 1, so the encoder LIF (threshold 1, tau 0.5) fires at every step;
    TA and SCA are zero, so the gate is sigmoid(0) = 0.5 and O = 0.5 everywhere. Each
    stage's downsample (membrane shortcut) then replaces the stream with its BN shift;
    the last one is 0.6, so the head LIF sees 0.6 at every step: v = 0.6, 0.9, 1.05 ->
    spike at steps 3 and 6 of 6. Pooled spike rate 2/6, logits = W @ (1/3) + b.
    """
    config = official_config("msresnet18-cifar", 10, 6)
    model = build_model(config)
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = torch.ones_like(state[k])
    state["encoder.bn.bias"] = torch.full((64,), 2.0)
    state["blocks.6.downsample.bn.bias"] = torch.full((512,), 0.6)
    torch.manual_seed(1)
    state["fc.weight"] = torch.randn(10, 512)
    state["fc.bias"] = torch.randn(10)
    model.load_state_dict(state)
    imported = import_official(authors_state_dict(model.eval()), config)
    with torch.no_grad():
        o = imported.encoder(torch.randn(1, 3, 8, 8))
        logits = imported(torch.randn(1, 3, 8, 8))
    assert torch.allclose(o, torch.full_like(o, 0.5))
    expected = state["fc.weight"].sum(dim=1) / 3 + state["fc.bias"]
    assert torch.allclose(logits[0], expected, atol=1e-5)

"""GAC encoder: Eq. 2-5, static-input factoring, ablations and coding baselines."""

import pytest
import torch

from gac_deploy.config import ModelConfig
from gac_deploy.models.encoder import build_encoder
from gac_deploy.models.lif import lif_forward


def naive_gac(encoder, image):
    """The per-step computation of the authors' code: the image repeated T times,
    stem, TA pooling, SCA and gating evaluated at every step."""
    t = encoder.time_steps
    x = image.unsqueeze(0).expand(t, *image.shape).flatten(0, 1)  # [T*N, C, H, W]
    f = encoder.bn(encoder.conv(x))
    f = f.view(t, image.shape[0], *f.shape[1:])  # [T, N, C, H, W]
    spikes = lif_forward(f, encoder.lif.config)
    pooled_avg = f.mean(dim=(2, 3, 4)).T  # [N, T]
    pooled_max = f.amax(dim=(2, 3, 4)).T
    m = (encoder.ta.mlp(pooled_avg) + encoder.ta.mlp(pooled_max)).T  # [T, N]
    n = torch.stack([encoder.sca(f[i]) for i in range(t)])
    return torch.sigmoid(m[:, :, None, None, None] * n) * spikes


def make_encoder(**overrides):
    torch.manual_seed(0)
    config = ModelConfig(stem_channels=6, time_steps=6, **overrides)
    return build_encoder(config)


def test_factored_equals_naive_in_eval_mode():
    encoder = make_encoder().eval()
    with torch.no_grad():
        encoder.bn.running_mean.uniform_(-0.5, 0.5)
        encoder.bn.running_var.uniform_(0.5, 2.0)
    image = torch.randn(5, 1, 8, 8) * 2
    with torch.no_grad():
        torch.testing.assert_close(encoder(image), naive_gac(encoder, image), atol=1e-6, rtol=0)


def test_factored_equals_naive_in_train_mode():
    """Same outputs and the same BatchNorm batch statistics (T identical copies per image)."""
    naive, factored = make_encoder().train(), make_encoder().train()
    image = torch.randn(8, 1, 8, 8) * 2
    out_factored = factored(image)
    out_naive = naive_gac(naive, image)
    torch.testing.assert_close(out_factored, out_naive, atol=1e-5, rtol=0)
    torch.testing.assert_close(factored.bn.running_mean, naive.bn.running_mean)
    # The batch variance that normalises is the same (the outputs matched). The running
    # variance stores the unbiased estimate, n / (n - 1) with n = N*H*W versus T*N*H*W,
    # so it differs by that factor alone.
    n = 8 * 8 * 8
    torch.testing.assert_close(
        (factored.bn.running_var - 0.9) * (n - 1) / n,
        (naive.bn.running_var - 0.9) * (6 * n - 1) / (6 * n),
    )
    out_factored.sum().backward()
    out_naive.sum().backward()
    torch.testing.assert_close(
        factored.conv.weight.grad, naive.conv.weight.grad, atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize(
    ("gau", "has_ta", "has_sca"), [("full", True, True), ("ta", True, False), ("sca", False, True)]
)
def test_gau_ablations(gau, has_ta, has_sca):
    encoder = make_encoder(gau=gau).eval()
    assert hasattr(encoder, "ta") == has_ta and hasattr(encoder, "sca") == has_sca
    image = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        o = encoder(image)
        f = encoder.stem(image)
        spikes = lif_forward(encoder.repeat(f), encoder.lif.config)
        if gau == "ta":
            expected = torch.sigmoid(encoder.ta(f).T[:, :, None, None, None]) * spikes
        elif gau == "sca":
            expected = torch.sigmoid(encoder.sca(f)) * spikes
        else:
            expected = o
    torch.testing.assert_close(o, expected)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_sca_kernel_size_and_same_padding():
    encoder = make_encoder(sca_kernel=4).eval()
    assert encoder.sca.conv1.weight.shape[-2:] == (4, 4)
    reference = torch.nn.Conv2d(6, 6, 4, padding="same", bias=False)
    reference.weight.data.copy_(encoder.sca.conv1.weight)
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        first = torch.relu(encoder.sca.conv1(torch.nn.functional.pad(x, encoder.sca.pad)))
        torch.testing.assert_close(first, torch.relu(reference(x)))
    assert make_encoder(sca_kernel=3).sca.conv1.weight.shape[-2:] == (3, 3)


def test_coding_baselines_share_the_interface():
    image = torch.randn(2, 1, 8, 8)
    direct = make_encoder(encoder="direct").eval()
    lif = make_encoder(encoder="lif").eval()
    rate = make_encoder(encoder="rate").eval()
    with torch.no_grad():
        o_direct = direct(image)
        o_lif = lif(image)
        o_rate = rate(image)
    assert o_direct.shape == o_lif.shape == o_rate.shape == (6, 2, 6, 8, 8)
    assert torch.equal(o_direct[0], o_direct[5])  # direct coding repeats f(X)
    assert set(o_lif.unique().tolist()) <= {0.0, 1.0}


def test_rate_coding_is_bernoulli_and_seeded():
    rate = make_encoder(encoder="rate").eval()
    with torch.no_grad():
        rate.conv.weight.zero_()
        rate.conv.weight[:, 0, 1, 1] = 1.0  # centre tap: the stem passes the spike through
        rate.bn.running_mean.zero_()
        rate.bn.running_var.fill_(1.0 - rate.bn.eps)
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, :4] = 1.0  # always spikes
    image[0, 0, 4:6] = 0.5  # spikes half the time
    with torch.no_grad():
        spikes = rate(image)[:, 0, 0]  # [T, H, W]; identity stem
        again = rate(image)[:, 0, 0]
    assert torch.equal(spikes, again)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes[:, :4].min() == 1.0 and spikes[:, 6:].max() == 0.0
    assert 0.2 < float(spikes[:, 4:6].mean()) < 0.8

import torch

from gac_deploy.body.graph import INPUT, check_graph
from gac_deploy.chip.reference import run_float_graph
from gac_deploy.models import build_model, default_config
from gac_deploy.models.lif import lif_forward
from tests.conftest import random_model, small_config


def test_digits_model_shapes():
    model = build_model(default_config("digits-gac-msresnet")).eval()
    x = torch.randn(3, 1, 8, 8)
    assert model(x).shape == (3, 10)
    assert model.forward_steps(x).shape == (4, 3, 10)
    assert model.encoder(x).shape == (4, 3, 16, 8, 8)


def test_encoder_output_is_gated_spikes():
    model = random_model(small_config())
    x = torch.randn(5, 1, 6, 6) * 2
    with torch.no_grad():
        o = model.encoder(x)
        f = model.encoder.stem(x)
        spikes = lif_forward(f.expand(4, *f.shape), model.config.lif)
    assert float(o.min()) >= 0.0 and float(o.max()) < 1.0
    assert torch.equal(o > 0, spikes > 0)
    assert spikes.sum() > 0


def test_float_graph_reproduces_model():
    model = random_model(small_config(), seed=3)
    x = torch.randn(4, 1, 6, 6) * 2
    with torch.no_grad():
        o = model.encoder(x)
        logits = model.body(o).mean(0)
    graph = model.export_graph()
    check_graph(graph)
    run = run_float_graph(graph, o.double())
    torch.testing.assert_close(run.scores / graph.time_steps, logits.double(), atol=1e-5, rtol=0)
    total = sum(float(s.sum()) for s in run.spikes.values())
    assert total > 0


def test_residual_stream_edges():
    graph = random_model(small_config()).export_graph()
    into = {p.name: sorted(e.layer for e in graph.incoming(p.name)) for p in graph.populations}
    assert into["block1.lif1"] == ["input"]
    # identity shortcut: block 3 reads O, block 1's and block 2's outputs
    assert into["block2.lif1"] == ["block1.conv2", "input"]
    assert into["block3.lif1"] == ["block1.conv2", "block2.conv2", "input"]
    # downsampling block restarts the stream from its own spikes
    assert into["head.lif"] == ["block3.conv2", "block3.downsample"]
    assert [e.src for e in graph.incoming("block1.lif1")] == [INPUT]

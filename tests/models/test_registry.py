"""Architectures: parameter counts equal the authors' exactly (official implementation facts)."""

import pytest
import torch

from gac_deploy.errors import UserError
from gac_deploy.models import build_model
from gac_deploy.models.registry import count_parameters, default_config, list_models

AUTHORS_COUNTS = [
    ("msresnet18-cifar", {"num_classes": 10, "time_steps": 6}, 12_633_198),
    ("msresnet18-cifar", {"num_classes": 10, "time_steps": 6, "encoder": "direct"}, 12_502_090),
    ("msresnet18-cifar", {"num_classes": 100, "time_steps": 6}, 12_679_368),
    ("msresnet18-cifar", {"num_classes": 100, "time_steps": 6, "encoder": "direct"}, 12_548_260),
    ("msresnet18-imagenet", {"time_steps": 4}, 11_824_824),
    ("msresnet18-imagenet", {"time_steps": 4, "encoder": "direct"}, 11_693_736),
    ("msresnet34-imagenet", {"time_steps": 4}, 21_932_984),
    ("msresnet34-imagenet", {"time_steps": 4, "encoder": "direct"}, 21_801_896),
]


@pytest.mark.parametrize(("name", "overrides", "expected"), AUTHORS_COUNTS)
def test_parameter_counts_match_authors(name, overrides, expected):
    assert count_parameters(default_config(name, **overrides)) == expected


def test_registry_lists_models():
    assert {
        "digits-gac-msresnet",
        "msresnet18-cifar",
        "msresnet18-imagenet",
        "msresnet34-imagenet",
    } <= set(list_models())
    with pytest.raises(UserError, match="unknown model"):
        default_config("resnet-9000")


def test_imagenet_resolution_schedule():
    config = default_config("msresnet18-imagenet")
    model = build_model(config).eval()
    assert model.encoder_output_shape() == (64, 112, 112)
    graph = model.export_graph()
    shapes = {p.name: p.shape for p in graph.populations}
    assert shapes["block1.lif2"] == (64, 56, 56)
    assert shapes["head.lif"] == (512, 7, 7)


def test_cifar_forward_runs():
    model = build_model(default_config("msresnet18-cifar", num_classes=100)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 100)


def test_membrane_shortcut_is_a_mac_layer_in_pytorch_and_composed_edges_in_the_graph():
    # export used to refuse membrane shortcuts; it now composes them
    spike = build_model(default_config("digits-gac-msresnet"))
    membrane = build_model(default_config("digits-gac-msresnet", shortcut="membrane"))
    assert spike.layer_ops()["block2.downsample"] == "AC"
    assert membrane.layer_ops()["block2.downsample"] == "MAC"
    assert membrane.layer_ops()["encoder.conv"] == "MAC"
    layers = {e.layer for e in membrane.eval().export_graph().edges}
    assert "block2.downsample" not in layers
    assert {"block2.downsample@input", "block2.downsample@block1.conv2"} <= layers

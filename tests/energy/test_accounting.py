import re

import pytest
import torch

from gac_deploy.body.ops import LayerSpec, layer_specs
from gac_deploy.energy.accounting import paper_energy
from gac_deploy.energy.report import SignalCounts, energy_report
from gac_deploy.training.evaluate import population_rates
from tests.conftest import random_model, small_config


def test_eq11_by_hand():
    specs = [
        LayerSpec("stem", "host", "MAC", 1000, None),
        LayerSpec("conv", "chip", "AC", 2000, "a"),
        LayerSpec("fc", "chip", "AC", 50, "b"),
    ]
    rows = paper_energy(specs, {"a": 0.25, "b": 0.5}, time_steps=4)
    assert [r.energy_pj for r in rows] == pytest.approx(
        [4600.0, 0.9 * 2000 * 0.25 * 4, 0.9 * 50 * 0.5 * 4]
    )


def test_firing_rate_is_eq12_and_counts_add_up():
    """Eq. 12 over [T, N, C, F] spikes; the counts of two disjoint halves of the images
    add up to the counts of all of them (what sharded processes merge)."""
    spikes = torch.zeros(4, 2, 3, 5)
    spikes[0, 0, 0, 0] = 1
    spikes[3, 1, 2, 4] = 1
    labels, predictions = torch.tensor([1, 2]), torch.tensor([1, 0])
    whole = SignalCounts.of({"p": spikes}, predictions, labels)
    assert whole.rate("p") == 2 / (15 * 4 * 2) and whole.correct == 1
    halves = [SignalCounts.of({"p": spikes[:, i : i + 1]}, predictions[i : i + 1],
                              labels[i : i + 1]) for i in (0, 1)]  # fmt: skip
    merged = halves[0] + halves[1]
    assert merged.rate("p") == whole.rate("p") and merged.images == 2 and merged.correct == 1
    assert (merged.positions["p"] == whole.positions["p"]).all()


def counted_flops(model, image: torch.Tensor) -> dict[str, int]:
    """Per-step MACs of the stem, body convs and classifier, counted from the shapes PyTorch
    produces (forward hooks), named as the graph names its layers."""
    counted = {}

    def hook(name):
        def fn(module, _inputs, output):
            if isinstance(module, torch.nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
                counted[name] = k * output.shape[1] * output.shape[2] * output.shape[3]
            else:
                counted[name] = module.in_features * module.out_features

        return fn

    handles = []
    for name, module in model.named_modules():
        in_gau = name.startswith(("encoder.ta", "encoder.sca"))
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear) and not in_gau:
            name = re.sub(r"^blocks\.(\d+)", lambda m: f"block{int(m[1]) + 1}", name)
            handles.append(module.register_forward_hook(hook(name.removesuffix(".conv"))))
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    counted["encoder.conv"] = counted.pop("encoder")
    counted["head.fc"] = counted.pop("fc")
    return counted


def test_layer_flops_match_pytorch_shapes():
    model = random_model(small_config())
    specs = {s.name: s.flops for s in layer_specs(model.export_graph(), model.config)}
    assert specs == counted_flops(model, torch.randn(1, 1, 6, 6))


def test_model_rates_cover_every_population():
    model = random_model(small_config())
    rates = population_rates(model, torch.randn(8, 1, 6, 6) * 2)
    assert set(rates) == set(model.populations())
    assert all(0.0 <= r <= 1.0 for r in rates.values())


def test_bundle_and_checkpoint_reports(trained_dir, bundle_dir):
    from_bundle = energy_report(bundle_dir, samples=32)
    from_model = energy_report(trained_dir / "model.pt", samples=32)
    assert [r.name for r in from_bundle.paper] == [r.name for r in from_model.paper]
    assert from_bundle.paper[0].op == "MAC" and from_bundle.paper[0].energy_pj == pytest.approx(
        4.6 * 3 * 3 * 1 * 16 * 8 * 8
    )
    assert from_bundle.paper_pj == pytest.approx(sum(r.energy_pj for r in from_bundle.paper))
    # the quantised network fires at rates close to the float one
    for name, rate in from_model.firing_rates.items():
        if name in from_bundle.firing_rates:
            assert abs(rate - from_bundle.firing_rates[name]) < 0.1, name

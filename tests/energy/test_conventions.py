"""Operation counts against independent numbers; both conventions; profiles; what-if."""

import json

import pytest
import torch

from gac_deploy.body.ops import layer_specs
from gac_deploy.energy.accounting import encoder_ops
from gac_deploy.energy.report import energy_report
from gac_deploy.models import build_model, default_config
from gac_deploy.registries.profiles import PROFILES
from tests.energy.test_accounting import counted_flops


@pytest.mark.parametrize("arch", ["msresnet18-imagenet", "msresnet34-imagenet"])
def test_imagenet_op_counts(arch):
    config = default_config(arch, time_steps=2)
    model = build_model(config).eval()
    graph = model.export_graph()
    ops = {name: count for name, _, count, _ in encoder_ops(config, graph)}
    assert ops["encoder.conv"] == 7 * 7 * 3 * 64 * 112 * 112 == 118_013_952
    assert ops["encoder.sca"] == 2 * 64 * 64 * 16 * 112 * 112  # one evaluation (static input)

    specs = {s.name: s.flops for s in layer_specs(graph, config)}
    assert specs == counted_flops(model, torch.randn(1, 3, 224, 224))


def test_what_if_paper_total_is_eq11_by_hand():
    report = energy_report(arch="msresnet18-imagenet", time_steps=6, firing_rate_value=0.154)
    config = default_config("msresnet18-imagenet", time_steps=6)
    specs = layer_specs(build_model(config).eval().export_graph(), config)
    body = sum(s.flops for s in specs if s.op == "AC")
    expected = 4.6 * 118_013_952 + 0.9 * 6 * 0.154 * body
    assert report.paper_pj == pytest.approx(expected)
    assert not report.exact_events
    assert report.complete_pj > report.paper_pj  # the GAU alone is 1.6 G MACs


def test_complete_counts_everything_for_a_bundle(bundle_dir):
    report = energy_report(bundle_dir, samples=16, profile="loihi")
    kinds = {r.op for r in report.complete}
    assert {
        "MAC",
        "mul",
        "add",
        "host neuron update",
        "AC",
        "graded AC",
        "neuron update",
        "spike",
    } <= kinds
    assert report.exact_events
    loihi = PROFILES.get("loihi")
    for row in report.complete:
        if row.op == "neuron update":
            assert row.energy_pj == pytest.approx(row.ops * loihi.neuron)
        if row.op == "AC":
            assert row.energy_pj == pytest.approx(row.ops * loihi.synop)
    sca = next(r for r in report.complete if r.name == "encoder.sca")
    assert sca.naive_ops == 4 * sca.ops  # the per-step form costs T times as much


def test_profiles_scale_prices():
    fp32 = energy_report(arch="msresnet18-imagenet", time_steps=4, firing_rate_value=0.2)
    int8 = energy_report(
        arch="msresnet18-imagenet", time_steps=4, firing_rate_value=0.2, profile="horowitz45-int8"
    )
    assert int8.paper_pj == pytest.approx(fp32.paper_pj * 0.03 / 0.9, rel=0.9)
    assert int8.paper_pj < fp32.paper_pj / 10


def test_per_population_rates_file(tmp_path):
    config = default_config("digits-gac-msresnet")
    names = [
        p.name for p in build_model(config).eval().export_graph().populations if p.role == "lif"
    ] + ["encoder.lif"]
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(dict.fromkeys(names, 0.1)))
    a = energy_report(arch="digits-gac-msresnet", rates_file=str(path))
    b = energy_report(arch="digits-gac-msresnet", firing_rate_value=0.1)
    assert a.paper_pj == pytest.approx(b.paper_pj)
    path.write_text(json.dumps({names[0]: 0.1}))
    from gac_deploy.errors import UserError

    with pytest.raises(UserError, match="no rate for"):
        energy_report(arch="digits-gac-msresnet", rates_file=str(path))


def test_membrane_shortcut_is_counted_as_its_composed_ac_edges():
    # the authors' downsample used to be one MAC row; the chip now
    # runs it as composed edges from each source of the stream, so both conventions count
    # those as AC (graded AC from O), and no MAC remains on the chip
    spike = energy_report(arch="msresnet18-imagenet", time_steps=4, firing_rate_value=0.2)
    membrane = energy_report(
        arch="msresnet18-imagenet", time_steps=4, firing_rate_value=0.2, shortcut="membrane"
    )
    rows = [r for r in membrane.complete if ".downsample" in r.name]
    assert rows and all("@" in r.name for r in rows)
    assert {r.op for r in rows} == {"AC", "graded AC"}
    assert not [r for r in membrane.complete if r.placement == "chip" and r.op == "MAC"]
    assert all(r.ops == pytest.approx(r.flops * 0.2 * 4) for r in rows)  # estimated events
    paper = [r for r in membrane.paper if ".downsample" in r.name]
    assert {r.name for r in paper} == {r.name.split("->")[0] for r in rows}
    assert membrane.complete_pj > spike.complete_pj

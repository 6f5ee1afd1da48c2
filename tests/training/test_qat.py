"""Quantisation-aware fine-tuning trains exactly the network that is exported."""

import numpy as np
import pytest
import torch

from gac_deploy.body.quantize import QuantSpec, choose_format, quantize_graph, quantize_payload
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.chip.reference import run_quantized_graph
from gac_deploy.config import TrainConfig
from gac_deploy.data import load_split
from gac_deploy.errors import UserError
from gac_deploy.export.loading import load_bundle
from gac_deploy.export.targets import export_bundle
from gac_deploy.training.qat import QATModel, check_round_trip, write_back
from gac_deploy.training.trainer import train
from tests.conftest import random_model, small_config


def test_qat_model_is_the_quantised_reference(trained_dir):
    ckpt = load_checkpoint(trained_dir / "model.pt")
    model = ckpt.build()
    spec = choose_format(model.export_graph())
    qat = QATModel(model, spec).eval()
    images = load_split(ckpt.data).test_images(48)[0]
    with torch.no_grad():
        scores = qat(images)
        encoded = model.encoder(images)
    graph, _ = quantize_graph(model.export_graph(), spec)
    payload = torch.clamp(
        torch.round(encoded.double() * 2.0**spec.payload_bits), 0, 2**spec.payload_bits - 1
    )
    reference = run_quantized_graph(graph, payload)
    k = spec.scale_exp["readout"]
    # the read-out voltage is T * scores in units of 2**-k, times 64
    expected = reference.scores / (64 * 2.0**k * graph.time_steps)
    torch.testing.assert_close(scores.double(), expected, atol=1e-6, rtol=0)
    assert torch.equal(scores.argmax(1), reference.predictions)


@pytest.mark.parametrize(
    "overrides", [{"shortcut": "membrane"}, {"encoder": "direct"}], ids=["membrane", "direct"]
)
def test_qat_body_is_the_quantised_reference(overrides):
    """Composed membrane shortcuts (recomposed from the trainable layers) and signed
    graded input (direct coding) run in QAT exactly as the exported graph runs."""
    model = random_model(small_config(**overrides), seed=2)
    spec = choose_format(model.export_graph())
    qat = QATModel(model, spec).eval()
    graph, _ = quantize_graph(model.export_graph(), spec)
    for edge in model.export_graph().edges:  # the composition QAT trains is the exported one
        if edge.kind == "conv":
            weight = qat.body.layer_weight(edge.layer, graph.input_shape[0])
            assert torch.allclose(weight.double(), torch.from_numpy(edge.weight), atol=1e-6)
    torch.manual_seed(0)
    images = torch.randn(8, 1, 6, 6) * 2
    with torch.no_grad():
        scores = qat(images)
        payload = quantize_payload(
            model.encoder(images).double(), spec.payload_bits, graph.signed_input
        )
    reference = run_quantized_graph(graph, payload)
    k = spec.scale_exp["readout"]
    expected = reference.scores / (64 * 2.0**k * graph.time_steps)
    torch.testing.assert_close(scores.double(), expected, atol=1e-6, rtol=0)
    assert sum(s.sum() for s in reference.spikes.values()) > 0


def test_qat_fine_tunes_an_imported_membrane_model(tmp_path):
    """import-official -> train --qat --init on CIFAR files -> export -> emulator exact."""
    from dataclasses import replace as replaced

    from gac_deploy.checkpoint import Checkpoint, save_checkpoint
    from gac_deploy.chip.emulator import emulate
    from gac_deploy.data import load_dataset
    from gac_deploy.models.official import import_official, official_config
    from gac_deploy.testing import authors_state_dict, write_cifar
    from tests.cli.test_cli import cli

    root = tmp_path / "cifar"
    write_cifar(root, 10, per_file=4)  # 20 training images: 3 steps of 8, 8, 4
    config = official_config("msresnet18-cifar", 10, 6)  # the authors' arch at channels / 16
    stages = tuple(replaced(s, channels=s.channels // 16) for s in config.stages)
    config = replaced(config, stem_channels=4, stages=stages)
    imported = import_official(authors_state_dict(random_model(config, seed=0)), config)
    data = load_dataset("cifar10", str(root)).spec
    save_checkpoint(
        tmp_path / "imported.pt", Checkpoint(config, data, imported.state_dict(), {}, {})
    )
    trained = cli(
        "train", "--qat", "--init", str(tmp_path / "imported.pt"), "--dataset", "cifar10",
        "--data-dir", str(root), "--epochs", "1", "--batch-size", "8", "--lr", "0.01",
        "--out", str(tmp_path / "qat"), "--quiet",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    ckpt = load_checkpoint(tmp_path / "qat" / "model.pt")
    assert ckpt.quantization is not None and ckpt.model_config.shortcut == "membrane"
    moved = [k for k, v in ckpt.state_dict.items() if "downsample" in k and k.endswith("weight")]
    assert any(not torch.equal(ckpt.state_dict[k], imported.state_dict()[k]) for k in moved)
    exported = cli("export", str(tmp_path / "qat" / "model.pt"), "--out", str(tmp_path / "b"))
    assert exported.returncode == 0, exported.stderr
    bundle = load_bundle(tmp_path / "b")
    assert any("downsample@" in e.layer for e in bundle.graph.edges)
    images = load_dataset("cifar10", str(root)).test_images(4)[0].numpy()
    payload = torch.from_numpy(np.rint(bundle.encode(images)[1]))
    run = emulate(bundle.graph, payload)
    reference = run_quantized_graph(bundle.graph, payload.double())
    for name, spikes in reference.spikes.items():
        assert torch.equal(run.spikes[name].double(), spikes.double()), name
    assert torch.equal(run.readout, reference.readout.to(run.readout.dtype))
    # the fine-tuned body's fixed-point accuracy is what the exported chip computes
    qat = QATModel(ckpt.build(), QuantSpec.from_dict(ckpt.quantization)).eval()
    with torch.no_grad():
        assert torch.equal(qat(torch.from_numpy(images)).argmax(1), reference.predictions)


def test_write_back_round_trips_weights(trained_dir):
    model = load_checkpoint(trained_dir / "model.pt").build()
    qat = QATModel(model, choose_format(model.export_graph()))
    with torch.no_grad():
        for p in qat.body.weight.values():
            p.add_(0.01)
    write_back(model, qat.body)
    assert check_round_trip(model, qat.body) < 1e-6


def test_qat_fine_tunes_and_export_keeps_its_format(trained_dir, tmp_path):
    init = load_checkpoint(trained_dir / "model.pt")
    ckpt = train(
        init.model_config,
        TrainConfig(epochs=1, lr=0.01),
        tmp_path / "qat",
        init=init,
        qat=True,
        max_steps=8,
        progress=False,
    )
    assert ckpt.quantization is not None
    assert 0.0 < ckpt.metrics["quantized_test_acc_before_qat"] <= 1.0
    changed = any(
        not torch.equal(v, init.state_dict[k])
        for k, v in ckpt.state_dict.items()
        if k.startswith("blocks.")
    )
    assert changed
    bundle = export_bundle(tmp_path / "qat" / "model.pt", tmp_path / "bundle")
    exps = {q["population"]: q["scale_exp"] for q in bundle.manifest["quantization"]}
    assert exps == ckpt.quantization["scale_exp"]
    assert bundle.graph.payload_bits == ckpt.quantization["payload_bits"]
    assert bundle.manifest["quantization_aware"] is True
    with pytest.raises(UserError, match="is QAT fine-tuning; resume it with --qat --init"):
        train(init.model_config, TrainConfig(), tmp_path / "qat", resume=True, progress=False)

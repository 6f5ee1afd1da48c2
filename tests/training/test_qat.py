"""Quantisation-aware fine-tuning trains exactly the network that is exported."""

import pytest
import torch

from gac_deploy.body.quantize import choose_format, quantize_graph
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.config import TrainConfig
from gac_deploy.data import load_split
from gac_deploy.errors import UserError
from gac_deploy.export.bundle import export_bundle
from gac_deploy.hardware.reference import run_quantized_graph
from gac_deploy.training.qat import QATModel, check_round_trip, write_back
from gac_deploy.training.trainer import train


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

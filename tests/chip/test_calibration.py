"""The payload's bits chosen on data (chip/calibration.py), in export and in QAT."""

import pytest
import torch

from gac_deploy.body.quantize import choose_format, quantize_graph, quantize_payload
from gac_deploy.body.timing import balance_delays
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.chip.calibration import (
    calibrate_model,
    calibrate_payload,
    calibration_images,
    encode,
    mean_spike_mismatch,
)
from gac_deploy.chip.fidelity import measure_fidelity
from gac_deploy.cli import main as cli
from gac_deploy.data import load_split
from gac_deploy.export.loading import load_bundle


@pytest.fixture(scope="module")
def trained(trained_dir):
    ckpt = load_checkpoint(trained_dir / "model.pt")
    return ckpt.build(), load_split(ckpt.data)


def test_the_payload_chosen_departs_least_from_float(trained):
    model, split = trained
    images, labels = calibration_images(split, 12)
    encoded = encode(model, images)
    graph = model.export_graph()
    calibration = calibrate_payload(graph, encoded, labels)
    fitting = [b for b in range(1, 9) if _fits(graph, b)]
    assert sorted(calibration.mismatch) == fitting
    assert calibration.mismatch[calibration.bits] == min(calibration.mismatch.values())
    assert calibration.spec == choose_format(graph, payload_bits=calibration.bits)
    assert calibration.rule_bits == choose_format(graph).payload_bits
    # each figure is measure_fidelity's, recomputed here for two payloads
    for bits in (1, max(fitting)):
        chip, _ = quantize_graph(graph, choose_format(graph, payload_bits=bits))
        chip = chip.with_delays(balance_delays(chip).delay)
        payload = quantize_payload(encoded, bits, chip.signed_input)
        measured = measure_fidelity(graph, chip, encoded, payload, labels)
        assert calibration.mismatch[bits] == pytest.approx(mean_spike_mismatch(measured))
    assert len(set(calibration.mismatch.values())) > 1  # the payload matters on real data


def _fits(graph, bits: int) -> bool:
    try:
        choose_format(graph, payload_bits=bits)
    except ValueError:
        return False
    return True


def test_calibration_images_are_seeded_training_images(trained):
    _, split = trained
    images, labels = calibration_images(split, 10)
    again, _ = calibration_images(split, 10)
    assert images.shape[0] == 10 and torch.equal(images, again)
    train_x, train_y = split.train.batch(torch.arange(len(split.train)))
    for image, label in zip(images, labels, strict=True):
        index = int((train_x - image).flatten(1).abs().amax(1).argmin())
        assert torch.equal(train_x[index], image) and train_y[index] == label
    test_x, _ = split.test_images()
    assert not any(torch.equal(t, images[0]) for t in test_x)


def test_export_uses_the_calibrated_payload_and_says_so(trained_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    args = ["export", str(trained_dir / "model.pt"), "--samples", "0", "--calibrate", "8"]
    assert cli([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    ckpt = load_checkpoint(trained_dir / "model.pt")
    model, split = ckpt.build(), load_split(ckpt.data)
    expected = calibrate_model(model, split, 8)
    assert load_bundle(out).graph.payload_bits == expected.bits
    assert f"payload {expected.bits} bits chosen on 8 training images" in printed
    assert cli([*args[:-1], "0", "--out", str(tmp_path / "rule")]) == 0
    rule = load_bundle(tmp_path / "rule").graph.payload_bits
    assert rule == expected.rule_bits and "chosen on" not in capsys.readouterr().out


def test_export_without_the_data_chooses_without_it(trained_dir, tmp_path, capsys):
    """A checkpoint whose test split is not the data at hand: the payload is chosen by
    the data-free rule, and export says why in one line."""
    ckpt = torch.load(trained_dir / "model.pt", weights_only=True)
    ckpt["data"] = {**ckpt["data"], "test_hash": "0" * 64}
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    code = cli(["export", str(path), "--out", str(tmp_path / "b"), "--samples", "0"])
    printed = capsys.readouterr().out
    assert code == 0 and "(payload chosen without data: " in printed
    graph = load_checkpoint(path).build().export_graph()
    assert load_bundle(tmp_path / "b").graph.payload_bits == choose_format(graph).payload_bits


def test_a_calibrated_nir_round_trip_is_the_calibrated_loihi2_bundle(trained_dir, tmp_path):
    model = str(trained_dir / "model.pt")
    common = ["--samples", "0", "--calibrate", "8"]
    assert cli(["export", model, "--out", str(tmp_path / "loihi2"), *common]) == 0
    assert cli(["export", model, "--target", "nir", "--out", str(tmp_path / "nir"), *common]) == 0
    assert cli(["import-nir", str(tmp_path / "nir"), "--out", str(tmp_path / "back")]) == 0
    direct, back = load_bundle(tmp_path / "loihi2").graph, load_bundle(tmp_path / "back").graph
    assert back.payload_bits == direct.payload_bits
    assert [p.scale_exp for p in back.populations] == [p.scale_exp for p in direct.populations]
    assert all((a.weight == b.weight).all() for a, b in zip(direct.edges, back.edges, strict=True))

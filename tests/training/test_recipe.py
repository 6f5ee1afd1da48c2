"""Training: resume reproduces an uninterrupted run; presets and YAML; real on-disk formats."""

import json
from dataclasses import replace

import pytest
import torch
import yaml

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.config import ModelConfig, TrainConfig
from gac_deploy.data import ArrayDataset, DataSpec, load_synthetic_split
from gac_deploy.errors import UserError
from gac_deploy.testing import write_cifar, write_imagenet
from gac_deploy.training.settings import resolve
from gac_deploy.training.trainer import train
from tests.cli.test_cli import assert_user_error, cli

SMALL = ModelConfig(image_size=8, num_classes=4, stem_channels=4, time_steps=2)


@pytest.mark.parametrize("encoder", ["gac", "rate"])  # rate coding draws from torch's RNG
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, encoder):
    split = load_synthetic_split(seed=0)
    raw = DataSpec("synthetic")  # pixels left in [0, 1]: fractional firing probabilities
    split = replace(
        split,
        train=ArrayDataset(split.train.images.numpy(), split.train.labels.numpy(), raw),
        test=ArrayDataset(split.test.images.numpy(), split.test.labels.numpy(), raw),
    )
    config = TrainConfig(dataset="synthetic", epochs=2, batch_size=16, lr=0.05)
    model = replace(SMALL, encoder=encoder)
    full = train(model, config, tmp_path / "full", split=split, progress=False)
    # the interrupted run stops mid-epoch (step 11 of 16), leaving OUT/last.pt
    assert (
        train(model, config, tmp_path / "cut", split=split, progress=False, stop_after=11) is None
    )
    resumed = train(model, config, tmp_path / "cut", split=split, progress=False, resume=True)
    for key, value in full.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key
    assert resumed.metrics["steps"] == full.metrics["steps"] == 16
    rows = [
        [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("full", "cut")
    ]
    for a, b in zip(*rows, strict=True):  # the epoch cut in two reports the whole epoch
        assert (a["loss"], a["train_acc"], a["test_acc"]) == (
            b["loss"],
            b["train_acc"],
            b["test_acc"],
        )
    best = max(rows[0], key=lambda r: r["test_acc"])
    assert (resumed.metrics["best_test_acc"], resumed.metrics["best_epoch"]) == (
        best["test_acc"],
        best["epoch"],
    )


def test_resume_from_the_command_line_takes_the_runs_own_settings(tmp_path):
    split = load_synthetic_split(seed=3)
    config = TrainConfig(dataset="synthetic", epochs=2, batch_size=16, lr=0.05, seed=3)
    full = train(SMALL, config, tmp_path / "full", split=split, progress=False)
    for cut in ("a", "b"):
        train(SMALL, config, tmp_path / cut, split=split, progress=False, stop_after=5)
    # bare --resume: everything comes from OUT/last.pt
    assert cli("train", "--resume", "--out", str(tmp_path / "a"), "--quiet").returncode == 0
    # the command that started the run, relaunched with --resume: accepted unless it changed
    same = ["train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "16"]
    same += ["--lr", "0.05", "--seed", "3", "--out", str(tmp_path / "b"), "--resume", "--quiet"]
    assert_user_error(cli(*same, "--epochs", "3"), "--epochs 3 (was 2)")
    assert cli(*same, "--checkpoint-every", "2").returncode == 0  # may change
    for cut in ("a", "b"):
        resumed = load_checkpoint(tmp_path / cut / "model.pt")
        for key, value in full.state_dict.items():
            assert torch.equal(value, resumed.state_dict[key]), (cut, key)
    assert_user_error(
        cli("train", "--resume", "--out", str(tmp_path / "a")), "finished at step 16 of 16"
    )


def test_nan_loss_stops_with_the_last_good_state(tmp_path):
    split = load_synthetic_split(seed=0)
    config = TrainConfig(dataset="synthetic", epochs=3, batch_size=16, lr=1e30, checkpoint_every=1)
    with pytest.raises(UserError, match="loss became .* last good state .*last.pt"):
        train(SMALL, config, tmp_path, split=split, progress=False)


def test_nan_loss_before_any_state_names_no_state(tmp_path):
    """Without a saved state the message must not point at a last.pt."""
    split = load_synthetic_split(seed=0)
    config = TrainConfig(dataset="synthetic", epochs=3, batch_size=16, lr=1e30)
    with pytest.raises(UserError, match="before any training state was saved") as info:
        train(SMALL, config, tmp_path, split=split, progress=False)
    assert "last.pt" not in str(info.value) and not (tmp_path / "last.pt").exists()


def test_presets_yaml_and_flags_layer_in_order(tmp_path):
    model, train_config = resolve({}, "cifar100-paper")
    assert (model.arch, model.time_steps) == ("msresnet18-cifar", 6)
    assert (
        train_config.epochs,
        train_config.batch_size,
        train_config.weight_decay,
        train_config.cutmix,
    ) == (250, 64, 5e-4, 1.0)
    _, imagenet = resolve({}, "imagenet-paper")
    assert imagenet.label_smoothing == 0.1 and imagenet.batch_size == 256
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"epochs": 7, "lr": 0.05}))
    model, train_config = resolve({"lr": 0.01}, "cifar10-paper", str(path))
    assert (train_config.epochs, train_config.lr, train_config.dataset) == (7, 0.01, "cifar10")
    path.write_text(yaml.safe_dump({"epochz": 3}))
    with pytest.raises(UserError, match="unknown settings: epochz"):
        resolve({}, None, str(path))
    # YAML 1.1 reads 1e-1 as a string and 3 as an int: both become the field's type
    path.write_text("lr: 1e-1\nweight_decay: 0\ntensorboard: true\n")
    _, typed = resolve({}, None, str(path))
    assert (typed.lr, typed.weight_decay, typed.tensorboard) == (0.1, 0.0, True)
    assert isinstance(typed.weight_decay, float)
    for bad, message in (("epochs: 2.5", "epochs must be a number"), ("lr: fast", "lr must")):
        path.write_text(bad)
        with pytest.raises(UserError, match=message):
            resolve({}, None, str(path))


def test_train_on_cifar_files_and_resolved_config(tmp_path):
    write_cifar(tmp_path / "cifar10", 10, per_file=8)
    out = tmp_path / "run"
    result = cli(
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(tmp_path / "cifar10"),
        "--cutmix",
        "1.0",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "-T",
        "2",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["in_channels"] == 3 and saved["model"]["image_size"] == 32
    assert saved["train"]["dataset"] == "cifar10" and saved["train"]["cutmix"] == 1.0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(rows[0]) >= {"loss", "test_acc", "lr", "images_per_s", "firing_rates"}
    again = cli(
        "train",
        "--config",
        str(out / "config.yaml"),
        "--data-dir",
        str(tmp_path / "cifar10"),
        "--max-steps",
        "1",
        "--out",
        str(tmp_path / "r2"),
        "--quiet",
    )
    assert again.returncode == 0, again.stderr
    evaluated = cli(
        "evaluate",
        str(out / "model.pt"),
        "--dataset",
        "cifar10",
        "--data-dir",
        str(tmp_path / "cifar10"),
    )
    assert evaluated.returncode == 0 and "on 8 cifar10 test images" in evaluated.stdout
    assert_user_error(
        cli("evaluate", str(out / "model.pt"), "--dataset", "cifar100"),
        "trained on cifar10, not cifar100",
    )
    assert_user_error(
        cli("train", "--dataset", "cifar10", "--out", str(tmp_path / "x")), "--data-dir"
    )
    assert_user_error(
        cli("train", "--resume", "--out", str(tmp_path / "fresh")), "nothing to resume"
    )


def test_tensorboard_logs_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    split = load_synthetic_split(seed=0)
    config = TrainConfig(dataset="synthetic", epochs=2, batch_size=32, tensorboard=True)
    ckpt = train(SMALL, config, tmp_path, split=split, progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"loss", "test_acc", "lr", "firing_rate/head.lif"} <= set(tags)
    test_acc = [e.value for e in events.Scalars("test_acc")]
    assert len(test_acc) == 2
    assert abs(test_acc[-1] - ckpt.metrics["test_acc"]) < 1e-6


def test_imagenet_preset_trains_on_an_image_folder(tmp_path):
    """The ImageNet recipe end to end on a tiny ImageFolder tree: decoding, random resized
    crops, label smoothing, the 224x224 MS-ResNet-18 (T reduced to 2 for speed)."""
    write_imagenet(tmp_path / "imagenet")
    out = tmp_path / "run"
    result = cli(
        "train",
        "--preset",
        "imagenet-paper",
        "--data-dir",
        str(tmp_path / "imagenet"),
        "-T",
        "2",
        "--batch-size",
        "2",
        "--max-steps",
        "2",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["arch"] == "msresnet18-imagenet" and saved["model"]["image_size"] == 224
    assert saved["model"]["num_classes"] == 2 and saved["train"]["label_smoothing"] == 0.1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 2 and 0.0 <= rows[0]["test_acc"] <= 1.0
    evaluated = cli("evaluate", str(out / "model.pt"), "--samples", "4")
    assert evaluated.returncode == 0 and "on 4 imagenet test images" in evaluated.stdout


def test_setting_errors_speak_of_settings():
    """The configuration names the setting; the CLI adds the flag that gave it."""
    for kwargs, message in (
        ({"lr": -1.0}, "lr must be positive, got -1.0"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"cutmix": float("nan")}, "cutmix must be a finite number, got nan"),
    ):
        with pytest.raises(UserError) as caught:
            TrainConfig(**kwargs)
        assert (str(caught.value), caught.value.setting) == (message, next(iter(kwargs)))


def test_normalisation_flags_are_stored_with_the_model_and_kept_by_init(tmp_path):
    run = ["train", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "1", "--quiet"]
    result = cli(*run, "--mean", "0.25", "--std", "0.5", "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(tmp_path / "a" / "model.pt")
    assert (ckpt.data.mean, ckpt.data.std) == ((0.25,), (0.5,))
    assert "mean:" in (tmp_path / "a" / "config.yaml").read_text()
    init = ["--init", str(tmp_path / "a" / "model.pt"), "--out", str(tmp_path / "b")]
    assert_user_error(cli(*run, *init, "--mean", "0.3", "--std", "0.5"), "drop --mean/--std")
    tuned = cli(*run, *init)
    assert tuned.returncode == 0, tuned.stderr
    assert load_checkpoint(tmp_path / "b" / "model.pt").data.mean == (0.25,)
    assert_user_error(cli(*run, "--std", "0.5", "--out", str(tmp_path / "c")), "go together")
    assert_user_error(
        cli(*run, "--mean", "0.2", "0.3", "--std", "0.5", "0.5", "--out", str(tmp_path / "c")),
        "1 channel(s) but the normalisation gives 2 mean value(s)",
    )


def test_a_paper_architecture_takes_its_input_and_classes_from_the_data(tmp_path):
    """msresnet18-cifar (3x32x32, 10 classes as registered) trains on the 1x8x8 synthetic
    set with 4 classes at full width and depth, and exports."""
    from gac_deploy.models import default_config

    out = tmp_path / "run"
    result = cli(
        "train", "--model", "msresnet18-cifar", "--dataset", "synthetic", "--epochs", "1",
        "--max-steps", "1", "--batch-size", "8", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = load_checkpoint(out / "model.pt").model_config
    registered = default_config("msresnet18-cifar")
    assert (config.in_channels, config.image_size, config.num_classes) == (1, 8, 4)
    assert config.stages == registered.stages and config.stem_channels == 64
    assert config.time_steps == registered.time_steps
    exported = cli("export", str(out / "model.pt"), "--out", str(tmp_path / "b"), "--samples", "0",
                   "--calibrate", "0")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "latency 18 steps" in exported.stdout

"""The dataset recipe: a dataset registered in-process is listed, trained on, evaluated,
exported and simulated through the command line, its test split read by its loader."""

import json

import pytest

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.errors import UserError
from gac_deploy.registries.datasets import DATASETS, DataRequest
from tests.cli.test_choices import help_text
from tests.cli.test_cli import cli
from tests.registries.recipes import recipe


def test_a_registered_dataset_goes_through_the_pipeline(tmp_path):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    with recipe("A dataset"):
        listing = help_text("train")
        assert "stripes: noisy 8x8 stripes" in listing and "stripes-quick" in listing

        trained = cli("train", "--preset", "stripes-quick", "--out", str(run), "--quiet")
        assert trained.returncode == 0, trained.stderr
        ckpt = load_checkpoint(run / "model.pt")
        assert ckpt.data.dataset == "stripes" and ckpt.metrics["epochs"] == 2
        config = ckpt.model_config
        assert (config.num_classes, config.in_channels, config.image_size) == (2, 1, 8)

        report = tmp_path / "evaluate.json"
        evaluated = cli(
            "evaluate", str(run / "model.pt"), "--dataset", "stripes", "--json", str(report)
        )
        assert evaluated.returncode == 0, evaluated.stderr
        result = json.loads(report.read_text())
        # the same 40 test images the trainer measured, read again through the loader
        assert result["samples"] == 40
        assert result["accuracy"] == pytest.approx(ckpt.metrics["test_acc"])

        exported = cli("export", str(run / "model.pt"), "--out", str(bundle), "--samples", "0")
        assert exported.returncode == 0, exported.stderr
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["input"]["data"]["dataset"] == "stripes"
        assert manifest["input"]["layout"] == "NCHW, float32, normalised: (pixel - mean) / std"

        simulated = tmp_path / "simulate.json"
        ran = cli("simulate", str(bundle), "--quiet", "--json", str(simulated))
        assert ran.returncode == 0, ran.stderr
        sim = json.loads(simulated.read_text())
        assert sim["samples"] == 40 and sim["spike_exact"] is True
    assert "stripes" not in DATASETS and "stripes-quick" not in DATASETS.presets()
    gone = cli("simulate", str(bundle), "--quiet")
    assert gone.returncode == 2 and "unknown dataset 'stripes'" in gone.stderr


def test_a_dataset_on_disk_asks_for_its_directory():
    with pytest.raises(UserError, match="--dataset cifar10 reads your local copy: pass --data-dir"):
        DataRequest("cifar10", None).root()
    assert [n for n, e in DATASETS.items() if e.needs_data_dir] == [
        "cifar10",
        "cifar100",
        "imagenet",
    ]

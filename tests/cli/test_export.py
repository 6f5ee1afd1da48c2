"""gac-deploy export measures what the chip keeps of the float model when the data is at hand."""

import json
import re

import torch

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.data import DataSpec, load_dataset
from gac_deploy.models import build_model
from gac_deploy.testing import write_cifar
from tests.cli.test_cli import assert_user_error, cli
from tests.conftest import small_config


def test_export_compares_float_and_chip_population_by_population(trained_dir, tmp_path):
    result = cli("export", str(trained_dir / "model.pt"), "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^population +scale exp +current err % +spikes differ % +rate % +chip %$",
                     out, re.M)  # fmt: skip
    line = re.search(
        r"test accuracy on (\d+) test images: float ([\d.]+), chip ([\d.]+) .*"
        r"deployment cost ([+-][\d.]+) points",
        out,
    )
    assert line and int(line[1]) == 360
    cost = 100 * (float(line[2]) - float(line[3]))
    assert abs(cost - float(line[4])) < 0.011  # both accuracies printed to 4 places
    skipped = cli("export", str(trained_dir / "model.pt"), "--out", str(tmp_path / "b"),
                  "--samples", "0")  # fmt: skip
    assert skipped.returncode == 0 and "deployment cost" not in skipped.stdout
    few = cli("export", str(trained_dir / "model.pt"), "--out", str(tmp_path / "b"),
              "--samples", "20")  # fmt: skip
    assert "test accuracy on 20 test images" in few.stdout


def test_export_says_when_the_data_is_not_at_hand(tmp_path):
    config = small_config(in_channels=3, image_size=32)
    torch.manual_seed(0)
    model = build_model(config).eval()
    data = DataSpec("cifar10", 0, 0.0, (0.5,), (0.25,), str(tmp_path / "gone"))
    save_checkpoint(tmp_path / "m.pt", Checkpoint(config, data, model.state_dict(), {}, {}))
    result = cli("export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert "(float against chip not measured: " in result.stdout
    assert "gone is not a CIFAR-10 python directory" in result.stdout


def test_a_bundle_and_its_data_travel(tmp_path):
    """export, then move the CIFAR folder: simulate, energy and evaluate read it with
    --data-dir (the test split's hash recognises it); a different copy is refused."""
    write_cifar(tmp_path / "cifar", 10, per_file=4)
    config = small_config(in_channels=3, image_size=32)
    torch.manual_seed(0)
    model = build_model(config).eval()
    data = load_dataset("cifar10", str(tmp_path / "cifar")).spec
    save_checkpoint(tmp_path / "m.pt", Checkpoint(config, data, model.state_dict(), {}, {}))
    bundle = str(tmp_path / "bundle")
    assert cli("export", str(tmp_path / "m.pt"), "--out", bundle).returncode == 0
    (tmp_path / "cifar").rename(tmp_path / "moved")
    assert_user_error(cli("simulate", bundle, "--quiet"), "is not a CIFAR-10 python directory")
    moved = ["--data-dir", str(tmp_path / "moved")]
    report = tmp_path / "r.json"
    sim = cli("simulate", bundle, "--quiet", *moved, "--json", str(report))
    assert sim.returncode == 0, sim.stderr
    assert json.loads(report.read_text())["samples"] == 4
    assert cli("energy", bundle, "--samples", "2", *moved).returncode == 0
    model = str(tmp_path / "m.pt")
    assert cli("evaluate", model, *moved).returncode == 0
    write_cifar(tmp_path / "other", 10, per_file=4, seed=1)
    other = ["--data-dir", str(tmp_path / "other")]
    for command in (["simulate", bundle, "--quiet"], ["energy", bundle], ["evaluate", model]):
        assert_user_error(cli(*command, *other), "not the test split the model was checked on")

"""import-official: the authors' checkpoints keep the normalisation they were trained with."""

import json

import torch

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.cifar_files import read_cifar_batch
from gac_deploy.data import STANDARD_NORMALIZATION
from gac_deploy.models import build_model
from gac_deploy.models.official import official_config
from gac_deploy.testing import authors_state_dict, write_cifar
from tests.cli.test_cli import assert_user_error, cli


def test_imported_model_sees_the_authors_normalisation_wherever_the_data_lies(tmp_path):
    """The import records the authors' CIFAR-10 constants (not the copy's statistics) and
    the test split's identity: evaluate gives exactly the accuracy of their forward pass
    on their normalisation, from the recorded folder or a moved one; another copy is
    refused."""
    torch.manual_seed(0)
    source = build_model(official_config("msresnet18-cifar", 10, 2)).eval()
    torch.save(authors_state_dict(source), tmp_path / "theirs.pth")
    write_cifar(tmp_path / "cifar", 10, per_file=8)
    out = tmp_path / "model.pt"
    args = ["import-official", str(tmp_path / "theirs.pth"), "--arch", "msresnet18-cifar"]
    args += ["--num-classes", "10", "-T", "2", "--out", str(out)]
    result = cli(*args, "--data-dir", str(tmp_path / "cifar"))
    assert result.returncode == 0, result.stderr
    data = load_checkpoint(out).data
    mean, std = STANDARD_NORMALIZATION["cifar10"]
    assert (data.mean, data.std) == (mean, std) and data.test_hash

    batch = read_cifar_batch(tmp_path / "cifar" / "test_batch")
    pixels = torch.from_numpy(batch["data"].reshape(-1, 3, 32, 32)).float() / 255.0
    theirs = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = source(theirs).argmax(1)
    expected = (predicted == torch.tensor(batch["labels"])).float().mean().item()

    report = tmp_path / "eval.json"
    assert cli("evaluate", str(out), "--json", str(report)).returncode == 0
    assert json.loads(report.read_text())["accuracy"] == expected
    (tmp_path / "cifar").rename(tmp_path / "moved")
    moved = cli("evaluate", str(out), "--data-dir", str(tmp_path / "moved"), "--json", str(report))
    assert moved.returncode == 0, moved.stderr
    assert json.loads(report.read_text())["accuracy"] == expected
    write_cifar(tmp_path / "other", 10, per_file=8, seed=1)
    assert_user_error(
        cli("evaluate", str(out), "--data-dir", str(tmp_path / "other")),
        "not the test split the model was checked on",
    )

    # a checkpoint trained with other constants says so
    custom = cli(*args, "--mean", "0.5", "--std", "0.25", "0.25", "0.25")
    assert custom.returncode == 0, custom.stderr
    assert (load_checkpoint(out).data.mean, load_checkpoint(out).data.std) == ((0.5,), (0.25,) * 3)
    assert_user_error(cli(*args, "--mean", "0.5"), "--mean and --std go together")
    assert_user_error(cli(*args, "--mean", "0.5", "--std", "0"), "std must be positive")


def test_classes_and_time_steps_are_read_from_the_state_dict(tmp_path):
    torch.manual_seed(0)
    source = build_model(official_config("msresnet18-cifar", 100, 4)).eval()
    state = authors_state_dict(source, aliases=True, prefix="module.")
    torch.save(state, tmp_path / "theirs.pth")
    out = tmp_path / "model.pt"
    args = ["import-official", str(tmp_path / "theirs.pth"), "--arch", "msresnet18-cifar"]
    result = cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = load_checkpoint(out).model_config
    assert (config.num_classes, config.time_steps) == (100, 4)
    assert "(100 classes, T=4," in result.stdout
    assert cli(*args, "-T", "4", "--num-classes", "100", "--out", str(out)).returncode == 0
    assert_user_error(cli(*args, "-T", "6", "--out", str(out)),
                      "-T 6 does not match", "encoding.TA.sharedMLP.0.weight says 4")  # fmt: skip
    # a network without GAC has no temporal attention: T must be given
    del state["module.encoding.TA.sharedMLP.0.weight"]
    torch.save(state, tmp_path / "no_ta.pth")
    no_ta = ["import-official", str(tmp_path / "no_ta.pth"), "--arch", "msresnet18-cifar"]
    assert_user_error(cli(*no_ta, "--out", str(out)), "no encoding.TA.sharedMLP.0.weight",
                      "pass -T")  # fmt: skip

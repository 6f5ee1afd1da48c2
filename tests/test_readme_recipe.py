"""The README's "Deploy the authors' checkpoint" recipe, run as written on CIFAR-format
files: an authors-format state dict of msresnet18-cifar at full size stands in for their
CIFAR10_T=6.pth and a small CIFAR-10 python folder for ~/data/cifar-10-batches-py; every
other word of every command is the README's. At full size this takes minutes, so it is
marked ``slow``: ``make test-slow`` runs it, ``make test`` (and CI) does not."""

import re
import shlex
from pathlib import Path

import pytest
import torch

from gac_deploy.data import load_dataset
from gac_deploy.models.official import official_config
from gac_deploy.testing import authors_state_dict, calibrated_official, write_cifar
from tests.cli.test_cli import cli

ROOT = Path(__file__).resolve().parents[1]
STAND_INS = {"CIFAR10_T=6.pth": "CIFAR10_T=6.pth", "~/data/cifar-10-batches-py": "cifar"}


def readme_recipe() -> list[list[str]]:
    """The commands of the README's recipe block: continuation lines joined, comments cut."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Deploy the authors' checkpoint")[1].split("```")[1]
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("gac-deploy "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_the_recipe_block_is_read():
    commands = readme_recipe()
    assert [c[0] for c in commands] == [
        "import-official", "train", "export", "simulate", "simulate", "energy",
    ]  # fmt: skip


@pytest.mark.slow
def test_the_readme_recipe_runs_as_written(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cifar", 10, per_file=4)
    images = load_dataset("cifar10", str(tmp_path / "cifar")).train.batch(torch.arange(16))[0]
    model = calibrated_official(official_config("msresnet18-cifar", 10, 6), images)
    torch.save(authors_state_dict(model, prefix="module."), tmp_path / "CIFAR10_T=6.pth")
    monkeypatch.chdir(tmp_path)
    printed = []
    for command in readme_recipe():
        args = [STAND_INS.get(word, word) for word in command]
        result = cli(*args)
        assert result.returncode == 0, f"gac-deploy {' '.join(args)}: {result.stderr}"
        printed.append(result.stdout)
    assert (tmp_path / "bundle" / "manifest.json").is_file()
    for simulated in printed[3:5]:  # the emulator, then Lava
        assert re.search(r"spike-exact against the reference.*: yes", simulated), simulated
    assert "total per inference" in printed[5]

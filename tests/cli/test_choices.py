"""Every flag that names an extension point takes its choices, default and help from the
registry the command uses; a name registered in-process is listed and accepted; and the
registries the help reads load no torch, numpy or Lava."""

import argparse
import subprocess
import sys

import pytest

from gac_deploy.cli import build_parser
from gac_deploy.registries.backends import BACKENDS, DEFAULT_BACKEND
from gac_deploy.registries.datasets import DATASETS, DEFAULT_DATASET, DatasetEntry
from gac_deploy.registries.encoders import DEFAULT_ENCODER, ENCODERS
from gac_deploy.registries.profiles import DEFAULT_PROFILE, PROFILES
from gac_deploy.registries.targets import DEFAULT_TARGET, TARGETS
from tests.cli.test_cli import assert_user_error, cli

FLAGS = [  # command, flag, registry, the name shown as default (None: none)
    ("train", "--dataset", DATASETS, DEFAULT_DATASET),
    ("train", "--encoder", ENCODERS, DEFAULT_ENCODER),
    ("evaluate", "--dataset", DATASETS, None),
    ("export", "--target", TARGETS, DEFAULT_TARGET),
    ("simulate", "--backend", BACKENDS, DEFAULT_BACKEND),
    ("energy", "--profile", PROFILES, DEFAULT_PROFILE),
    ("energy", "--encoder", ENCODERS, None),
]


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def help_text(command: str) -> str:
    """``gac-deploy COMMAND --help``, whitespace collapsed."""
    return " ".join(subparser(command).format_help().split())


@pytest.mark.parametrize("command, flag, registry, default", FLAGS)
def test_help_lists_the_registry(command, flag, registry, default):
    action = subparser(command)._option_string_actions[flag]
    assert tuple(action.choices) == registry.names()
    text = help_text(command)
    assert f"{flag} {{{','.join(registry.names())}}}" in text
    for name, entry in registry.items():
        shown = f"{name} (default): " if name == default else f"{name}: "
        assert shown + " ".join(entry.help.split()) in text


def test_presets_and_sample_defaults_come_from_the_registries():
    action = subparser("train")._option_string_actions["--preset"]
    assert (
        tuple(action.choices)
        == tuple(DATASETS.presets())
        == (
            "cifar10-paper",
            "cifar100-paper",
            "imagenet-paper",
        )
    )
    assert "(default: all for emulator, 16 for lava, 16 for loihi2)" in help_text("simulate")
    assert subparser("simulate").get_default("backend") == DEFAULT_BACKEND


def test_a_name_registered_in_process_is_listed_and_accepted(tmp_path):
    entry = DatasetEntry("gac_deploy.data:load_synthetic", "pixel", False, "squares again")
    with DATASETS.registered("toy-squares", entry):
        assert "toy-squares: squares again" in help_text("train")
        assert "toy-squares" in help_text("evaluate")
        out = tmp_path / "run"
        trained = cli("train", "--dataset", "toy-squares", "--epochs", "1", "--max-steps", "1",
                      "--out", str(out), "--quiet")  # fmt: skip
        assert trained.returncode == 0, trained.stderr
    assert "toy-squares" not in help_text("train")
    refused = cli("train", "--dataset", "toy-squares", "--out", str(tmp_path / "again"))
    assert_user_error(refused, "argument --dataset: unknown dataset 'toy-squares'; choose one of")


def test_an_unknown_name_is_the_registrys_one_line_error():
    assert_user_error(cli("energy", "--profile", "ibm"), "unknown profile 'ibm'", "loihi")
    assert_user_error(cli("train", "--preset", "mnist-paper"), "invalid choice", "cifar10-paper")


def test_help_loads_no_torch_numpy_or_lava():
    code = (
        "import sys, contextlib, io; from gac_deploy.cli import main\n"
        "for command in ('train', 'export', 'simulate', 'energy', 'evaluate'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([command, '--help'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'lava')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

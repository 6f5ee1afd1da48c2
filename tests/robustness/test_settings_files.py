"""Faulty settings files and training states: one line, exit 2, nothing written."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.cli.test_cli import assert_user_error, cli
from tests.robustness.test_output_dirs import snapshot


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("train: 3\n", ["train must hold a mapping"]),
        ("model: {arch: x}\ntrain: [1, 2]\n", ["train must hold a mapping"]),
        ("- 1\n- 2\n", ["must hold a mapping"]),
        ("lr: abc\n", ["lr", "abc"]),
        ("epochz: 3\n", ["unknown settings: epochz"]),
    ],
)
def test_bad_yaml_settings(tmp_path, text, words):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    out = tmp_path / "out"
    assert_user_error(cli("train", "--config", str(config), "--out", str(out)), *words)
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.pop("optimizer"), ["optimizer is missing"]),
        (lambda s: s.update(step="3"), ["step is a str"]),
        (lambda s: s.update(train_config={"epochz": 3}), ["train config is malformed"]),
        (lambda s: s.update(model_config=[1]), ["model_config is a list"]),
    ],
)
def test_damaged_training_state_on_resume(trained_dir, tmp_path, change, words):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    state = torch.load(run / "last.pt", weights_only=True)
    change(state)
    torch.save(state, run / "last.pt")
    before = snapshot(run)
    assert_user_error(cli("train", "--resume", "--out", str(run)), *words)
    assert snapshot(run) == before

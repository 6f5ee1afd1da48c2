import json

import torch

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.config import ModelConfig, TrainConfig
from gac_deploy.training.trainer import train


def test_seeded_runs_are_reproducible(tmp_path):
    a = train(
        ModelConfig(), TrainConfig(epochs=1, seed=4), tmp_path / "a", max_steps=6, progress=False
    )
    b = train(
        ModelConfig(), TrainConfig(epochs=1, seed=4), tmp_path / "b", max_steps=6, progress=False
    )
    for key, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[key]), key
    assert a.metrics["steps"] == 6


def test_training_learns_digits_and_writes_outputs(trained_dir):
    rows = [json.loads(line) for line in (trained_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert rows[-1]["test_acc"] >= 0.85
    # model.pt is readable without unpickling arbitrary objects
    raw = torch.load(trained_dir / "model.pt", weights_only=True)
    assert raw["format"] == "gac-deploy-checkpoint"
    ckpt = load_checkpoint(trained_dir / "model.pt")
    assert ckpt.metrics["test_acc"] == rows[-1]["test_acc"]
    assert ckpt.model_config == ModelConfig()


def test_training_with_compiled_recurrences_matches_eager_training(tmp_path):
    runs = [
        train(
            ModelConfig(),
            TrainConfig(epochs=1, compile=compiled),
            tmp_path / str(compiled),
            max_steps=3,
            progress=False,
        )
        for compiled in (False, True)
    ]
    for key, value in runs[0].state_dict.items():
        torch.testing.assert_close(runs[1].state_dict[key], value, atol=1e-5, rtol=1e-4)
    assert runs[1].train_config["compile"] is True

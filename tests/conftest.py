"""Shared fixtures: a digits model trained briefly, its bundle, and small random models."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

import pytest
import torch
from filelock import FileLock

from gac_deploy.config import ModelConfig, StageConfig, TrainConfig
from gac_deploy.export.targets import export_bundle
from gac_deploy.models import build_model
from gac_deploy.training.trainer import train

TRAIN_EPOCHS = 6

if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    # pytest-xdist workers share the cores: torch's own threads would oversubscribe them
    # (what the tests run, and the interpreters they start, get an equal share each)
    threads = max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


@contextlib.contextmanager
def made_once(tmp_path_factory, name: str):
    """A directory made once for the whole test run, shared by pytest-xdist's workers: the
    first to ask makes it (with all the cores, while the others wait), the others find it.
    Yields (directory, whether this caller must make it)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield tmp_path_factory.mktemp(name), True
        return
    shared = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{shared}.lock"):
        done = shared / ".done"
        if done.exists():
            yield shared, False
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)
        try:
            shared.mkdir(exist_ok=True)
            yield shared, True
        finally:
            torch.set_num_threads(threads)
        done.touch()


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory):
    """A digits GAC-MS-ResNet trained for a few epochs (real data, seeded)."""
    with made_once(tmp_path_factory, "train") as (out, make):
        if make:
            train(ModelConfig(), TrainConfig(epochs=TRAIN_EPOCHS), out, progress=False)
    return out


@pytest.fixture(scope="session")
def bundle_dir(trained_dir, tmp_path_factory):
    with made_once(tmp_path_factory, "export") as (out, make):
        if make:
            export_bundle(trained_dir / "model.pt", out / "bundle")
    return out / "bundle"


def small_config(**overrides) -> ModelConfig:
    """A tiny body with a residual stream of three contributions and a stride-2 block."""
    base = ModelConfig(
        image_size=6,
        stem_channels=4,
        stages=(StageConfig(4, 2, 1), StageConfig(8, 1, 2)),
        time_steps=4,
    )
    return replace(base, **overrides)


def random_model(config: ModelConfig, seed: int = 0):
    """Random weights with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.05, 0.3)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.3)
    return model.eval()


SHARED = ("trained_dir", "bundle_dir")


def pytest_collection_modifyitems(items):
    """Tests of the shared digits model first, the rest after (each in its file order).
    pytest-xdist's worksteal hands each worker an equal run of the list, so the second
    worker starts on tests that need nothing shared instead of waiting while the first
    trains the model."""
    items.sort(key=lambda item: not any(name in item.fixturenames for name in SHARED))

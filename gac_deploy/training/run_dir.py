"""A training run's directory: what ``gac-deploy train`` writes into ``OUT``, and when
it may write there.

``OUT/model.pt`` (the final model), ``OUT/metrics.jsonl`` (one row per epoch),
``OUT/config.yaml`` (the resolved configuration), ``OUT/last.pt`` (the training state)
and ``OUT/tensorboard/``. Every file is written atomically. An existing ``OUT`` is used
only when it is a run directory and the run is resumed (or, with ``overwrite``,
replaced); a directory of anything else is refused, so training never writes over a
user's files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml

from gac_deploy.config import ModelConfig, TrainConfig, to_dict
from gac_deploy.errors import UserError
from gac_deploy.fileio import atomic_path

MODEL_FILE = "model.pt"
STATE_FILE = "last.pt"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
TENSORBOARD_DIR = "tensorboard"
RUN_ENTRIES = (MODEL_FILE, STATE_FILE, METRICS_FILE, CONFIG_FILE, TENSORBOARD_DIR)
STATE_FORMAT = "gac-deploy-training-state"


def check_run_dir(out: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse an ``out`` that training must not write into.

    A missing or empty directory is used as it is. A run directory (one holding any of
    :data:`RUN_ENTRIES`) is continued with ``resume`` or replaced with ``overwrite``; a
    file, or a directory holding only other things, is refused.
    """
    if not out.exists():
        if resume:
            raise UserError(f"nothing to resume: {out} does not exist; start without --resume")
        return
    if not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory; choose another --out")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    if not any(name in RUN_ENTRIES for name in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UserError(
            f"output {out} exists and is not a training run directory (it holds {shown}); "
            "choose a new --out"
        )
    if not (resume or overwrite):
        raise UserError(
            f"{out} already holds a training run; continue it with --resume, replace it "
            "with --overwrite, or choose another --out"
        )


def clear_run(out: Path) -> None:
    """Remove a previous run's files from ``out`` (``--overwrite``); other entries stay."""
    for name in RUN_ENTRIES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def write_metrics(path: Path, rows: list[dict]) -> None:
    """``rows`` (one dict per epoch) as JSON lines."""
    with atomic_path(path, ".jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def write_config(
    path: Path, model_config: ModelConfig, train_config: TrainConfig, extra: dict
) -> None:
    """The resolved settings as YAML: ``{model: ..., train: ..., **extra}``."""
    with atomic_path(path, ".yaml") as tmp:
        tmp.write_text(
            yaml.safe_dump(
                {"model": to_dict(model_config), "train": to_dict(train_config), **extra},
                sort_keys=False,
            )
        )


def save_state(
    path: Path,
    net,
    optimizer,
    scheduler,
    scaler,
    model_config: ModelConfig,
    train_config: TrainConfig,
    **progress,
) -> None:
    """Everything ``--resume`` needs: weights, optimiser, scheduler, gradient scaler, the
    random number generators (the rate encoder draws from them), and ``progress``: the
    epoch and step to continue at, the metrics rows so far and the running sums of the
    current epoch."""
    rows = progress.get("rows", [])
    state = {
        "format": STATE_FORMAT,
        "model_config": to_dict(model_config),
        "train_config": to_dict(train_config),
        "net": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        },
        "best_test_acc": max((r["test_acc"] for r in rows), default=None),
        **progress,
    }
    with atomic_path(path, ".pt") as tmp:
        torch.save(state, tmp)


def restore_rng(states: dict) -> None:
    """Set the torch (and CUDA) generators to the states :func:`save_state` kept."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_state(path: Path) -> dict:
    """A run's training state (OUT/last.pt), read without unpickling code."""
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise UserError(
            f"{path} is not a readable training state; start without --resume"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{path} is not a gac-deploy training state")
    return state

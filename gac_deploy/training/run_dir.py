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

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from gac_deploy.config import ModelConfig, TrainConfig, to_dict
from gac_deploy.errors import UserError
from gac_deploy.fileio import atomic_path, some_names, write_torch

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
    if not any(name in RUN_ENTRIES or _is_leftover(name) for name in names):
        shown = some_names(names)
        raise UserError(
            f"output {out} exists and is not a training run directory (it holds {shown}); "
            "choose a new --out"
        )
    if not (resume or overwrite):
        raise UserError(
            f"{out} already holds a training run; continue it with --resume, replace it "
            "with --overwrite, or choose another --out"
        )


def _is_leftover(name: str) -> bool:
    """A temporary file of an atomic write into a run (``.last.pt.XXXX.pt``), left behind
    when a process was killed while writing."""
    return any(name.startswith(f".{entry}.") for entry in RUN_ENTRIES)


def clear_leftovers(out: Path) -> None:
    """Remove what killed writes left in ``out`` (see :func:`_is_leftover`)."""
    if out.is_dir():
        for path in out.iterdir():
            if _is_leftover(path.name) and path.is_file():
                path.unlink()


def clear_run(out: Path) -> None:
    """Remove a previous run's files from ``out`` (``--overwrite``); other entries stay."""
    for name in RUN_ENTRIES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    clear_leftovers(out)


def open_tensorboard(out: Path):
    """A TensorBoard writer logging into ``OUT/tensorboard``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "--tensorboard needs the tensorboard package: pip install 'gac-deploy[tensorboard]'"
        ) from None
    return SummaryWriter(str(out / TENSORBOARD_DIR))


def log_tensorboard(writer, row: dict) -> None:
    """An epoch's metrics row as TensorBoard scalars, a firing rate per population."""
    epoch = row["epoch"]
    for key, value in row.items():
        if key == "firing_rates":
            for name, rate in value.items():
                writer.add_scalar(f"firing_rate/{name}", rate, epoch)
        elif key != "epoch":
            writer.add_scalar(key, value, epoch)
    writer.flush()


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


@dataclass
class EpochSums:
    """The running sums of the epoch being trained, in this process: loss x images,
    correct predictions, images and seconds."""

    loss: float = 0.0
    correct: int = 0
    images: int = 0
    seconds: float = 0.0

    def to_list(self) -> list[float]:
        """The sums as ``last.pt`` keeps them: a list in field order."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    @classmethod
    def from_list(cls, values: list[float]) -> EpochSums:
        return cls(**{f.name: v for f, v in zip(dataclasses.fields(cls), values, strict=True)})


@dataclass
class TrainingState:
    """What ``OUT/last.pt`` holds and ``--resume`` reads back: the network being trained
    with its optimiser, learning-rate scheduler and gradient scaler; the global ``step``
    done and the ``epoch`` to continue at, with ``sums``, that epoch's running sums so far;
    the metrics ``rows`` of the epochs done; and how the run was started (``max_steps``,
    ``qat``)."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    max_steps: int | None
    qat: bool
    step: int = 0
    epoch: int = 1
    rows: list[dict] = field(default_factory=list)
    sums: EpochSums = field(default_factory=EpochSums)

    def restore(self, saved: dict) -> None:
        """Continue from ``saved`` (as :func:`load_state` reads it), random number
        generators included. States written by earlier versions may lack the gradient
        scaler, the generators and the epoch's sums."""
        self.net.load_state_dict(saved["net"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.rows, self.step, self.epoch = (
            list(saved["rows"]),
            int(saved["step"]),
            int(saved["epoch"]),
        )
        if "scaler" in saved:
            self.scaler.load_state_dict(saved["scaler"])
        if "rng" in saved:
            restore_rng(saved["rng"])
        if "epoch_sums" in saved:
            self.sums = EpochSums.from_list(saved["epoch_sums"])


def save_state(
    path: Path, state: TrainingState, model_config: ModelConfig, train_config: TrainConfig
) -> None:
    """Everything ``--resume`` needs: ``state``, the run's configurations and the random
    number generators (the rate encoder draws from them)."""
    saved = {
        "format": STATE_FORMAT,
        "model_config": to_dict(model_config),
        "train_config": to_dict(train_config),
        "net": state.net.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        },
        "best_test_acc": max((r["test_acc"] for r in state.rows), default=None),
        "epoch": state.epoch,
        "step": state.step,
        "rows": state.rows,
        "epoch_sums": state.sums.to_list(),
        "max_steps": state.max_steps,
        "qat": state.qat,
    }
    write_torch(path, saved)


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
    for key, kind in _STATE_KEYS.items():
        if not isinstance(state.get(key), kind):
            problem = "missing" if key not in state else f"a {type(state[key]).__name__}"
            raise UserError(
                f"{path}: {key} is {problem}, not a {kind.__name__}; the training state is "
                "damaged, start again with --overwrite"
            )
    return state


# what --resume reads from a training state, and its type (older states may lack the
# scaler, the generators and the epoch's sums: those stay optional)
_STATE_KEYS: dict[str, type] = {
    "model_config": dict,
    "train_config": dict,
    "net": dict,
    "optimizer": dict,
    "scheduler": dict,
    "rows": list,
    "step": int,
    "epoch": int,
}

"""The training loop: SGD with momentum, cosine learning rate to 0, cross-entropy on the
mean output over T (paper Eq. 6-7).

Writes ``OUT/model.pt`` (the final model), ``OUT/metrics.jsonl`` (one row per epoch),
``OUT/config.yaml`` (the resolved configuration) and ``OUT/last.pt`` (the training
state, written atomically at the end of every epoch and every ``checkpoint_every``
steps). ``resume=True`` continues from ``OUT/last.pt`` exactly: the data order of an
epoch comes from a generator seeded by (seed, epoch) and a step's augmentation and CutMix
from (seed, step) (:mod:`gac_deploy.training.batches`), so a resumed run repeats what
the interrupted one would have done, and N processes train on what one process would.

Why one module of about 450 lines: the loop's state (model, optimiser, scheduler,
scaler, RNG streams, the epoch's running sums) is saved and restored as one training
state, and every part of the loop that touches it is kept where that state is defined.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.config import ModelConfig, TrainConfig, model_config_from_dict, to_dict
from gac_deploy.data import Split, load_dataset
from gac_deploy.errors import UserError, bad_setting
from gac_deploy.models import build_model
from gac_deploy.models.lif import compiled_recurrences
from gac_deploy.training import run_dir
from gac_deploy.training.batches import (
    StepPlan,
    assemble,
    default_workers,
    load_steps,
    plan_step,
)
from gac_deploy.training.distributed import synchronise_batchnorm, training_device
from gac_deploy.training.evaluate import evaluate, population_rates
from gac_deploy.training.run_dir import EpochSums, TrainingState
from gac_deploy.world import World, all_finite, all_sum, init_world, process_device


@dataclass(frozen=True)
class _Run:
    """What every step of a run reads: fixed once the run is set up."""

    out: Path
    model_config: ModelConfig
    train_config: TrainConfig
    split: Split
    world: World
    device: torch.device
    workers: int  # processes loading images ahead
    total: int  # the optimiser steps of the whole run
    step_net: torch.nn.Module  # the network a step runs (wrapped for DDP when distributed)
    progress: bool

    @property
    def mixed_precision(self) -> bool:
        return self.device.type == "cuda"

    def save(self, state: TrainingState) -> None:
        """Write ``state`` to OUT/last.pt."""
        run_dir.save_state(
            self.out / run_dir.STATE_FILE, state, self.model_config, self.train_config
        )


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    split: Split | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    init: Checkpoint | None = None,
    qat: bool = False,
    resume: bool = False,
    stop_after: int | None = None,
    overwrite: bool = False,
) -> Checkpoint | None:
    """Train; returns the final checkpoint (also written to OUT/model.pt).

    ``init``: start from these weights (otherwise from scratch). ``qat``: fine-tune
    with the body in Loihi fixed point (:mod:`gac_deploy.training.qat`); needs ``init``.
    ``resume``: continue from OUT/last.pt. ``stop_after``: stop (as if interrupted)
    after that many optimiser steps in total, leaving OUT/last.pt; returns None.
    ``overwrite``: replace the run already in OUT (otherwise an existing run is refused,
    see :func:`gac_deploy.training.run_dir.check_run_dir`); its files go only once the
    new run's settings have been checked.
    """
    with compiled_recurrences(train_config.compile):
        return _train(
            model_config,
            train_config,
            out_dir,
            split,
            max_steps,
            progress,
            init,
            qat,
            resume,
            stop_after,
            overwrite,
        )


def _train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    split: Split | None,
    max_steps: int | None,
    progress: bool,
    init: Checkpoint | None,
    qat: bool,
    resume: bool,
    stop_after: int | None,
    overwrite: bool,
) -> Checkpoint | None:
    if max_steps is not None and max_steps < 1:
        raise bad_setting("max_steps", "at least 1", max_steps)
    out = Path(out_dir)
    run_dir.check_run_dir(out, resume=resume, overwrite=overwrite)
    saved = _saved_state(out, qat) if resume else None
    if saved is not None:
        model_config = model_config_from_dict(saved["model_config"])
    torch.manual_seed(train_config.seed)
    split = split or load_dataset(
        train_config.dataset,
        train_config.data_dir,
        train_config.seed,
        train_config.test_fraction,
        train_config.normalization,
    )
    device = training_device(train_config.device)
    if init is not None:
        model, model_config = init.build(), init.model_config
    else:
        model = build_model(model_config)
    net, spec, before_qat = model, None, {}
    if qat:
        if init is None:
            raise UserError("--qat fine-tunes a trained model; pass it with --init model.pt")
        net, spec, before_qat = _prepare_qat(model, init, split, progress)
    world = init_world(device)
    device = process_device(device, world)
    workers = (
        train_config.workers
        if train_config.workers is not None
        else default_workers(split.train, world)
    )
    if world.distributed:
        _check_shares(train_config.batch_size, len(split.train), world)
        net = synchronise_batchnorm(net, device)
    net.to(device)
    run = _Run(
        out=out,
        model_config=model_config,
        train_config=train_config,
        split=split,
        world=world,
        device=device,
        workers=workers,
        total=_total_steps(train_config, len(split.train), max_steps),
        step_net=DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
        if world.distributed
        else net,
        progress=progress and world.is_main,
    )
    state = _new_state(run, net, max_steps, qat)
    if saved is not None:
        state.restore(saved)
        if state.step >= run.total:
            raise UserError(
                f"the run in {out} finished at step {state.step} of {run.total}; nothing to resume"
            )
    if world.is_main:
        if overwrite and not resume:
            run_dir.clear_run(out)
        run_dir.clear_leftovers(out)
        out.mkdir(parents=True, exist_ok=True)
    writer = run_dir.open_tensorboard(out) if train_config.tensorboard and world.is_main else None
    if world.is_main:
        run_dir.write_config(
            out / run_dir.CONFIG_FILE,
            model_config,
            train_config,
            {"qat": qat, "init": bool(init), "max_steps": max_steps},
        )
    bar = tqdm(  # drawn on a terminal only; the epoch lines are printed either way
        total=run.total,
        initial=state.step,
        desc="train",
        unit="batch",
        disable=None if run.progress else True,
        leave=False,
    )
    try:
        while state.epoch <= train_config.epochs:
            if _train_epoch(run, state, bar, stop_after):
                return None
            row = _end_epoch(run, state, writer)
            if run.progress:
                bar.write(
                    f"epoch {row['epoch']:3d}  loss {row['loss']:.4f}  "
                    f"train {row['train_acc']:.3f}  test {row['test_acc']:.3f}"
                )
            if state.step >= run.total:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return _final_checkpoint(run, state, model, spec, before_qat)


def _saved_state(out: Path, qat: bool) -> dict:
    """The training state in ``out`` to resume; refused when the run is not the kind
    asked for (QAT fine-tuning or not)."""
    saved = run_dir.load_state(out / run_dir.STATE_FILE)
    if bool(saved.get("qat")) != qat:
        raise UserError(
            f"the run in {out} is QAT fine-tuning; resume it with --qat --init and the "
            "model.pt it started from"
            if qat is False
            else f"the run in {out} is not QAT fine-tuning; resume it without --qat"
        )
    return saved


def _prepare_qat(model, init: Checkpoint, split: Split, progress: bool):
    """The network QAT trains (the body in Loihi fixed point), its format, and the
    accuracies before fine-tuning."""
    from gac_deploy.body.loihi2 import check_deployable
    from gac_deploy.body.quantize import QuantSpec, choose_format
    from gac_deploy.chip.calibration import calibrate_model
    from gac_deploy.training.qat import QATModel

    check_deployable(init.model_config)
    if init.quantization:
        spec = QuantSpec.from_dict(init.quantization)
    else:
        try:
            calibration = calibrate_model(model, split, progress=progress)
        except ValueError:  # no payload fits: choose_format says why
            spec = choose_format(model.export_graph())
        else:
            spec = calibration.spec
            if progress:
                print(calibration.describe())
    net = QATModel(model, spec)
    before = {
        "float_test_acc": init.metrics.get("float_test_acc", evaluate(model, split)),
        "quantized_test_acc_before_qat": evaluate(net, split),
    }
    if progress:
        print(
            f"before QAT: float {before['float_test_acc']:.4f}, fixed point "
            f"{before['quantized_test_acc_before_qat']:.4f}"
        )
    return net, spec, before


def _check_shares(batch_size: int, images: int, world: World) -> None:
    """Every process gets at least one image of every global batch."""
    if batch_size % world.size:
        raise UserError(f"--batch-size {batch_size} must divide evenly over {world.size} processes")
    last = images % batch_size
    if 0 < last < world.size:
        raise UserError(
            f"the last batch of each epoch holds {last} of {images} training images, fewer "
            f"than the {world.size} processes; choose a --batch-size that leaves at least "
            "one image per process"
        )


def _steps_per_epoch(config: TrainConfig, images: int) -> int:
    return (images + config.batch_size - 1) // config.batch_size


def _total_steps(config: TrainConfig, images: int, max_steps: int | None) -> int:
    total = config.epochs * _steps_per_epoch(config, images)
    return total if max_steps is None else min(total, max_steps)


def _new_state(run: _Run, net: torch.nn.Module, max_steps: int | None, qat: bool) -> TrainingState:
    """A run's state before its first step: SGD with momentum, the learning rate cosine
    to 0 over the run's steps."""
    config = run.train_config
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    return TrainingState(
        net=net,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=run.total),
        scaler=torch.amp.GradScaler("cuda", enabled=run.mixed_precision),
        max_steps=max_steps,
        qat=qat,
    )


def _epoch_plans(
    config: TrainConfig, images: int, epoch: int, step: int, total: int, world: World, size: int
) -> Iterator[StepPlan]:
    """The steps of ``epoch`` from global step ``step`` (mid-epoch when resuming) up to
    ``total``; the epoch's data order comes from a generator seeded by (seed, epoch)."""
    per_epoch = _steps_per_epoch(config, images)
    order = torch.randperm(
        images, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    )
    first = max(step - (epoch - 1) * per_epoch, 0)
    b = config.batch_size
    for i in range(first, min(per_epoch, first + total - step)):
        batch = order[i * b : (i + 1) * b]
        yield plan_step(batch, world, config.seed, (epoch - 1) * per_epoch + i, size, config.cutmix)


def _train_epoch(run: _Run, state: TrainingState, bar: tqdm, stop_after: int | None) -> bool:
    """Train the steps of ``state.epoch`` from ``state.step`` on, adding to ``state.sums``;
    True when the run stopped at ``stop_after`` (OUT/last.pt written)."""
    config, world, device, sums = run.train_config, run.world, run.device, state.sums
    state.net.train()
    started = time.perf_counter() - sums.seconds
    plans = _epoch_plans(
        config,
        len(run.split.train),
        state.epoch,
        state.step,
        run.total,
        world,
        run.split.image_size,
    )
    loads = load_steps(run.split.train, plans, run.workers, pin_memory=device.type == "cuda")
    for plan, loaded in loads:
        x, y, target = assemble(*loaded, plan, run.split.num_classes)
        x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=run.mixed_precision):
            logits = run.step_net(x)
            loss = F.cross_entropy(logits, target, label_smoothing=config.label_smoothing)
        if not all_finite(loss, world):
            raise _diverged(loss.item(), state, run.out / run_dir.STATE_FILE)
        state.optimizer.zero_grad(set_to_none=True)
        # DDP averages the processes' gradients; weighting each process's mean loss by
        # its share makes that the gradient of the global batch's mean loss, also
        # when the last batch of an epoch does not split evenly
        state.scaler.scale(loss * (len(y) * world.size / plan.batch_size)).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        state.step += 1
        sums.loss += loss.item() * len(y)
        sums.correct += int((logits.argmax(1).cpu() == y).sum())
        sums.images += len(y)
        sums.seconds = time.perf_counter() - started
        bar.update(1)
        if run.progress:
            rate = sums.images * world.size / max(sums.seconds, 1e-9)
            bar.set_postfix(epoch=state.epoch, loss=f"{loss.item():.3f}", images_s=f"{rate:.0f}")
        every = config.checkpoint_every
        stopping = stop_after is not None and state.step >= stop_after
        if world.is_main and (stopping or (every and state.step % every == 0)):
            run.save(state)
        if stopping:
            return True
    sums.seconds = time.perf_counter() - started
    return False


def _diverged(loss: float, state: TrainingState, state_file: Path) -> UserError:
    """The error for a loss that became NaN or infinite: where to go on from."""
    where = f"loss became {loss} at step {state.step} (epoch {state.epoch})"
    if state_file.exists():
        return UserError(
            f"{where}; the last good state is {state_file}; lower --lr and continue with --resume"
        )
    return UserError(
        f"{where}, before any training state was saved; lower --lr and train again with --overwrite"
    )


def _end_epoch(run: _Run, state: TrainingState, writer) -> dict:
    """The finished epoch's metrics row (all processes' images); the state moves on to
    the next epoch, and the main process writes the rows and the state."""
    loss, correct, images = all_sum(
        [state.sums.loss, state.sums.correct, state.sums.images], run.world
    )
    seconds = state.sums.seconds
    row = {
        "epoch": state.epoch,
        "step": state.step,
        "loss": loss / max(images, 1),
        "train_acc": correct / max(images, 1),
        "test_acc": evaluate(state.net, run.split, world=run.world, workers=run.workers),
        "lr": state.scheduler.get_last_lr()[0],
        "images_per_s": images / seconds if seconds > 0 else 0.0,
        "firing_rates": population_rates(state.net, run.split.test_images(64)[0].to(run.device)),
    }
    state.rows.append(row)
    state.epoch += 1
    state.sums = EpochSums()
    if writer is not None:
        run_dir.log_tensorboard(writer, row)
    if run.world.is_main:
        run_dir.write_metrics(run.out / run_dir.METRICS_FILE, state.rows)
        run.save(state)
    return row


def _summary(rows: list[dict], steps: int) -> dict:
    """The final checkpoint's metrics: the last epoch's, and the best test accuracy (the
    model saved is the last, not the best)."""
    final, best = rows[-1], max(rows, key=lambda r: r["test_acc"])
    return {
        "test_acc": final["test_acc"],
        "train_acc": final["train_acc"],
        "epochs": final["epoch"],
        "steps": steps,
        "best_test_acc": best["test_acc"],
        "best_epoch": best["epoch"],
    }


def _final_checkpoint(
    run: _Run, state: TrainingState, model: torch.nn.Module, spec, before_qat: dict
) -> Checkpoint:
    """The trained model (QAT's fixed-point body written back into it) as a checkpoint,
    saved to OUT/model.pt by the main process."""
    if state.qat:
        from gac_deploy.training.qat import write_back

        write_back(model, state.net.body)
    model.to("cpu")
    ckpt = Checkpoint(
        model_config=run.model_config,
        data=run.split.spec,
        state_dict=model.state_dict(),
        metrics={**_summary(state.rows, state.step), **before_qat},
        train_config=to_dict(run.train_config),
        quantization=spec.to_dict() if spec else None,
    )
    if run.world.is_main:
        save_checkpoint(run.out / run_dir.MODEL_FILE, ckpt)
    if run.world.distributed:
        torch.distributed.barrier()
    return ckpt

"""The training loop: SGD with momentum, cosine learning rate to 0, cross-entropy on the
mean output over T (paper Eq. 6-7).

Writes ``OUT/model.pt`` (the final model), ``OUT/metrics.jsonl`` (one row per epoch),
``OUT/config.yaml`` (the resolved configuration) and ``OUT/last.pt`` (the training
state, written atomically at the end of every epoch and every ``checkpoint_every``
steps). ``resume=True`` continues from ``OUT/last.pt`` exactly: the data order of an
epoch comes from a generator seeded by (seed, epoch) and a step's augmentation and CutMix
from (seed, step) (:mod:`gac_deploy.training.batches`), so a resumed run repeats what
the interrupted one would have done, and N processes train on what one process would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.config import ModelConfig, TrainConfig, model_config_from_dict, to_dict
from gac_deploy.data import Split, load_dataset
from gac_deploy.errors import UserError
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
from gac_deploy.training.distributed import (
    World,
    all_finite,
    all_sum,
    init_world,
    process_device,
    synchronise_batchnorm,
    training_device,
)
from gac_deploy.training.evaluate import evaluate, population_rates

STATE_FILE = run_dir.STATE_FILE
# an epoch's running sums at its start: loss x images, correct, images, seconds
_EPOCH_START = (0.0, 0, 0, 0.0)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "--tensorboard needs the tensorboard package: pip install 'gac-deploy[tensorboard]'"
        ) from None
    return SummaryWriter(str(out / run_dir.TENSORBOARD_DIR))


def _prepare_qat(model, init: Checkpoint, split: Split, progress: bool):
    """The network QAT trains (the body in Loihi fixed point), its format, and the
    accuracies before fine-tuning."""
    from gac_deploy.body.loihi2 import check_deployable
    from gac_deploy.body.quantize import QuantSpec, choose_format
    from gac_deploy.training.qat import QATModel

    check_deployable(init.model_config)
    spec = (
        QuantSpec.from_dict(init.quantization)
        if init.quantization
        else choose_format(model.export_graph())
    )
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


def _log_tensorboard(writer, row: dict) -> None:
    epoch = row["epoch"]
    for key, value in row.items():
        if key == "firing_rates":
            for name, rate in value.items():
                writer.add_scalar(f"firing_rate/{name}", rate, epoch)
        elif key != "epoch":
            writer.add_scalar(key, value, epoch)
    writer.flush()


def _epoch_plans(
    config: TrainConfig, images: int, epoch: int, step: int, total: int, world: World, size: int
) -> Iterator[StepPlan]:
    """The steps of ``epoch`` from global step ``step`` (mid-epoch when resuming) up to
    ``total``; the epoch's data order comes from a generator seeded by (seed, epoch)."""
    per_epoch = (images + config.batch_size - 1) // config.batch_size
    order = torch.randperm(
        images, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    )
    first = max(step - (epoch - 1) * per_epoch, 0)
    b = config.batch_size
    for i in range(first, min(per_epoch, first + total - step)):
        batch = order[i * b : (i + 1) * b]
        yield plan_step(batch, world, config.seed, (epoch - 1) * per_epoch + i, size, config.cutmix)


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
        raise UserError(f"--max-steps must be at least 1, got {max_steps}")
    out = Path(out_dir)
    run_dir.check_run_dir(out, resume=resume, overwrite=overwrite)
    state = run_dir.load_state(out / STATE_FILE) if resume else None
    if state is not None:
        model_config = model_config_from_dict(state["model_config"])
        if bool(state.get("qat")) != qat:
            raise UserError(
                f"the run in {out} is QAT fine-tuning; resume it with --qat --init and the "
                "model.pt it started from"
                if qat is False
                else f"the run in {out} is not QAT fine-tuning; resume it without --qat"
            )
    torch.manual_seed(train_config.seed)
    split = split or load_dataset(
        train_config.dataset, train_config.data_dir, train_config.seed, train_config.test_fraction
    )
    device = training_device(train_config.device)
    if init is not None:
        model = init.build()
        model_config = init.model_config
    else:
        model = build_model(model_config)
    net: torch.nn.Module = model
    spec = None
    extra: dict = {}
    if qat:
        if init is None:
            raise UserError("--qat fine-tunes a trained model; pass it with --init model.pt")
        net, spec, extra = _prepare_qat(model, init, split, progress)
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
    step_net = (
        DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if world.distributed
        else net
    )
    progress = progress and world.is_main
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=train_config.lr,
        momentum=train_config.momentum,
        weight_decay=train_config.weight_decay,
    )
    n = len(split.train)
    steps_per_epoch = (n + train_config.batch_size - 1) // train_config.batch_size
    total = train_config.epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    rows: list[dict] = []
    step = 0
    first_epoch = 1
    if state is not None:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rows, step, first_epoch = list(state["rows"]), int(state["step"]), int(state["epoch"])
        if step >= total:
            raise UserError(
                f"the run in {out} finished at step {step} of {total}; nothing to resume"
            )
    if world.is_main:
        if overwrite and not resume:
            run_dir.clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
    writer = _tensorboard(out) if train_config.tensorboard and world.is_main else None
    if world.is_main:
        run_dir.write_config(
            out / run_dir.CONFIG_FILE,
            model_config,
            train_config,
            {"qat": qat, "init": bool(init), "max_steps": max_steps},
        )
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    sums = list(_EPOCH_START)
    if state is not None:  # (states from earlier versions may lack these)
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if "rng" in state:
            run_dir.restore_rng(state["rng"])
        sums = list(state.get("epoch_sums", sums))

    def save_state(epoch_to_resume: int) -> None:
        run_dir.save_state(
            out / STATE_FILE,
            net,
            optimizer,
            scheduler,
            scaler,
            model_config,
            train_config,
            epoch=epoch_to_resume,
            step=step,
            rows=rows,
            epoch_sums=[loss_sum, correct, seen, time.perf_counter() - started]
            if epoch_to_resume == epoch
            else list(_EPOCH_START),
            max_steps=max_steps,
            qat=qat,
        )

    bar = tqdm(  # drawn on a terminal only; the epoch lines are printed either way
        total=total,
        initial=step,
        desc="train",
        unit="batch",
        disable=None if progress else True,
        leave=False,
    )
    for epoch in range(first_epoch, train_config.epochs + 1):
        net.train()
        loss_sum, correct, seen, done_s = sums
        sums = list(_EPOCH_START)
        started = time.perf_counter() - done_s
        plans = _epoch_plans(train_config, n, epoch, step, total, world, split.image_size)
        loads = load_steps(split.train, plans, workers, pin_memory=device.type == "cuda")
        for plan, loaded in loads:
            x, y, target = assemble(*loaded, plan, split.num_classes)
            x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits = step_net(x)
                loss = F.cross_entropy(logits, target, label_smoothing=train_config.label_smoothing)
            if not all_finite(loss, world):
                bar.close()
                raise UserError(
                    f"loss became {loss.item()} at step {step} (epoch {epoch}); the last good "
                    f"state is {out / STATE_FILE}; lower --lr and continue with --resume"
                    if (out / STATE_FILE).exists()
                    else f"loss became {loss.item()} at step {step} (epoch {epoch}), before "
                    "any training state was saved; lower --lr and train again with --overwrite"
                )
            optimizer.zero_grad(set_to_none=True)
            # DDP averages the processes' gradients; weighting each process's mean loss by
            # its share makes that the gradient of the global batch's mean loss, also
            # when the last batch of an epoch does not split evenly
            scaler.scale(loss * (len(y) * world.size / plan.batch_size)).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1).cpu() == y).sum())
            seen += len(y)
            bar.update(1)
            if progress:
                rate = seen * world.size / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", images_s=f"{rate:.0f}")
            every = train_config.checkpoint_every
            stopping = stop_after is not None and step >= stop_after
            if world.is_main and (stopping or (every and step % every == 0)):
                save_state(epoch)
            if stopping:
                bar.close()
                return None
        elapsed = time.perf_counter() - started
        loss_sum, correct, seen = all_sum([loss_sum, correct, seen], world)
        row = {
            "epoch": epoch,
            "step": step,
            "loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "test_acc": evaluate(net, split, world=world, workers=workers),
            "lr": scheduler.get_last_lr()[0],
            "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
            "firing_rates": population_rates(net, split.test_images(64)[0].to(device)),
        }
        rows.append(row)
        if writer is not None:
            _log_tensorboard(writer, row)
        if world.is_main:
            run_dir.write_metrics(out / run_dir.METRICS_FILE, rows)
            save_state(epoch + 1)
        if progress:
            bar.write(
                f"epoch {epoch:3d}  loss {row['loss']:.4f}  train {row['train_acc']:.3f}  "
                f"test {row['test_acc']:.3f}"
            )
        if step >= total:
            break
    bar.close()
    if writer is not None:
        writer.close()
    if qat:
        from gac_deploy.training.qat import write_back

        write_back(model, net.body)
    model.to("cpu")
    ckpt = Checkpoint(
        model_config=model_config,
        data=split.spec,
        state_dict=model.state_dict(),
        metrics={**_summary(rows, step), **extra},
        train_config=to_dict(train_config),
        quantization=spec.to_dict() if spec else None,
    )
    if world.is_main:
        save_checkpoint(out / run_dir.MODEL_FILE, ckpt)
    if world.distributed:
        torch.distributed.barrier()
    return ckpt

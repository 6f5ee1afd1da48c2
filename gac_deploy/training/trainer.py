"""The training loop: SGD with momentum, cosine learning rate to 0, cross-entropy on the
mean output over T (paper Eq. 6-7). Writes ``model.pt`` and ``metrics.jsonl``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.config import ModelConfig, TrainConfig, to_dict
from gac_deploy.data import Split, load_digits_split
from gac_deploy.errors import UserError
from gac_deploy.fileio import atomic_path
from gac_deploy.models import build_model


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on images x [N, C, H, W], labels y [N]."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(len(x), 1)


def _write_metrics(path: Path, rows: list[dict]) -> None:
    with atomic_path(path, ".jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    split: Split | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    init: Checkpoint | None = None,
    qat: bool = False,
) -> Checkpoint:
    """Train; returns the final checkpoint (also written to OUT/model.pt).

    ``init``: start from these weights (otherwise from scratch). ``qat``: fine-tune
    with the body in Loihi fixed point (:mod:`gac_deploy.training.qat`); needs ``init``.
    """
    if train_config.dataset != "digits":
        raise UserError(f"unknown dataset {train_config.dataset!r}; this version supports 'digits'")
    if train_config.epochs < 1 or train_config.batch_size < 1:
        raise UserError("--epochs and --batch-size must be at least 1")
    if train_config.lr <= 0:
        raise UserError(f"--lr must be positive, got {train_config.lr}")
    if max_steps is not None and max_steps < 1:
        raise UserError(f"--max-steps must be at least 1, got {max_steps}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(train_config.seed)
    split = split or load_digits_split(train_config.seed, train_config.test_fraction)
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
        from gac_deploy.export.bundle import check_deployable
        from gac_deploy.export.quantize import QuantSpec, choose_format
        from gac_deploy.training.qat import QATModel

        check_deployable(model_config)
        spec = (
            QuantSpec.from_dict(init.quantization)
            if init.quantization
            else choose_format(model.export_graph())
        )
        net = QATModel(model, spec)
        extra["float_test_acc"] = init.metrics.get(
            "float_test_acc", evaluate(model, split.x_test, split.y_test)
        )
        extra["quantized_test_acc_before_qat"] = evaluate(net, split.x_test, split.y_test)
        if progress:
            print(
                f"before QAT: float {extra['float_test_acc']:.4f}, fixed point "
                f"{extra['quantized_test_acc_before_qat']:.4f}"
            )
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=train_config.lr,
        momentum=train_config.momentum,
        weight_decay=train_config.weight_decay,
    )
    n = len(split.x_train)
    steps_per_epoch = (n + train_config.batch_size - 1) // train_config.batch_size
    total = train_config.epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    generator = torch.Generator().manual_seed(train_config.seed)

    rows: list[dict] = []
    step = 0
    bar = tqdm(total=total, desc="train", unit="batch", disable=not progress, leave=False)
    for epoch in range(1, train_config.epochs + 1):
        net.train()
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, n, train_config.batch_size):
            if step >= total:
                break
            idx = order[i : i + train_config.batch_size]
            x, y = split.x_train[idx], split.y_train[idx]
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise UserError(f"loss became {loss.item()} at step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        elapsed = time.perf_counter() - started
        row = {
            "epoch": epoch,
            "step": step,
            "loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "test_acc": evaluate(net, split.x_test, split.y_test),
            "lr": scheduler.get_last_lr()[0],
            "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
        }
        rows.append(row)
        _write_metrics(out / "metrics.jsonl", rows)
        bar.write(
            f"epoch {epoch:3d}  loss {row['loss']:.4f}  train {row['train_acc']:.3f}  "
            f"test {row['test_acc']:.3f}"
        ) if progress else None
        if step >= total:
            break
    bar.close()
    final = rows[-1]
    if qat:
        from gac_deploy.training.qat import write_back

        write_back(model, net.body)
    ckpt = Checkpoint(
        model_config=model_config,
        data=split.spec,
        state_dict=model.state_dict(),
        metrics={
            "test_acc": final["test_acc"],
            "train_acc": final["train_acc"],
            "epochs": final["epoch"],
            "steps": step,
            **extra,
        },
        train_config=to_dict(train_config),
        quantization=spec.to_dict() if spec else None,
    )
    save_checkpoint(out / "model.pt", ckpt)
    return ckpt

"""A network trained by the authors' own code, through import -> export -> the chip.

    PYTHONPATH=/path/to/GAC/CODE/CIFAR python bench/authors_network.py
        [--work runs/authors-network] [--epochs 25]

Needs the authors' public repository (its ``CODE/CIFAR`` folder on ``PYTHONPATH``: their
``models/MS_ResNet.py`` is imported from there, nothing of it is copied). Their CIFAR
MS-ResNet-18 (GAC on, T = 6, their LIF, tdBN) is trained by their recipe (SGD lr 0.1,
momentum 0.9, weight decay 5e-5, cosine, batch 64; random crops, no CutMix) on the
embedded digits split, normalised as gac-deploy normalises it, at its 8x8 size with
one input channel (their stem's 3 input channels replaced by 1: on this 2-core machine
a 32x32 epoch takes over half an hour). Their state dict is then imported
(``models.official.import_official``, the code behind ``gac-deploy import-official``,
with the digits shapes), and the checkpoint is exported with ``gac-deploy export``,
which measures float against chip on every test image. Prints the authors' own test
accuracy, the import's (``gac-deploy evaluate``) and the export's float/chip line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path


def train_authors(epochs: int, out: Path) -> float:
    """Their model trained on digits by their recipe; writes ``out``/authors.pth and
    ``out``/imported.pt; the test accuracy their forward pass gives."""
    import numpy as np
    import torch
    from torch import nn

    try:
        from models.layers import tdLayer
        from models.MS_ResNet import msresnet18
    except ImportError:
        sys.exit("the authors' code is not importable: put their CODE/CIFAR on PYTHONPATH")
    from gac_deploy.checkpoint import Checkpoint, save_checkpoint
    from gac_deploy.data import load_dataset
    from gac_deploy.models.official import import_official, official_config

    split = load_dataset("digits")
    train_x, train_y = split.train.batch(torch.arange(len(split.train)))
    test_x, test_y = split.test_images()
    torch.manual_seed(1000)
    np.random.seed(1000)
    model = msresnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)  # one input channel
    model.conv1_s = tdLayer(model.conv1, model.bn1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, eta_min=0, T_max=epochs)

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            scores = torch.cat(
                [model(test_x[i : i + 128].clone()).mean(1) for i in range(0, len(test_x), 128)]
            )
        return float((scores.argmax(1) == test_y).float().mean())

    for epoch in range(epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train_x))
        for i in range(0, len(order), 64):
            batch = order[i : i + 64]
            x = nn.functional.pad(train_x[batch], (1, 1, 1, 1))
            dx, dy = np.random.randint(0, 3, 2)
            x = x[:, :, dy : dy + 8, dx : dx + 8].contiguous()
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x).mean(1), train_y[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
        print(f"epoch {epoch + 1}/{epochs}: test {accuracy():.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    theirs = accuracy()
    state = model.state_dict()
    torch.save(state, out / "authors.pth")
    config = replace(official_config("msresnet18-cifar", 10, 6), in_channels=1, image_size=8)
    imported = import_official(state, config)
    metrics = {"imported_from": "authors.pth", "authors_test_accuracy": theirs}
    save_checkpoint(
        out / "imported.pt", Checkpoint(config, split.spec, imported.state_dict(), metrics, {})
    )
    return theirs


def gac_deploy(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gac_deploy", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"gac-deploy {args[0]} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/authors-network")
    parser.add_argument("--epochs", type=int, default=25)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    theirs = train_authors(args.epochs, work)
    evaluated = gac_deploy("evaluate", str(work / "imported.pt")).strip().splitlines()[-1]
    exported = gac_deploy("export", str(work / "imported.pt"), "--out", str(work / "bundle"))
    chip_line = next(line for line in exported.splitlines() if "deployment cost" in line)
    payload = next(line for line in exported.splitlines() if line.startswith("payload"))
    print(f"authors' code: test accuracy {theirs:.4f} ({args.epochs} epochs)")
    print(f"gac-deploy evaluate of the import: {evaluated}")
    print(f"gac-deploy export: {payload}")
    print(f"gac-deploy export: {chip_line}")
    (work / "result.json").write_text(
        json.dumps({"authors": theirs, "evaluate": evaluated, "export": chip_line}, indent=1)
    )


if __name__ == "__main__":
    main()

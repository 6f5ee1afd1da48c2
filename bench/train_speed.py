"""Our training step against a straightforward implementation of the same math.

    python bench/train_speed.py [--arch msresnet18-cifar] [-T 4] [--batch 4] [--steps 3]

Straightforward: the image repeated T times through the stem and the GAU (every step
computed), LIF neurons as a plain per-step loop differentiated by autograd (every
intermediate stored). Ours: static-input factoring of the encoder and the LIF's
hand-written backward over time. Each variant runs in its own process (so its peak
memory is its own); peak activation memory is the rise of the process's peak resident
memory over what it held before the first step. Losses and gradients of the two are
compared first (float64, one batch). Runs on CUDA too when --device cuda.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time

import torch
from torch.nn import functional as F

import gac_deploy.models.lif as lif
from gac_deploy.models import build_model, default_config
from gac_deploy.models.lif import lif_forward_autograd


@contextlib.contextmanager
def plain_lif():
    """Every LIF population differentiated by autograd through its per-step loop."""
    original = lif.lif_forward
    lif.lif_forward = lif_forward_autograd
    try:
        yield
    finally:
        lif.lif_forward = original


def straightforward_encoder(encoder, image: torch.Tensor) -> torch.Tensor:
    """GAC as the authors' code runs it: [T*N] copies of the image through every stage."""
    t, n = encoder.time_steps, image.shape[0]
    f = encoder.bn(encoder.conv(image.unsqueeze(0).expand(t, *image.shape).flatten(0, 1)))
    f = f.view(t, n, *f.shape[1:])
    spikes = lif_forward_autograd(f, encoder.lif.config)
    m = (encoder.ta.mlp(f.mean(dim=(2, 3, 4)).T) + encoder.ta.mlp(f.amax(dim=(2, 3, 4)).T)).T
    sca = encoder.sca(f.flatten(0, 1)).view_as(f)
    return torch.sigmoid(m[:, :, None, None, None] * sca) * spikes


def straightforward_forward(model, image: torch.Tensor) -> torch.Tensor:
    with plain_lif():
        return model.body(straightforward_encoder(model.encoder, image)).mean(dim=0)


def check_equal(arch: str, time_steps: int) -> float:
    """Largest gradient difference between the two forms (float64, eval-mode BN)."""
    torch.manual_seed(0)
    model = build_model(default_config(arch, time_steps=time_steps)).double().eval()
    size = model.config.image_size
    image = torch.randn(2, model.config.in_channels, size, size, dtype=torch.float64)
    label = torch.tensor([0, 1])
    grads = []
    for forward in (model, lambda x: straightforward_forward(model, x)):
        model.zero_grad()
        loss = F.cross_entropy(forward(image), label)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, ga), (loss_b, gb) = grads
    assert abs(loss_a - loss_b) < 1e-10, (loss_a, loss_b)
    return max((a - b).abs().max().item() for a, b in zip(ga, gb, strict=True))


def run_variant(
    variant: str, arch: str, time_steps: int, batch: int, steps: int, device: str
) -> dict:
    torch.manual_seed(0)
    model = build_model(default_config(arch, time_steps=time_steps)).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    size = model.config.image_size
    image = torch.randn(batch, model.config.in_channels, size, size, device=device)
    label = torch.randint(0, model.config.num_classes, (batch,), device=device)
    forward = model if variant == "ours" else (lambda x: straightforward_forward(model, x))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = F.cross_entropy(forward(image), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    return {"images_per_s": batch / min(times), "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="msresnet18-cifar")
    parser.add_argument("-T", "--time-steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(
            json.dumps(
                run_variant(
                    args.variant, args.arch, args.time_steps, args.batch, args.steps, args.device
                )
            )
        )
        return
    diff = check_equal(args.arch, args.time_steps)
    print(f"largest gradient difference, float64: {diff:.3g}")
    results = {}
    for variant in ("straightforward", "ours"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--arch",
                args.arch,
                "-T",
                str(args.time_steps),
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(
            f"{variant}: {r['images_per_s']:.2f} images/s, peak activation memory "
            f"{r['peak_mb']:.0f} MB ({args.arch}, T={args.time_steps}, batch {args.batch}, "
            f"{args.device})"
        )
    speed = results["ours"]["images_per_s"] / results["straightforward"]["images_per_s"]
    memory = results["ours"]["peak_mb"] / results["straightforward"]["peak_mb"]
    print(f"throughput ratio: {speed:.2f} (target >= 1.5)")
    print(f"memory ratio: {memory:.2f} (target <= 0.6)")


if __name__ == "__main__":
    main()

"""Our training step against a straightforward implementation of the same math.

    python bench/train_speed.py [--arch msresnet18-cifar] [-T 4] [--batch 4] [--steps 4]

Straightforward (``gac_deploy.testing.straightforward_forward``): the image repeated T
times through the stem and the GAU (every step computed), LIF neurons as a plain per-step
loop differentiated by autograd (every intermediate stored). Ours: static-input factoring
of the encoder and the LIF's hand-written backward over time, spikes kept for backward as
bytes. Activation memory is what autograd keeps for the backward pass of one training
step: the bytes of every distinct storage saved for backward (counted with
``torch.autograd.graph.saved_tensors_hooks``, in the first step, a warm-up). The last
step is profiled to measure the time spent in convolutions, which both forms share, and
so the best ratio any change outside them could give. Throughput is the best of the steps
between (forward, backward, SGD update). "ours, compiled LIF" is ours with the LIF
recurrences compiled (``compiled_recurrences``, the trainer's ``--compile``); its first
step includes the compilation. Losses and gradients of the two forms are compared first
(float64, one batch). Runs on CUDA too with --device cuda, which also prints the peak
memory allocated during a step above the resident weights and optimiser state."""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.nn import functional as F

import gac_deploy.models.lif as lif
from gac_deploy.models import build_model, default_config
from gac_deploy.testing import check_equal, straightforward_forward


def run_variant(
    variant: str, arch: str, time_steps: int, batch: int, steps: int, device: str
) -> dict:
    torch.manual_seed(0)
    model = build_model(default_config(arch, time_steps=time_steps)).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    size = model.config.image_size
    image = torch.randn(batch, model.config.in_channels, size, size, device=device)
    label = torch.randint(0, model.config.num_classes, (batch,), device=device)
    forward = (
        (lambda x: straightforward_forward(model, x)) if variant == "straightforward" else model
    )
    compile_lif = variant == "ours, compiled LIF"
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    times, conv_s, peak_mb = [], float("inf"), None
    for step in range(steps):
        if device == "cuda" and step == 1:  # peak memory of a step, above weights and state
            torch.cuda.synchronize()
            resident = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        profiling = step == steps - 1  # the last step, profiled apart from the timed ones
        with (
            lif.compiled_recurrences(compile_lif),
            hooks if step == 0 else contextlib.nullcontext(),
            _profile(profiling) as prof,
        ):
            loss = F.cross_entropy(forward(image), label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
        if device == "cuda" and step == 1:
            peak_mb = (torch.cuda.max_memory_allocated() - resident) / 2**20
        if profiling:
            conv_s = _convolution_seconds(prof, device)
        else:
            times.append(time.perf_counter() - started)
    return {
        "first_step_s": times[0],
        "images_per_s": batch / min(times[1:] or times),
        "activation_mb": sum(saved.values()) / 2**20,
        "step_s": min(times[1:] or times),
        "conv_s": conv_s,
        "peak_mb": peak_mb,
    }


def _profile(active: bool):
    if not active:
        return contextlib.nullcontext()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return torch.profiler.profile(activities=activities)


def _convolution_seconds(prof, device: str) -> float:
    """Time of one step spent in convolutions, forward and backward (device time on CUDA)."""
    attr = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    return 1e-6 * sum(
        getattr(event, attr) for event in prof.key_averages() if "convolution" in event.key
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="msresnet18-cifar")
    parser.add_argument("-T", "--time-steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="timed steps + 1 profiled")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    diff = check_equal(args.arch, args.time_steps)
    print(f"largest gradient difference, float64: {diff:.3g}")
    results = {}
    for variant in ("straightforward", "ours", "ours, compiled LIF"):
        r = results[variant] = run_variant(
            variant, args.arch, args.time_steps, args.batch, args.steps, args.device
        )
        print(
            f"{variant}: {r['images_per_s']:.2f} images/s, activation memory "
            f"{r['activation_mb']:.0f} MB"
            + ("" if r["peak_mb"] is None else f" (CUDA step peak {r['peak_mb']:.0f} MB)")
            + f", first step {r['first_step_s']:.1f} s "
            f"({args.arch}, T={args.time_steps}, batch {args.batch}, {args.device})"
        )
    plain = results["straightforward"]
    for variant in ("ours", "ours, compiled LIF"):
        r = results[variant]
        print(
            f"{variant}: throughput ratio {r['images_per_s'] / plain['images_per_s']:.2f} "
            f"(target >= 1.5), memory ratio {r['activation_mb'] / plain['activation_mb']:.2f} "
            f"(target <= 0.6)"
        )
    ours = results["ours"]
    print(
        f"convolutions, forward and backward (one profiled step): straightforward "
        f"{plain['conv_s'] * 1e3:.0f} ms of a {plain['step_s'] * 1e3:.0f} ms step, ours "
        f"{ours['conv_s'] * 1e3:.0f} ms of {ours['step_s'] * 1e3:.0f} ms; with everything "
        f"but our convolutions free, the ratio could reach at most "
        f"{plain['step_s'] / ours['conv_s']:.2f}"
    )


if __name__ == "__main__":
    main()

"""How well a model does: top-1 test accuracy (over one or several processes) and the
firing rates of its LIF populations."""

from __future__ import annotations

import torch

from gac_deploy.data import Split
from gac_deploy.training.batches import load_ahead
from gac_deploy.world import World, all_sum, shard


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    batch_size: int = 256,
    count: int | None = None,
    world: World | None = None,
    workers: int = 0,
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on the first ``count`` test images (all).
    With several processes each evaluates its share and the counts are summed; ``workers``
    processes load the images ahead (see :func:`gac_deploy.training.batches.load_ahead`)."""
    model.eval()
    world = world or World()
    total = len(split.test) if count is None else min(count, len(split.test))
    share = shard(torch.arange(total), world).tolist()
    chunks = (
        [(i, 0) for i in share[lo : lo + batch_size]] for lo in range(0, len(share), batch_size)
    )
    correct = 0
    for x, y in load_ahead(split.test, chunks, workers, train=False):
        device = next(model.parameters()).device
        correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    (correct,) = all_sum([correct], world)
    return correct / max(total, 1)


@torch.no_grad()
def population_rates(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Eq. 12 firing rate of each LIF population of a float model on images x."""
    if not hasattr(model, "populations"):
        return {}
    spikes: dict[str, float] = {}
    hooks = [
        lif.register_forward_hook(
            lambda _m, _i, out, name=name: spikes.__setitem__(name, float(out.mean()))
        )
        for name, lif in model.populations().items()
    ]
    try:
        model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return spikes

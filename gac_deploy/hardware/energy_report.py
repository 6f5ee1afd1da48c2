"""``gac-deploy energy``: measure firing rates, then apply Eq. 11 layer by layer.

For a bundle, rates come from the emulator on the bundle's test images (the
network Lava runs, spike for spike); for a checkpoint, from the float PyTorch
model on its test images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.data import load_split
from gac_deploy.errors import UserError
from gac_deploy.export.bundle import MANIFEST_FILE, load_bundle
from gac_deploy.hardware.emulator import emulate
from gac_deploy.hardware.energy import (
    HOROWITZ45_FP32,
    LayerEnergy,
    LayerSpec,
    firing_rate,
    layer_specs,
    paper_energy,
)
from gac_deploy.models import GACMSResNet


@dataclass
class EnergyReport:
    source: str
    rates_from: str
    samples: int
    time_steps: int
    convention: str
    profile: str
    profile_source: str
    layers: list[LayerEnergy]
    firing_rates: dict[str, float]

    @property
    def total_pj(self) -> float:
        return sum(row.energy_pj for row in self.layers)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["total_pj"] = self.total_pj
        return data


@torch.no_grad()
def model_firing_rates(model: GACMSResNet, images: torch.Tensor) -> dict[str, float]:
    """Eq. 12 rate of every LIF population of the float model on ``images``."""
    counts: dict[str, list[torch.Tensor]] = {}
    hooks = [
        lif.register_forward_hook(
            lambda _m, _i, out, name=name: counts.setdefault(name, []).append(out)
        )
        for name, lif in model.populations().items()
    ]
    try:
        model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: firing_rate(torch.cat(outs, dim=1)) for name, outs in counts.items()}


def energy_report(path: str | Path, samples: int = 64) -> EnergyReport:
    """Energy per inference of a bundle directory or a model.pt, paper convention."""
    path = Path(path)
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if path.is_dir() or path.name == MANIFEST_FILE:
        bundle = load_bundle(path if path.is_dir() else path.parent)
        split = load_split(bundle.data_spec)
        images = split.x_test[:samples].numpy()
        _, payload = bundle.encode(images)
        run = emulate(bundle.graph, torch.from_numpy(payload))
        rates = {name: firing_rate(s) for name, s in run.spikes.items()}
        specs = [LayerSpec(**spec) for spec in bundle.manifest["layers"]]
        time_steps, rates_from = bundle.graph.time_steps, "the emulator (= Lava, spike for spike)"
    else:
        ckpt = load_checkpoint(path)
        model = ckpt.build()
        split = load_split(ckpt.data)
        rates = model_firing_rates(model, split.x_test[:samples])
        specs = layer_specs(model.export_graph(), ckpt.model_config)
        time_steps, rates_from = ckpt.model_config.time_steps, "float PyTorch model"
    rows = paper_energy(specs, rates, time_steps, HOROWITZ45_FP32)
    return EnergyReport(
        source=str(path),
        rates_from=rates_from,
        samples=min(samples, len(split.x_test)),
        time_steps=time_steps,
        convention="paper (Eq. 11)",
        profile=HOROWITZ45_FP32.name,
        profile_source=HOROWITZ45_FP32.source,
        layers=rows,
        firing_rates=rates,
    )

"""``gac-deploy energy``: measure (or assume) what an inference does, then price it.

Activity comes from one of three places, one entry point each:
* ``report_for_bundle``: the emulator on the bundle's test images (the network Lava
  runs, spike for spike): firing rates and exact synaptic events;
* ``report_for_checkpoint``: the float PyTorch model on its test images, events
  counted exactly from its spikes;
* ``report_what_if``: an architecture with assumed firing rates, events estimated as
  FLOPs x rate x T.
Each hands its activity to ``priced_report``, which computes both conventions (paper
Eq. 11 and complete) and the ANN equivalent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from gac_deploy.body.graph import INPUT, Graph
from gac_deploy.body.ops import LayerSpec, layer_specs
from gac_deploy.body.timing import pad_to_window
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.chip.emulator import active_per_position, emulate, prepare
from gac_deploy.chip.reference import run_float_graph
from gac_deploy.config import ModelConfig
from gac_deploy.data import Split, load_split
from gac_deploy.energy.accounting import (
    Activity,
    LayerEnergy,
    ann_energy,
    complete_energy,
    estimated_events,
    paper_energy,
)
from gac_deploy.errors import UserError
from gac_deploy.export.loading import load_bundle
from gac_deploy.export.manifest import MANIFEST_FILE
from gac_deploy.models import GACMSResNet, build_model, default_config
from gac_deploy.models.encoder import LIFEncoder
from gac_deploy.models.msresnet import ENCODER_LIF
from gac_deploy.registries.profiles import DEFAULT_PROFILE, PAPER_PROFILE, PROFILES, EnergyProfile
from gac_deploy.world import World, block, gather


@dataclass
class EnergyReport:
    source: str
    model: str
    """What was priced, for titles: architecture, encoder, shortcut form, T."""
    activity: str
    exact_events: bool
    samples: int
    time_steps: int
    """The model's T."""
    profile: str
    profile_source: str
    paper: list[LayerEnergy]
    complete: list[LayerEnergy]
    ann_pj: float
    firing_rates: dict[str, float]
    accuracy: float | None = None
    """Top-1 accuracy on the images the activity was measured on (None for what-if)."""
    padding_steps: int = 0
    """Steps of the chip's presentation window after the T real ones (W - T), priced too:
    the chip runs them (neuron updates, and whatever biases still drive)."""
    processes: int = 1
    """Processes that measured the activity between them (torchrun)."""

    @property
    def paper_pj(self) -> float:
        return sum(row.energy_pj for row in self.paper)

    @property
    def complete_pj(self) -> float:
        return sum(row.energy_pj for row in self.complete)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(paper_pj=self.paper_pj, complete_pj=self.complete_pj)
        data["conventions"] = {
            "paper": "Eq. 11: stem conv once at E_MAC; body conv/fc FL x fr x T at E_AC",
            "complete": "every host op, every synaptic event, neuron update and spike",
        }
        return data


@dataclass
class SignalCounts:
    """What measured activity is computed from, exactly, for ``images`` test images: per
    signal (the host input and each spiking population, [T, N, ...]) its nonzero entries
    per spatial position (int64, summed over steps, images and channels: what synaptic
    events are counted from) and its slots (steps x images x neurons); and how many
    images were classified right. Counts of disjoint images add up (:meth:`__add__`), so
    processes that each measured their share merge into what one process measures."""

    positions: dict[str, np.ndarray]
    slots: dict[str, int]
    images: int
    correct: int

    @classmethod
    def of(cls, signals: dict, predictions: torch.Tensor, labels: torch.Tensor) -> SignalCounts:
        return cls(
            positions={name: active_per_position(s) for name, s in signals.items()},
            slots={name: int(s.numel()) for name, s in signals.items()},
            images=len(labels),
            correct=int((predictions == labels).sum()),
        )

    def __add__(self, other: SignalCounts) -> SignalCounts:
        return SignalCounts(
            positions={k: v + other.positions[k] for k, v in self.positions.items()},
            slots={k: v + other.slots[k] for k, v in self.slots.items()},
            images=self.images + other.images,
            correct=self.correct + other.correct,
        )

    def rate(self, name: str) -> float:
        """Eq. 12: nonzero entries / (neurons x steps x images)."""
        return int(self.positions[name].sum()) / self.slots[name]


def _activity(graph: Graph, counts: SignalCounts, source: str) -> Activity:
    synapses = prepare(graph)
    events = {
        e.name: synapses[e.name].events(counts.positions[e.src]) / counts.images
        for e in graph.edges
    }
    rates = {name: counts.rate(name) for name in counts.positions if name != INPUT}
    rates[ENCODER_LIF] = counts.rate(INPUT)
    return Activity(
        graph.window,
        rates,
        events,
        True,
        source,
        accuracy=counts.correct / counts.images,
        padding_steps=graph.window - graph.time_steps,
    )


def check_samples(samples: int) -> None:
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")


def measured_counts(
    split: Split,
    samples: int,
    count: Callable[[torch.Tensor, torch.Tensor], SignalCounts],
    world: World | None = None,
) -> SignalCounts:
    """``count`` (test images [n, C, H, W], labels [n] -> their counts) of the first
    ``samples`` test images of ``split``; with several processes (:mod:`gac_deploy.world`)
    each counts its block of them and the counts add up, in rank order (a process
    without images sends None)."""
    world = world or World()
    share = block(min(samples, len(split.test)), world)
    mine = count(*split.test_range(share)) if share else None
    shares = [c for c in gather(mine, world) if c is not None]
    total = shares[0]
    for other in shares[1:]:
        total = total + other
    return total


def bundle_activity(
    path: Path, samples: int, data_dir: str | None = None, world: World | None = None
) -> tuple[Activity, Graph, ModelConfig, list, int]:
    """The emulator's activity on the first ``samples`` test images (split over
    ``world``'s processes)."""
    bundle = load_bundle(path)

    def count(images: torch.Tensor, labels: torch.Tensor) -> SignalCounts:
        _, payload = bundle.encode(images.numpy())
        payload = pad_to_window(torch.from_numpy(payload), bundle.graph.window)
        run = emulate(bundle.graph, payload)
        return SignalCounts.of({INPUT: payload, **run.spikes}, run.predictions, labels)

    split = load_split(bundle.data_spec, data_dir)
    counts = measured_counts(split, samples, count, world)
    activity = _activity(bundle.graph, counts, "the emulator (= Lava, spike for spike)")
    specs = [LayerSpec(**spec) for spec in bundle.manifest["layers"]]
    return activity, bundle.graph, bundle.model_config, specs, counts.images


@torch.no_grad()
def model_counts(
    model: GACMSResNet, graph: Graph, images: torch.Tensor, labels: torch.Tensor
) -> SignalCounts:
    """Spikes of the float model (its body as ``graph``, its exported graph; encoder run as
    trained), counted."""
    model.eval()
    encoded = model.encoder(images)
    run = run_float_graph(graph, encoded.double())
    return SignalCounts.of({INPUT: encoded, **run.spikes}, run.predictions, labels)


def model_activity(model: GACMSResNet, graph: Graph, counts: SignalCounts) -> Activity:
    """The float model's activity from its counts (:func:`model_counts`)."""
    activity = _activity(graph, counts, "float PyTorch model")
    if not isinstance(model.encoder, LIFEncoder):  # O is not the encoder LIF's spikes
        activity.rates.pop(ENCODER_LIF)
    return activity


def what_if_config(
    arch: str,
    time_steps: int | None = None,
    encoder: str | None = None,
    shortcut: str | None = None,
) -> ModelConfig:
    """A registered architecture with the what-if overrides that are given."""
    overrides = {"time_steps": time_steps, "encoder": encoder, "shortcut": shortcut}
    return default_config(arch, **{k: v for k, v in overrides.items() if v is not None})


def what_if_activity(config: ModelConfig, rates: dict[str, float]) -> tuple[Activity, Graph]:
    """An architecture with assumed rates: one value for every population, or one each."""
    torch.manual_seed(0)
    graph = build_model(config).eval().export_graph()  # the graph gives the shapes
    names = [p.name for p in graph.populations if p.role == "lif"] + [ENCODER_LIF]
    if set(rates) == {"*"}:
        rates = dict.fromkeys(names, rates["*"])
    missing = [n for n in names if n not in rates]
    if missing:
        raise UserError(
            f"the rates file has no rate for {', '.join(missing[:6])}; give every "
            "population (or use --firing-rate for one rate)"
        )
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise UserError(
                f"firing rate of {name} is {rate}; rates are spikes per neuron and "
                "step, between 0 and 1"
            )
    events = estimated_events(graph, rates, config.time_steps)
    return Activity(config.time_steps, rates, events, False, "assumed firing rates"), graph


def load_rates(firing_rate_value: float | None, rates_file: str | None) -> dict[str, float]:
    if (firing_rate_value is None) == (rates_file is None):
        raise UserError("with --arch give either --firing-rate R or --rates FILE.json")
    if firing_rate_value is not None:
        return {"*": firing_rate_value}
    try:
        data = json.loads(Path(rates_file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(
            f"cannot read rates file {rates_file} ({exc}); pass a JSON object {{population: rate}}"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{rates_file} must hold a JSON object {{population: rate}}")
    for name, rate in data.items():
        if not isinstance(rate, int | float) or isinstance(rate, bool):
            raise UserError(
                f"{rates_file}: the rate of {name} is {rate!r}, not a number; give spikes per "
                "neuron and step, between 0 and 1"
            )
    return {str(k): float(v) for k, v in data.items()}


def describe_model(config: ModelConfig) -> str:
    """``config`` in a few words, e.g. 'msresnet18-cifar, GAC encoder, spike shortcuts, T=6'."""
    encoder = "GAC" if config.encoder == "gac" else config.encoder
    return f"{config.arch}, {encoder} encoder, {config.shortcut} shortcuts, T={config.time_steps}"


def priced_report(
    source: str,
    activity: Activity,
    config: ModelConfig,
    graph: Graph,
    specs: list[LayerSpec],
    samples: int,
    profile: EnergyProfile,
) -> EnergyReport:
    """Price one inference's activity in both conventions (and the ANN equivalent).

    ``samples``: test images the activity was measured on (0 for assumed rates)."""
    return EnergyReport(
        source=source,
        model=describe_model(config),
        activity=activity.source,
        exact_events=activity.exact,
        samples=samples,
        time_steps=activity.time_steps - activity.padding_steps,
        padding_steps=activity.padding_steps,
        profile=profile.name,
        profile_source=profile.source,
        paper=paper_energy(specs, activity.rates, activity.time_steps, profile),
        complete=complete_energy(config, graph, activity, profile),
        ann_pj=ann_energy(specs, profile),
        firing_rates=activity.rates,
        accuracy=activity.accuracy,
    )


def report_for_bundle(
    path: str | Path,
    samples: int = 64,
    profile: EnergyProfile = PAPER_PROFILE,
    data_dir: str | None = None,
    world: World | None = None,
) -> EnergyReport:
    """A bundle (its directory or its manifest.json) measured by the emulator on
    ``samples`` test images (read from ``data_dir`` when given: the same test split),
    split over ``world``'s processes."""
    check_samples(samples)
    path = Path(path)
    directory = path.parent if path.name == MANIFEST_FILE and not path.is_dir() else path
    world = world or World()
    activity, graph, config, specs, count = bundle_activity(directory, samples, data_dir, world)
    report = priced_report(str(path), activity, config, graph, specs, count, profile)
    return replace(report, processes=world.size)


def report_for_checkpoint(
    path: str | Path,
    samples: int = 64,
    profile: EnergyProfile = PAPER_PROFILE,
    data_dir: str | None = None,
    world: World | None = None,
) -> EnergyReport:
    """A model.pt measured by the float model on ``samples`` test images, split over
    ``world``'s processes."""
    check_samples(samples)
    world = world or World()
    ckpt = load_checkpoint(path)
    model = ckpt.build()
    graph = model.export_graph()
    split = load_split(ckpt.data, data_dir)
    counts = measured_counts(split, samples, partial(model_counts, model, graph), world)
    activity = model_activity(model, graph, counts)
    config = ckpt.model_config
    specs = layer_specs(graph, config)
    report = priced_report(str(Path(path)), activity, config, graph, specs, counts.images, profile)
    return replace(report, processes=world.size)


def report_for_path(
    path: str | Path,
    samples: int = 64,
    profile: EnergyProfile = PAPER_PROFILE,
    data_dir: str | None = None,
    world: World | None = None,
) -> EnergyReport:
    """A bundle directory (or its manifest.json), else a model.pt; its test images from
    ``data_dir`` when given (default: where the data was)."""
    path = Path(path)
    if path.is_dir() or path.name == MANIFEST_FILE:
        return report_for_bundle(path, samples, profile, data_dir, world)
    return report_for_checkpoint(path, samples, profile, data_dir, world)


def report_what_if(
    config: ModelConfig,
    rates: dict[str, float],
    profile: EnergyProfile = PAPER_PROFILE,
) -> EnergyReport:
    """An architecture with assumed firing rates (``load_rates``); events estimated."""
    activity, graph = what_if_activity(config, rates)
    return priced_report(
        config.arch, activity, config, graph, layer_specs(graph, config), 0, profile
    )


def energy_report(
    path: str | Path | None = None,
    samples: int = 64,
    profile: str = DEFAULT_PROFILE,
    arch: str | None = None,
    time_steps: int | None = None,
    firing_rate_value: float | None = None,
    rates_file: str | None = None,
    encoder: str | None = None,
    shortcut: str | None = None,
) -> EnergyReport:
    """The ``energy`` command's choice in one call, for scripts and tests: the what-if
    report when ``arch`` is given, else the report of the bundle or model.pt at ``path``.
    Options are refused in the command's order: profile, samples, then the source's own."""
    pricing = PROFILES.get(profile)
    check_samples(samples)
    if arch is not None:
        config = what_if_config(arch, time_steps, encoder, shortcut)
        return report_what_if(config, load_rates(firing_rate_value, rates_file), pricing)
    if path is None:
        raise UserError("give a bundle, a model.pt, or --arch NAME with --firing-rate")
    return report_for_path(path, samples, pricing)


def _nj(pj: float) -> str:
    return f"{pj / 1000:,.3f}"


def format_report(report: EnergyReport, convention: str = "paper") -> str:
    """The per-layer table of one convention and both totals, as printed by the CLI."""
    from gac_deploy.table import format_table

    rows_in = report.paper if convention == "paper" else report.complete
    total = report.paper_pj if convention == "paper" else report.complete_pj
    rows = [
        [
            r.name,
            r.placement,
            r.op,
            r.firing_rate,
            round(r.ops),  # a mean over images; the JSON keeps it exact
            r.energy_pj / 1000,
            100 * r.energy_pj / total if total else 0.0,
        ]
        for r in rows_in
    ]
    table = format_table(["layer", "runs on", "op", "in rate", "ops", "energy nJ", "share %"], rows)
    naive = [r for r in report.complete if r.naive_ops]
    lines = [
        f"{convention} convention ({report.profile}; T={report.time_steps}"
        + (
            f" + {report.padding_steps} padding steps of the chip's "
            f"{report.time_steps + report.padding_steps}-step window, priced: the chip runs them"
            if report.padding_steps
            else ""
        )
        + f"; activity from "
        f"{report.activity}"
        + (f" on {report.samples} test images" if report.samples else "")
        + ("" if report.exact_events else "; synaptic events estimated as FLOPs x rate x T")
        + ")",
        table,
        f"total per inference: paper (Eq. 11) {_nj(report.paper_pj)} nJ, complete "
        f"{_nj(report.complete_pj)} nJ, ANN equivalent (every FLOP a MAC) {_nj(report.ann_pj)} nJ",
    ]
    if convention == "complete" and naive:
        extra = sum((r.naive_ops - r.ops) * r.energy_pj / r.ops for r in naive if r.ops)
        lines.append(
            f"evaluated per step instead of once (the authors' form), the stem and encoder "
            f"layers would add {_nj(extra)} nJ"
        )
    return "\n".join(lines)


def format_comparison(a: EnergyReport, b: EnergyReport) -> str:
    """Two models side by side: firing rates and energy per convention."""
    from gac_deploy.table import format_table

    names = [n for n in a.firing_rates if n in b.firing_rates]
    rows = [[f"rate {n}", a.firing_rates[n], b.firing_rates[n]] for n in names]
    mean_a = sum(a.firing_rates[n] for n in names) / max(len(names), 1)
    mean_b = sum(b.firing_rates[n] for n in names) / max(len(names), 1)
    rows += [
        ["accuracy (measured images)", a.accuracy, b.accuracy],
        ["mean firing rate", mean_a, mean_b],
        ["paper (Eq. 11) nJ", a.paper_pj / 1000, b.paper_pj / 1000],
        ["complete nJ", a.complete_pj / 1000, b.complete_pj / 1000],
        ["ANN equivalent nJ", a.ann_pj / 1000, b.ann_pj / 1000],
    ]

    def label(source: str) -> str:
        return "/".join(Path(source).parts[-2:])

    return format_table(["", label(a.source), label(b.source)], rows)

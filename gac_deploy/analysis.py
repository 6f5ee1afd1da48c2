"""The paper's observer-model analysis (Theoretical Analysis; Supplementary B).

* Direct coding with a constant input x fires with period T_p (Eq. 10/13):
  T_p = ceil(log_tau(1 - Vth (1 - tau) / x)); for x <= Vth (1 - tau) it never fires.
* Dynamics duration of a sequence a = [a^1 .. a^T] (Definition 3), measured as
  the smallest p such that a is p-periodic from the start (a^t = a^{t-p} for
  all t > p): after p steps an observer who knows the mechanism can predict
  the rest. A sequence that is zero throughout gives T (nothing predicts when,
  if ever, it fires). Proposition 1: GAC's duration T_g >= direct coding's T_d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from gac_deploy.config import LIFConfig
from gac_deploy.models.lif import lif_forward


def firing_period_formula(x: float, config: LIFConfig) -> float:
    """Eq. 13: T_p for a constant input x (math.inf when the neuron never fires).

    Eq. 13's ceil(L), L = log_tau(1 - Vth (1 - tau) / x), is the first t with
    U^t >= Vth. With a strict threshold (U^t > Vth) the first step is floor(L) + 1;
    the two differ only when L is an integer, i.e. U^t lands exactly on Vth.
    """
    floor = config.threshold * (1 - config.tau)
    if x <= floor:
        return math.inf
    if config.tau == 0:
        return (
            1.0
            if (x > config.threshold or not config.strict and x == config.threshold)
            else math.inf
        )
    log = math.log(1 - floor / x, config.tau)
    if abs(log - round(log)) < 1e-9:
        log = float(round(log))
    return float(math.floor(log) + 1 if config.strict else math.ceil(log))


def observed_period(x: float, config: LIFConfig, steps: int = 200) -> float:
    """First spike step (1-based) of a LIF driven by constant x; with reset to 0 this is
    also the period. math.inf if it does not fire within ``steps``."""
    spikes = lif_forward(torch.full((steps, 1), float(x), dtype=torch.float64), config)
    fired = torch.nonzero(spikes[:, 0]).flatten()
    return float(fired[0] + 1) if len(fired) else math.inf


@dataclass(frozen=True)
class PeriodRow:
    x: float
    formula: float
    observed: float

    @property
    def agrees(self) -> bool:
        return self.formula == self.observed


def sweep_inputs(config: LIFConfig, max_period: int = 6) -> list[float]:
    """Inputs that exercise every period up to ``max_period``: x_p = Vth (1 - tau) /
    (1 - tau**p) is the smallest input whose potential reaches Vth at step p; the
    sweep takes each x_p (where strictness decides), points between them, the
    never-firing boundary Vth (1 - tau) and half of it."""
    floor = config.threshold * (1 - config.tau)
    edges = [floor / (1 - config.tau**p) for p in range(1, max_period + 1)]
    between = [(a + b) / 2 for a, b in zip(edges[1:], edges[:-1], strict=True)]
    return sorted({floor / 2, floor, *edges, *between, edges[0] * 1.5})


def period_sweep(config: LIFConfig, xs: list[float]) -> list[PeriodRow]:
    return [PeriodRow(x, firing_period_formula(x, config), observed_period(x, config)) for x in xs]


def dynamics_duration(sequences: torch.Tensor) -> torch.Tensor:
    """Definition 3 per position: sequences [T, ...] -> smallest period p [...] (int64)."""
    t = sequences.shape[0]
    duration = torch.full(sequences.shape[1:], t, dtype=torch.int64)
    undecided = torch.ones(sequences.shape[1:], dtype=torch.bool)
    silent = (sequences == 0).all(dim=0)
    for p in range(1, t):
        periodic = (sequences[p:] == sequences[:-p]).all(dim=0)
        hit = periodic & undecided & ~silent
        duration[hit] = p
        undecided &= ~hit
    return duration


@torch.no_grad()
def encoder_dynamics(model, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamics durations of direct coding (the stem LIF's spikes, same Conv-BN) and of
    GAC's output, per neuron and image: two tensors [N, C, H, W]."""
    encoder = model.eval().encoder
    features = encoder.stem(images)
    direct = encoder.lif(encoder.repeat(features))
    gac = encoder(images)
    return dynamics_duration(direct), dynamics_duration(gac)


def plot_encoding(model, image: torch.Tensor, path: str | Path) -> None:
    """Write :func:`encoding_figure` of ``image`` [C, H, W] to ``path`` (PNG, or the
    format its suffix names)."""
    import matplotlib.pyplot as plt

    from gac_deploy.fileio import atomic_path

    fig = encoding_figure(model, image)
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


@torch.no_grad()
def encoding_figure(model, image: torch.Tensor):
    """Fig. 3 as a matplotlib Figure: the encoder output of one image at each step t,
    averaged over its C channels ([H, W] per step). Top row, direct coding: the stem
    LIF's spikes (a pixel's value is the fraction of channels firing there); bottom
    row, GAC: O = sigmoid(TA x SCA) x spikes (Eq. 5). Both rows share one colour scale,
    shown by a labelled colour bar, and the figure carries that caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encoder = model.eval().encoder
    features = encoder.stem(image[None])
    rows = {
        "direct coding": encoder.lif(encoder.repeat(features))[:, 0].mean(1),
        "GAC": encoder(image[None])[:, 0].mean(1),
    }
    t = model.config.time_steps
    top = max(float(maps.max()) for maps in rows.values()) or 1.0
    fig, axes = plt.subplots(2, t + 1, figsize=(1.6 * (t + 1) + 1.2, 4.2), squeeze=False)
    axes[0, 0].imshow(image.mean(0), cmap="gray")
    axes[0, 0].set_title("input", fontsize=8)
    axes[1, 0].axis("off")
    for r, (label, maps) in enumerate(rows.items()):
        axes[r, 1].set_ylabel(label, fontsize=8)
        for step in range(t):
            ax = axes[r, step + 1]
            shown = ax.imshow(maps[step], cmap="viridis", vmin=0, vmax=top)
            ax.set_title(f"t={step + 1}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(shown, ax=axes[:, 1:].ravel().tolist(), shrink=0.9)
    bar.set_label("encoder output, mean over channels", fontsize=8)
    fig.text(
        0.01,
        0.01,
        f"{model.config.arch}, T={t}: one test image's encoder output per step, averaged "
        f"over its {features.shape[1]} channels; one colour scale for both rows.",
        fontsize=7,
    )
    return fig

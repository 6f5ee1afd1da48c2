"""A per-layer energy chart readable without the table: bars coloured by where a layer
runs and what it does, on a log axis (the host's attention can cost a thousand times a
small chip layer), host and chip totals in the title, and the input firing rate of each
chip layer."""

from __future__ import annotations

from pathlib import Path

from gac_deploy.energy.report import EnergyReport
from gac_deploy.fileio import atomic_path

COLOURS = {
    ("host", "MAC"): "#c0392b",
    ("host", "mul"): "#e67e22",
    ("host", "add"): "#f5b041",
    ("host", "host neuron update"): "#d35400",
    ("chip", "AC"): "#2471a3",
    ("chip", "graded AC"): "#5dade2",
    ("chip", "neuron update"): "#17a589",
    ("chip", "spike"): "#7dcea0",
}


def plot_energy(report: EnergyReport, convention: str, path: str | Path) -> None:
    """Write :func:`energy_figure` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = energy_figure(report, convention)
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def energy_figure(report: EnergyReport, convention: str):
    """The chart of ``report``'s rows in ``convention`` ('paper' or 'complete') as a
    matplotlib Figure: energy per layer (nJ, log axis) over each layer's input rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.paper if convention == "paper" else report.complete
    rows = [r for r in rows if r.energy_pj > 0]
    fig, (ax_e, ax_r) = plt.subplots(
        2, 1, figsize=(max(6, 0.45 * len(rows) + 2), 7), gridspec_kw={"height_ratios": [3, 1]}
    )
    colours = [COLOURS.get((r.placement, r.op), "#7f8c8d") for r in rows]
    ax_e.bar(range(len(rows)), [r.energy_pj / 1000 for r in rows], color=colours)
    ax_e.set_yscale("log")
    ax_e.set_ylabel("energy per inference (nJ, log scale)")
    totals = {
        where: sum(r.energy_pj for r in rows if r.placement == where) / 1000
        for where in ("host", "chip")
    }
    ax_e.set_title(
        f"{report.model}\n{convention} convention, {report.profile}: total "
        f"{sum(totals.values()):,.1f} nJ (host {totals['host']:,.1f}, chip {totals['chip']:,.1f})",
        fontsize=9,
    )
    seen = {(r.placement, r.op) for r in rows}
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for k, c in COLOURS.items() if k in seen]
    labels = [f"{p}: {o}" for (p, o) in COLOURS if (p, o) in seen]
    ax_e.legend(handles, labels, fontsize=8)
    ax_e.set_xticks(range(len(rows)))
    ax_e.set_xticklabels([])
    rates = [r.firing_rate if r.firing_rate is not None else 0.0 for r in rows]
    ax_r.bar(range(len(rows)), rates, color="#555555")
    ax_r.set_ylabel("input firing rate")
    ax_r.set_xticks(range(len(rows)))
    ax_r.set_xticklabels([r.name for r in rows], rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    return fig

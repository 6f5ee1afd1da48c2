"""The energy chart: small layers visible next to the host's attention, titled by model."""

from __future__ import annotations

import matplotlib.pyplot as plt

from gac_deploy.energy.plot import energy_figure, plot_energy
from gac_deploy.energy.report import energy_report


def test_energy_chart_uses_a_log_axis_and_names_the_model(tmp_path):
    report = energy_report(arch="msresnet18-cifar", firing_rate_value=0.2)
    fig = energy_figure(report, "complete")
    energy_axis = fig.axes[0]
    assert energy_axis.get_yscale() == "log"
    heights = [bar.get_height() for bar in energy_axis.patches]
    assert max(heights) / min(heights) > 100  # why a linear axis hid the small layers
    title = energy_axis.get_title()
    assert title.startswith("msresnet18-cifar, GAC encoder, spike shortcuts, T=6")
    host = sum(r.energy_pj for r in report.complete if r.placement == "host") / 1000
    assert f"host {host:,.1f}" in title
    plt.close(fig)
    plot_energy(report, "paper", tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"

import math

import torch

from gac_deploy.analysis import (
    dynamics_duration,
    encoder_dynamics,
    encoding_figure,
    firing_period_formula,
    period_sweep,
    plot_encoding,
    sweep_inputs,
)
from gac_deploy.checkpoint import load_checkpoint
from gac_deploy.config import LIFConfig
from gac_deploy.data import load_split


def test_period_formula_matches_simulation_over_a_sweep():
    cfg = LIFConfig()  # Vth 0.5, tau 0.25: never fires for x <= 0.375
    xs = [0.2, 0.375, 0.376, 0.38, 0.4, 0.45, 0.49, 0.51, 0.7, 1.0, 3.0]
    rows = period_sweep(cfg, xs)
    assert all(r.agrees for r in rows), [(r.x, r.formula, r.observed) for r in rows]
    assert rows[0].observed == math.inf and rows[1].observed == math.inf
    assert rows[-1].observed == 1
    # v: 0.4, 0.5, 0.525: U^2 lands exactly on Vth (L = 2), so strict fires at 3, Eq. 13 at 2
    assert firing_period_formula(0.4, cfg) == 3
    assert firing_period_formula(0.4, LIFConfig(strict=False)) == 2
    # (x = 0.375 itself is left out here: U^t approaches Vth from below and float
    # rounding reaches it after 27 steps, which a non-strict test counts as a spike)
    non_strict = [x for x in xs if x != 0.375]
    assert all(r.agrees for r in period_sweep(LIFConfig(strict=False), non_strict))


def test_generated_sweep_covers_every_period():
    for cfg in (LIFConfig(), LIFConfig(threshold=1.0, tau=0.5), LIFConfig(strict=False)):
        rows = period_sweep(
            cfg, [x for x in sweep_inputs(cfg) if x != cfg.threshold * (1 - cfg.tau) or cfg.strict]
        )
        assert all(r.agrees for r in rows)
        assert {r.observed for r in rows} >= {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, math.inf}


def test_authors_cifar_lif_period():
    cfg = LIFConfig(threshold=1.0, tau=0.5)
    assert all(r.agrees for r in period_sweep(cfg, [0.4, 0.5, 0.51, 0.6, 0.9, 1.2]))
    assert firing_period_formula(0.6, cfg) == 3  # 0.6, 0.9, 1.05


def test_dynamics_duration_definition():
    seqs = torch.tensor(
        [
            [0, 0, 1, 0, 0, 1],  # period 3
            [1, 1, 1, 1, 1, 1],  # period 1
            [0, 0, 0, 0, 0, 0],  # silent: T
            [0.2, 0.5, 0.1, 0.3, 0.0, 0.7],  # aperiodic: T
            [0.2, 0.5, 0.2, 0.5, 0.2, 0.5],  # period 2
        ]
    ).T
    assert dynamics_duration(seqs).tolist() == [3, 1, 6, 6, 2]


def test_proposition_1_on_trained_model(trained_dir, tmp_path):
    ckpt = load_checkpoint(trained_dir / "model.pt")
    model = ckpt.build()
    images = load_split(ckpt.data).test_images(32)[0]
    t_d, t_g = encoder_dynamics(model, images)
    assert (t_g >= t_d).all()
    assert t_g.float().mean() > t_d.float().mean()
    plot_encoding(model, images[0], tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").read_bytes()[:4] == b"\x89PNG"


def test_fig3_rows_share_one_labelled_colour_scale(trained_dir):
    import matplotlib.pyplot as plt

    ckpt = load_checkpoint(trained_dir / "model.pt")
    model = ckpt.build()
    image = load_split(ckpt.data).test_images(1)[0][0]
    fig = encoding_figure(model, image)
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "viridis"]
    assert len(maps) == 2 * model.config.time_steps
    assert len({im.get_clim() for im in maps}) == 1  # one scale for both rows
    top = max(float(im.get_array().max()) for im in maps)
    assert maps[0].get_clim() == (0, top)
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "encoder output, mean over channels"]
    assert len(bars) == 1
    assert any("averaged over its" in text.get_text() for text in fig.texts)  # the caption
    plt.close(fig)

"""``gac-deploy analyze``: the paper's observer-model analysis (Sec. 4) of a GAC model."""

from __future__ import annotations

from gac_deploy.cli.common import write_json_report
from gac_deploy.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="observer-model analysis of a GAC model (paper Sec. 4)",
        description="Direct coding's firing period T_p (Eq. 10/13) against "
        "simulation, dynamics durations of direct coding and GAC (Definition 3, "
        "Proposition 1), and the Fig. 3 picture.",
    )
    p.add_argument("checkpoint", help="model.pt of a GAC model")
    p.add_argument("--samples", type=int, default=64, help="test images (default 64)")
    p.add_argument("--plot", help="write the Fig. 3 picture (PNG) here")
    p.add_argument("--json", help="also write the results to this JSON file")


def run(args) -> dict:
    from gac_deploy.analysis import encoder_dynamics, period_sweep, plot_encoding, sweep_inputs
    from gac_deploy.checkpoint import load_checkpoint
    from gac_deploy.cli.paths import expect
    from gac_deploy.data import load_split
    from gac_deploy.table import format_table

    expect(args.checkpoint, "checkpoint")
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.model_config.encoder != "gac":
        raise UserError(
            "analyze compares direct coding with GAC; pass a model trained with encoder 'gac'"
        )
    if args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    lif = ckpt.model_config.lif
    floor = lif.threshold * (1 - lif.tau)
    rows = period_sweep(lif, sweep_inputs(lif))
    print(
        f"direct coding firing period T_p (Eq. 13) for constant input x; never fires for "
        f"x <= Vth(1 - tau) = {floor:g}"
    )
    print(
        format_table(
            ["x", "T_p formula", "T_p observed", "agree"],
            [[f"{r.x:.6f}", r.formula, r.observed, "yes" if r.agrees else "NO"] for r in rows],
        )
    )
    model = ckpt.build()
    images = load_split(ckpt.data).test_images(args.samples)[0]
    t_d, t_g = encoder_dynamics(model, images)
    holds = bool((t_g >= t_d).all())
    longer = float((t_g > t_d).float().mean())
    equal = float((t_g == t_d).float().mean())
    print(
        f"dynamics duration (Definition 3: steps before a neuron's output repeats) of "
        f"{t_d.numel():,} encoder neurons x images, T={ckpt.model_config.time_steps}: "
        f"direct coding mean {t_d.float().mean():.3f}, GAC mean {t_g.float().mean():.3f}; "
        f"GAC's is longer for {100 * longer:.1f}%, equal for {100 * equal:.1f}%; "
        f"Proposition 1 (T_g >= T_d) {'holds for every neuron' if holds else 'FAILS'}"
    )
    if args.plot:
        plot_encoding(model, images[0], args.plot)
        print(f"wrote {args.plot}")
    data = {
        "period_sweep": [  # null: never fires
            {"x": r.x, "formula": _finite(r.formula), "observed": _finite(r.observed)} for r in rows
        ],
        "direct_mean_duration": float(t_d.float().mean()),
        "gac_mean_duration": float(t_g.float().mean()),
        "gac_longer_fraction": longer,
        "proposition_1_holds": holds,
        "samples": len(images),
    }
    write_json_report(args.json, data)
    return data


def _finite(value: float) -> float | None:
    return None if value == float("inf") else value

"""``gac-deploy demo``: train -> export -> simulate -> energy on the embedded digits."""

from __future__ import annotations

import time
from pathlib import Path

from gac_deploy.cli import energy, export, simulate, train


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train -> export -> simulate -> energy on digits",
        description="The whole pipeline on the embedded default dataset.",
    )
    p.add_argument("--out", default="runs/demo", help="working directory (default runs/demo)")
    p.add_argument("--samples", type=int, default=16, help="images run in Lava (default 16)")
    p.add_argument("--epochs", type=int, help="training epochs (default 40)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> dict:
    from gac_deploy.cli import build_parser  # the package imports this module first

    out = Path(args.out)
    started = time.perf_counter()
    parse = build_parser().parse_args
    quiet = ["--quiet"] if args.quiet else []
    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    bundle = str(out / "bundle")
    print("== 1/4 train ==")
    train_args = ["train", "--out", str(out / "train"), "--overwrite", *epochs, *quiet]
    trained = train.run(parse(train_args))
    print("== 2/4 export ==")
    exported = export.run(parse(["export", trained["checkpoint"], "--out", bundle]))
    print("== 3/4 simulate (Lava) ==")
    sim = simulate.run(
        parse(
            [
                "simulate",
                bundle,
                "--backend",
                "lava",
                "--samples",
                str(args.samples),
                "--json",
                str(out / "simulate.json"),
                *quiet,
            ]
        )
    )
    print("== 3/4 simulate (emulator, whole test split) ==")
    emu = simulate.run(
        parse(["simulate", bundle, "--samples", "all", "--json", str(out / "emulate.json"), *quiet])
    )
    print("== 4/4 energy ==")
    joules = energy.run(parse(["energy", bundle, "--json", str(out / "energy.json")]))
    print("== summary ==")
    print(f"float test accuracy        {trained['test_acc']:.4f} (all test images)")
    print(f"quantised reference        {exported['reference_accuracy']:.4f} (all test images)")
    print(f"Lava-simulated accuracy    {sim['accuracy']:.4f} ({sim['samples']} test images)")
    print(f"reference on those images  {sim['reference_accuracy']:.4f}")
    print(
        f"emulated chip accuracy     {emu['accuracy']:.4f} (all {emu['samples']} test images; "
        f"spike-exact on the {emu['checked_samples']} checked: "
        f"{'yes' if emu['spike_exact'] else 'NO'})"
    )
    print(
        f"agreement Lava/reference   {sim['agreement']:.4f}; spike-exact: "
        f"{'yes' if sim['spike_exact'] else 'NO'}"
    )
    print(
        f"energy per inference       {joules['paper_pj'] / 1000:.3f} nJ (paper Eq. 11); "
        f"{joules['complete_pj'] / 1000:.3f} nJ counting everything"
    )
    print(f"demo time                  {time.perf_counter() - started:.0f} s")
    return {}

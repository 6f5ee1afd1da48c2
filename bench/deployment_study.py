"""What a trained network at the paper's depth keeps on Loihi 2: GAC, direct and rate coding.

    python bench/deployment_study.py [--work runs/deployment-study] [--epochs 10]
        [--qat-epochs 3] [--variants gac-spike,gac-membrane,direct-spike,rate-spike]
        [--dataset digits | --dataset cifar10 --data-dir DIR] [--device cuda]
        [--check 32] [--lava-images 1]

For each variant (encoder-shortcut) the registered paper architecture (``--model``,
default msresnet18-cifar: the full 18-layer body at full width) is trained on the data
(its input channels and image size taken from the data); shortcut ``spike`` or
``membrane`` with this project's LIF, or ``authors``: the network as the authors' code
builds it (membrane shortcuts, their CIFAR LIF: threshold 1, kept fraction 0.5, triangle
surrogate), trained here from an untrained start. Each is then exported twice, as
trained and after quantisation-aware fine-tuning (``train --qat``). For each bundle:

* float accuracy (the float body on every test image) against the chip's (the emulator,
  spike-exact with the quantised reference, on every test image), population by
  population (``gac_deploy.chip.fidelity``);
* ``simulate``: every test image in the emulator, the first ``--check`` checked spike by
  spike against the quantised reference, and ``--lava-images`` in Lava; the neuron-steps
  whose 24-bit state wrapped or saturated;
* the payload bits and each population's scale exponent (the manifest), cores and chips;
* ``energy``: Eq. 11 and the complete convention, from exact events (64 test images).

Every stage is a ``gac-deploy`` command in its own process, as a user runs it; what a
stage wrote is reused when the study is run again with the same ``--work`` (delete a
variant's folder to redo it). Prints one table and writes ``WORK/study.json`` and
``WORK/study.png`` (accuracy against energy per coding, float and chip).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def gac_deploy(*args: str, log: Path) -> float:
    """Run ``gac-deploy ARGS`` in a new process, appending what it prints to ``log``;
    the wall time in seconds. A failure stops the study, naming the log."""
    started = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"$ gac-deploy {' '.join(args)}\n")
        out.flush()
        code = subprocess.call(
            [sys.executable, "-m", "gac_deploy", *args], stdout=out, stderr=subprocess.STDOUT
        )
    if code != 0:
        sys.exit(f"gac-deploy {args[0]} failed (exit {code}); see {log}")
    return time.perf_counter() - started


def deployed(
    checkpoint: Path, folder: Path, args: argparse.Namespace, log: Path, seconds: dict
) -> dict:
    """Export ``checkpoint`` into ``folder``/bundle and measure what the chip keeps."""
    from gac_deploy.chip.fidelity import measure_bundle
    from gac_deploy.export.loading import load_bundle

    bundle = folder / "bundle"  # simulate and energy read the data where training found it
    if not (bundle / "manifest.json").is_file():
        seconds[f"{folder.name} export"] = gac_deploy(
            "export", str(checkpoint), "--out", str(bundle), "--samples", "0",
            "--chips", str(args.chips), log=log,
        )  # fmt: skip
    results = {}
    for name, command in (
        ("emulator", ["simulate", str(bundle), "--check", str(args.check)]),
        ("lava", ["simulate", str(bundle), "--backend", "lava", "--samples",
                  str(args.lava_images)]),
        ("energy", ["energy", str(bundle), "--samples", "64"]),
    ):  # fmt: skip
        report = folder / f"{name}.json"
        if args.lava_images == 0 and name == "lava":
            continue
        if not report.is_file():
            quiet = ["--quiet"] if name != "energy" else []
            seconds[f"{folder.name} {name}"] = gac_deploy(
                *command, "--json", str(report), *quiet, log=log
            )
        results[name] = json.loads(report.read_text())
    measured = folder / "fidelity.json"
    if not measured.is_file():
        started = time.perf_counter()
        result = measure_bundle(checkpoint, load_bundle(bundle), None, args.data_dir)
        measured.write_text(json.dumps(result.to_dict(), indent=1))
        seconds[f"{folder.name} fidelity"] = time.perf_counter() - started
    manifest = json.loads((bundle / "manifest.json").read_text())
    emulator, energy = results["emulator"], results["energy"]
    lava = results.get("lava")
    return {
        "fidelity": json.loads(measured.read_text()),
        "chip_accuracy": emulator["accuracy"],
        "reference_accuracy_checked": emulator["reference_accuracy"],
        "checked_images": emulator["checked_samples"],
        "spike_exact_emulator": emulator["spike_exact"],
        "spike_exact_lava": None if lava is None else lava["spike_exact"],
        "lava_images": 0 if lava is None else lava["samples"],
        "overflow_steps": sum(p["overflows"] for p in emulator["populations"]),
        "payload_bits": manifest["body"]["payload_bits"],
        "scale_exp": {q["population"]: q["scale_exp"] for q in manifest["quantization"]},
        "cores": manifest["resources"]["cores"],
        "chips": manifest["resources"]["chips_needed"],
        "energy_eq11_nj": energy["paper_pj"] / 1000,
        "energy_complete_nj": energy["complete_pj"] / 1000,
    }


def authors_start(args: argparse.Namespace, encoder: str, path: Path) -> Path:
    """An untrained network as the authors' code builds ``--model`` (their LIF for CIFAR,
    membrane shortcuts), with ``encoder`` coding and the data's input size, as a model.pt."""
    from dataclasses import replace

    import torch

    from gac_deploy.checkpoint import Checkpoint, save_checkpoint
    from gac_deploy.data import load_dataset
    from gac_deploy.models import build_model
    from gac_deploy.models.official import official_config

    split = load_dataset(args.dataset, args.data_dir)
    config = replace(
        official_config(args.model, split.num_classes, 6 if "cifar" in args.model else 4),
        encoder=encoder,
        in_channels=split.in_channels,
        image_size=split.image_size,
    )
    torch.manual_seed(0)
    model = build_model(config)
    save_checkpoint(path, Checkpoint(config, split.spec, model.state_dict(), {}, {}))
    return path


def study_variant(variant: str, args: argparse.Namespace, work: Path) -> dict:
    encoder, shortcut = variant.split("-")
    folder = work / variant
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    seconds: dict = {}
    data = ["--dataset", args.dataset] + (["--data-dir", args.data_dir] if args.data_dir else [])
    trained = folder / "train" / "model.pt"
    if not trained.is_file():
        if shortcut == "authors":  # their code's network: an untrained start, trained here
            start = authors_start(args, encoder, folder / "start.pt")
            form = ["--init", str(start), *(["--data-dir", args.data_dir] if args.data_dir else [])]
        else:
            form = ["--model", args.model, *data, "--encoder", encoder, "--shortcut", shortcut]
        seconds["train"] = gac_deploy(
            "train", *form, "--epochs", str(args.epochs), "--device", args.device, "--quiet",
            "--overwrite", "--out", str(folder / "train"), log=log,
        )  # fmt: skip
    tuned = folder / "qat" / "model.pt"
    if args.qat_epochs and not tuned.is_file():
        seconds["qat"] = gac_deploy(
            "train", "--qat", "--init", str(trained), "--epochs", str(args.qat_epochs),
            "--device", args.device, "--quiet", "--overwrite", "--out", str(folder / "qat"),
            *(["--data-dir", args.data_dir] if args.data_dir else []), log=log,
        )  # fmt: skip
    from gac_deploy.checkpoint import load_checkpoint

    metrics = load_checkpoint(trained).metrics
    row = {
        "variant": variant,
        "encoder": encoder,
        "shortcut": shortcut,
        "epochs": metrics.get("epochs"),
        "float_test_accuracy": metrics.get("test_acc"),
        "without_qat": deployed(trained, folder / "no-qat", args, log, seconds),
    }
    if args.qat_epochs:
        row["qat_epochs"] = args.qat_epochs
        row["with_qat"] = deployed(tuned, folder / "with-qat", args, log, seconds)
    kept = folder / "seconds.json"  # each stage's wall time, from the run that made it
    row["seconds"] = {**(json.loads(kept.read_text()) if kept.is_file() else {}), **seconds}
    kept.write_text(json.dumps(row["seconds"], indent=1))
    return row


def table(rows: list[dict]) -> str:
    from gac_deploy.table import format_table

    lines = []
    for row in rows:
        trained = row["without_qat"]["fidelity"]["float_accuracy"]
        for form in ("without_qat", "with_qat"):
            if form not in row:
                continue
            d = row[form]
            f = d["fidelity"]
            lines.append(
                [
                    row["variant"],
                    "QAT" if form == "with_qat" else "-",
                    round(100 * trained, 2),
                    round(100 * f["chip_accuracy"], 2),
                    round(100 * (trained - f["chip_accuracy"]), 2),
                    f"{d['checked_images']}/{d['lava_images']}: "
                    + ("yes" if d["spike_exact_emulator"] and d["spike_exact_lava"] is not False
                       else "NO"),
                    d["payload_bits"],
                    f"{min(d['scale_exp'].values())}-{max(d['scale_exp'].values())}",
                    d["overflow_steps"],
                    round(d["energy_eq11_nj"], 1),
                    round(d["energy_complete_nj"], 1),
                    d["cores"],
                    d["chips"],
                ]
            )  # fmt: skip
    headers = [
        "variant", "fine-tune", "float %", "chip %", "cost pts", "exact (ref/Lava)",
        "payload b", "scale exp", "overflows", "Eq.11 nJ", "complete nJ", "cores", "chips",
    ]  # fmt: skip
    return format_table(headers, lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    for index, row in enumerate(rows):
        colour = plt.get_cmap("tab10")(index)
        trained = 100 * row["without_qat"]["fidelity"]["float_accuracy"]
        for form, marker, what in (("without_qat", "o", "chip"), ("with_qat", "s", "chip, QAT")):
            if form not in row:
                continue
            d = row[form]
            energy, chip = d["energy_complete_nj"], 100 * d["fidelity"]["chip_accuracy"]
            ax.plot([energy, energy], [trained, chip], color=colour, lw=1, alpha=0.6)
            ax.scatter(energy, chip, color=colour, marker=marker, label=f"{row['variant']} {what}")
        energy = row["without_qat"]["energy_complete_nj"]
        ax.scatter(energy, trained, marker="o", facecolors="none", edgecolors=colour)
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference, complete convention (nJ, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Float (open circle) and chip (filled) test accuracy against energy")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="runs/deployment-study")
    parser.add_argument("--model", default="msresnet18-cifar")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--qat-epochs", type=int, default=3, help="0: no QAT")
    parser.add_argument("--variants", default="gac-spike,gac-membrane,direct-spike,rate-spike")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--check", type=int, default=32, help="images checked spike by spike")
    parser.add_argument("--lava-images", type=int, default=1)
    parser.add_argument("--chips", type=int, default=1)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for variant in args.variants.split(","):
        started = time.perf_counter()
        rows.append(study_variant(variant, args, work))
        print(f"{variant}: {time.perf_counter() - started:.0f} s", flush=True)
    print(
        f"{args.model} on {args.dataset}, {args.epochs} epochs (+{args.qat_epochs} of QAT); "
        "accuracy on every test image: float = the trained float body, chip = the emulator "
        "(spike-exact with the quantised reference on the checked images and with Lava on its "
        "images), after export as trained and after QAT; cost = float - chip; energy per "
        "inference from exact events on 64 images"
    )
    print(table(rows))
    (work / "study.json").write_text(json.dumps(rows, indent=1))
    plot(rows, work / "study.png")
    print(f"wrote {work / 'study.json'} and {work / 'study.png'}")


if __name__ == "__main__":
    main()

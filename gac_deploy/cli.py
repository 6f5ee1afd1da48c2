"""The ``gac-deploy`` command: a thin layer over the package's functions.

Every user error prints one line (``gac-deploy: error: ...``) and exits with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from gac_deploy import __version__
from gac_deploy.config import DATASETS, ENCODERS, GAU_MODES, PRESETS, SHORTCUTS
from gac_deploy.errors import UserError

EXIT_USER_ERROR = 2
QAT_EPOCHS = 10
QAT_LR = 0.01


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UserError(f"{message} (see '{self.prog} --help')")


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a GAC spiking network (default: digits)",
        description="Train a GAC-MS-ResNet. Writes OUT/model.pt and OUT/metrics.jsonl.",
    )
    p.add_argument("--model", help="registered model name (default digits-gac-msresnet)")
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        help="digits (default), cifar10, cifar100, "
        "imagenet (your local copy, --data-dir) or synthetic",
    )
    p.add_argument("--data-dir", help="where the dataset lies in its standard on-disk format")
    p.add_argument("--preset", choices=sorted(PRESETS), help="the paper's recipe for a dataset")
    p.add_argument("--config", help="YAML file of settings (a run's config.yaml works too)")
    p.add_argument("--label-smoothing", type=float, help="label smoothing (default 0)")
    p.add_argument("--cutmix", type=float, help="CutMix Beta parameter, 0 = off (default 0)")
    p.add_argument("--device", help="cpu (default) or cuda; CUDA runs use mixed precision")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        help="also write OUT/last.pt every N steps (it is always written per epoch)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also log every epoch to OUT/tensorboard",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="fuse the LIF loops with torch.compile (the first step compiles, for seconds)",
    )
    p.add_argument("--out", default="runs/train", help="output directory (default: runs/train)")
    p.add_argument("--epochs", type=int, help="training epochs (default 40)")
    p.add_argument("--batch-size", type=int, help="batch size (default 64)")
    p.add_argument("--lr", type=float, help="initial learning rate, cosine to 0 (default 0.1)")
    p.add_argument("--seed", type=int, help="seed for initialisation, split and order (default 0)")
    p.add_argument("-T", "--time-steps", type=int, help="time steps T (default 4)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--encoder", choices=ENCODERS, help="gac (default), lif, direct or rate coding")
    p.add_argument("--gau", choices=GAU_MODES, help="GAC gate: full (default), ta or sca")
    p.add_argument("--sca-kernel", type=int, help="spatial-channel attention kernel K (4)")
    p.add_argument(
        "--shortcut",
        choices=SHORTCUTS,
        help="downsample reads spikes (spike, "
        "default; Loihi-ready) or the real stream (membrane, the authors' code)",
    )
    p.add_argument("--init", help="start from this model.pt (its architecture and weights)")
    p.add_argument(
        "--qat",
        action="store_true",
        help=f"quantisation-aware fine-tuning of --init with the body in Loihi fixed "
        f"point (defaults: {QAT_EPOCHS} epochs, lr {QAT_LR})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export model.pt as a Loihi 2 bundle",
        description="Write encoder.onnx (host), body.net (NetX HDF5) and "
        "manifest.json into a bundle directory.",
    )
    p.add_argument("checkpoint", help="model.pt written by 'gac-deploy train'")
    p.add_argument("--target", default="loihi2", help="hardware target (default: loihi2)")
    p.add_argument("--out", help="bundle directory (default: 'bundle' beside the checkpoint)")
    p.add_argument("--chips", type=int, default=1, help="Loihi 2 chips available (default 1)")


def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a bundle in Lava's CPU simulation of Loihi 2",
        description="Run the host encoder (onnxruntime) and the body (Lava, "
        "fixed point) on test images; compare with the quantised "
        "reference spike by spike.",
    )
    p.add_argument("bundle", help="bundle directory written by 'gac-deploy export'")
    p.add_argument(
        "--backend",
        default="emulator",
        help="emulator (default: bit-exact integer emulation, whole test sets) or "
        "lava (Lava's Loihi2SimCfg, a handful of images)",
    )
    p.add_argument(
        "--samples",
        type=_samples,
        help="test images to run, or 'all' (default: all for the emulator, 16 for lava)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="images per emulator batch (default: as many as fit 256 MB of spikes)",
    )
    p.add_argument("--json", help="also write the report to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _samples(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


def _add_energy(sub) -> None:
    p = sub.add_parser(
        "energy",
        help="per-layer energy report: the paper's Eq. 11 and the complete count",
        description="Energy per inference of a bundle, a model.pt, or an architecture with "
        "assumed firing rates (--arch). Both conventions are computed: 'paper' (Eq. 11) "
        "and 'complete' (every host op, synaptic event, neuron update and spike).",
    )
    p.add_argument("path", nargs="?", help="bundle directory or model.pt")
    p.add_argument(
        "--samples", type=int, default=64, help="test images used to measure activity (default 64)"
    )
    p.add_argument(
        "--convention",
        choices=("paper", "complete"),
        default="paper",
        help="which table to print (both totals are always printed)",
    )
    p.add_argument(
        "--profile",
        default="horowitz45-fp32",
        help="horowitz45-fp32 (default, the paper's), horowitz45-int8 or loihi",
    )
    p.add_argument("--arch", help="what-if: a registered architecture instead of a path")
    p.add_argument("-T", "--time-steps", type=int, help="what-if: time steps")
    p.add_argument("--encoder", choices=ENCODERS, help="what-if: encoder (gac; direct = no GAC)")
    p.add_argument(
        "--shortcut",
        choices=SHORTCUTS,
        help="what-if: spike (default) or membrane (the authors': MAC downsample)",
    )
    p.add_argument("--firing-rate", type=float, help="what-if: one rate for every population")
    p.add_argument("--rates", help="what-if: JSON file {population: rate}")
    p.add_argument("--plot", help="write a per-layer bar chart (PNG) here")
    p.add_argument("--compare", help="a second bundle or model.pt to put side by side")
    p.add_argument("--json", help="also write the report to this JSON file")


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train -> export -> simulate -> energy on digits",
        description="The whole pipeline on the embedded default dataset.",
    )
    p.add_argument("--out", default="runs/demo", help="working directory (default runs/demo)")
    p.add_argument("--samples", type=int, default=16, help="images run in Lava (default 16)")
    p.add_argument("--epochs", type=int, help="training epochs (default 40)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_import_official(sub) -> None:
    p = sub.add_parser(
        "import-official",
        help="convert the authors' released GAC checkpoint into a model.pt",
        description="Read the authors' state dict (either key alias set, optional 'module.' "
        "prefix; loaded with weights_only=True) and write a gac-deploy checkpoint built as "
        "their code builds it (membrane shortcuts; their CIFAR LIF for CIFAR).",
    )
    p.add_argument("file", help="the authors' .pth file")
    p.add_argument("--arch", required=True, help="msresnet18-cifar, msresnet18-imagenet, ...")
    p.add_argument("--num-classes", type=int, required=True, help="10, 100 or 1000")
    p.add_argument("-T", "--time-steps", type=int, required=True, help="time steps it used")
    p.add_argument("--out", default="model.pt", help="checkpoint to write (default model.pt)")


def _add_models(sub) -> None:
    p = sub.add_parser(
        "models",
        help="list the registered models",
        description="List registered models; with --params, count parameters "
        "with and without GAC as the authors count them.",
    )
    p.add_argument("--params", action="store_true", help="count parameters")
    p.add_argument("--num-classes", type=int, help="override the class count")
    p.add_argument("-T", "--time-steps", type=int, help="override T")


def _add_analyze(sub) -> None:
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


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test accuracy of a model.pt",
        description="Top-1 accuracy of a checkpoint on its test split.",
    )
    p.add_argument("checkpoint", help="model.pt")
    p.add_argument("--data-dir", help="where the dataset lies now (default: where it was)")
    p.add_argument("--samples", type=int, help="only the first N test images")
    p.add_argument("--json", help="also write the result to this JSON file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gac-deploy",
        description="Gated Attention Coding SNNs: train, export to Loihi 2, "
        "simulate in Lava, report energy.",
    )
    parser.add_argument("--version", action="version", version=f"gac-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (
        _add_train,
        _add_export,
        _add_simulate,
        _add_energy,
        _add_demo,
        _add_import_official,
        _add_models,
        _add_analyze,
        _add_evaluate,
    ):
        add(sub)
    return parser


def _write_json(path: str | None, data: dict) -> None:
    if path:
        from gac_deploy.fileio import write_json

        write_json(path, data)
        print(f"wrote {path}")


def cmd_train(args) -> dict:
    from dataclasses import replace

    from gac_deploy.data import load_dataset
    from gac_deploy.training.settings import MODEL_KEYS, resolve
    from gac_deploy.training.trainer import train

    given = {k: getattr(args, k) for k in MODEL_KEYS if getattr(args, k) is not None}
    init = None
    if args.init:
        from gac_deploy.checkpoint import load_checkpoint

        if given:
            raise UserError(
                f"--init takes the architecture from the checkpoint; drop "
                f"{', '.join('--' + k.replace('_', '-') for k in given)}"
            )
        init = load_checkpoint(args.init)
    elif args.qat:
        raise UserError("--qat fine-tunes a trained model; pass it with --init model.pt")
    if args.qat:  # fine-tuning defaults
        args.epochs = args.epochs if args.epochs is not None else QAT_EPOCHS
        args.lr = args.lr if args.lr is not None else QAT_LR
    flags = {"model": args.model, **given}
    for key in (
        "dataset",
        "data_dir",
        "epochs",
        "batch_size",
        "lr",
        "seed",
        "label_smoothing",
        "cutmix",
        "device",
        "checkpoint_every",
        "tensorboard",
        "compile",
    ):
        flags[key] = getattr(args, key)
    config, train_config = resolve(flags, args.preset, args.config)
    if init is not None:
        config = init.model_config
        train_config = replace(
            train_config,
            dataset=init.data.dataset,
            data_dir=train_config.data_dir or init.data.data_dir,
        )
    split = load_dataset(
        train_config.dataset, train_config.data_dir, train_config.seed, train_config.test_fraction
    )
    if init is None:  # the data decides the input and output sizes
        config = replace(
            config,
            num_classes=split.num_classes,
            in_channels=split.in_channels,
            image_size=split.image_size,
        )
    started = time.perf_counter()
    ckpt = train(
        config,
        train_config,
        args.out,
        split=split,
        max_steps=args.max_steps,
        progress=not args.quiet,
        init=init,
        qat=args.qat,
        resume=args.resume,
    )
    elapsed = time.perf_counter() - started
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return {}
    print(
        f"test accuracy {ckpt.metrics['test_acc']:.4f} after {ckpt.metrics['epochs']} epochs "
        f"({elapsed:.0f} s)"
    )
    if args.qat:
        print(
            f"fixed-point test accuracy: before QAT "
            f"{ckpt.metrics['quantized_test_acc_before_qat']:.4f}, after "
            f"{ckpt.metrics['test_acc']:.4f} (float model {ckpt.metrics['float_test_acc']:.4f})"
        )
    print(f"wrote {Path(args.out) / 'model.pt'} and {Path(args.out) / 'metrics.jsonl'}")
    return {
        "test_acc": ckpt.metrics["test_acc"],
        "seconds": elapsed,
        "checkpoint": str(Path(args.out) / "model.pt"),
    }


def cmd_export(args) -> dict:
    from gac_deploy.export.bundle import export_bundle
    from gac_deploy.table import format_table

    out = args.out or str(Path(args.checkpoint).parent / "bundle")
    started = time.perf_counter()
    bundle = export_bundle(args.checkpoint, out, target=args.target, chips=args.chips)
    m = bundle.manifest
    rows = [
        [
            q["population"],
            q["scale_exp"],
            q["clipped_weights"],
            q["clipped_bias"],
            next(p["latency"] for p in m["body"]["populations"] if p["name"] == q["population"]),
        ]
        for q in m["quantization"]
    ]
    print(format_table(["population", "scale exp", "clipped w", "clipped b", "latency"], rows))
    res = m["resources"]
    print(
        f"Loihi 2 estimate: {res['neurons']:,} neurons, {res['synapses']:,} synapses "
        f"(unrolled), {res['cores']} cores on {res['chips_needed']} of {res['chips']} chip(s)"
    )
    print(
        f"payload {m['body']['payload_bits']} bits, latency {m['body']['latency_steps']} steps; "
        f"exported in {time.perf_counter() - started:.1f} s"
    )
    print(f"wrote {out}/encoder.onnx, {out}/body.net, {out}/manifest.json")
    from gac_deploy.hardware.simulate import reference_accuracy

    if bundle.data_spec.dataset != "digits":
        print(f"({bundle.data_spec.dataset} is not available here: accuracy not measured)")
        return {"bundle": out, "reference_accuracy": None}
    accuracy, count = reference_accuracy(bundle)
    float_acc = m["float_test_accuracy"]
    print(
        f"test accuracy on all {count} test images: float "
        f"{'-' if float_acc is None else f'{float_acc:.4f}'}, quantised reference {accuracy:.4f}"
    )
    return {"bundle": out, "reference_accuracy": accuracy}


def cmd_simulate(args) -> dict:
    from gac_deploy.export.bundle import load_bundle
    from gac_deploy.hardware.simulate import simulate_bundle
    from gac_deploy.table import format_table

    bundle = load_bundle(args.bundle)
    samples = (
        args.samples if args.samples is not None else (16 if args.backend == "lava" else "all")
    )
    report = simulate_bundle(
        bundle,
        args.backend,
        None if samples == "all" else samples,
        args.batch_size,
        progress=not args.quiet,
    )
    rows = [
        [p.population, p.spikes, p.firing_rate, p.mismatched_spikes] for p in report.populations
    ]
    print(format_table(["population", "spikes", "firing rate", "mismatched"], rows))
    print(
        f"samples {report.samples}  accuracy {report.accuracy:.4f}  "
        f"reference {report.reference_accuracy:.4f}  agreement {report.agreement:.4f}"
    )
    timing = (
        f"{report.run_s / report.samples:.2f} s per image (compile included)"
        if report.backend == "lava"
        else f"{report.images_per_s:,.0f} images/s"
    )
    print(
        f"spike-exact against the reference: {'yes' if report.spike_exact else 'NO'} "
        f"(read-out mismatches {report.readout_mismatches}); {report.backend} {timing}"
    )
    if report.synaptic_ops:
        total = sum(report.synaptic_ops.values())
        print(f"synaptic events: {total / report.samples:,.0f} per image (exact, from spikes)")
    data = report.to_dict()
    _write_json(args.json, data)
    return data


def cmd_energy(args) -> dict:
    from gac_deploy.hardware.energy_report import energy_report, format_comparison, format_report

    def measure(path):
        return energy_report(
            path,
            args.samples,
            args.profile,
            args.arch,
            args.time_steps,
            args.firing_rate,
            args.rates,
            args.encoder,
            args.shortcut,
        )

    report = measure(args.path)
    print(format_report(report, args.convention))
    data = report.to_dict()
    if args.compare:
        other = energy_report(args.compare, args.samples, args.profile)
        print()
        print(format_comparison(report, other))
        data = {"a": data, "b": other.to_dict()}
    if args.plot:
        from gac_deploy.hardware.energy_plot import plot_energy

        plot_energy(report, args.convention, args.plot)
        print(f"wrote {args.plot}")
    _write_json(args.json, data)
    return data if not args.compare else data["a"]


def cmd_demo(args) -> dict:
    out = Path(args.out)
    started = time.perf_counter()
    parse = build_parser().parse_args
    quiet = ["--quiet"] if args.quiet else []
    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    bundle = str(out / "bundle")
    print("== 1/4 train ==")
    trained = cmd_train(parse(["train", "--out", str(out / "train"), *epochs, *quiet]))
    print("== 2/4 export ==")
    exported = cmd_export(parse(["export", trained["checkpoint"], "--out", bundle]))
    print("== 3/4 simulate (Lava) ==")
    sim = cmd_simulate(
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
    emu = cmd_simulate(
        parse(["simulate", bundle, "--samples", "all", "--json", str(out / "emulate.json"), *quiet])
    )
    print("== 4/4 energy ==")
    energy = cmd_energy(parse(["energy", bundle, "--json", str(out / "energy.json")]))
    print("== summary ==")
    print(f"float test accuracy        {trained['test_acc']:.4f} (all test images)")
    print(f"quantised reference        {exported['reference_accuracy']:.4f} (all test images)")
    print(f"Lava-simulated accuracy    {sim['accuracy']:.4f} ({sim['samples']} test images)")
    print(f"reference on those images  {sim['reference_accuracy']:.4f}")
    print(
        f"emulated chip accuracy     {emu['accuracy']:.4f} (all {emu['samples']} test images; "
        f"spike-exact: {'yes' if emu['spike_exact'] else 'NO'})"
    )
    print(
        f"agreement Lava/reference   {sim['agreement']:.4f}; spike-exact: "
        f"{'yes' if sim['spike_exact'] else 'NO'}"
    )
    print(
        f"energy per inference       {energy['paper_pj'] / 1000:.3f} nJ (paper Eq. 11); "
        f"{energy['complete_pj'] / 1000:.3f} nJ counting everything"
    )
    print(f"demo time                  {time.perf_counter() - started:.0f} s")
    return {}


def cmd_import_official(args) -> dict:
    import torch

    from gac_deploy.checkpoint import Checkpoint, save_checkpoint
    from gac_deploy.data import DataSpec
    from gac_deploy.models.official import import_official, official_config

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; pass the authors' .pth file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"{path} cannot be read safely ({type(exc).__name__}); "
            "pass the authors' state dict file"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict; pass the authors' .pth file")
    config = official_config(args.arch, args.num_classes, args.time_steps)
    model = import_official(state, config)
    dataset = "imagenet" if "imagenet" in args.arch else f"cifar{args.num_classes}"
    save_checkpoint(
        args.out,
        Checkpoint(
            config, DataSpec(dataset=dataset), model.state_dict(), {"imported_from": str(path)}, {}
        ),
    )
    print(
        f"imported {len(state)} tensors from {path} as {config.arch} "
        f"({config.num_classes} classes, T={config.time_steps}, membrane shortcuts); "
        f"wrote {args.out}"
    )
    return {"checkpoint": args.out}


def cmd_models(args) -> dict:
    from dataclasses import replace

    from gac_deploy.models.registry import count_parameters, default_config, list_models
    from gac_deploy.table import format_table

    rows = []
    for name in list_models():
        config = default_config(name)
        overrides = {
            k: v
            for k, v in (("num_classes", args.num_classes), ("time_steps", args.time_steps))
            if v is not None
        }
        config = replace(config, **overrides)
        row = [name, config.num_classes, config.time_steps, config.image_size]
        if args.params:
            row += [count_parameters(config), count_parameters(replace(config, encoder="direct"))]
        rows.append(row)
    headers = ["model", "classes", "T", "input"]
    if args.params:
        headers += ["params (GAC)", "params (no GAC)"]
    print(format_table(headers, rows))
    return {}


def cmd_evaluate(args) -> dict:
    from gac_deploy.checkpoint import load_checkpoint
    from gac_deploy.data import load_split
    from gac_deploy.training.trainer import evaluate

    ckpt = load_checkpoint(args.checkpoint)
    split = load_split(ckpt.data, args.data_dir)
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    accuracy = evaluate(ckpt.build(), split, count=args.samples)
    count = len(split.test) if args.samples is None else min(args.samples, len(split.test))
    print(f"test accuracy {accuracy:.4f} on {count} {ckpt.data.dataset} test images")
    data = {"accuracy": accuracy, "samples": count, "dataset": ckpt.data.dataset}
    _write_json(args.json, data)
    return data


def _finite(value: float) -> float | None:
    return None if value == float("inf") else value


def cmd_analyze(args) -> dict:
    from gac_deploy.analysis import encoder_dynamics, period_sweep, plot_encoding, sweep_inputs
    from gac_deploy.checkpoint import load_checkpoint
    from gac_deploy.data import load_split
    from gac_deploy.table import format_table

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
    print(
        f"dynamics duration over {t_d.numel():,} encoder neurons x images "
        f"(T={ckpt.model_config.time_steps}): direct coding mean {t_d.float().mean():.3f}, "
        f"GAC mean {t_g.float().mean():.3f}; Proposition 1 (T_g >= T_d) "
        f"{'holds for every neuron' if holds else 'FAILS'}"
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
        "proposition_1_holds": holds,
        "samples": len(images),
    }
    _write_json(args.json, data)
    return data


COMMANDS = {
    "train": cmd_train,
    "export": cmd_export,
    "simulate": cmd_simulate,
    "energy": cmd_energy,
    "demo": cmd_demo,
    "import-official": cmd_import_official,
    "models": cmd_models,
    "analyze": cmd_analyze,
    "evaluate": cmd_evaluate,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        COMMANDS[args.command](args)
    except UserError as exc:
        print(f"gac-deploy: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        print(
            f"gac-deploy: error: cannot use {exc.filename}: {exc.strerror}; choose another path",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gac-deploy: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``gac-deploy train``: train a GAC spiking network, or fine-tune one with QAT."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gac_deploy.cli.common import add_normalization_args, add_registry_option
from gac_deploy.config import GAU_MODES, SHORTCUTS
from gac_deploy.errors import UserError
from gac_deploy.registries.datasets import DATASETS, DEFAULT_DATASET
from gac_deploy.registries.encoders import DEFAULT_ENCODER, ENCODERS

QAT_EPOCHS = 10
QAT_LR = 0.01


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help=f"train a GAC spiking network (default: {DEFAULT_DATASET})",
        description="Train a GAC-MS-ResNet. Writes OUT/model.pt and OUT/metrics.jsonl.",
    )
    p.add_argument("--model", help="registered model name (default digits-gac-msresnet)")
    add_registry_option(p, "--dataset", DATASETS, "the data", marked=DEFAULT_DATASET)
    local = [name for name, entry in DATASETS.items() if entry.needs_data_dir]
    p.add_argument(
        "--data-dir",
        help=f"where the dataset lies in its standard on-disk format (needed by "
        f"{', '.join(local)})",
    )
    add_normalization_args(
        p, "the authors' constants for CIFAR and ImageNet, the training split's own for digits"
    )
    p.add_argument(
        "--preset",
        choices=tuple(DATASETS.presets()),
        help="a dataset's recipe (the paper's); flags and --config override its settings",
    )
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
        "--overwrite",
        action="store_true",
        help="replace the training run already in OUT (without it, an existing run is refused)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also log every epoch to OUT/tensorboard",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="processes loading images ahead (default: 0 for in-memory datasets, up to 8 "
        "for ImageNet folders)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="fuse the LIF loops with torch.compile (the first step compiles, for seconds)",
    )
    p.add_argument("--out", default="runs/train", help="output directory (default: runs/train)")
    p.add_argument(
        "--epochs", type=int, help=f"training epochs (default 40; {QAT_EPOCHS} with --qat)"
    )
    p.add_argument("--batch-size", type=int, help="batch size (default 64)")
    p.add_argument(
        "--lr",
        type=float,
        help=f"initial learning rate, cosine to 0 (default 0.1; {QAT_LR} with --qat)",
    )
    p.add_argument("--seed", type=int, help="seed for initialisation, split and order (default 0)")
    p.add_argument("-T", "--time-steps", type=int, help="time steps T (default 4)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    add_registry_option(p, "--encoder", ENCODERS, "the encoder", marked=DEFAULT_ENCODER)
    p.add_argument("--gau", choices=GAU_MODES, help="GAC gate: full (default), ta or sca")
    p.add_argument("--sca-kernel", type=int, help="spatial-channel attention kernel K (4)")
    p.add_argument(
        "--shortcut",
        choices=SHORTCUTS,
        help="downsample reads spikes (spike, default) or the real stream (membrane, the "
        "authors' code; exported as composed synapses)",
    )
    p.add_argument("--init", help="start from this model.pt (its architecture and weights)")
    p.add_argument(
        "--qat",
        action="store_true",
        help=f"quantisation-aware fine-tuning of --init with the body in Loihi fixed "
        f"point (defaults: {QAT_EPOCHS} epochs, lr {QAT_LR})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> dict:
    from gac_deploy.training.settings import MODEL_KEYS, TRAIN_KEYS, flag_for

    named = ("model", "max_steps", *MODEL_KEYS, *TRAIN_KEYS)
    flags = {k for k in named if getattr(args, k, None) is not None}  # before QAT defaults
    try:
        return _train(args)
    except UserError as exc:  # a setting's error says which flag gave the setting
        if exc.setting not in flags:
            raise
        raise UserError(f"argument {flag_for(exc.setting)}: {exc}") from None


def _train(args) -> dict:
    from dataclasses import replace

    from gac_deploy.data import load_dataset
    from gac_deploy.training.run_dir import STATE_FILE, check_run_dir, load_state
    from gac_deploy.training.settings import (
        MODEL_KEYS,
        TRAIN_KEYS,
        build_configs,
        flag_for,
        merge_settings,
        resume_configs,
    )
    from gac_deploy.training.trainer import train

    if args.resume and args.overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it; pick one")
    check_run_dir(Path(args.out), resume=args.resume, overwrite=args.overwrite)
    given = {k: getattr(args, k) for k in MODEL_KEYS if getattr(args, k) is not None}
    init = None
    if args.init:
        from gac_deploy.checkpoint import load_checkpoint

        if given:
            raise UserError(
                f"--init takes the architecture from the checkpoint; drop "
                f"{', '.join(flag_for(k) for k in given)}"
            )
        init = load_checkpoint(args.init)
    elif args.qat:
        raise UserError("--qat fine-tunes a trained model; pass it with --init model.pt")
    if args.qat and not args.resume:  # fine-tuning defaults (a resumed run has its own)
        args.epochs = args.epochs if args.epochs is not None else QAT_EPOCHS
        args.lr = args.lr if args.lr is not None else QAT_LR
    flags = {"model": args.model, **given}
    flags.update({k: getattr(args, k) for k in TRAIN_KEYS if hasattr(args, k)})  # flags given
    settings = merge_settings(flags, args.preset, args.config)
    max_steps = args.max_steps
    if args.resume:  # the run's own settings, from its training state
        state = load_state(Path(args.out) / STATE_FILE)
        config, train_config, max_steps = resume_configs(state, settings, max_steps)
    else:
        config, train_config = build_configs(settings)
    if init is not None:
        if train_config.normalization not in (None, (init.data.mean, init.data.std)):
            raise UserError(
                f"{args.init} was trained with its own normalisation (mean "
                f"{list(init.data.mean)}, std {list(init.data.std)}); drop --mean/--std"
            )
        config = init.model_config
        train_config = replace(
            train_config,
            dataset=init.data.dataset,
            data_dir=train_config.data_dir or init.data.data_dir,
            mean=init.data.mean,
            std=init.data.std,
        )
    split = load_dataset(
        train_config.dataset,
        train_config.data_dir,
        train_config.seed,
        train_config.test_fraction,
        train_config.normalization,
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
        max_steps=max_steps,
        progress=not args.quiet,
        init=init,
        qat=args.qat,
        resume=args.resume,
        overwrite=args.overwrite,
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

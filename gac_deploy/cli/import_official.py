"""``gac-deploy import-official``: the authors' released state dict as a model.pt."""

from __future__ import annotations

from pathlib import Path

from gac_deploy.cli.common import add_normalization_args
from gac_deploy.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import-official",
        help="convert the authors' released GAC checkpoint into a model.pt",
        description="Read the authors' state dict (either key alias set, optional 'module.' "
        "prefix; loaded with weights_only=True) and write a gac-deploy checkpoint built as "
        "their code builds it (membrane shortcuts; their CIFAR LIF for CIFAR).",
    )
    p.add_argument("file", help="the authors' .pth file")
    p.add_argument("--arch", required=True, help="msresnet18-cifar, msresnet18-imagenet, ...")
    p.add_argument(
        "--num-classes",
        type=int,
        help="10, 100 or 1000 (default: read from the classifier's shape; checked if given)",
    )
    p.add_argument(
        "-T",
        "--time-steps",
        type=int,
        help="time steps it used (default: read from the temporal attention's shape; "
        "checked if given; needed for a network without GAC)",
    )
    p.add_argument("--out", default="model.pt", help="checkpoint to write (default model.pt)")
    p.add_argument(
        "--data-dir",
        help="your local copy of the dataset (CIFAR python folder, ImageNet train/val): "
        "recorded with the model (where it lies and which test split it holds) so that "
        "simulate, evaluate and train --init read it",
    )
    add_normalization_args(p, "the authors' constants for the dataset")


def run(args) -> dict:
    import torch

    from gac_deploy.checkpoint import Checkpoint, save_checkpoint
    from gac_deploy.config import check_normalization
    from gac_deploy.data import STANDARD_NORMALIZATION, DataSpec, load_dataset
    from gac_deploy.models.official import import_official, official_config, sizes_in

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
    found = sizes_in(state)
    classes = _from_file(path, "--num-classes", args.num_classes, found[0], "fc1.weight")
    steps = _from_file(path, "-T", args.time_steps, found[1], "encoding.TA.sharedMLP.0.weight")
    config = official_config(args.arch, classes, steps)
    model = import_official(state, config)
    dataset = "imagenet" if "imagenet" in args.arch else f"cifar{classes}"
    check_normalization(args.mean, args.std)
    # how their checkpoints were trained, not statistics of the copy at hand
    mean, std = STANDARD_NORMALIZATION[dataset] if args.mean is None else (args.mean, args.std)
    if args.data_dir:
        data = load_dataset(dataset, args.data_dir, normalization=(mean, std)).spec
    else:
        data = DataSpec(dataset, mean=tuple(mean), std=tuple(std))
    save_checkpoint(
        args.out,
        Checkpoint(config, data, model.state_dict(), {"imported_from": str(path)}, {}),
    )
    print(
        f"imported {len(state)} tensors from {path} as {config.arch} "
        f"({config.num_classes} classes, T={config.time_steps}, membrane shortcuts); "
        f"wrote {args.out}"
    )
    return {"checkpoint": args.out}


def _from_file(path: Path, flag: str, given: int | None, found: int | None, key: str) -> int:
    """A size the state dict shows (``found``), checked against the flag when both exist."""
    if found is None and given is None:
        raise UserError(f"{path} has no {key} to read {flag} from (no GAC?); pass {flag}")
    if found is not None and given is not None and found != given:
        raise UserError(f"{flag} {given} does not match {path}, whose {key} says {found}")
    return found if found is not None else given

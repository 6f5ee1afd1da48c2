"""``gac-deploy evaluate``: test accuracy of a model.pt."""

from __future__ import annotations

from gac_deploy.cli.common import add_data_dir_arg, add_registry_option, write_json_report
from gac_deploy.errors import UserError
from gac_deploy.registries.datasets import DATASETS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test accuracy of a model.pt",
        description="Top-1 accuracy of a checkpoint on the test split it was trained with "
        "(same seed and normalisation).",
    )
    p.add_argument("checkpoint", help="model.pt")
    add_registry_option(p, "--dataset", DATASETS, "the model's dataset (checked against model.pt)")
    add_data_dir_arg(p)
    p.add_argument("--samples", type=int, help="only the first N test images")
    p.add_argument("--json", help="also write the result to this JSON file")


def run(args) -> dict:
    from gac_deploy.checkpoint import load_checkpoint
    from gac_deploy.cli.paths import expect
    from gac_deploy.data import load_split
    from gac_deploy.training.batches import default_workers
    from gac_deploy.training.evaluate import evaluate
    from gac_deploy.world import join_for_images

    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    expect(args.checkpoint, "checkpoint")
    ckpt = load_checkpoint(args.checkpoint)
    dataset = ckpt.data.dataset
    if args.dataset not in (None, dataset):
        raise UserError(
            f"{args.checkpoint} was trained on {dataset}, not {args.dataset}; evaluate it on "
            f"{dataset} (--data-dir says where that data lies now)"
        )
    split = load_split(ckpt.data, args.data_dir)
    world = join_for_images()
    workers = default_workers(split.test, world)
    accuracy = evaluate(ckpt.build(), split, count=args.samples, world=world, workers=workers)
    count = len(split.test) if args.samples is None else min(args.samples, len(split.test))
    data = {"accuracy": accuracy, "samples": count, "dataset": dataset, "processes": world.size}
    if not world.is_main:  # under torchrun, rank 0 reports
        return data
    print(f"test accuracy {accuracy:.4f} on {count} {dataset} test images")
    write_json_report(args.json, data)
    return data

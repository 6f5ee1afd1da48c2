"""``gac-deploy evaluate``: test accuracy of a model.pt."""

from __future__ import annotations

from gac_deploy.cli.common import write_json_report
from gac_deploy.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test accuracy of a model.pt",
        description="Top-1 accuracy of a checkpoint on its test split.",
    )
    p.add_argument("checkpoint", help="model.pt")
    p.add_argument("--data-dir", help="where the dataset lies now (default: where it was)")
    p.add_argument("--samples", type=int, help="only the first N test images")
    p.add_argument("--json", help="also write the result to this JSON file")


def run(args) -> dict:
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
    write_json_report(args.json, data)
    return data

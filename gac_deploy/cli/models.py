"""``gac-deploy models``: the registered models and their parameter counts."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "models",
        help="list the registered models",
        description="List registered models; with --params, count parameters "
        "with and without GAC as the authors count them.",
    )
    p.add_argument("--params", action="store_true", help="count parameters")
    p.add_argument("--num-classes", type=int, help="override the class count")
    p.add_argument("-T", "--time-steps", type=int, help="override T")


def run(args) -> dict:
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

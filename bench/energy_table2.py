"""The paper's Table 2 energies beside gac-deploy's, for ImageNet MS-ResNet-18/34.

    python bench/energy_table2.py

Each row is an architecture with one assumed firing rate for every population (the
paper's averages, Supplementary B) and T as in Table 2; "no GAC" is direct coding.
The paper used per-layer rates we do not have, so a difference is expected; the
'complete' column counts what Eq. 11 leaves out (GAU, gating, neuron updates, ...).
"""

from __future__ import annotations

from gac_deploy.energy.report import load_rates, report_what_if, what_if_config
from gac_deploy.table import format_table

ROWS = [
    # label, arch, encoder, T, firing rate, paper's mJ
    ("MS-ResNet-18", "msresnet18-imagenet", "direct", 6, 0.215, 4.29),
    ("GAC-MS-ResNet-18", "msresnet18-imagenet", "gac", 6, 0.154, 2.34),
    ("GAC-MS-ResNet-18", "msresnet18-imagenet", "gac", 4, 0.154, 1.49),
    ("MS-ResNet-34", "msresnet34-imagenet", "direct", 6, 0.225, 5.11),
    ("GAC-MS-ResNet-34", "msresnet34-imagenet", "gac", 6, 0.1729, 3.38),
    ("GAC-MS-ResNet-34", "msresnet34-imagenet", "gac", 4, 0.1729, 2.20),
]
ANN = {"msresnet18-imagenet": 14.26, "msresnet34-imagenet": 16.87}


def main() -> None:
    rows, ann = [], {}
    for label, arch, encoder, t, rate, paper in ROWS:
        config = what_if_config(arch, time_steps=t, encoder=encoder)
        report = report_what_if(config, load_rates(rate, None))
        ours = report.paper_pj / 1e9
        rows.append(
            [
                label,
                t,
                rate,
                paper,
                round(ours, 3),
                f"{100 * (ours - paper) / paper:+.1f}%",
                round(report.complete_pj / 1e9, 3),
            ]
        )
        ann[arch] = report.ann_pj / 1e9
    print(
        format_table(
            ["model", "T", "rate", "paper mJ", "ours Eq. 11 mJ", "difference", "ours complete mJ"],
            rows,
        )
    )
    print(
        format_table(
            ["ANN equivalent", "paper mJ", "ours mJ"],
            [[arch, ANN[arch], round(value, 3)] for arch, value in ann.items()],
        )
    )


if __name__ == "__main__":
    main()

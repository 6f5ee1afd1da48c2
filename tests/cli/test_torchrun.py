"""simulate, energy and evaluate split their images over the processes torchrun starts,
and the merged report equals the one-process report field for field (times aside)."""

import json
import subprocess
import sys

import pytest

from tests.cli.test_cli import cli

TIMES = {"run_s", "wall_s", "seconds_per_sample", "images_per_s"}


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``gac-deploy ARGS`` under torchrun with ``processes`` CPU processes on this node."""
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    return subprocess.run(
        [sys.executable, *launcher, "-m", "gac_deploy", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def without_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in TIMES | {"processes"}}


@pytest.mark.parametrize(
    "command",
    [
        ("simulate", "{bundle}", "--samples", "37", "--check", "11", "--quiet"),
        ("energy", "{bundle}", "--samples", "9"),
        ("evaluate", "{model}", "--samples", "37"),
    ],
    ids=["simulate", "energy", "evaluate"],
)
def test_two_processes_report_what_one_does(trained_dir, bundle_dir, tmp_path, command):
    """37 images split 18 + 19 (simulate: the first 11 checked against the reference, all
    in the first process's block); 9 split 4 + 5."""
    args = [a.format(bundle=bundle_dir, model=trained_dir / "model.pt") for a in command]
    alone = cli(*args, "--json", str(tmp_path / "one.json"))
    assert alone.returncode == 0, alone.stderr
    two = torchrun(*args, "--json", str(tmp_path / "two.json"))
    assert two.returncode == 0, two.stderr
    one_report = json.loads((tmp_path / "one.json").read_text())
    two_report = json.loads((tmp_path / "two.json").read_text())
    assert one_report.get("processes", 1) == 1 and two_report["processes"] == 2
    assert without_times(two_report) == without_times(one_report)
    # rank 0 alone prints: the report appears once
    first_line = alone.stdout.splitlines()[0]
    assert two.stdout.count(first_line) == 1

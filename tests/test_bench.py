"""The benchmark scripts still run and print what their docs say, at the smallest sizes.
(Their speeds are not asserted: they are measured by running the scripts.)"""

import contextlib
import io
import json
import re
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str) -> str:
    """``python bench/SCRIPT ARGS``, run in this process (no interpreter start-up); what it
    printed. An exception or a non-zero exit fails the test."""
    out = io.StringIO()
    argv = sys.argv
    sys.argv = [str(BENCH / script), *args]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(BENCH / script), run_name="__main__")
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), out.getvalue()[-2000:]
    finally:
        sys.argv = argv
    return out.getvalue()


def test_data_speed_counts_every_image():
    out = run_bench("data_speed.py", "--images", "8", "--batch", "3", "--workers", "0", "2")
    for workers in (0, 2):
        assert re.search(rf"workers {workers}: \d+ images/s \(8 images of 500x375", out), out


def test_train_speed_compares_the_three_forms():
    out = run_bench(
        "train_speed.py", "--arch", "digits-gac-msresnet", "--batch", "2", "--steps", "2"
    )
    difference = float(re.search(r"largest gradient difference, float64: (\S+)", out)[1])
    assert difference < 1e-12
    for variant in ("straightforward", "ours", "ours, compiled LIF"):
        assert re.search(rf"^{variant}: [\d.]+ images/s, activation memory", out, re.M), out
    memory = re.search(r"^ours: throughput ratio [\d.]+ .*memory ratio ([\d.]+)", out, re.M)
    assert float(memory[1]) < 0.6
    assert re.search(r"could reach at most [\d.]+", out)


def test_energy_table2_prints_both_models():
    out = run_bench("energy_table2.py")
    assert "GAC-MS-ResNet-18" in out and "GAC-MS-ResNet-34" in out


def test_payload_bits_sweeps_every_payload_and_marks_the_rules_choice():
    out = run_bench("payload_bits.py", "--width", "16", "--images", "2")
    rows = re.findall(r"^(\d)  +([\d.]+)  ([\d.]+), ([\d.]+) +([\d.]+)", out, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 3
    assert all(0 <= float(r[2]) <= 1 and float(r[3]) <= float(r[2]) for r in rows)
    assert out.count("<- the data-free rule's choice") == 1


def test_deployment_study_prints_its_table_and_writes_json_and_plot(tmp_path):
    out = run_bench(
        "deployment_study.py", "--work", str(tmp_path), "--model", "digits-gac-msresnet",
        "--epochs", "1", "--qat-epochs", "0", "--variants", "gac-spike", "--check", "4",
        "--lava-images", "0",
    )  # fmt: skip
    row = re.search(r"^gac-spike +- +([\d.]+) +([\d.]+) +(-?[\d.]+) +4/0: yes +(\d) ", out, re.M)
    assert row, out
    assert abs(float(row[1]) - float(row[2]) - float(row[3])) < 0.011
    study = json.loads((tmp_path / "study.json").read_text())
    deployed = study[0]["without_qat"]
    assert deployed["spike_exact_emulator"] is True and deployed["checked_images"] == 4
    assert deployed["fidelity"]["samples"] == 360 and int(row[4]) == deployed["payload_bits"]
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_authors_network_says_what_it_needs_without_the_authors_code(tmp_path):
    out = io.StringIO()
    argv = sys.argv
    sys.argv = [str(BENCH / "authors_network.py"), "--work", str(tmp_path), "--epochs", "1"]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(BENCH / "authors_network.py"), run_name="__main__")
    except SystemExit as exit_info:
        assert "put their CODE/CIFAR on PYTHONPATH" in str(exit_info.code)
    else:
        raise AssertionError("ran without the authors' code")
    finally:
        sys.argv = argv

"""The benchmark scripts still run and print what their docs say, at the smallest sizes.
(Their speeds are not asserted: they are measured by running the scripts.)"""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


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

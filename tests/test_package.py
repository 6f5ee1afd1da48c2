"""What importing the package does to the process: one OpenMP default, nothing else."""

import os
import subprocess
import sys

import gac_deploy

SHOW = "import os, gac_deploy; print(os.environ['GOMP_SPINCOUNT'])"


def spin_after_import(env: dict) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_import_sets_a_short_openmp_spin_unless_set():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert spin_after_import(env) == gac_deploy.OPENMP_SPIN
    assert spin_after_import({**env, "GOMP_SPINCOUNT": "300000"}) == "300000"


def test_import_loads_no_torch():
    """Set before torch loads libgomp, or it would not apply."""
    code = "import sys, gac_deploy; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"

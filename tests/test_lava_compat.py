"""Each Lava workaround is needed on this Python (the import fails without it) and works."""

import subprocess
import sys

import pytest


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="the failure is Python 3.11's")


@needs_311
def test_lava_process_import_fails_without_workaround():
    result = run_python("import lava.proc.lif.process")
    assert result.returncode != 0
    assert "mutable default" in result.stderr and "ByteEncoder" in result.stderr


def test_slayer_import_fails_without_workaround():
    result = run_python("import lava.lib.dl.slayer")
    assert result.returncode != 0
    assert "No module named 'cv2'" in result.stderr or "torchvision" in result.stderr


def test_lava_runtime_import_fails_after_start_method_was_set():
    result = run_python(
        "import multiprocessing as mp; mp.set_start_method('spawn');"
        "from gac_deploy import lava_compat as c; c._hashable_byte_encoder();"
        "import lava.magma.runtime.message_infrastructure.multiprocessing"
    )
    assert result.returncode != 0 and "context has already been set" in result.stderr


def test_workarounds_make_lava_and_slayer_import():
    result = run_python(
        "import multiprocessing as mp; mp.set_start_method('spawn');"
        "from gac_deploy.lava_compat import import_lava, import_slayer;"
        "lif = import_lava('lava.proc.lif.process'); slayer = import_slayer();"
        "netx = import_lava('lava.lib.dl.netx');"
        "import lava.magma.compiler.var_model as vm;"
        "assert vm.CoreEncoder().x == vm.ByteEncoder();"
        "assert slayer.neuron.cuba.Neuron is not None;"
        "print(mp.get_start_method())"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fork"


def test_importing_gac_deploy_does_not_import_lava():
    result = run_python(
        "import sys, gac_deploy, gac_deploy.cli, gac_deploy.export.bundle, "
        "gac_deploy.training.trainer;"
        "print(sorted(m for m in sys.modules if m.startswith('lava')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

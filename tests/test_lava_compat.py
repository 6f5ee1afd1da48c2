"""Each Lava workaround is needed on this Python (the import fails without it) and works."""

import subprocess
import sys

import numpy as np
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
        "import sys, gac_deploy, gac_deploy.cli, gac_deploy.export.targets, "
        "gac_deploy.training.trainer;"
        "print(sorted(m for m in sys.modules if m.startswith('lava')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "in_shape, out_channels, kernel, stride, padding, groups, graded",
    [
        ((7, 5, 3), 4, 3, 1, 1, 1, False),
        ((8, 6, 4), 6, 3, 2, 1, 2, False),
        ((5, 9, 3), 2, 1, 2, 0, 1, True),
        ((6, 6, 2), 3, 5, 1, 2, 1, True),
    ],
)
def test_float64_convolution_equals_lavas_scipy_convolution(
    in_shape, out_channels, kernel, stride, padding, groups, graded
):
    """Workaround 4 returns exactly what Lava's own conv_scipy returns, x-y-f layout."""
    from gac_deploy.lava_compat import conv_float64, import_lava

    utils = import_lava("lava.proc.conv.utils")
    assert utils.conv is conv_float64
    rng = np.random.default_rng(0)
    if graded:  # signed graded payloads of up to 16 bits times 8-bit weights
        x = rng.integers(-(2**15), 2**15, size=in_shape).astype(np.int32)
    else:
        x = rng.random(in_shape) < 0.3
    weight = rng.integers(-256, 256, size=(out_channels, kernel, kernel, in_shape[2] // groups))
    weight = weight.astype(np.int32)
    args = ((kernel, kernel), (stride, stride), (padding, padding), (1, 1), groups)
    expected = utils.conv_scipy(x, weight, *args).astype(np.int32)
    got = conv_float64(x, weight, *args)
    assert got.dtype == np.int32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert np.abs(got).max() > 2**20 if graded else got.any()


def test_float64_convolution_leaves_this_process_threads_alone():
    """Only forked Lava processes go single-threaded; the caller's torch keeps its threads."""
    import torch

    from gac_deploy.lava_compat import conv_float64, import_lava

    import_lava("lava.proc.conv.utils")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        conv_float64(
            np.ones((3, 3, 1)),
            np.ones((1, 1, 1, 1), dtype=np.int32),
            (1, 1),
            (1, 1),
            (0, 0),
            (1, 1),
            1,
        )
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_lavas_own_convolution_is_restored_for_a_while():
    from gac_deploy.lava_compat import conv_float64, import_lava, lavas_own_convolution

    utils = import_lava("lava.proc.conv.utils")
    x, w = np.ones((4, 4, 2), dtype=bool), np.ones((3, 3, 3, 2), dtype=np.int32)
    args = ((3, 3), (1, 1), (1, 1), (1, 1), 1)
    with lavas_own_convolution():
        assert utils.conv is not conv_float64
        assert utils.conv.__module__ == "lava.proc.conv.utils"
        np.testing.assert_array_equal(utils.conv(x, w, *args), conv_float64(x, w, *args))
    assert utils.conv is conv_float64


def test_fixed_point_conv_applies_its_weight_exponent():
    """Workaround 5: Lava's fixed-point Conv model shifts its accumulated input by the
    process's weight_exp (as its Dense model does); without it, it would not."""
    from types import SimpleNamespace

    from gac_deploy.lava_compat import import_lava

    models = import_lava("lava.proc.conv.models")
    accumulated = np.array([[[1, -3, 2**20]]], dtype=np.int32)
    shifted = models.PyConvModelFixed.clamp_precision(
        SimpleNamespace(weight_exp=np.array([3], dtype=np.int32)), accumulated
    )
    np.testing.assert_array_equal(shifted, [[[8, -24, -(2**23)]]])  # then Lava's 24-bit wrap
    unshifted = models.PyConvModelFixed.clamp_precision(
        SimpleNamespace(weight_exp=np.array([0], dtype=np.int32)), accumulated
    )
    np.testing.assert_array_equal(unshifted, accumulated)
    result = run_python(
        "import numpy as np; from types import SimpleNamespace;"
        "from gac_deploy import lava_compat as c; c._hashable_byte_encoder();"
        "import lava.proc.conv.models as m;"
        "print(m.PyConvModelFixed.clamp_precision("
        "SimpleNamespace(weight_exp=np.array([3])), np.array([1])))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1]"  # Lava as shipped ignores weight_exp

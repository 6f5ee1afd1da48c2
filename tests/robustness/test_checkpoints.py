"""Faulty checkpoints and absurd sizes: one line, exit 2, nothing allocated first."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from gac_deploy.config import ModelConfig, to_dict
from gac_deploy.errors import UserError
from gac_deploy.models.size import check_model_size, model_size
from tests.cli.test_cli import assert_user_error, cli


def payload_of(trained_dir) -> dict:
    return torch.load(trained_dir / "model.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda p: p.update(model_config=[1, 2]), ["model_config", "list"]),
        (lambda p: p.pop("state_dict"), ["no state_dict"]),
        (lambda p: p.update(metrics=[0.5]), ["metrics", "list"]),
        (lambda p: p.update(data="digits"), ["data", "str"]),
        (lambda p: p["state_dict"].update(extra=torch.zeros(3)), ["unexpected extra"]),
        (lambda p: p["state_dict"].pop("fc.bias"), ["missing fc.bias"]),
        (lambda p: p["state_dict"].update({"fc.bias": torch.zeros(11)}), ["fc.bias", "[11]"]),
        (lambda p: p["state_dict"].update({"fc.bias": "x"}), ["fc.bias", "not a tensor"]),
        (lambda p: p["model_config"].update(lif="abc"), ["model config is malformed"]),
    ],
)
def test_malformed_checkpoints_are_one_line_errors(trained_dir, tmp_path, change, words):
    payload = payload_of(trained_dir)
    change(payload)
    bad = tmp_path / "model.pt"
    torch.save(payload, bad)
    assert_user_error(cli("export", str(bad), "--out", str(tmp_path / "b")), *words)
    assert not (tmp_path / "b").exists()


def test_a_small_file_asking_for_a_huge_model_is_refused_before_allocation(tmp_path):
    """A few-KB checkpoint whose config asks for 10,000 stem channels: the weights are
    compared on the meta device, so the process stays small."""
    config = to_dict(replace(ModelConfig(), stem_channels=10_000))
    torch.save(
        {
            "format": "gac-deploy-checkpoint",
            "version": 1,
            "model_config": config,
            "data": {"dataset": "digits"},
            "state_dict": {"fc.bias": torch.zeros(10)},
        },
        tmp_path / "model.pt",
    )
    # the peak of this process's own memory (VmHWM, kB): ru_maxrss would also count the
    # pages the child shared with this test process when it was forked
    code = (
        "import sys; from gac_deploy.cli import main; "
        f"rc = main(['export', {str(tmp_path / 'model.pt')!r}, '--out', "
        f"{str(tmp_path / 'b')!r}]); "
        "print(next(line.split()[1] for line in open('/proc/self/status') "
        "if line.startswith('VmHWM'))); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert_user_error(result, "weights do not fit", "missing")
    peak_mib = int(result.stdout.split()[-1]) / 1024
    assert peak_mib < 1500, f"peak memory {peak_mib:.0f} MiB"


def test_model_size_is_exact_and_refuses_what_cannot_fit():
    from gac_deploy.models import build_model, default_config

    config = default_config("msresnet18-cifar")
    size = model_size(config)
    assert size.parameters == 12_633_198  # the authors' count, nothing allocated
    digits = build_model(ModelConfig())
    graph = digits.eval().export_graph()
    body = sum(p.size for p in graph.populations if p.role != "readout")
    encoder = int(torch.tensor(graph.input_shape).prod())
    assert model_size(ModelConfig()).neurons == body + encoder
    with pytest.raises(UserError, match="needs at least .* GiB"):
        check_model_size(replace(config, time_steps=10**9))
    with pytest.raises(UserError, match="T=6"):
        check_model_size(config, available=1 << 20)


@pytest.mark.parametrize(
    "change", [{"stem_channels": 10**9}, {"sca_kernel": 10**9}, {"num_classes": 10**18}]
)
def test_sizes_that_overflow_any_count_are_refused(tmp_path, change):
    """Sizes whose byte count overflows 64 bits (PyTorch itself cannot describe the
    tensor) are refused in one line, like those that merely exceed the memory."""
    with pytest.raises(UserError, match="beyond what any machine can hold"):
        check_model_size(replace(ModelConfig(), **change))
    torch.save(
        {
            "format": "gac-deploy-checkpoint",
            "version": 1,
            "model_config": to_dict(replace(ModelConfig(), **change)),
            "data": {"dataset": "digits"},
            "state_dict": {"fc.bias": torch.zeros(10)},
        },
        tmp_path / "model.pt",
    )
    for command in ("export", "evaluate"):
        out = ["--out", str(tmp_path / "b")] if command == "export" else []
        assert_user_error(
            cli(command, str(tmp_path / "model.pt"), *out),
            "beyond what any machine can hold",
        )
    assert not (tmp_path / "b").exists()


def test_absurd_sizes_from_the_command_line(tmp_path):
    assert_user_error(
        cli("train", "-T", "1000000000", "--out", str(tmp_path / "t")), "needs at least"
    )
    assert not (tmp_path / "t").exists()
    source = tmp_path / "authors.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, source)
    assert_user_error(
        cli(
            "import-official", str(source), "--arch", "msresnet18-cifar", "--num-classes",
            "1000000000", "-T", "6", "--out", str(tmp_path / "m.pt"),
        ),
        "needs at least",
    )
    result = cli("models", "--params", "-T", "1000000000")
    assert result.returncode == 0 and "msresnet18-cifar" in result.stdout

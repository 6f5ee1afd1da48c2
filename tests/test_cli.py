"""The command line: help, one-line errors with exit code 2, outputs a script can read."""

import json
import subprocess
import sys

import pytest

from gac_deploy.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gac_deploy", *args], capture_output=True, text=True, timeout=600
    )


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "export", "simulate", "energy", "demo"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["train", "export", "simulate", "energy", "demo"])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: gac-deploy " + command in capsys.readouterr().out


def assert_user_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gac-deploy: error:")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_missing_checkpoint(tmp_path):
    assert_user_error(run_cli("export", str(tmp_path / "nope.pt")), "not found")


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    assert_user_error(run_cli("export", str(bad)), "not a readable")


def test_foreign_checkpoint(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    assert_user_error(run_cli("energy", str(path)), "not a gac-deploy checkpoint")


def test_unknown_target(trained_dir, tmp_path):
    result = run_cli(
        "export",
        str(trained_dir / "model.pt"),
        "--target",
        "spinnaker",
        "--out",
        str(tmp_path / "b"),
    )
    assert_user_error(result, "unknown target", "loihi2")
    assert not (tmp_path / "b").exists()


def test_unknown_command_and_bad_numbers(bundle_dir):
    assert_user_error(run_cli("fly"), "invalid choice")
    assert_user_error(run_cli("simulate", str(bundle_dir), "--samples", "many"), "invalid int")
    assert_user_error(run_cli("simulate", str(bundle_dir), "--samples", "0"), "--samples")
    assert_user_error(run_cli("simulate", str(bundle_dir), "--backend", "gpu"), "unknown backend")


def test_missing_and_tampered_bundle(bundle_dir, tmp_path):
    import shutil

    assert_user_error(run_cli("simulate", str(tmp_path / "none")), "bundle not found")
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    (copy / "encoder.onnx").write_bytes(b"x")
    assert_user_error(run_cli("simulate", str(copy)), "sha256")


def test_energy_json(bundle_dir, tmp_path):
    out = tmp_path / "energy.json"
    result = run_cli("energy", str(bundle_dir), "--samples", "16", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "encoder.conv" in result.stdout and "total" in result.stdout
    data = json.loads(out.read_text())
    assert data["convention"] == "paper (Eq. 11)" and data["profile"] == "horowitz45-fp32"
    assert data["total_pj"] == pytest.approx(sum(r["energy_pj"] for r in data["layers"]))


@pytest.mark.lava
def test_simulate_json(bundle_dir, tmp_path):
    out = tmp_path / "sim.json"
    result = run_cli("simulate", str(bundle_dir), "--samples", "3", "--json", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["samples"] == 3 and data["spike_exact"] is True
    assert {p["population"] for p in data["populations"]} >= {"block1.lif1", "head.lif"}
    assert "spike-exact: yes" in result.stdout

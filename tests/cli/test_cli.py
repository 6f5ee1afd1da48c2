"""The command line: help, one-line errors with exit code 2, outputs a script can read."""

import contextlib
import io
import json
import subprocess
import sys

import pytest
import torch

from gac_deploy.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gac_deploy", *args], capture_output=True, text=True, timeout=600
    )


def cli(*args: str) -> subprocess.CompletedProcess:
    """``gac-deploy ARGS`` in this process (no interpreter start-up): its exit code and what
    it printed. An exception that main does not turn into a one-line error propagates, so a
    would-be traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


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
    assert_user_error(cli("export", str(bad)), "not a readable")


def test_foreign_checkpoint(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    assert_user_error(cli("energy", str(path)), "not a gac-deploy checkpoint")


def test_unknown_target(trained_dir, tmp_path):
    result = cli(
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
    assert_user_error(cli("fly"), "invalid choice")
    assert_user_error(cli("simulate", str(bundle_dir), "--samples", "many"), "a number or 'all'")
    assert_user_error(cli("simulate", str(bundle_dir), "--samples", "0"), "--samples")
    assert_user_error(cli("simulate", str(bundle_dir), "--backend", "gpu"), "unknown backend")


def test_missing_and_tampered_bundle(bundle_dir, tmp_path):
    import shutil

    assert_user_error(cli("simulate", str(tmp_path / "none")), "bundle not found")
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    (copy / "encoder.onnx").write_bytes(b"x")
    assert_user_error(cli("simulate", str(copy)), "sha256")


def test_energy_json(bundle_dir, tmp_path):
    out = tmp_path / "energy.json"
    result = cli("energy", str(bundle_dir), "--samples", "16", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "encoder.conv" in result.stdout and "total" in result.stdout
    data = json.loads(out.read_text())
    assert set(data["conventions"]) == {"paper", "complete"}
    assert data["profile"] == "horowitz45-fp32"
    assert data["paper_pj"] == pytest.approx(sum(r["energy_pj"] for r in data["paper"]))
    assert data["complete_pj"] == pytest.approx(sum(r["energy_pj"] for r in data["complete"]))


@pytest.mark.lava
def test_simulate_lava_json(bundle_dir, tmp_path):
    out = tmp_path / "sim.json"
    result = cli(
        "simulate",
        str(bundle_dir),
        "--backend",
        "lava",
        "--samples",
        "3",
        "--json",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["backend"] == "lava" and data["samples"] == 3 and data["spike_exact"] is True
    assert {p["population"] for p in data["populations"]} >= {"block1.lif1", "head.lif"}
    assert "spike-exact against the reference: yes" in result.stdout


def test_simulate_emulator_whole_split(bundle_dir, tmp_path):
    out = tmp_path / "emu.json"
    result = cli("simulate", str(bundle_dir), "--json", str(out), "--quiet", "--check", "all")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["backend"] == "emulator" and data["samples"] == 360 and data["spike_exact"]
    assert data["checked_samples"] == 360
    assert sum(data["synaptic_ops"].values()) > 0 and data["images_per_s"] > 0
    assert data["test_split"] == 360
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    floating = manifest["float_test_accuracy"]
    cost = 100 * (floating - data["accuracy"])
    assert (
        f"float {floating:.4f} (whole test split, at export)  reference "
        f"{data['reference_accuracy']:.4f}  chip {data['accuracy']:.4f}: deployment cost "
        f"{cost:+.2f} points\n" in result.stdout
    )


def test_simulate_check_limits_the_reference_to_the_first_images(bundle_dir, tmp_path):
    out = tmp_path / "emu.json"
    args = ("simulate", str(bundle_dir), "--samples", "40", "--quiet")
    result = cli(*args, "--check", "8", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "spike-exact against the reference on the first 8 images: yes" in result.stdout
    assert "deployment cost" in result.stdout and "; chip on 40" in result.stdout
    assert "  reference " not in result.stdout.split("float ")[1]  # only 8 of 40 checked
    data = json.loads(out.read_text())
    assert (data["samples"], data["checked_samples"], data["spike_exact"]) == (40, 8, True)
    unchecked = cli(*args, "--check", "0", "--json", str(out))
    assert "not compared with the reference (--check 0)" in unchecked.stdout
    data = json.loads(out.read_text())
    assert (data["checked_samples"], data["spike_exact"], data["agreement"]) == (0, None, None)
    assert_user_error(cli(*args, "--check", "-1"), "--check")
    sampled = cli(*args, "--json", str(out))  # the default: 32 + a tenth of the 40 images
    assert "on the first 36 images (the default sample; --check all checks every image): yes" \
        in sampled.stdout  # fmt: skip
    assert json.loads(out.read_text())["checked_samples"] == 36


def test_models_params_prints_authors_counts():
    result = cli("models", "--params", "--num-classes", "100", "-T", "6")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    line = next(row for row in lines if row.startswith("msresnet18-cifar"))
    assert "12,679,368" in line and "12,548,260" in line


def test_import_official_writes_checkpoint_that_exports(tmp_path):
    import torch

    from gac_deploy.checkpoint import load_checkpoint
    from gac_deploy.models import build_model
    from gac_deploy.models.official import official_config
    from gac_deploy.testing import authors_state_dict

    torch.manual_seed(0)
    source = build_model(official_config("msresnet18-cifar", 10, 6)).eval()
    torch.save(authors_state_dict(source, prefix="module."), tmp_path / "CIFAR10_T=6.pth")
    out = tmp_path / "model.pt"
    result = cli(
        "import-official",
        str(tmp_path / "CIFAR10_T=6.pth"),
        "--arch",
        "msresnet18-cifar",
        "--num-classes",
        "10",
        "-T",
        "6",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    model = load_checkpoint(out).build()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert (model(x) - source(x)).abs().max() < 1e-4
    # the authors' membrane shortcuts export as composed edges, at full size
    exported = cli("export", str(out), "--out", str(tmp_path / "b"), "--chips", "64")
    assert exported.returncode == 0, exported.stderr
    assert "downsample@" in (tmp_path / "b" / "manifest.json").read_text()
    assert "could leave Loihi's 24-bit state" in exported.stdout  # the worst case is reported
    wrong = cli(
        "import-official",
        str(tmp_path / "CIFAR10_T=6.pth"),
        "--arch",
        "msresnet18-cifar",
        "--num-classes",
        "100",
        "-T",
        "6",
        "--out",
        str(out),
    )
    assert_user_error(wrong, "--num-classes 100 does not match", "fc1.weight says 10")


def test_bad_training_settings(tmp_path):
    out = str(tmp_path / "t")
    assert_user_error(cli("train", "--sca-kernel", "0", "--out", out), "sca_kernel")
    assert_user_error(cli("train", "--epochs", "0", "--out", out), "--epochs")
    assert_user_error(cli("train", "--lr", "-1", "--out", out), "--lr")
    assert_user_error(cli("train", "--encoder", "phase", "--out", out), "unknown encoder", "gac")
    assert_user_error(cli("train", "--device", "tpu", "--out", out), "unknown --device")
    if not torch.cuda.is_available():
        assert_user_error(cli("train", "--device", "cuda", "--out", out), "no CUDA GPU")
    assert_user_error(cli("train", "--workers", "-1", "--out", out), "--workers")
    assert_user_error(cli("train", "--cutmix", "-1", "--out", out), "--cutmix")
    assert_user_error(cli("train", "--seed", "-1", "--out", out), "--seed")
    assert_user_error(cli("train", "--label-smoothing", "1", "--out", out), "[0, 1)")
    assert not (tmp_path / "t" / "model.pt").exists()


def test_analyze_prints_sweep_and_proposition(trained_dir, tmp_path):
    out = tmp_path / "an.json"
    result = cli(
        "analyze",
        str(trained_dir / "model.pt"),
        "--samples",
        "8",
        "--plot",
        str(tmp_path / "fig3.png"),
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "Proposition 1 (T_g >= T_d) holds for every neuron" in result.stdout
    data = json.loads(out.read_text())
    assert all(r["formula"] == r["observed"] for r in data["period_sweep"])
    assert (tmp_path / "fig3.png").exists()


def test_qat_needs_init(tmp_path, trained_dir):
    assert_user_error(cli("train", "--qat", "--out", str(tmp_path)), "--init")
    result = cli(
        "train", "--init", str(trained_dir / "model.pt"), "--encoder", "lif", "--out", str(tmp_path)
    )
    assert_user_error(result, "--init", "--encoder")


def test_energy_compare_gac_and_direct(tmp_path):
    for encoder in ("gac", "direct"):
        result = cli(
            "train",
            "--encoder",
            encoder,
            "--max-steps",
            "5",
            "--out",
            str(tmp_path / encoder),
            "--quiet",
        )
        assert result.returncode == 0, result.stderr
    result = cli(
        "energy",
        str(tmp_path / "gac" / "model.pt"),
        "--compare",
        str(tmp_path / "direct" / "model.pt"),
        "--samples",
        "16",
        "--plot",
        str(tmp_path / "e.png"),
        "--convention",
        "complete",
    )
    assert result.returncode == 0, result.stderr
    assert "ANN equivalent nJ" in result.stdout and "mean firing rate" in result.stdout
    assert "encoder.sca" in result.stdout
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


def test_energy_what_if_and_errors():
    result = cli("energy", "--arch", "msresnet18-imagenet", "-T", "6", "--firing-rate", "0.154")
    assert result.returncode == 0, result.stderr
    assert "118,013,952" in result.stdout or "1.18" in result.stdout
    assert_user_error(cli("energy", "--arch", "msresnet18-imagenet"), "--firing-rate")
    assert_user_error(
        cli("energy", "--arch", "msresnet18-imagenet", "--firing-rate", "2"), "between 0 and 1"
    )
    assert_user_error(cli("energy"), "give a bundle")


@pytest.mark.lava
def test_demo_runs_to_its_summary(tmp_path):
    result = cli(
        "demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--samples", "2", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.split("== summary ==")[1]
    for line in (
        "float test accuracy",
        "Lava-simulated accuracy",
        "emulated chip accuracy",
        "spike-exact: yes",
        "energy per inference",
    ):
        assert line in summary
    for name in (
        "simulate.json",
        "emulate.json",
        "energy.json",
        "bundle/body.net",
        "train/model.pt",
    ):
        assert (tmp_path / "demo" / name).exists()


def test_unwritable_output_path_is_a_user_error(bundle_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("energy", str(bundle_dir), "--samples", "4", "--json", str(blocker / "out.json"))
    assert_user_error(result, "cannot use", "choose another path")

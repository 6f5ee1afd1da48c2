"""Presentation windows: a T = 6 model is exported for the chip with W = 8, runs spike for
spike over whole windows, and its energy report prices the padding steps."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.chip.emulator import emulate
from gac_deploy.chip.simulate import simulate_bundle
from gac_deploy.data import load_digits_split
from gac_deploy.energy.report import format_report, report_for_bundle
from gac_deploy.export.loading import load_bundle
from gac_deploy.models import default_config
from tests.cli.test_cli import assert_user_error, cli
from tests.conftest import random_model

FAST = ("--samples", "0", "--calibrate", "0")
ROOT = Path(__file__).resolve().parents[2]


def six_step_checkpoint(tmp_path):
    config = default_config("digits-gac-msresnet", time_steps=6)
    path = tmp_path / "model.pt"
    model = random_model(config, seed=0)
    save_checkpoint(path, Checkpoint(config, load_digits_split().spec, model.state_dict(), {}, {}))
    return str(path)


def test_a_six_step_model_runs_in_eight_step_windows(tmp_path):
    checkpoint = six_step_checkpoint(tmp_path)
    out = tmp_path / "bundle"
    result = cli("export", checkpoint, "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    assert "window 8 steps per image (T=6 + 2 padding), loihi2-hardware" in result.stdout
    bundle = load_bundle(out)
    assert bundle.graph.window == 8 and bundle.graph.time_steps == 6
    body = json.loads((out / "manifest.json").read_text())["body"]
    assert body["window_steps"] == 8 and body["deployment"] == "loihi2-hardware"

    simulated = simulate_bundle(bundle, "emulator", 16, progress=False)
    assert simulated.spike_exact and simulated.checked_samples == 16
    # the saved reference equals the emulator, and the chip owners' script runs Lava on
    # the same three images and checks it against that reference, spike for spike
    assert_saved_reference_matches_the_emulator(bundle, tmp_path / "reference.npz")
    assert_chip_owners_script_runs(tmp_path)

    report = report_for_bundle(out, samples=4)
    assert report.time_steps == 6 and report.padding_steps == 2
    for pop in bundle.graph.populations:
        (row,) = [r for r in report.complete if r.name == f"{pop.name} (neurons)"]
        assert row.ops == pop.size * 8  # every neuron updates in every step of the window
    assert "T=6 + 2 padding steps of the chip's 8-step window, priced" in format_report(report)


def assert_saved_reference_matches_the_emulator(bundle, path):
    """simulate --save-spikes: the payload padded to the window, each population's spikes
    over its window as the emulator gives them, the read-out over T, the labels."""
    result = cli("simulate", str(bundle.path), "--samples", "5", "--quiet",
                 "--save-spikes", str(path), "--save-images", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {path}" in result.stdout and "8-step windows" in result.stdout
    saved = np.load(path)  # allow_pickle stays False: numbers only
    images, labels = load_digits_split().test_images(3)
    _, payload = bundle.encode(images.numpy())
    assert saved["payload"].shape == (8, *payload.shape[1:])
    assert np.array_equal(saved["payload"][:6], np.rint(payload))
    assert not saved["payload"][6:].any()
    assert np.array_equal(saved["labels"], labels.numpy())
    assert int(saved["window"]) == 8 and int(saved["time_steps"]) == 6
    run = emulate(bundle.graph, torch.from_numpy(saved["payload"][:6]).float())
    latency = {p["name"]: p["latency"] for p in bundle.manifest["body"]["populations"]}
    for name, spikes in run.spikes.items():
        assert np.array_equal(saved[f"spikes/{name}"], spikes.numpy()), name
        assert int(saved[f"latency/{name}"]) == latency[name]
    assert np.array_equal(saved["readout"], run.readout.numpy())
    for images, message in (("0", "must be at least 1"), ("100000", "100000 exceeds the 360")):
        assert_user_error(
            cli("simulate", str(bundle.path), "--save-spikes", str(path), "--save-images", images),
            f"--save-images {message}",
        )


def assert_chip_owners_script_runs(directory):
    """The script of docs/loihi2-hardware.md, run beside its bundle and reference.npz."""
    page = (ROOT / "docs" / "loihi2-hardware.md").read_text()
    script = page.split("```python\n")[1].split("```")[0]
    printed = io.StringIO()
    with contextlib.chdir(directory), contextlib.redirect_stdout(printed):
        exec(compile(script, "loihi2-hardware.md", "exec"), {})
    assert printed.getvalue().strip() in page


def test_keeping_w_equal_t_is_for_simulation_only(tmp_path):
    """--window 6 for the chip is refused, naming the limit and its source, and writes
    nothing; with --simulation-only it is written, and the manifest says which it is."""
    checkpoint = six_step_checkpoint(tmp_path)
    refused = cli("export", checkpoint, "--out", str(tmp_path / "chip"), "--window", "6", *FAST)
    assert_user_error(refused, "reset_interval", "mnist/run.ipynb", "--simulation-only")
    assert not (tmp_path / "chip").exists()
    assert_user_error(
        cli("export", checkpoint, "--out", str(tmp_path / "short"), "--window", "5", *FAST),
        "--window 5 is shorter than the model's T=6",
    )
    assert_user_error(
        cli("export", checkpoint, "--out", str(tmp_path / "long"), "--window", "4096",
            "--simulation-only", *FAST),  # fmt: skip
        "--window 4096 is longer than the 1024 steps",
    )
    out = tmp_path / "simulation"
    written = cli("export", checkpoint, "--out", str(out), "--window", "6", "--simulation-only",
                  *FAST)  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert "window 6 steps per image (T=6), simulation-only" in written.stdout
    bundle = load_bundle(out)
    assert bundle.graph.window == 6 and bundle.manifest["body"]["deployment"] == "simulation-only"
    assert simulate_bundle(bundle, "emulator", 8, progress=False).spike_exact

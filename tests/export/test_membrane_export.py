"""A membrane-shortcut model exports to Loihi 2 and runs spike-exactly in the emulator."""

from gac_deploy.checkpoint import Checkpoint, save_checkpoint
from gac_deploy.chip.simulate import simulate_bundle
from gac_deploy.data import load_digits_split
from gac_deploy.export.targets import export_bundle
from gac_deploy.models import default_config
from tests.conftest import random_model


def test_membrane_model_exports_and_emulator_is_spike_exact(tmp_path):
    config = default_config("digits-gac-msresnet", shortcut="membrane")
    model = random_model(config, seed=0)
    save_checkpoint(
        tmp_path / "model.pt",
        Checkpoint(config, load_digits_split().spec, model.state_dict(), {}, {}),
    )
    bundle = export_bundle(tmp_path / "model.pt", tmp_path / "bundle")
    layers = {e.layer for e in bundle.graph.edges}
    assert "block2.downsample@input" in layers and "block2.downsample" not in layers
    result = simulate_bundle(bundle, "emulator", 64, progress=False)
    assert result.spike_exact
    assert sum(p.spikes for p in result.populations) > 0
    assert result.synaptic_ops[[n for n in result.synaptic_ops if "downsample@" in n][0]] > 0

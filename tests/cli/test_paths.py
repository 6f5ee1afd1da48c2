"""A path of the wrong kind gets one line naming what it is and the command that takes it."""

import pytest

from gac_deploy.testing import write_cifar
from tests.cli.test_cli import assert_user_error, cli


@pytest.fixture
def paths(trained_dir, bundle_dir, tmp_path):
    write_cifar(tmp_path / "cifar", 10)
    (tmp_path / "graph.nir").write_bytes(b"not read")
    return {
        "run": str(trained_dir),
        "checkpoint": str(trained_dir / "model.pt"),
        "bundle": str(bundle_dir),
        "cifar": str(tmp_path / "cifar"),
        "nir": str(tmp_path / "graph.nir"),
    }


def test_commands_that_read_a_checkpoint_say_what_else_they_were_given(paths):
    run, bundle = paths["run"], paths["bundle"]
    for command in ("export", "evaluate", "analyze"):
        assert_user_error(cli(command, run), "is a training run directory; did you mean",
                          f"{run}/model.pt?")  # fmt: skip
        assert_user_error(cli(command, bundle), "is an exported bundle, not a checkpoint",
                          f"'gac-deploy simulate {bundle}'")  # fmt: skip
        assert_user_error(cli(command, paths["cifar"]), "is a dataset folder", "--data-dir")
        assert_user_error(cli(command, paths["nir"]), "is a NIR graph",
                          f"'gac-deploy import-nir {paths['nir']} --out DIR'")  # fmt: skip


def test_commands_that_read_a_bundle_say_what_else_they_were_given(paths):
    run, checkpoint = paths["run"], paths["checkpoint"]
    assert_user_error(cli("simulate", checkpoint), "is a checkpoint, not a bundle",
                      f"'gac-deploy export {checkpoint} --out DIR'")  # fmt: skip
    assert_user_error(cli("simulate", run), "is a training run directory, not a bundle",
                      f"'gac-deploy export {run}/model.pt --out DIR'")  # fmt: skip
    assert_user_error(cli("simulate", paths["nir"]), "is a NIR graph, not a bundle")
    assert_user_error(cli("simulate", paths["cifar"]), "is a dataset folder, not a bundle")
    # energy reads either a bundle or a checkpoint
    assert_user_error(cli("energy", run), "is a training run directory; did you mean")
    assert_user_error(cli("energy", paths["nir"]), "not a bundle or a checkpoint")
    assert_user_error(cli("energy", paths["bundle"], "--compare", run), "did you mean")


def test_a_missing_path_still_says_not_found(tmp_path):
    assert_user_error(cli("export", str(tmp_path / "nope.pt")), "checkpoint not found")
    assert_user_error(cli("simulate", str(tmp_path / "nope")), "bundle not found")

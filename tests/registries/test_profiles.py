"""The energy-profile recipe: a profile registered in-process prices a bundle's activity
through the command line, in both conventions."""

import json

import pytest

from gac_deploy.registries.profiles import PROFILES
from tests.cli.test_choices import help_text
from tests.cli.test_cli import cli
from tests.registries.recipes import recipe


def energy(bundle_dir, tmp_path, *flags: str) -> dict:
    out = tmp_path / f"energy{len(flags)}.json"
    result = cli("energy", str(bundle_dir), "--samples", "8", "--json", str(out), *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_a_registered_profile_prices_a_bundle(bundle_dir, tmp_path):
    default = energy(bundle_dir, tmp_path)
    with recipe("An energy profile"):
        listing = help_text("energy")
        assert "my-chip: our chip, measured" in listing
        mine = energy(bundle_dir, tmp_path, "--profile", "my-chip")
        profile = PROFILES.get("my-chip")
    assert mine["profile"] == "my-chip" and mine["profile_source"] == profile.source
    for convention in ("paper", "complete"):
        for row, same in zip(mine[convention], default[convention], strict=True):
            assert row["ops"] == same["ops"]  # the same activity, priced anew
            price = profile.synop if convention == "paper" and row["op"] == "AC" else None
            expected = row["ops"] * (price or profile.price(row["op"]))
            assert row["energy_pj"] == pytest.approx(expected)
    assert mine["complete_pj"] != pytest.approx(default["complete_pj"])
    assert "my-chip" not in PROFILES

"""A what-if rates file with values that are not rates: one line, exit 2."""

import json

import pytest

from tests.cli.test_cli import assert_user_error, cli


@pytest.mark.parametrize(
    ("rates", "words"),
    [
        ({"*": "abc"}, ["rate of *", "not a number"]),
        ({"*": True}, ["not a number"]),
        ({"*": 1.5}, ["between 0 and 1"]),
        ([0.1], ["JSON object"]),
    ],
)
def test_bad_rates_file(tmp_path, rates, words):
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(rates))
    result = cli("energy", "--arch", "digits-gac-msresnet", "--rates", str(path))
    assert_user_error(result, *words)

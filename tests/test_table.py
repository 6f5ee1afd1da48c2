"""Terminal tables print every number one way."""

from gac_deploy.table import format_table


def test_numbers_print_one_way_whatever_their_type():
    table = format_table(
        ["name", "count"], [["a", 9216.0], ["b", 109726], ["c", 517.36], ["d", None]]
    )
    lines = table.splitlines()
    assert lines[2].endswith("  9,216") and lines[3].endswith("109,726")
    assert lines[4].endswith("  517.4") and lines[5].endswith("-")
    assert len({len(line) for line in lines[2:]}) == 1  # numbers right-aligned

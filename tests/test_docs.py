"""The documentation tells the truth about the command line and about itself.

README.md and docs/*.md are read as text: every ``gac-deploy COMMAND ...`` in a fenced
code block or an inline code span names a command that exists and only options that
command has (the parser is built in-process); every ``python bench/X.py ...`` names a
script that exists and options its source defines; every relative link points at a file
(and a heading) that exists; the manifest's keys are each described in docs/formats.md.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from gac_deploy.cli import build_parser
from gac_deploy.export.manifest import MANIFEST_SCHEMA

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCED = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
SPAN = re.compile(r"`([^`]+)`")
# a line or span that starts with an invocation (perhaps timed, or under torchrun): the
# command and the rest
TIMED = r"^(?:(?:/usr/bin/)?time(?:\s+-v)?\s+)?"
COMMAND = re.compile(TIMED + r"(?:\S*gac-deploy|torchrun\s.*?-m gac_deploy)\s+([a-z][\w-]*)(.*)")
BENCH = re.compile(TIMED + r"(?:\S*/)?python3?\s+(bench/[\w/]+\.py)(.*)")
# an option: -X or --long-name, not a hyphen inside a word (cifar10-paper, 1e-4)
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
COMMENT = re.compile(r"\s#(\s.*)?$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def code_texts(page: Path) -> list[str]:
    """Each command line of the page's fenced blocks (continuations joined, comments
    dropped) and each inline code span (table escapes undone, whitespace collapsed)."""
    text = page.read_text()
    texts = []
    for block in FENCED.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            texts.append(COMMENT.sub("", line))
    prose = FENCED.sub("", text)
    for span in SPAN.findall(prose):
        if "\n\n" not in span:
            texts.append(" ".join(span.replace("\\|", "|").split()))
    return texts


def invocations(pattern: re.Pattern) -> list[tuple[str, str, list[str]]]:
    """(page, name, options) for every match of ``pattern`` in the pages' code."""
    found = []
    for page in PAGES:
        for text in code_texts(page):
            if match := pattern.match(text.strip()):
                name, rest = match.groups()
                found.append((page.relative_to(ROOT).as_posix(), name, OPTION.findall(rest)))
    return found


def subcommand_options() -> dict[str, set[str]]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def test_every_documented_command_and_option_exists():
    options = subcommand_options()
    found = invocations(COMMAND)
    assert len(found) > 30, "the pages' gac-deploy commands were not found"
    problems = []
    for page, name, flags in found:
        if name not in options:
            problems.append(f"{page}: gac-deploy {name}: no such command")
            continue
        problems += [
            f"{page}: gac-deploy {name} has no option {flag}"
            for flag in flags
            if flag not in options[name]
        ]
    assert not problems, "\n".join(problems)


def test_every_documented_bench_script_and_option_exists():
    found = invocations(BENCH)
    assert len(found) > 10, "the pages' bench commands were not found"
    problems = []
    for page, script, flags in found:
        source = ROOT / script
        if not source.is_file():
            problems.append(f"{page}: {script} does not exist")
            continue
        text = source.read_text()
        problems += [
            f"{page}: {script} defines no option {flag}"
            for flag in flags
            if f'"{flag}"' not in text and f"'{flag}'" not in text
        ]
    assert not problems, "\n".join(problems)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCED.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", text, re.M)}


def test_every_relative_link_points_at_something():
    problems = []
    for page in PAGES:
        for target in LINK.findall(FENCED.sub("", page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not file.exists():
                problems.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                problems.append(f"{where}: no such heading")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("key", sorted(MANIFEST_SCHEMA))
def test_formats_page_describes_every_manifest_key(key):
    assert f"| `{key}` |" in (ROOT / "docs" / "formats.md").read_text()


def test_the_chip_owners_page_names_every_hardware_limit():
    from gac_deploy.body.loihi2 import HARDWARE

    page = (ROOT / "docs" / "loihi2-hardware.md").read_text()
    missing = [limit.name for limit in HARDWARE if f"`{limit.name}`" not in page]
    assert not missing, f"docs/loihi2-hardware.md does not describe {missing}"

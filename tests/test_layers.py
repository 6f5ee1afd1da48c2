"""The package's parts import only parts below them (README, Layout).

Lazy imports inside functions count: they are dependencies too. A part is a top-level
module or package of ``gac_deploy``; parts of one rank may not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "gac_deploy"

# bottom to top
LAYERS: list[tuple[str, ...]] = [
    ("errors", "lava_compat"),
    ("config", "fileio", "table"),
    ("data",),
    ("body",),
    ("models",),
    ("checkpoint", "analysis"),
    ("export",),
    ("hardware",),
    ("training",),
    ("cli",),
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(file: Path) -> str:
    rel = file.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported_parts(file: Path) -> list[tuple[str, int]]:
    """(part, line) of every ``gac_deploy.<part>`` import in ``file``."""
    found = []
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "gac_deploy":  # from gac_deploy import x
                names = [f"gac_deploy.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            bits = name.split(".")
            if bits[0] == "gac_deploy" and len(bits) > 1:
                found.append((bits[1], node.lineno))
    return found


def package_files() -> list[Path]:
    return [
        f
        for f in sorted(PACKAGE.rglob("*.py"))
        if f.relative_to(PACKAGE).as_posix() not in ("__init__.py", "__main__.py")
    ]


def test_every_part_has_a_layer():
    assert {part_of(f) for f in package_files()} == set(RANK)


def test_imports_point_down():
    upward = []
    for file in package_files():
        part = part_of(file)
        for dst, line in imported_parts(file):
            if dst == "__version__" or dst == part:
                continue
            if RANK[dst] >= RANK[part]:
                upward.append(f"{file.relative_to(PACKAGE)}:{line} {part} -> {dst}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: a body module importing the models is reported."""
    file = tmp_path / "probe.py"
    file.write_text("def f():\n    from gac_deploy.models.lif import LIF\n")
    assert imported_parts(file) == [("models", 2)]
    assert RANK["models"] > RANK["body"]

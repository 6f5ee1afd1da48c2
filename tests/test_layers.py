"""The package's parts import only parts below them (docs/layout.md).

Lazy imports inside functions count: they are dependencies too. A part is a top-level
module or package of ``gac_deploy``; parts of one rank may not import each other. Inside
``export`` its modules are layered the same way.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "gac_deploy"

# bottom to top
LAYERS: list[tuple[str, ...]] = [
    ("errors", "lava_compat"),
    ("registries",),
    ("config", "fileio", "table", "augment", "cifar_files", "world"),
    ("data",),
    ("body",),
    ("neurons",),
    ("models",),
    ("checkpoint", "analysis"),
    ("export",),
    ("chip",),
    ("energy",),
    ("training",),
    ("testing",),
    ("cli",),
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}

# export's modules, bottom to top: the file formats, the manifest, opening a bundle, writing one
EXPORT_LAYERS: list[tuple[str, ...]] = [
    ("onnx_encoder", "netx_hdf5", "nir_graph"),
    ("manifest",),
    ("loading",),
    ("targets",),
]
EXPORT_RANK = {module: rank for rank, modules in enumerate(EXPORT_LAYERS) for module in modules}


def part_of(file: Path) -> str:
    rel = file.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported_names(file: Path) -> list[tuple[list[str], int]]:
    """(dotted name split, line) of every ``gac_deploy.<part>...`` import in ``file``."""
    found = []
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module in ("gac_deploy", "gac_deploy.export"):  # from gac_deploy import x
                names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            bits = name.split(".")
            if bits[0] == "gac_deploy" and len(bits) > 1:
                found.append((bits, node.lineno))
    return found


def imported_parts(file: Path) -> list[tuple[str, int]]:
    """(part, line) of every ``gac_deploy.<part>`` import in ``file``."""
    return [(bits[1], line) for bits, line in imported_names(file)]


def package_files() -> list[Path]:
    return [
        f
        for f in sorted(PACKAGE.rglob("*.py"))
        if f.relative_to(PACKAGE).as_posix() not in ("__init__.py", "__main__.py")
    ]


def test_every_part_has_a_layer():
    assert {part_of(f) for f in package_files()} == set(RANK)
    assert {f.stem for f in (PACKAGE / "export").glob("*.py")} - {"__init__"} == set(EXPORT_RANK)


def test_imports_point_down():
    upward = []
    for file in package_files():
        part = part_of(file)
        for dst, line in imported_parts(file):
            if dst == "__version__" or dst == part:
                continue
            if RANK[dst] >= RANK[part]:
                upward.append(f"{file.relative_to(PACKAGE)}:{line} {part} -> {dst}")
        if part == "export":
            for bits, line in imported_names(file):
                if bits[1] != "export" or len(bits) < 3 or bits[2] == file.stem:
                    continue
                if EXPORT_RANK[bits[2]] >= EXPORT_RANK[file.stem]:
                    upward.append(f"{file.relative_to(PACKAGE)}:{line} {file.stem} -> {bits[2]}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: a body module importing the models is reported."""
    file = tmp_path / "probe.py"
    file.write_text("def f():\n    from gac_deploy.models.lif import LIF\n")
    assert imported_parts(file) == [("models", 2)]
    assert RANK["models"] > RANK["body"]

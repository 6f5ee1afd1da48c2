"""What a path given to a command is, when it is not what the command reads.

A user who passes a run directory to ``export``, or a checkpoint to ``simulate``, gets
one line naming what the path is and the command that takes it, instead of "not
found". Each kind is recognised by the files its own module names (a bundle's
manifest, a run's files, a dataset's layout), without reading them.
"""

from __future__ import annotations

from pathlib import Path

from gac_deploy.errors import UserError


def kind_of(path: Path) -> str | None:
    """'bundle', 'run', 'dataset' (CIFAR batches or an ImageFolder tree), 'nir',
    'checkpoint' or None (unknown or missing)."""
    from gac_deploy.export.manifest import MANIFEST_FILE, NIR_BODY_FILE
    from gac_deploy.training.run_dir import MODEL_FILE, STATE_FILE

    if path.is_dir():
        if (path / MANIFEST_FILE).is_file():
            return "bundle"
        if (path / MODEL_FILE).is_file() or (path / STATE_FILE).is_file():
            return "run"
        cifar = (path / "test_batch").is_file() or (path / "data_batch_1").is_file()
        if cifar or (path / "train").is_dir() and (path / "val").is_dir():
            return "dataset"
        return None
    if path.is_file():
        if path.suffix == ".nir" or path.name == NIR_BODY_FILE:
            return "nir"
        if path.suffix in (".pt", ".pth"):
            return "checkpoint"
    return None


def _what_instead(path: str, kind: str, wanted: str) -> str:
    """One line: what ``path`` is (``kind``), and the command that takes it."""
    from gac_deploy.training.run_dir import MODEL_FILE

    model = Path(path) / MODEL_FILE
    if kind == "run":
        if wanted == "a bundle":
            return (
                f"{path} is a training run directory, not a bundle; export its model first: "
                f"'gac-deploy export {model} --out DIR'"
            )
        return f"{path} is a training run directory; did you mean {model}?"
    return {
        "bundle": f"{path} is an exported bundle, not {wanted}; run it with "
        f"'gac-deploy simulate {path}' or 'gac-deploy energy {path}'",
        "checkpoint": f"{path} is a checkpoint, not {wanted}; export it first: "
        f"'gac-deploy export {path} --out DIR'",
        "nir": f"{path} is a NIR graph, not {wanted}; make a Loihi 2 bundle of it with "
        f"'gac-deploy import-nir {path} --out DIR'",
        "dataset": f"{path} is a dataset folder, not {wanted}; a model's data is given "
        "with --data-dir",
    }[kind]


def expect(path: str, *accepted: str) -> None:
    """Refuse ``path`` with a pointed one-line message when it is a known kind (see
    :func:`kind_of`) other than the ``accepted`` ones; anything else (a missing path, an
    unknown file) is left to the reader of the accepted kind, which says what is wrong."""
    kind = kind_of(Path(path))
    if kind is not None and kind not in accepted:
        wanted = " or ".join(
            {"checkpoint": "a checkpoint", "bundle": "a bundle"}[a] for a in accepted
        )
        raise UserError(_what_instead(path, kind, wanted))

"""Atomic writes and safe reads: nothing half-written, nothing unpickled."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gac_deploy.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(path: Path, kind: str) -> Iterator[Path]:
    """Work directories of ``kind`` ("tmp" or "old") beside ``path`` whose process is gone."""
    for entry in path.parent.glob(f".{path.name}.{kind}-*"):
        pid = entry.name.removeprefix(f".{path.name}.{kind}-").split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            yield entry


def _clean_leftovers(path: Path) -> None:
    """Tidy what killed runs left beside ``path``: a directory swapped out by the two-rename
    fallback comes back if ``path`` is missing; unfinished work directories go."""
    for old in _leftovers(path, "old"):
        if not path.exists() and (old / "previous").exists():
            os.replace(old / "previous", path)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in _leftovers(path, "tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def _install_directory(tmp: Path, path: Path) -> None:
    """Put the finished directory ``tmp`` at ``path``: at every moment ``path`` is the old
    directory or the new one (an atomic exchange where the file system has it)."""
    if not path.exists() and not path.is_symlink():
        try:
            os.rename(tmp, path)
            return
        except OSError as exc:  # created meanwhile by another process
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if _exchange(tmp, path):  # tmp now holds the old directory
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # two renames; a kill between them leaves the old one in .NAME.old-PID-*, restored
    # by the next run's _clean_leftovers
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{os.getpid()}-", dir=path.parent))
    os.replace(path, old / "previous")
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(
    path: str | Path, check: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place on success.

    ``check(path)`` runs before the work starts and again just before the swap; it
    raises (a :class:`UserError`) when what is at ``path`` must not be replaced. An
    existing directory at ``path`` is replaced only once the new one is complete, in
    one step, so a process killed at any moment leaves the old or the new directory.
    What killed runs left beside ``path`` is tidied first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(path)
    if check is not None:
        check(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if check is not None:
            check(path)
        _install_directory(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def some_names(names: list[str], most: int = 3) -> str:
    """The first ``most`` of ``names`` for a message: "a, b, c, ..."."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def write_torch(path: str | Path, data: Any) -> None:
    """``torch.save(data)`` to ``path``, atomically. The file is serialised in memory and
    written with one plain write, so a full disk is an ordinary ``OSError`` (torch's own
    writer reports it as a RuntimeError from deep inside)."""
    import torch

    buffer = io.BytesIO()
    torch.save(data, buffer)
    write_bytes(path, buffer.getvalue(), ".pt")


def write_bytes(path: str | Path, data: bytes, suffix: str = "") -> None:
    """``data`` to ``path`` in one plain write, atomically: a full disk is an ``OSError``
    and leaves nothing behind."""
    with atomic_path(path, suffix) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}; check the path")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid JSON ({exc.msg}); re-create it") from None


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

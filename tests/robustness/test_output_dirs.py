"""Outputs never replace what is not ours, and a swap leaves the old or the new bundle.

The data-loss cases: ``export --out`` onto a run directory or a file; settings
written (and a run's files replaced) before they were checked; a process killed while
a bundle is swapped into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gac_deploy.errors import UserError
from gac_deploy.export.manifest import check_replaceable
from gac_deploy.export.targets import export_bundle
from gac_deploy.fileio import atomic_directory
from tests.cli.test_cli import assert_user_error, cli


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes)."""
    return {
        str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()
    }


def test_export_refuses_a_run_directory(trained_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    before = snapshot(run)
    assert {"model.pt", "last.pt", "metrics.jsonl", "config.yaml"} <= set(before)
    result = cli("export", str(run / "model.pt"), "--out", str(run))
    assert_user_error(result, str(run), "not a gac-deploy bundle", "config.yaml")
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no work directory left


def test_export_refuses_an_existing_file(trained_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = cli("export", str(trained_dir / "model.pt"), "--out", str(notes))
    assert_user_error(result, "notes.txt", "not a directory")
    assert notes.read_text() == "my notes\n"


def test_export_refuses_a_bundle_with_foreign_files(bundle_dir, trained_dir, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    (out / "README.txt").write_text("mine\n")
    before = snapshot(out)
    assert_user_error(
        cli("export", str(trained_dir / "model.pt"), "--out", str(out)), "README.txt"
    )
    assert snapshot(out) == before


def test_export_replaces_its_own_bundle_and_an_empty_directory(bundle_dir, trained_dir, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["float_test_accuracy"] = -1.0  # mark the old bundle
    (out / "manifest.json").write_text(json.dumps(manifest))
    export_bundle(trained_dir / "model.pt", out)
    assert snapshot(out) == snapshot(bundle_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    empty = tmp_path / "empty"
    empty.mkdir()
    check_replaceable(empty)  # an empty directory may be replaced, nothing is lost


# A process that swaps a small directory into place and is killed (SIGKILL, so no
# clean-up runs) at a chosen moment of the swap.
_KILLED_SWAP = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import gac_deploy.fileio as fileio

    out, moment = Path(sys.argv[1]), sys.argv[2]
    real_exchange, real_replace = fileio._exchange, os.replace

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def exchange(a, b):
        if moment == "before-exchange":
            die()
        done = real_exchange(a, b)
        if moment == "after-exchange":
            die()
        return done

    def replace(src, dst):
        real_replace(src, dst)
        if moment == "between-renames" and Path(dst).name == "previous":
            die()

    fileio._exchange = exchange if moment != "between-renames" else (lambda a, b: False)
    fileio.os.replace = replace
    with fileio.atomic_directory(out) as tmp:
        (tmp / "data.txt").write_text("new")
    """
)


@pytest.mark.parametrize("moment", ["before-exchange", "after-exchange", "between-renames"])
def test_killed_swap_leaves_old_or_new(tmp_path, moment):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.txt").write_text("old")
    script = tmp_path / "swap.py"
    script.write_text(_KILLED_SWAP)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    result = subprocess.run(
        [sys.executable, str(script), str(out), moment], env=env, capture_output=True
    )
    assert result.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers, "the killed process left its work directory"
    if moment == "between-renames":  # the two-rename fallback: out is briefly missing
        assert not out.exists()
    else:
        assert (out / "data.txt").read_text() == ("new" if moment == "after-exchange" else "old")
    # the next run tidies up (restoring the old directory first, if it was missing) ...
    with pytest.raises(RuntimeError):
        with atomic_directory(out):
            assert (out / "data.txt").exists()
            raise RuntimeError("this run fails too")
    # ... and a failed run leaves what was there
    assert (out / "data.txt").read_text() in ("old", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "swap.py"]


def test_swap_check_runs_before_and_after_the_work(tmp_path):
    out = tmp_path / "out"
    calls = []

    def check(path: Path) -> None:
        calls.append(path.exists())
        if path.exists():
            raise UserError(f"{path} appeared meanwhile")

    with pytest.raises(UserError, match="appeared meanwhile"):
        with atomic_directory(out, check) as tmp:
            (tmp / "x").write_text("x")
            out.mkdir()
            (out / "theirs").write_text("theirs")
    assert calls == [False, True]
    assert (out / "theirs").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_train_refuses_what_is_not_its_run(trained_dir, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    assert_user_error(cli("train", "--out", str(other)), "not a training run directory")
    assert sorted(p.name for p in other.iterdir()) == ["cat.jpg"]
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert_user_error(cli("train", "--out", str(notes)), "not a directory")
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    before = snapshot(run)
    assert_user_error(cli("train", "--out", str(run)), "--resume", "--overwrite")
    assert_user_error(cli("train", "--out", str(run), "--resume", "--overwrite"), "pick one")
    assert snapshot(run) == before


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_settings_are_refused_before_anything_is_written(trained_dir, tmp_path, value):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    before = snapshot(run)
    assert_user_error(cli("train", "--out", str(run), "--overwrite", "--lr", value), "lr")
    assert_user_error(cli("train", "--out", str(run), "--resume", "--lr", value), "lr")
    assert snapshot(run) == before
    fresh = tmp_path / "fresh"
    assert_user_error(cli("train", "--out", str(fresh), "--cutmix", value), "cutmix")
    assert not fresh.exists()


def test_overwrite_replaces_the_run(trained_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    (run / "bundle").mkdir()  # not the run's: stays
    (run / "bundle" / "keep").write_text("k")
    old_model = (run / "model.pt").read_bytes()
    result = cli(
        "train", "--out", str(run), "--overwrite", "--epochs", "1", "--max-steps", "2", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert (run / "model.pt").read_bytes() != old_model
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["step"] == 2
    assert (run / "bundle" / "keep").read_text() == "k"


@contextlib.contextmanager
def disk_full_after(limit: int):
    """In this process, for a while: writes past ``limit`` bytes of a file fail with EFBIG,
    as on a full disk (the soft limit is lowered, then restored)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_disk_full_during_export_is_one_line_and_keeps_the_old_bundle(
    bundle_dir, trained_dir, tmp_path
):
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    before = snapshot(out)
    with disk_full_after(20_000):
        result = cli("export", str(trained_dir / "model.pt"), "--out", str(out))
    assert_user_error(result, "no room to write")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_body_net_is_written_in_one_plain_write(bundle_dir, tmp_path):
    """HDF5 builds the file in memory: a failing disk write is Python's OSError."""
    code = textwrap.dedent(
        f"""
        import errno, resource, signal
        from gac_deploy.export.netx_hdf5 import read_body, write_body
        graph = read_body({str(bundle_dir / "body.net")!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
        try:
            write_body({str(tmp_path / "body.net")!r}, graph)
        except OSError as exc:
            print(exc.errno == errno.EFBIG)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_training_is_one_line(tmp_path):
    out = tmp_path / "run"
    with disk_full_after(50_000):  # config.yaml fits, last.pt does not
        result = cli("train", "--out", str(out), "--epochs", "1", "--max-steps", "1", "--quiet")
    assert_user_error(result, "no room to write")
    assert not list(out.glob(".*"))  # no temporary file left
    assert not (out / "last.pt").exists()


_SLOW_SWAP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gac_deploy.fileio import atomic_directory

    with atomic_directory(Path(sys.argv[1])) as tmp:
        for i in range(3):
            (tmp / f"part{i}").write_text(sys.argv[2])
            time.sleep(0.3)
    """
)


def test_two_writers_to_one_out_at_once(tmp_path):
    """Two processes swap a directory into one --out at once (as two exports would):
    both succeed and --out is one writer's whole directory, never a mixture."""
    out = tmp_path / "out"
    script = tmp_path / "swap.py"
    script.write_text(_SLOW_SWAP)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    writers = [
        subprocess.Popen([sys.executable, str(script), str(out), name], env=env,
                         stderr=subprocess.PIPE, text=True)
        for name in ("first", "second")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    contents = {f.read_text() for f in out.iterdir()}
    assert len(list(out.iterdir())) == 3 and len(contents) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "swap.py"]


def test_leftovers_of_a_killed_write_mark_a_run_and_are_cleared(tmp_path):
    from gac_deploy.training.run_dir import check_run_dir, clear_leftovers

    run = tmp_path / "run"
    run.mkdir()
    (run / ".last.pt.k3j4.pt").write_bytes(b"half")  # what a kill during save leaves
    with pytest.raises(UserError, match="already holds a training run"):
        check_run_dir(run)
    check_run_dir(run, overwrite=True)
    (run / "notes.txt").write_text("mine")
    clear_leftovers(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]

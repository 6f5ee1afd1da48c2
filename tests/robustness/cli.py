"""The command line run in this process (no interpreter start-up per call)."""

from __future__ import annotations

import contextlib
import io
import subprocess

from gac_deploy.cli import main


def cli(*args: str) -> subprocess.CompletedProcess:
    """``gac-deploy ARGS`` through :func:`gac_deploy.cli.main`: its exit code and what it
    printed. An exception that main does not turn into a one-line error propagates, so a
    would-be traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

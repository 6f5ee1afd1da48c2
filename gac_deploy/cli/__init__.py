"""The ``gac-deploy`` command: a thin layer over the package's functions.

One module per command, each with ``add_parser(subparsers)`` and ``run(args) -> dict``;
:data:`COMMANDS` lists them in the order ``--help`` shows. Every user error prints one
line (``gac-deploy: error: ...``) and exits with 2. Commands import what they need when
they run, so ``gac-deploy --help`` stays fast and loads no Lava module.
"""

from __future__ import annotations

import argparse
import errno
import sys
from types import ModuleType

from gac_deploy import __version__
from gac_deploy.cli import (
    analyze,
    demo,
    energy,
    evaluate,
    export,
    import_nir,
    import_official,
    models,
    simulate,
    train,
)
from gac_deploy.errors import UserError

EXIT_USER_ERROR = 2
NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # disk full, file size limit, quota

COMMANDS: dict[str, ModuleType] = {
    "train": train,
    "export": export,
    "simulate": simulate,
    "energy": energy,
    "demo": demo,
    "import-official": import_official,
    "import-nir": import_nir,
    "models": models,
    "analyze": analyze,
    "evaluate": evaluate,
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gac-deploy",
        description="Gated Attention Coding SNNs: train, export to Loihi 2, "
        "simulate in Lava, report energy.",
    )
    parser.add_argument("--version", action="version", version=f"gac-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        COMMANDS[args.command].run(args)
    except UserError as exc:
        print(f"gac-deploy: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        print(
            f"gac-deploy: error: cannot use {exc.filename}: {exc.strerror}; choose another path",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"gac-deploy: error: no room to write{where} ({exc.strerror}); free disk space "
            "or choose another output path (nothing was left half-written)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gac-deploy: interrupted", file=sys.stderr)
        return 130
    finally:
        world = sys.modules.get("gac_deploy.world")  # loaded only by commands that use it
        if world is not None:
            world.leave()
    return 0

"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input. The message names the problem and the fix.

    ``setting``: the name of the setting at fault, when there is one (a configuration
    field such as ``lr``), so that a caller that knows where the setting came from (the
    CLI: a flag) can say so.
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


def bad_setting(setting: str, rule: str, value: object) -> UserError:
    """The error for a setting whose value breaks its rule, e.g. ``lr must be positive,
    got -1.0``."""
    return UserError(f"{setting} must be {rule}, got {value!r}", setting=setting)

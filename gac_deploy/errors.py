"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """A problem with the user's input. The message names the problem and the fix."""

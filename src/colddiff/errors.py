"""Errors that the command line turns into one clear line (never a traceback)."""


class ColddiffError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do."""


class ConfigError(ColddiffError, ValueError):
    """Impossible or unknown settings (unknown degradation, t out of range, ...)."""


class InputError(ColddiffError, ValueError):
    """Unreadable, missing or wrongly shaped input data."""


class OutputError(ColddiffError):
    """A result that cannot be written: the path is a folder or a file, read-only, or the disk is full."""


class StoppedError(ColddiffError):
    """Work stopped on request (Ctrl-C, SIGTERM) after saving what it had: run the command again to continue."""

    exit_status = 3

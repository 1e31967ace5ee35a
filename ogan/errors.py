"""Errors that ogan raises for bad input; the bench CLI maps them to one line and exit code 2."""


class OganError(Exception):
    """Base of the errors caused by what the user asked for (not by a bug)."""


class ConfigError(OganError, ValueError):
    """An unknown name or key, or an invalid value; the message lists what is valid."""


class MissingDataError(OganError, FileNotFoundError):
    """A dataset or weights file that must be on local disk is not there; the message says where."""

"""Errors of the harness that the CLI reports as one line with exit code 2."""

from ogan.errors import OganError


class BenchError(OganError):
    """Bad input to a bench command (config, paths, result directories)."""

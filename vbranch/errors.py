"""The one error type vbranch raises on purpose: a message, a hint, an exit code.

cli.py catches these in one place and renders them; anything else is a bug and
shows a traceback only with --verbose.
"""
from __future__ import annotations


class VbranchError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(VbranchError):
    exit_code = 2


class NotInitialized(VbranchError):
    exit_code = 3


class StateError(VbranchError):
    exit_code = 4


class Blocked(VbranchError):
    """Contested or unattributed changes stop an operation on the branches involved."""

    exit_code = 5


class GitError(VbranchError):
    exit_code = 6


class LockTimeout(VbranchError):
    exit_code = 7


class PathError(VbranchError):
    """A path outside the repository, inside .git, or otherwise not ours to record."""

    exit_code = 8

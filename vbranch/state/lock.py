"""The inter-process lock that serializes every multi-step change of the state.

An flock on a file under the git directory (flock.py): the kernel drops it when its
holder dies, so a crashed process never leaves it held.
"""
from __future__ import annotations

from pathlib import Path

from vbranch.errors import LockTimeout
from vbranch.state import flock


class StateLock:
    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = path
        self.timeout = timeout
        self.fd: int | None = None
        self.depth = 0

    def __enter__(self) -> "StateLock":
        if self.depth == 0:
            self.fd = flock.take_within(self.path, self.timeout)
            if self.fd is None:
                raise LockTimeout(
                    f"another vbranch process has held {self.path} for over {self.timeout:.0f} s",
                    hint="wait for it to finish, or find it with `fuser` on that file",
                )
        self.depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd is not None:
            flock.release(self.fd)
            self.fd = None

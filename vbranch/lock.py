"""The inter-process lock that serializes every multi-step change of the state.

An flock on a file under the git directory: the kernel drops it when its
holder dies, so a crashed process never leaves it held.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import LockTimeout


class StateLock:
    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = path
        self.timeout = timeout
        self.fd: int | None = None
        self.depth = 0

    def __enter__(self) -> "StateLock":
        if self.depth == 0:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + self.timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(self.fd)
                        self.fd = None
                        raise LockTimeout(
                            f"another vbranch process has held {self.path} for over {self.timeout:.0f} s",
                            hint="wait for it to finish, or find it with `fuser` on that file",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        self.depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

"""The inter-process lock that serializes every multi-step change of the state.

An flock on a file under the git directory (flock.py): the kernel drops it when its
holder dies, so a crashed process never leaves it held.

Within one process the holders are threads: the watcher serves every session's hooks and
commands as threads, each with its own workspace and so its own StateLock. They first take a
lock of the process (threading.Lock, one per lock file), which hands over at once when released,
and only then the flock, which other processes may hold. Without it, each thread would poll the
flock (sleeping up to 50 ms between tries): a hand-over between two hooks waited for the next poll.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from vbranch.errors import LockTimeout
from vbranch.state import flock

_in_process: dict[str, threading.Lock] = {}
_in_process_guard = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    with _in_process_guard:
        return _in_process.setdefault(str(path), threading.Lock())


class StateLock:
    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = path
        self.timeout = timeout
        self.fd: int | None = None
        self.depth = 0

    def __enter__(self) -> "StateLock":
        if self.depth == 0:
            deadline = time.monotonic() + self.timeout
            local = _process_lock(self.path)
            if not local.acquire(timeout=max(self.timeout, 0)):
                raise self._timeout()
            self.fd = flock.take_within(self.path, max(deadline - time.monotonic(), 0))
            if self.fd is None:
                local.release()
                raise self._timeout()
        self.depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd is not None:
            flock.release(self.fd)
            self.fd = None
            _process_lock(self.path).release()

    def _timeout(self) -> LockTimeout:
        return LockTimeout(
            f"another vbranch process has held {self.path} for over {self.timeout:.0f} s",
            hint="wait for it to finish, or find it with `fuser` on that file",
        )

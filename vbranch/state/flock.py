"""flock on a file under the git directory: the one way vbranch holds an inter-process lock.

The kernel drops an flock when its holder dies, so a crashed process never leaves one held.
Used by the state lock (lock.py), the watcher's single-instance lock and, to find out whether a
watcher holds that one, by dirtyset.py.
"""
from __future__ import annotations

import fcntl
import os
import time


def take(path) -> int | None:
    """An open descriptor of `path` (created if need be) holding its exclusive flock, or None if another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if _try(fd, shared=False):
        return fd
    os.close(fd)
    return None


def take_within(path, timeout: float) -> int | None:
    """`take`, retried with a growing pause for up to `timeout` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not _try(fd, shared=False):
        if time.monotonic() > deadline:
            os.close(fd)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return fd


def release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def held(path) -> bool:
    """Whether some process holds an exclusive flock on `path` (we take and drop a shared one to find out)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if not _try(fd, shared=True):
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _try(fd: int, shared: bool) -> bool:
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True

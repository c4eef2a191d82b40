"""The watcher's live dirty set, as everyone else reads it: is a watcher live, since when is
its set complete, and which paths may differ from the workspace commit.

Kept apart from watch.py so that the hook path reads it without loading watchdog.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from . import gitcli

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from .store import Store

LOCK_NAME = "watch.lock"
META_PID = "watch_pid"
META_STARTED = "watch_started"
META_HEARTBEAT = "watch_heartbeat"
META_TRUSTED = "watch_trusted_since"  # "" while untrusted (starting, or after an overflow until the rescan is done)
META_SEEDED = "watch_seeded_for"  # the watcher start whose pre-existing changes were added to the set
HEARTBEAT_FRESH = 2.0


def _lock_path(ws) -> Path:
    return Path(ws.state_dir) / LOCK_NAME


def _lock_held(path: Path) -> bool:
    """Whether some process holds the watch lock (we take and drop a shared lock to find out)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _float_meta(store: Store, key: str) -> float | None:
    value = store.get_meta(key)
    try:
        return float(value) if value else None
    except ValueError:
        return None


def watcher_pid(ws) -> int | None:
    """The pid of the live watcher of this repository, or None."""
    if not _lock_held(_lock_path(ws)):
        return None
    pid = _float_meta(ws.store, META_PID)
    return int(pid) if pid else None


def watcher_live(ws, clock: Callable[[], float] = time.time) -> bool:
    """True only if a process holds the watch lock and its heartbeat is under 2 s old."""
    if not _lock_held(_lock_path(ws)):
        return False
    beat = _float_meta(ws.store, META_HEARTBEAT)
    if beat is None or clock() - beat >= HEARTBEAT_FRESH:
        return False
    pid = _float_meta(ws.store, META_PID)
    if pid:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, someone else's
    return True


def trusted_since(ws, clock: Callable[[], float] = time.time) -> float | None:
    """The time from which the dirty set holds every change, or None (no live watcher, or recovering)."""
    if not watcher_live(ws, clock):
        return None
    return _float_meta(ws.store, META_TRUSTED)


def candidate_paths(ws) -> set[str]:
    """Every path that may differ from the workspace commit: O(changes) with a live watcher.

    Without one (or while it recovers from an overflow), git status answers, at O(repository).
    With one, the set is the recorded paths plus what the watcher saw change; changes older
    than the watcher are added once per watcher start, by one git status.
    """
    since = trusted_since(ws)
    if since is None:
        return gitcli.dirty_paths(ws.top) | set(ws.store.paths())
    started = ws.store.get_meta(META_STARTED)
    if ws.store.get_meta(META_SEEDED) != started:
        before = gitcli.dirty_paths(ws.top)
        with ws.lock, ws.store.tx():
            ws.store.mark_dirty(sorted(before), since)
            ws.store.set_meta(META_SEEDED, started or "")
    return set(ws.store.dirty_since(since)) | set(ws.store.paths())

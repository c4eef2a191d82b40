"""The watcher's live dirty set, as everyone else reads it: is a watcher live, since when is
its set complete, and which paths may differ from the workspace commit.

Kept apart from the watcher (process.py, monitor.py) so that the hook path reads it without
loading watchdog. The meta keys the watcher writes are defined here, with their readers.
"""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from vbranch.git import gitcli
from vbranch.state import flock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from vbranch.state.store import Store

LOCK_NAME = "watch.lock"
LOG_NAME = "watch.log"
META_PID = "watch_pid"
META_STARTED = "watch_started"
META_HEARTBEAT = "watch_heartbeat"
META_TRUSTED = "watch_trusted_since"  # "" while untrusted (starting, or after an overflow until the rescan is done)
META_SEEDED = "watch_seeded_for"  # the watcher start whose pre-existing changes were added to the set
META_OVERFLOWS = "watch_overflows"  # how many queue overflows this watcher recovered from
META_POLLED = "watch_polled_dirs"  # directories polled because the watch limit was reached
HEARTBEAT_FRESH = 2.0
_tokens = itertools.count()
SYNC_DIR = "sync"  # under the state dir: barrier tokens the watcher acknowledges
INEXACT = ".inexact"  # the watcher's answer when it cannot vouch (directories it only polls)
SYNC_WAIT = 1.0


def watch_lock_held(ws) -> bool:
    """Whether some process (a watcher, live or hung) holds this repository's watch lock."""
    return flock.held(Path(ws.state_dir) / LOCK_NAME)


def live_sessions(store: Store) -> int:
    """How many sessions have not ended (the watcher stays while there are any)."""
    return store.db.execute("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL").fetchone()[0]


def _float_meta(store: Store, key: str) -> float | None:
    value = store.get_meta(key)
    try:
        return float(value) if value else None
    except ValueError:
        return None


def watcher_pid(ws) -> int | None:
    """The pid of the live watcher of this repository, or None."""
    if not watch_lock_held(ws):
        return None
    pid = _float_meta(ws.store, META_PID)
    return int(pid) if pid else None


def watcher_live(ws, clock: Callable[[], float] = time.time) -> bool:
    """True only if a process holds the watch lock and its heartbeat is under 2 s old."""
    if not watch_lock_held(ws):
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
    """Every path that may differ from the workspace commit, complete up to this call.

    With a live watcher this is O(changes): the recorded paths plus what the watcher saw
    change (changes older than the watcher are added once per watcher start, by one git
    status), after a barrier that makes sure it has heard of every write made before now.
    Without one (or while it recovers from an overflow, or when the barrier fails), git
    status answers, at O(repository).
    """
    vouched = vouched_paths(ws)
    return unvouched_paths(ws) if vouched is None else vouched


def unvouched_paths(ws) -> set[str]:
    """candidate_paths as git status and the records say it, at O(repository)."""
    return gitcli.dirty_paths(ws.top) | set(ws.store.paths())


def vouched_paths(ws) -> set[str] | None:
    """candidate_paths as the watcher vouches for it, after its barrier; None when it cannot."""
    since = trusted_since(ws)
    if since is None or not settle(ws):
        return None
    started = ws.store.get_meta(META_STARTED)
    if ws.store.get_meta(META_SEEDED) != started:
        before = gitcli.dirty_paths(ws.top)
        with ws.lock, ws.store.tx():
            ws.store.mark_dirty(sorted(before), since)
            ws.store.set_meta(META_SEEDED, started or "")
    return set(ws.store.dirty_since(since)) | set(ws.store.paths())


def settle(ws, wait: float = SYNC_WAIT) -> bool:
    """Wait until the watcher's dirty set holds every change made before this call.

    inotify queues the events of one instance in the order they happen, and the
    watcher watches the sync directory with the same instance as the working tree.
    So when it hears of the token created here, every earlier write is already in
    its hands: it writes those to the store, then removes the token. False when it
    cannot vouch for that (it polls some directories, or does not answer in time).
    """
    token = Path(ws.state_dir) / SYNC_DIR / f"{os.getpid()}-{next(_tokens)}"  # unique across the server's threads too
    try:
        os.close(os.open(token, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileNotFoundError:
        return False  # no watcher has run here
    except FileExistsError:
        return False  # left by a dead process of the same pid: ask git this once
    deadline = time.monotonic() + wait
    pause = 0.0002
    while os.path.lexists(token):
        if time.monotonic() > deadline:
            _remove(token)
            return False
        time.sleep(pause)
        pause = min(2 * pause, 0.004)
    inexact = token.with_name(token.name + INEXACT)
    if os.path.lexists(inexact):
        _remove(inexact)
        return False
    return True


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def watcher_status(ws, clock: Callable[[], float] = time.time) -> dict:
    """What `vbranch watch --status` and `vbranch doctor` show, as plain data.

    state: "trusted" (live, its dirty set complete since `trusted_since`), "recovering"
    (live, but starting or rescanning after an inotify overflow: readers ask git),
    "not responding" (it holds the lock but its heartbeat is stale: hung), or "stopped".
    """
    from vbranch.hookclient import SOCKET_NAME

    held = watch_lock_held(ws)
    live = watcher_live(ws, clock)
    pid = _float_meta(ws.store, META_PID) if held else None
    started = _float_meta(ws.store, META_STARTED) if held else None
    beat = _float_meta(ws.store, META_HEARTBEAT) if held else None
    since = _float_meta(ws.store, META_TRUSTED) if live else None
    if live:
        state = "trusted" if since is not None else "recovering"
    else:
        state = "not responding" if held else "stopped"
    socket = Path(ws.state_dir) / SOCKET_NAME
    counts = {}
    for key in (META_OVERFLOWS, META_POLLED):
        value = _float_meta(ws.store, key) if held else None
        counts[key] = int(value) if value else 0
    return {
        "state": state,
        "live": live,
        "pid": int(pid) if pid else None,
        "started": started,
        "heartbeat_age": None if beat is None else max(0.0, clock() - beat),
        "trusted_since": since,
        "socket": str(socket),
        "socket_present": held and os.path.exists(socket),
        # paths that may differ: seen changing since it started (or became trusted), not yet folded unchanged
        "dirty": len(ws.store.dirty_since(since if since is not None else (started or 0.0))) if held else 0,
        "overflows": counts[META_OVERFLOWS],
        "polled_dirs": counts[META_POLLED],
        "log": str(Path(ws.state_dir) / LOG_NAME),
    }

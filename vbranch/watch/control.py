"""Starting and stopping the watcher from outside it (hooks, `vbranch watch --background/--stop`).

Light on purpose: a hook starts a watcher through this module, so it loads neither
watchdog nor the watcher's own modules. The watcher itself is `python -m vbranch watch`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vbranch.errors import StateError
from vbranch.watch.dirtyset import LOG_NAME, watch_lock_held, watcher_live, watcher_pid

DEFAULT_IDLE_EXIT = 300.0
LOG_LIMIT = 1 << 20


class WatcherRunning(StateError):
    """Another watcher already holds this repository's watch lock."""


def stop_watcher(ws, timeout: float = 5.0) -> bool:
    """Ask the live watcher to exit (SIGTERM) and wait for it; True if none is left."""
    pid = watcher_pid(ws)
    if pid is None:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not watch_lock_held(ws):
            return True
        time.sleep(0.02)
    return False


def start_background(
    top: Path | str, *, idle_exit: float = DEFAULT_IDLE_EXIT, wait: float = 0.0
) -> int | None:
    """Start a detached watcher for the repository at `top` unless one is live; its pid, or None.

    It runs `python -m vbranch watch --idle-exit SECONDS` in a new session with
    its output in `.git/vbranch/watch.log`. With `wait`, returns once it is
    live (or has exited, or `wait` seconds passed).
    """
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(top)
    try:
        if watcher_live(ws):
            return None
        log_path = ws.state_dir / LOG_NAME
        try:
            if log_path.stat().st_size > LOG_LIMIT:
                os.replace(log_path, log_path.with_name(LOG_NAME + ".1"))
        except FileNotFoundError:
            pass
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vbranch", "watch", "--idle-exit", repr(float(idle_exit))],
                cwd=str(ws.top),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and proc.poll() is None and not watcher_live(ws):
            time.sleep(0.02)
        return proc.pid
    finally:
        ws.close()

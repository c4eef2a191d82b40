"""Per-file write leases: one session's tool call writes a file at a time.

Claude Code's Edit reads the file, changes it and writes it back. Two
sessions doing that to one file at the same moment can lose an edit even on
disjoint lines, so a session holds a lease on the file from its PreToolUse
to that call's PostToolUse (or PostToolUseFailure). Another session's write
waits, boundedly. A lease whose holder never reports back expires.
"""
from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs the hook path
    from typing import Callable

from .workspace import Workspace


def acquire(
    ws: Workspace,
    path: str,
    session: str,
    tool_use_id: str,
    wait: float,
    ttl: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Take the lease on `path`; None when taken, else the session still holding it after `wait`."""
    deadline = clock() + wait
    delay = 0.01
    while True:
        with ws.lock, ws.store.tx():
            now = clock()
            held = ws.store.lease(path)
            if held is None or held[0] == session or held[2] < now:
                ws.store.put_lease(path, session, tool_use_id, now + ttl)
                return None
        if clock() >= deadline:
            return held[0]
        sleep(min(delay, max(0.0, deadline - clock())))
        delay = min(delay * 2, 0.1)


def release(ws: Workspace, session: str, tool_use_id: str | None = None) -> None:
    """Release a tool call's leases, or every lease of the session (None)."""
    with ws.lock, ws.store.tx():
        ws.store.release_leases(session, tool_use_id)


def holder(ws: Workspace, path: str, clock: Callable[[], float] = time.time) -> str | None:
    """The session holding a live lease on `path`, if any."""
    held = ws.store.lease(path)
    return held[0] if held and held[2] >= clock() else None

"""Per-file write leases: one session's tool call writes a file at a time.

Claude Code's Edit reads the file, changes it and writes it back. Two
tool calls doing that to one file at the same moment can lose an edit even on
disjoint lines, so a call holds a lease on the file from its PreToolUse to its
PostToolUse (or PostToolUseFailure). Any other call's write, the same
session's subagents' too, waits in line, boundedly. A lease whose holder never
reports back expires.
"""
from __future__ import annotations

import os
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs the hook path
    from typing import Callable

from vbranch.state.workspace import Workspace


# Notified when this process releases a lease. The watcher serves every session's hooks as threads
# of one process: a waiter there looks again at once instead of at its next poll (up to 50 ms
# later, per file handed on: 16 sessions writing one file queue behind each other). Waiters in
# other processes (a hook run without the watcher) still poll.
_released = threading.Condition()


def _until_released(delay: float) -> None:
    with _released:
        _released.wait(delay)


def acquire(
    ws: Workspace,
    path: str,
    session: str,
    tool_use_id: str,
    wait: float,
    ttl: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = _until_released,
    pid: int | None = None,
) -> str | None:
    """Take the lease on `path` for one tool call; None when taken, else who still holds it after `wait`.

    Leases are per tool call, not per session: two subagents of one session take
    turns like two sessions do. Waiters queue first come, first served; a waiter
    that stopped polling (its hook died) loses its place. `pid` is the agent's
    process: a lease whose agent is gone is free at once, without waiting for its ttl.
    """
    deadline = clock() + wait
    delay = POLL_FIRST
    ticket = None
    try:
        while True:
            with ws.lock, ws.store.tx():
                now = clock()
                if ticket is None:
                    ticket = ws.store.enqueue(path, session, tool_use_id, now)
                else:
                    ws.store.touch_ticket(ticket, now)
                held = ws.store.lease(path)
                free = held is None or held[1] == tool_use_id or held[2] < now or not _alive(ws.store.lease_pid(path))
                first = ws.store.first_waiter(path, now - QUEUE_STALE)
                taken = free and (first is None or first[0] == ticket)
                if taken:
                    ws.store.put_lease(path, session, tool_use_id, now + ttl, pid)
                    ws.store.drop_ticket(ticket)
                    ticket = None
            if taken:
                _grow_hint(ws)
                return None
            if clock() >= deadline:
                return _describe(held, session) if not free else f"session {first[1]}, waiting before this call"
            sleep(min(delay, max(0.0, deadline - clock())))
            delay = min(delay * 2, POLL_MAX)
    finally:
        if ticket is not None:
            with ws.lock, ws.store.tx():
                ws.store.drop_ticket(ticket)


# Grown by a byte each time a lease is taken, after its commit: the command tracer (tracer.Leases)
# reads the leased paths again only when this file has grown, instead of a query per traced write.
HINT_FILE = "leases.hint"


def _grow_hint(ws: Workspace) -> None:
    fd = os.open(ws.state_dir / HINT_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


# A waiter polls at least this often; one silent for longer is gone.
QUEUE_STALE = 5.0
# A waiter looks again after POLL_FIRST seconds, then twice as long each time, up to POLL_MAX.
POLL_FIRST = 0.005
POLL_MAX = 0.05


def _describe(held: tuple[str, str, float], session: str) -> str:
    who = "another tool call of this session" if held[0] == session else f"session {held[0]}"
    return who + " (its agent is running: it may be waiting for a permission prompt)"


def _alive(pid: int | None) -> bool:
    """The agent process is still there (unknown counts as alive: the ttl decides then)."""
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return True


def release(ws: Workspace, session: str, tool_use_id: str | None = None) -> None:
    """Release a tool call's leases, or every lease of the session (None)."""
    with ws.lock, ws.store.tx():
        ws.store.release_leases(session, tool_use_id)
    wake_waiters()


def wake_waiters() -> None:
    """After leases were released (committed): this process's waiters look again now."""
    with _released:
        _released.notify_all()


def live(ws: Workspace, path: str, clock: Callable[[], float] = time.time) -> tuple[str, str, float] | None:
    """The lease on `path` if it has not expired: (session, tool_use_id, expires)."""
    held = ws.store.lease(path)
    return held if held and held[2] >= clock() else None


def holder(ws: Workspace, path: str, clock: Callable[[], float] = time.time) -> str | None:
    """The session holding a live lease on `path`, if any."""
    held = live(ws, path, clock)
    return held[0] if held else None

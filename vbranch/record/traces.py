"""What the command tracer (tracer.py) saw: which session's processes wrote which paths.

Each traced command leaves a log in `.git/vbranch/traces/`. A log is *live*
while its supervisor runs (the command, or something it left running, may
still write), *ended* once the supervisor wrote its end line or died, and
*done* (renamed `.done`) once a snapshot has folded everything it names. A done
log stays while an open command window may claim it (its PostToolUse finds
that its command was traced), then moves to `kept/` for a while, then goes.
"""
from __future__ import annotations

import os
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

from vbranch import tracer
from vbranch.core.ownership import ABSENT, FileState
from vbranch.tracer import TRACE_DIR, unquote

# How long a done log is kept after its command ended, in the folder for a window still open or in
# KEPT_DIR: longer than Claude Code's 10-minute limit on a Bash command.
DONE_KEPT = 11 * 60
KEPT_DIR = "kept"
# A trace that started this long before a window opened still counts as that window's command.
SLACK = 1.0

# `ended` is when the supervisor ended (time.time_ns()), or None while it runs: every write of
# the trace happened before that.
Trace = namedtuple("Trace", "file session started traced reason paths ended done events refused")
# A traced process is about to write `path`; `version` is what the path held just before
# (see tracer.TraceLog), `ns` when (time.time_ns()).
Event = namedtuple("Event", "ns path version session trace")


def read_all(state_dir: Path, done: bool = False) -> list[Trace]:
    """Every log (with `done`, also those already folded), oldest first."""
    folder = Path(state_dir) / TRACE_DIR
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    out = []
    known, parsed = _DONE.get(str(folder), {}), {}
    for name in names:
        if name.endswith(".log"):
            trace = _read(folder / name)
        elif done and name.endswith(".done"):
            trace = known.get(name) or _read(folder / name)  # no Path made for a known one: pathlib is slow
            if trace is not None:
                parsed[name] = trace
        else:
            continue
        if trace is not None:
            out.append(trace)
    if done:
        _DONE[str(folder)] = parsed  # replaced whole, never changed in place: threads share it safely
    return sorted(out, key=lambda t: t.started)


# Done logs never change (renamed once ended and folded; nothing writes them after): each is parsed
# once per process, not at every hook while it stays (a soak once kept ~2,000 at a time: re-reading
# each at every hook was a third of the hook server's time). Per trace folder, file name -> trace.
# The hook server runs hooks in threads at once, so a folder's dict is built anew by each reader and
# published by one assignment, never changed once published; a log gone from the folder is dropped
# with it.
_DONE: dict[str, dict[str, Trace]] = {}


def _read(path: Path) -> Trace | None:
    try:
        data = path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None
    lines = data.split("\n")[:-1]  # a line still being written has no newline yet
    if not lines or not lines[0].startswith("H\t"):
        return None
    head = [unquote(f) for f in lines[0].split("\t")]
    try:
        _, session, _command, pid, process_start, started, traced, reason = head[:8]
        started_at = float(started)
    except ValueError:
        return None
    events, refused = [], []
    for line in lines[1:]:
        if line.startswith("W\t"):
            _, ns, version, rel = line.split("\t", 3)
            events.append(Event(int(ns), unquote(rel), version, session, path))
        elif line.startswith("D\t"):
            refused.append(unquote(line[2:]))
    done = path.name.endswith(".done")
    ended = None
    if lines[-1].startswith("E\t"):
        ended = int(lines[-1][2:])
    elif done or not _alive(int(pid), process_start):  # killed before its end line: its last write is the log's
        ended = path.stat().st_mtime_ns
    paths = frozenset(e.path for e in events)
    return Trace(path, session, started_at, traced == "1", reason or None, paths, ended, done, tuple(events), tuple(refused))


def version(event: Event) -> FileState | None:
    """What the path held just before the event's write; None when the tracer did not keep it."""
    if event.version == "a":
        return ABSENT
    place, _, mode = event.version.partition(":")
    if not mode:
        return None
    offset, _, length = place.partition("+")
    try:
        with open(event.trace.with_suffix(".v"), "rb") as f:
            f.seek(int(offset))
            data = f.read(int(length))
    except (OSError, ValueError):
        return None
    return FileState(True, int(mode, 8), data) if len(data) == int(length) else None


def _alive(pid: int, process_start: str) -> bool:
    """The supervisor still runs (the same process, not a later one with its pid)."""
    try:
        return tracer.process_start(pid) == process_start
    except (OSError, IndexError):
        return False


def worktree_paths(trace: Trace) -> set[str]:
    """The files of the working tree the trace names (git's own directory is not one)."""
    return {p for p in trace.paths if p != ".git" and not p.startswith(".git/")}


def running_since(trace: Trace, since: int) -> bool:
    """The trace's processes ran after `since` (ns): a write of theirs may have come after it."""
    return trace.ended is None or trace.ended > since


def writers(traces: list[Trace], path: str, since: int = 0) -> set[str]:
    """Sessions whose traced processes may have changed `path` since `since` (ns): they opened
    it for writing and were still running after that."""
    return {t.session for t in traces if not t.done and path in t.paths and running_since(t, since)}


def of_window(traces: list[Trace], session: str, window_started: float) -> list[Trace]:
    """The session's traces of commands started since its window opened (done ones included)."""
    return [t for t in traces if _claims(session, window_started, t)]


def _claims(session: str, window_started: float, trace: Trace) -> bool:
    """A window of `session` opened at `window_started` counts `trace` as its command's."""
    return trace.session == session and trace.started >= window_started - SLACK


def mark_done(traces: list[Trace]) -> None:
    """Ended logs whose paths are folded: keep them as `.done` for a while, then drop them."""
    for trace in traces:
        if trace.ended is not None and not trace.done:
            try:
                os.replace(trace.file, trace.file.with_suffix(".done"))
            except FileNotFoundError:
                pass


def prune(state_dir: Path, open_windows: Callable[[], list], now: float | None = None) -> None:
    """Move the done logs no open command window can still ask for out of the trace folder.

    Every hook lists the trace folder, so it holds only what a hook may read: live logs,
    and done ones an open window may claim (`of_window`, for a window of its session opened
    before it started). A window opens (at PreToolUse) before its command starts, and the
    windows are asked for after the folder is listed: a log listed as done had its window,
    if any, open by then. A log that ended more than DONE_KEPT ago is moved whatever its
    window: that command outlived Claude Code's limit on one.

    Moved logs, with the versions their commands overwrote, are kept in `kept/` for
    DONE_KEPT after their last write (a stat each, at most every PRUNE_EVERY), then dropped.
    """
    now = now or time.time()
    folder = Path(state_dir) / TRACE_DIR
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".done")]
    except FileNotFoundError:
        return
    cutoff = int((now - DONE_KEPT) * 1e9)
    known = _DONE.get(str(folder), {})
    windows = [(w.session, w.started) for w in open_windows()] if names else []
    kept = folder / KEPT_DIR
    for name in names:
        trace = known.get(name) or _read(folder / name)
        if trace is None or (trace.ended >= cutoff and any(_claims(s, started, trace) for s, started in windows)):
            continue
        kept.mkdir(exist_ok=True)
        for path in (trace.file.with_suffix(".v"), trace.file):  # the log last: listed, it has its versions
            try:
                os.replace(path, kept / path.name)
            except FileNotFoundError:
                pass
    _expire(kept, now)


# When this process last expired each kept folder: that stats every log in it.
PRUNE_EVERY = 30.0
_EXPIRED_AT: dict[str, float] = {}


def _expire(kept: Path, now: float) -> None:
    """Drop kept logs (and their versions) last written more than DONE_KEPT ago."""
    if now - _EXPIRED_AT.get(str(kept), 0.0) < PRUNE_EVERY:
        return
    _EXPIRED_AT[str(kept)] = now
    try:
        names = os.listdir(kept)
    except FileNotFoundError:
        return
    for name in names:
        try:
            if os.stat(kept / name).st_mtime < now - DONE_KEPT:
                os.unlink(kept / name)
        except FileNotFoundError:
            pass

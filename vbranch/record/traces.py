"""What the command tracer (tracer.py) saw: which session's processes wrote which paths.

Each traced command leaves a log in `.git/vbranch/traces/`. A log is *live*
while its supervisor runs (the command, or something it left running, may
still write), *ended* once the supervisor wrote its end line or died, and
*done* (renamed `.done`) once a snapshot has folded everything it names. Done
logs are kept for a while so that a command's PostToolUse still finds that
it was traced, then pruned.
"""
from __future__ import annotations

import os
import time
from collections import namedtuple
from pathlib import Path

from vbranch import tracer
from vbranch.core.ownership import ABSENT, FileState
from vbranch.tracer import TRACE_DIR, unquote

# How long a done log is kept: longer than Claude Code's 10-minute limit on a Bash command.
DONE_KEPT = 11 * 60
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
# once per process, which for the watcher's hook server means once, not at every hook for the
# DONE_KEPT they are kept (a soak had ~2,000 at a time: stat-ing each at every read was a third
# of the server's time). Per trace folder, file name -> trace. The hook server runs hooks in threads at
# once, so a folder's dict is built anew by each reader and published by one assignment, never
# changed once published; a log gone from the folder is dropped with it.
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
    return [t for t in traces if t.session == session and t.started >= window_started - SLACK]


def mark_done(traces: list[Trace]) -> None:
    """Ended logs whose paths are folded: keep them as `.done` for a while, then drop them."""
    for trace in traces:
        if trace.ended is not None and not trace.done:
            try:
                os.replace(trace.file, trace.file.with_suffix(".done"))
            except FileNotFoundError:
                pass


# When this process last pruned each trace folder: a fold runs at nearly every hook, and a prune
# stats every done log, so a process prunes a folder at most once a PRUNE_EVERY.
PRUNE_EVERY = 30.0
_PRUNED_AT: dict[str, float] = {}


def prune(state_dir: Path, now: float | None = None) -> None:
    """Drop done logs (and their kept versions) last written more than DONE_KEPT ago: by the
    time of their last write (their end), not by parsing them, so that this costs a stat each."""
    now = now or time.time()
    folder = Path(state_dir) / TRACE_DIR
    if now - _PRUNED_AT.get(str(folder), 0.0) < PRUNE_EVERY:
        return
    _PRUNED_AT[str(folder)] = now
    cutoff = now - DONE_KEPT
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(".done"):
            continue
        path = folder / name
        try:
            if os.stat(path).st_mtime >= cutoff:
                continue
        except FileNotFoundError:
            continue
        for gone in (path.with_suffix(".v"), path):
            try:
                os.unlink(gone)
            except FileNotFoundError:
                pass

"""Recording changes: who changed which paths, folded into line ownership.

This is the path every agent takes (`vbranch record`, `vbranch run`, the
hooks), so it uses only the git command line, never pygit2.

Three ways a change arrives:
- a session says it changed a path (`record`, a file tool's PostToolUse);
- a command ran in a *window* (`run`, a Bash tool call): whatever changed
  between its start and end is the session's;
- nobody said anything (`snapshot`): the change goes to whoever had a window
  open when it happened (contested if several did), else it is unattributed.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs the hook path
    from typing import Callable

from vbranch.core.losses import losses
from vbranch.core.ownership import UNATTRIBUTED, FileOwnership, FileState, adopt, new_record, record_change
from vbranch.git import gitcli
from vbranch.git.worktree import files_under, read_state, resolve, signature, stat_key
from vbranch.record import traces
from vbranch.state import config
from vbranch.state.leases import holder
from vbranch.state.workspace import Workspace, branch_for_session, create_branch
from vbranch.watch.dirtyset import candidate_paths, trusted_since, unvouched_paths, vouched_paths

# Claude Code's Bash tool stops a command after 10 minutes at most: a window open
# longer lost its PostToolUse (the agent was killed) and no longer counts.
WINDOW_LIMIT = 11 * 60

# A window kept open on files a tool of another session was writing (see close_window).
DEFERRED = "#deferred"
# meta key prefix: the session's last command ran under the tracer
TRACED = "traced:"
# meta key: "traced", or "untraced: why", for the last command that closed (status shows it)
TRACER_LAST = "tracer_last"

# Who made a change: (branch, other branches that may have made it too).
Attribution = "Callable[[str, FileState], tuple[int, tuple[int, ...]]]"


def record(
    ws: Workspace,
    session_id: str,
    paths: list[str],
    at: str,
    *,
    branch: str | None = None,
    cwd: Path | None = None,
    source: str = "record",
    agent_id: str | None = None,
) -> list[str]:
    """Attribute the current state of `paths` to the session's branch.

    Returns the repository-relative paths whose ownership changed. Paths are
    checked before anything is written, so a bad one changes nothing.
    """
    rels = [resolve(ws.top, p, cwd) for p in paths]
    with ws.lock, ws.store.tx():
        row = branch_for_session(ws, session_id, at, branch)
        expanded = _expand(ws, rels)
        changed = _apply(ws, expanded, lambda p, s: (row.id, ()), at, session_id, source, agent_id=agent_id)
        # A snapshot may have seen the change first and found no author: the session's
        # word makes it the author of what nobody else claims.
        for path in expanded:
            rec = ws.store.file(path)
            if rec is not None and (adopted := adopt(rec, row.id)) is not rec:
                ws.store.put_file(adopted)
                changed.append(path)
        return sorted(set(changed))


def prefetch_fold(ws: Workspace) -> None:
    """Start what the next `fold_unseen` of the whole tree asks git (its `git status`, when no watcher
    answers instead), to run while the caller does other work; `gitcli.drop_prefetch` ends it."""
    if trusted_since(ws) is None:
        gitcli.prefetch_dirty_paths(ws.top)


def fold_unseen(
    ws: Workspace, at: str, paths: list[str] | None = None, session: str | None = None, call: str | None = None
) -> list[str]:
    """Fold every change the store has not seen into ownership (or only those of `paths`).

    Files another tool call is writing right now are skipped: that call's
    PostToolUse records them (`session` and `call` are the caller's own, if any:
    its own fresh lease saw nothing happen).

    Run before status and commit, as jj snapshots the working copy before
    every command: a change that no session reported is found here and shown
    rather than lost.
    """
    asked_at = time.time()  # before the watcher's barrier (see _forget_unchanged)
    vouched = vouched_paths(ws) if paths is None else None  # before the lock: it may seed the set
    changed = unvouched_paths(ws) if paths is None and vouched is None else vouched
    with ws.lock, ws.store.tx():
        logs = traces.read_all(ws.state_dir, done=True)
        if paths is None:
            # What traced commands wrote is looked at whether or not the dirty set had heard of it when
            # asked: a command can write and end in between, and its log is marked done below.
            changed = changed | {p for t in logs if not t.done for p in traces.worktree_paths(t)}
            # Stat signatures of every record; whole records only of paths that changed.
            stats = ws.store.stats()
            unseen = [p for p in sorted(changed | set(stats)) if p not in stats or stats[p] != stat_key(ws.top, p)]
            known = {p: rec for p in unseen if (rec := ws.store.file(p)) is not None}
        else:
            known = {p: rec for p in paths if (rec := ws.store.file(p)) is not None}
            candidates = set(paths) - set(known)
            # A path nobody recorded is as in HEAD unless its content says otherwise.
            head = gitcli.tree_signatures(ws.top, "HEAD", sorted(candidates))
            candidates = {p for p in candidates if head[p] != signature(read_state(ws.top, p))} | set(known)
            unseen = [p for p in sorted(candidates) if p not in known or known[p].stat != stat_key(ws.top, p)]
        busy = {p for p in unseen if _leased_elsewhere(ws, p, call)}
        others = _unseen_attribution(ws, at, None, session, logs, reread=True)
        folded = _fold(ws, [p for p in unseen if p not in busy], others, logs, at, None, "snapshot", known)
        if vouched is not None:
            _forget_unchanged(ws, [p for p in unseen if p not in busy], asked_at)
    if paths is None:  # every change is folded now, but for files a tool is writing
        traces.mark_done([t for t in logs if t.ended is not None and not (traces.worktree_paths(t) & busy)])
        traces.prune(ws.state_dir, ws.store.windows)
    return folded


def _forget_unchanged(ws: Workspace, examined: list[str], asked_at: float) -> None:
    """The watcher's dirty set forgets the paths this fold read and found as in the workspace
    commit (they have no record), so that it holds what differs, not all that ever changed.

    Not a path changed again since: the watcher stamps a mark with the time it marks it, after
    the change. So a mark stamped at or before `asked_at` is of a change made before the fold
    read the file; a change after that is stamped later and stays. Paths a tool is writing right
    now were not read (busy): they keep their marks.
    """
    recorded = set(ws.store.paths())
    ws.store.forget_dirty([p for p in examined if p not in recorded], asked_at)


def run(ws: Workspace, session_id: str, command: list[str], at: str, *, branch: str | None = None) -> tuple[int, list[str]]:
    """Run a command and attribute to the session exactly the files it changed.

    The command runs under the tracer, as an agent's Bash call does (with a window
    as the fallback), so changes of other commands running at the same time are
    told apart the same way.
    """
    import sys

    from vbranch import tracer

    with ws.lock, ws.store.tx():
        branch_for_session(ws, session_id, at, branch)
    window_id = f"run-{os.getpid()}-{time.time()}"
    open_window(ws, session_id, window_id)
    env = {**os.environ, "VBRANCH_SESSION": session_id}
    env.pop(tracer.TRACED_MARK, None)
    try:
        code = subprocess.call([sys.executable, "-S", tracer.__file__, "--", *command], cwd=Path.cwd(), env=env)
    finally:
        changed = close_window(ws, session_id, window_id, at)
    return code, changed


def open_window(
    ws: Workspace, session_id: str, window_id: str, clock: Callable[[], float] = time.time, paths: list[str] | None = None
) -> None:
    """A command of the session starts: remember every file's state now.

    With `paths`, the command can change only those (a patch names its files): the
    window covers just them, and nothing else it overlaps is contested. A command the
    tracer will watch needs no signatures at all (`paths` empty): its log says what it wrote.
    """
    before = dirty_signatures(ws) if paths is None else {p: signature(read_state(ws.top, p)) for p in paths}
    with ws.lock, ws.store.tx():
        ws.store.prune_windows(clock() - WINDOW_LIMIT)
        ws.store.open_window(window_id, session_id, clock(), before, partial=paths is not None)


def close_window(
    ws: Workspace, session_id: str, window_id: str, at: str, agent_id: str | None = None, logs: list | None = None
) -> list[str]:
    """The command ended: the files its processes wrote (traced), else what changed since it
    started (its window), are the session's.

    By window, a file that changed while another session's command was also running is
    contested between them: either could have written it, and we do not guess.
    """
    window = ws.store.window(window_id)
    if window is None:
        return []  # no start was seen (vbranch set up mid-command): snapshot will find it
    logs = traces.read_all(ws.state_dir, done=True) if logs is None else logs  # `logs`: read once by the caller
    mine = traces.of_window(logs, session_id, window.started)
    if mine and all(t.traced for t in mine):
        return _close_traced(ws, session_id, window_id, mine, logs, at, agent_id)
    if mine:
        with ws.lock, ws.store.tx():
            ws.store.set_meta(TRACED + session_id, "0")  # its next windows take signatures again
            ws.store.set_meta(TRACER_LAST, "untraced: " + next(t.reason or "unknown" for t in mine if not t.traced))
    # The window stays open until its changes are recorded, so that a snapshot
    # meanwhile still knows this command may have made them.
    if window.partial:
        changed = sorted(p for p, before in window.before.items() if signature(read_state(ws.top, p)) != before)
    else:
        changed = changed_since(ws, window.before)
    with ws.lock, ws.store.tx():
        ws.store.close_window(window_id)
        if not changed:
            return []
        row = branch_for_session(ws, session_id, at)
        # A file a tool is writing right now (this session's too: a subagent's) is left
        # to that tool's PostToolUse; this window stays open on it so that one can tell
        # who did what.
        busy = [p for p in changed if _leased_elsewhere(ws, p, None)]
        if busy:
            ws.store.open_window(window_id + DEFERRED, session_id, window.started, {p: window.before.get(p) for p in busy}, partial=True)
        attribute = _with_rivals(row.id, _unseen_attribution(ws, at, session_id, None, logs))
        return _apply(ws, [p for p in changed if p not in busy], attribute, at, session_id, "command", agent_id=agent_id)


def _with_rivals(branch: int, others: Attribution) -> Attribution:
    """The change is `branch`'s, contested with whoever else may have made it."""

    def attribute(path: str, state: FileState) -> tuple[int, tuple[int, ...]]:
        suspect, more = others(path, state)
        rivals = () if suspect == UNATTRIBUTED else (suspect, *more)
        return branch, tuple(b for b in rivals if b != branch)

    return attribute


def _close_traced(ws: Workspace, session_id: str, window_id: str, mine: list, logs: list, at: str, agent_id: str | None) -> list[str]:
    """The command ran under the tracer: exactly the files its processes wrote are the session's.

    Another session's traced process that wrote one of them too makes that file
    contested; nobody else's running command does.
    """
    written = sorted(set().union(*(traces.worktree_paths(t) for t in mine)))
    answers = ignore_answers(ws, written)
    with ws.lock, ws.store.tx():
        ws.store.close_window(window_id)
        ws.store.set_meta(TRACED + session_id, "1")
        ws.store.set_meta(TRACER_LAST, "traced")
        if not written:
            return []
        row = branch_for_session(ws, session_id, at)
        paths = _expand(ws, written)
        busy = [p for p in paths if _leased_elsewhere(ws, p, None)]  # a file tool's PostToolUse records those
        attribute = _with_rivals(row.id, _unseen_attribution(ws, at, session_id, None, logs))
        changed = _fold(ws, [p for p in paths if p not in busy], attribute, logs, at, session_id, "command", agent_id=agent_id,
                        answers=answers)
    if not busy:
        traces.mark_done([t for t in mine if t.ended is not None])
    return changed


def _fold(
    ws: Workspace, paths: list[str], attribute: Attribution, logs: list, at: str, session_id: str | None, source: str,
    known: dict[str, FileOwnership] | None = None, agent_id: str | None = None, answers: dict[str, bool] | None = None,
) -> list[str]:
    """`_apply`, but a path traced processes wrote since its last fold goes writer by writer."""
    changed: list[str] = []
    plain = []
    for path in paths:
        steps = _traced_steps(ws, path, logs, at)
        if steps is None:
            plain.append(path)
            continue
        for state, by in steps:
            changed += _apply(ws, [path], by, at, session_id, source, {path: ws.store.file(path)}, agent_id, state, answers)
    changed += _apply(ws, plain, attribute, at, session_id, source, known, agent_id, answers=answers)
    return sorted(set(changed))


def _traced_steps(ws: Workspace, path: str, logs: list, at: str) -> list[tuple[FileState | None, Attribution]] | None:
    """The change of `path` since its last fold, cut where a traced process of another session began writing.

    The tracer kept what the file held just before each writer's write-open: the
    difference up to there is the earlier writer's, the rest the later one's. Writers
    that opened the file with nothing written in between share the change (contested).
    None when no traced process wrote it since, or a version was not kept (too large).
    """
    since = ws.store.folded_at(path)
    pending = [t for t in logs if not t.done]
    events = sorted((e for t in pending for e in t.events if e.path == path and e.ns > since), key=lambda e: e.ns)
    if not events:
        return None
    groups: list[tuple[FileState, list[str]]] = []  # (what the file held, sessions about to write it)
    for event in events:
        state = traces.version(event)
        if state is None:
            return None
        if groups and groups[-1][0] == state:
            if event.session not in groups[-1][1]:
                groups[-1][1].append(event.session)
            continue
        groups.append((state, [event.session]))
    # Before the first traced write: a live command that wrote the file earlier, an untraced window, or nobody.
    earlier = [
        t for t in pending
        if traces.running_since(t, since) and any(e.path == path and e.ns < events[0].ns for e in t.events)
    ]
    steps: list[tuple[FileState | None, Attribution]] = []
    by = _unseen_attribution(ws, at, None, None, earlier)
    for state, sessions in groups:
        steps.append((state, by))
        by = _sessions(ws, sessions, at)
    steps.append((None, by))
    return steps


def _sessions(ws: Workspace, sessions: list[str], at: str) -> Attribution:
    """The change is these sessions' (contested when more than one)."""
    branches = sorted({branch_for_session(ws, s, at).id for s in sessions})
    return lambda p, s: (branches[0], tuple(branches[1:]))


def expects_trace(ws: Workspace, session_id: str) -> bool:
    """The session's commands run under the tracer (its last one did): a window needs no signatures."""
    return ws.store.get_meta(TRACED + session_id) == "1"


def command_traces(ws: Workspace, session_id: str, window_id: str, logs: list) -> list:
    """The tracer's logs (of `logs`) of this window's command: none when it did not run under the tracer."""
    window = ws.store.window(window_id)
    return [] if window is None else traces.of_window(logs, session_id, window.started)


def close_leftover_windows(ws: Workspace, session_id: str, at: str) -> list[str]:
    """The session's turn is over, and so are its commands: windows whose end was never
    reported (Codex sends nothing after a failed call) close now, their changes its own."""
    changed: list[str] = []
    for window in ws.store.windows():
        if window.session == session_id and not window.id.endswith(DEFERRED):
            changed += close_window(ws, session_id, window.id, at)
    return sorted(set(changed))


def ignore_answers(ws: Workspace, paths: list[str]) -> dict[str, bool]:
    """Whether git ignores each of `paths` that may be new to it (no record, not in the base).

    Asked before the state lock is taken: the git process reads the whole index (10-20 ms at
    30,000 files), and every other session's hooks waited while a fold held the lock for it.
    A path that became new to git since is asked again under the lock (_ignored).
    """
    new = [p for p in paths if not ws.store.has_file(p)]
    if new and ws.base:
        in_base = gitcli.tree_signatures(ws.top, ws.base, new)
        new = [p for p in new if in_base[p] is None]
    found = gitcli.ignored(ws.top, new)
    return {p: p in found for p in new}


def _ignored(ws: Workspace, paths: list[str], answers: dict[str, bool] | None) -> set[str]:
    """Which of `paths` (new to git) git ignores: as answered before the lock, else asked now."""
    answers = answers or {}
    return {p for p in paths if answers.get(p)} | gitcli.ignored(ws.top, [p for p in paths if p not in answers])


def _leased_elsewhere(ws: Workspace, path: str, call: str | None) -> bool:
    """A tool call other than `call` holds the file's lease: it is writing the file now."""
    held = ws.store.lease(path)
    return held is not None and held[2] >= time.time() and held[1] != call


def record_write(
    ws: Workspace,
    session_id: str,
    path: str,
    at: str,
    *,
    original: bytes | None = None,
    expected: bytes | None = None,
    agent_id: str | None = None,
) -> list[str]:
    """A file tool of the session wrote `path`: attribute exactly its change.

    `original` is what the tool read, `expected` what it meant to write (both
    the tool's view: see endings.py). When the file differs from those and
    another session's command was running, the difference is folded in as that
    command's (or unattributed) first, so this session gets its own edit and
    nothing else; line endings and encodings are never such a difference.
    """
    answers = ignore_answers(ws, [path])
    with ws.lock, ws.store.tx():
        row = branch_for_session(ws, session_id, at)
        rec = ws.store.file(path)
        if rec is None:
            rec = new_record(path, gitcli.tree_states(ws.top, ws.base, [path])[path])
            if not rec.base.exists and _ignored(ws, [path], answers):
                return []  # an ignored file is never ours to commit
        known = rec.known
        others = _unseen_attribution(ws, at, session_id)
        real = read_state(ws.top, path)
        if real is None or real == known:
            _settle_deferred(ws, path)
            return []
        mine: Attribution = lambda p, s: (row.id, ())  # noqa: E731
        steps: list[tuple[FileState | None, Attribution]] = []  # None: the file as it is now
        # The tool reports its view of the file (decoded, every CRLF made LF): compare views, and
        # state a view in the file's own bytes (each line as the disk holds it), never the reverse.
        from vbranch.core import endings

        # (Equal bytes are equal views: a large file is decoded only when they differ.)
        if original is not None and original != known.data and _readable(known) and endings.view(original) != endings.view(known.data):
            steps.append((FileState(True, known.mode, endings.onto(endings.view(original), [known.data, real.data])), others))
        if expected is not None and expected != real.data and endings.view(expected) != endings.view(real.data) and _suspected(others, path, real):
            steps.append((FileState(True, real.mode, endings.onto(endings.view(expected), [real.data, known.data])), mine))
            steps.append((None, others))
        else:
            steps.append((None, mine))
        changed: list[str] = []
        for state, attribute in steps:
            known_records = {path: ws.store.file(path) or rec}
            changed += _apply(ws, [path], attribute, at, session_id, "write", known_records, agent_id, state)
        _settle_deferred(ws, path)
        return sorted(set(changed))


def _settle_deferred(ws: Workspace, path: str) -> None:
    """The write that held `path` is recorded: windows kept open on it for that can close."""
    for window in ws.store.windows():
        if window.partial and path in window.before:
            ws.store.close_window(window.id)
            rest = {p: s for p, s in window.before.items() if p != path}
            if rest:
                ws.store.open_window(window.id, window.session, window.started, rest, partial=True)


def _readable(state: FileState) -> bool:
    """A file a tool reads as text, whatever its encoding: its view can be compared with the tool's."""
    return state.is_text


def _suspected(attribution: Attribution, path: str, state: FileState) -> bool:
    return attribution(path, state)[0] != UNATTRIBUTED


def _unseen_attribution(
    ws: Workspace, at: str, exclude: str | None, own_lease: str | None = None, logs: list | None = None,
    reread: bool = False,
) -> Attribution:
    """Who made a change that no one reported (`exclude` is the caller's session, never a suspect).

    Sessions whose traced processes wrote the file, exactly. Else, for commands
    the tracer could not watch, sessions whose command windows saw it happen: a
    window saw the change if the file differs now from when it opened. A write
    lease held by another session (not `own_lease`) counts as an open window on its file.
    """
    logs = traces.read_all(ws.state_dir, done=True) if logs is None else logs
    pending = [t for t in logs if not t.done and t.session != exclude]
    windows = [
        w for w in ws.store.windows()
        if w.session != exclude and w.started > time.time() - WINDOW_LIMIT and not _traced_window(ws, w, logs)
    ]
    head: dict[str, str | None] = {}  # signatures in HEAD, read once per path
    lane_id: list[int] = []

    def attribute(path: str, state: FileState) -> tuple[int, tuple[int, ...]]:
        now = signature(state)
        since = ws.store.folded_at(path)
        sessions = traces.writers(pending, path, since)
        if not sessions and reread:
            sessions = _opened_before_now(ws, path, since, exclude)
        for window in windows:
            if path not in window.before:
                if window.partial:
                    continue
                if path not in head:
                    head.update(gitcli.tree_signatures(ws.top, "HEAD", [path]))
            if window.before.get(path, head.get(path)) != now:
                sessions.add(window.session)
        writer = holder(ws, path)
        if writer is not None and writer not in (exclude, own_lease):
            sessions.add(writer)
        branches = sorted({branch_for_session(ws, s, at).id for s in sessions})
        return (branches[0], tuple(branches[1:])) if branches else (lane(), ())

    def lane() -> int:
        """Where changes outside every tool window go: unattributed, or a branch such as "human"."""
        if not lane_id:
            name = config.load(ws.state_dir).get("lane", "unattributed")
            row = None if name == "unattributed" else ws.store.branch_by_name(name) or create_branch(ws, name, at, exact=True)
            lane_id.append(row.id if row else UNATTRIBUTED)
        return lane_id[0]

    return attribute


def _opened_before_now(ws: Workspace, path: str, since: int, exclude: str | None) -> set[str]:
    """Sessions whose traced processes opened `path` for writing after `since` and before now.

    A fold reads the logs, then the files: a process that opened the file in between (its event
    logged before its write went ahead) made a change the fold sees but the logs it read do not
    name. Read again after the file, the logs name it. Only events up to now count: a write
    opened later is not in what was read.
    """
    bound = time.time_ns()
    return {
        e.session for t in traces.read_all(ws.state_dir) if t.session != exclude  # not done ones: all folded
        for e in t.events if e.path == path and since < e.ns <= bound
    }


def _traced_window(ws: Workspace, window, logs: list) -> bool:
    """A window whose command the tracer watches: its log, not the window, says what it wrote."""
    mine = traces.of_window(logs, window.session, window.started)
    return all(t.traced for t in mine) if mine else expects_trace(ws, window.session)


def dirty_signatures(ws: Workspace) -> dict[str, str | None]:
    """The signature of every file that differs from the workspace commit or has a record.

    O(changes) with a live watcher: its barrier makes sure that a window closing right
    after its command's last write sees that write.
    """
    return {p: signature(read_state(ws.top, p)) for p in candidate_paths(ws)}


def changed_since(ws: Workspace, before: dict[str, str | None]) -> list[str]:
    """Paths whose content differs from `before` (a path missing there was as in HEAD)."""
    now = dirty_signatures(ws)
    for path in set(before) - set(now):
        now[path] = signature(read_state(ws.top, path))
    clean_before = [p for p in now if p not in before]
    before = {**gitcli.tree_signatures(ws.top, "HEAD", clean_before), **before}
    return sorted(p for p in now if now[p] != before[p])


def _expand(ws: Workspace, rels: list[str]) -> list[str]:
    """Directories become the files below them, and the recorded ones that were there."""
    out: list[str] = []
    for rel in rels:
        state = read_state(ws.top, rel)
        if state is not None and state.exists:
            out.append(rel)
            continue
        # A directory, or a path that is gone: a deleted file or a deleted directory.
        prefix = rel + "/"
        below = {p for p in ws.store.paths() if p.startswith(prefix)} | gitcli.dirty_paths(ws.top, [rel])
        if state is None:
            below |= set(files_under(ws.top, rel))
        else:
            below.add(rel)
        out.extend(sorted(below))
    return list(dict.fromkeys(out))


def _apply(
    ws: Workspace,
    paths: list[str],
    attribute: Attribution,
    at: str,
    session_id: str | None,
    source: str,
    known: dict[str, FileOwnership] | None = None,
    agent_id: str | None = None,
    state: FileState | None = None,
    answers: dict[str, bool] | None = None,
) -> list[str]:
    """Fold the working state of `paths` (or the given `state` of one path) into their records.
    `answers`: whether git ignores paths, asked before the lock (ignore_answers)."""
    records = {p: (known.get(p) if known is not None else ws.store.file(p)) for p in paths}
    missing = [p for p, rec in records.items() if rec is None]
    bases = gitcli.tree_states(ws.top, ws.base, missing)
    # Only a path new to git can be ignored (git never ignores a tracked file).
    ignored = _ignored(ws, [p for p in missing if not bases[p].exists], answers)
    paths = [p for p in paths if p not in ignored]
    changed = []
    for path in paths:
        read_at = time.time_ns()  # traced writes opened before this are in what we read (tracer.TraceLog)
        new = state if state is not None else read_state(ws.top, path)
        if new is None:
            continue  # became a directory: its files are separate paths
        rec = records[path] or new_record(path, bases[path])
        actor, co_owners = attribute(path, new) if new != rec.known else (UNATTRIBUTED, ())
        updated = record_change(rec, new, actor, co_owners)
        if records[path] is not None and new != rec.known:
            # Protect by effect: another branch's work this change took away is kept for `vbranch rescue`.
            for branch, version in losses(rec, updated, {actor, *co_owners}):
                ws.store.keep_for_rescue(path, branch, rec.base, version, at, session_id)
        updated.stat = stat_key(ws.top, path) if state is None else None
        if updated.known == rec.known and records[path] is not None and updated.stat == rec.stat:
            continue
        if not updated.changed and records[path] is None:
            continue  # equal to the base and never recorded: nothing to own
        ws.store.put_file(updated)
        if state is None:
            ws.store.set_folded(path, read_at)
        if updated.known != rec.known:
            changed.append(path)
            ws.store.log_event(at, session_id, actor or None, path, source, agent_id)
    return changed

"""Recording changes: who changed which paths, folded into line ownership.

This is the path every agent takes (`vbranch record`, `vbranch run`, the
hooks), so it uses only the git command line, never pygit2.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from . import gitcli
from .ownership import UNATTRIBUTED, FileOwnership, new_record, record_change
from .workspace import Workspace, branch_for_session
from .worktree import content_key, files_under, read_state, resolve, stat_key


def record(
    ws: Workspace,
    session_id: str,
    paths: list[str],
    at: str,
    *,
    branch: str | None = None,
    cwd: Path | None = None,
    source: str = "record",
) -> list[str]:
    """Attribute the current state of `paths` to the session's branch.

    Returns the repository-relative paths whose ownership changed. Paths are
    checked before anything is written, so a bad one changes nothing.
    """
    rels = [resolve(ws.top, p, cwd) for p in paths]
    with ws.lock, ws.store.tx():
        row = branch_for_session(ws, session_id, at, branch)
        return _apply(ws, _expand(ws, rels), row.id, at, session_id, source)


def snapshot(ws: Workspace, at: str, lane: int = UNATTRIBUTED) -> list[str]:
    """Fold every change the store has not seen into ownership, as `lane`'s.

    Run before status and commit, as jj snapshots the working copy before
    every command: a change that no session reported is found here and shown
    as unattributed rather than lost.
    """
    with ws.lock, ws.store.tx():
        known = {rec.path: rec for rec in ws.store.files()}
        candidates = gitcli.dirty_paths(ws.top) | set(known)
        unseen = [p for p in sorted(candidates) if p not in known or known[p].stat != stat_key(ws.top, p)]
        return _apply(ws, unseen, lane, at, None, "snapshot", known)


def run(ws: Workspace, session_id: str, command: list[str], at: str, *, branch: str | None = None) -> tuple[int, list[str]]:
    """Run a command and attribute to the session exactly the files it changed."""
    before = _signatures(ws, gitcli.dirty_paths(ws.top) | set(ws.store.paths()))
    code = subprocess.call(command, cwd=Path.cwd())
    after = _signatures(ws, gitcli.dirty_paths(ws.top) | set(ws.store.paths()) | set(before))
    changed = sorted(p for p in after if after[p] != before.get(p, _signature(ws, p, base=True)))
    if not changed:
        return code, []
    with ws.lock, ws.store.tx():
        row = branch_for_session(ws, session_id, at, branch)
        return code, _apply(ws, changed, row.id, at, session_id, "run")


def _signatures(ws: Workspace, paths: set[str]) -> dict[str, tuple | None]:
    return {p: _signature(ws, p) for p in paths}


def _signature(ws: Workspace, path: str, base: bool = False) -> tuple | None:
    if base:
        # A path clean before the command: its content then was the workspace's.
        return content_key(gitcli.tree_states(ws.top, "HEAD", [path])[path])
    return content_key(read_state(ws.top, path))


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
    owner: int,
    at: str,
    session_id: str | None,
    source: str,
    known: dict[str, FileOwnership] | None = None,
) -> list[str]:
    """Fold the working state of `paths` into their records, as `owner`'s change."""
    ignored = gitcli.ignored(ws.top, paths)
    paths = [p for p in paths if p not in ignored]
    records = {p: (known.get(p) if known is not None else ws.store.file(p)) for p in paths}
    missing = [p for p, rec in records.items() if rec is None]
    bases = gitcli.tree_states(ws.top, ws.base, missing)
    changed = []
    for path in paths:
        state = read_state(ws.top, path)
        if state is None:
            continue  # became a directory: its files are separate paths
        rec = records[path] or new_record(path, bases[path])
        updated = record_change(rec, state, owner)
        updated.stat = stat_key(ws.top, path)
        if updated.known == rec.known and records[path] is not None and updated.stat == rec.stat:
            continue
        if updated.known == updated.base and records[path] is None:
            continue  # equal to the base and never recorded: nothing to own
        ws.store.put_file(updated)
        if updated.known != rec.known:
            changed.append(path)
            ws.store.log_event(at, session_id, owner or None, path, source)
    return changed

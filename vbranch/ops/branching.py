"""Branch management and moving ownership: new, rename, delete, assign, diff, log."""
from __future__ import annotations

import re

from vbranch.core.merge import touches
from vbranch.core.ownership import UNATTRIBUTED, FileOwnership, reassign, settle
from vbranch.errors import Blocked, StateError, UsageError
from vbranch.git import gitcli, gitops
from vbranch.ops.committing import branch_changes
from vbranch.ops.intent import Intent, Kind, RefUpdate
from vbranch.ops.operation import operation
from vbranch.ops.oplog import shelf_ref
from vbranch.record.recording import fold_unseen
from vbranch.state.store import BranchRow
from vbranch.state.workspace import Workspace, require_branch


def new_branch(ws: Workspace, name: str, at: str) -> BranchRow:
    from vbranch.state.workspace import branch_name_from

    with operation(ws, Kind.BRANCH_NEW, at, fold=False) as tx:
        if branch_name_from(name) != name:
            raise UsageError(f"{name!r} is not a valid branch name", hint=f"try {branch_name_from(name)!r}")
        ref = f"refs/heads/{name}"
        if ws.store.branch_by_name(name) or gitcli.ref_exists(ws.top, ref):
            raise UsageError(
                f"a branch named {name!r} already exists",
                hint="choose another name, or use that vbranch branch with --branch",
            )
        made = []
        intent = Intent(refs=[RefUpdate(ref, ws.base, None)] if ws.base else [])
        tx.finish({"name": name}, intent, lambda: made.append(ws.store.add_branch(name, at)))
        return made[0]


def rename_branch(ws: Workspace, old: str, new: str, at: str) -> None:
    from vbranch.state.workspace import branch_name_from

    with operation(ws, Kind.BRANCH_RENAME, at, fold=False) as tx:
        row = require_branch(ws, old)
        if branch_name_from(new) != new:
            raise UsageError(f"{new!r} is not a valid branch name", hint=f"try {branch_name_from(new)!r}")
        if ws.store.branch_by_name(new) or gitcli.ref_exists(ws.top, f"refs/heads/{new}"):
            raise UsageError(f"a branch named {new!r} already exists", hint="choose another name")
        head = gitcli.rev_parse(ws.top, row.ref)
        refs = [RefUpdate(f"refs/heads/{new}", head, None), RefUpdate(row.ref, None, head)] if head else []
        shelved = gitcli.rev_parse(ws.top, shelf_ref(old))
        refs += [RefUpdate(shelf_ref(new), shelved, None), RefUpdate(shelf_ref(old), None, shelved)] if shelved else []
        tx.finish({"old": old, "new": new}, Intent(refs=refs), lambda: ws.store.rename_branch(row.id, new))


def delete_branch(ws: Workspace, name: str, at: str, force: bool = False) -> None:
    """Forget a branch; with force its changes become unattributed and its ref goes."""
    from vbranch.ops.committing import build_workspace

    with operation(ws, Kind.BRANCH_DELETE, at) as tx:
        row = require_branch(ws, name)
        records = ws.store.files()
        owned = [rec.path for rec in records if touches(rec, row.id)] + [p for _b, p, _s, _l in ws.store.shelf(row.id)]
        head = gitcli.rev_parse(ws.top, row.ref)
        shelved = gitcli.rev_parse(ws.top, shelf_ref(name))
        committed = head is not None and head != ws.base
        if (owned or committed) and not force:
            what = f"owns changes in {', '.join(owned[:5])}" if owned else "has commits not on the target"
            raise UsageError(
                f"branch {name!r} {what}",
                hint="assign them elsewhere first (`vbranch assign`), or delete anyway with --force",
            )
        repo = gitops.open_repo(ws.top)
        new_records = [_disown(rec, row.id) if touches(rec, row.id) else rec for rec in records]
        applied = {b.id for b in ws.store.branches() if b.applied and b.id != row.id}
        intent = Intent(refs=[RefUpdate(row.ref, None, head)] if head is not None else [])
        intent.point_workspace(*build_workspace(ws, repo, new_records, ws.base, None, applied))
        intent.refs += [RefUpdate(shelf_ref(name), None, shelved)] if shelved else []

        def save() -> None:
            for rec in new_records:
                if rec.path in owned:
                    ws.store.put_file(rec)
            ws.store.clear_shelf(row.id)
            ws.store.delete_branch(row.id)

        tx.finish({"name": name, "head": head}, intent, save)


def _disown(rec: FileOwnership, branch_id: int) -> FileOwnership:
    def strip(owners: tuple[int, ...]) -> tuple[int, ...]:
        rest = tuple(o for o in owners if o != branch_id)
        return rest or (UNATTRIBUTED,)

    if rec.is_whole:
        return FileOwnership(rec.path, rec.base, rec.known, None, strip(rec.owners), rec.stat)
    items = [(op, owners if op == "K" else strip(owners)) for op, owners in rec.items]
    return FileOwnership(rec.path, rec.base, rec.known, items, (), rec.stat)


RANGE = re.compile(r"^(?P<path>.+):(?P<start>\d+)(?:-(?P<end>\d+))?$")


def parse_target(spec: str) -> tuple[str, tuple[int, int] | None]:
    """`path`, `path:12` or `path:12-20` (a path that itself ends in :N needs no range)."""
    match = RANGE.match(spec)
    if not match:
        return spec, None
    start = int(match["start"])
    end = int(match["end"] or start)
    if start < 1 or end < start:
        raise UsageError(f"bad line range in {spec!r}", hint="lines are 1-based: path:START-END with START <= END")
    return match["path"], (start, end)


def assign(ws: Workspace, spec: str, branch_name: str, at: str) -> list[str]:
    """Give the changes at PATH[:START-END] (a file or a directory) to a branch."""
    from vbranch.git.worktree import resolve

    path, lines = parse_target(spec)
    with operation(ws, Kind.ASSIGN, at) as tx:
        row = require_branch(ws, branch_name)
        if not row.applied:
            raise UsageError(f"{branch_name} is unapplied", hint=f"`vbranch apply {branch_name}` first")
        rel = resolve(ws.top, path)
        records = [r for r in ws.store.files() if r.changed and (r.path == rel or r.path.startswith(rel + "/"))]
        if not records:
            raise UsageError(f"{path} has no uncommitted changes to assign", hint="`vbranch status` lists them")
        if lines and (len(records) != 1 or records[0].path != rel):
            raise UsageError("a line range needs a single file", hint="give PATH:START-END for one file")

        def save() -> None:
            for rec in records:
                ws.store.put_file(reassign(rec, row.id, lines))

        tx.finish({"path": rel, "lines": lines, "branch": row.name}, save=save)
        return [r.path for r in records]


def settle_lines(ws: Workspace, spec: str, session: str, claim: bool, at: str) -> list[str]:
    """A session claims (or disowns) the ambiguous changes at PATH[:START-END] it has a part in.

    What the guard's notices ask a session to run: it knows whether a contested or
    unattributed change is its own. Other branches' changes are never touched.
    """
    from vbranch.git.worktree import resolve
    from vbranch.state.workspace import branch_for_session

    path, lines = parse_target(spec)
    with operation(ws, Kind.CLAIM if claim else Kind.DISOWN, at) as tx:
        rel = resolve(ws.top, path)
        records = [r for r in ws.store.files() if r.changed and (r.path == rel or r.path.startswith(rel + "/"))]
        if lines and (len(records) != 1 or records[0].path != rel):
            raise UsageError("a line range needs a single file", hint="give PATH:START-END for one file")
        known = ws.store.session(session)
        if not claim and (known is None or known.branch_id is None):
            raise UsageError(f"session {session} has no branch, so nothing to disown")
        changed: list[str] = []

        def save() -> None:
            branch = branch_for_session(ws, session, at).id
            for rec in records:
                new = settle(rec, branch, lines, claim)
                if new.items != rec.items or new.owners != rec.owners:
                    ws.store.put_file(new)
                    changed.append(rec.path)

        tx.finish({"path": rel, "lines": lines, "session": session}, save=save)
        return changed


def branch_diff(ws: Workspace, name: str, at: str) -> str:
    """The branch's whole change against the base, committed and not, as a patch."""
    fold_unseen(ws, at)
    row = require_branch(ws, name)
    repo = gitops.open_repo(ws.top)
    base_tree = gitops.tree_of(repo, ws.base)
    tree = repo[gitops.edit_tree(repo, base_tree, branch_changes(ws.store.files(), row.id))]
    return repo.diff(base_tree, tree).patch or ""


def branch_log(ws: Workspace, name: str) -> str:
    row = require_branch(ws, name)
    if not gitcli.ref_exists(ws.top, row.ref):
        return ""
    span = f"{ws.base}..{row.ref}" if ws.base else row.ref
    return gitcli.git(ws.top, "log", "--format=%h %ad %s", "--date=short", span).decode()


# Taking a branch out of the workspace and back. These write working files (the
# branch's lines leave the shared directory and come back), each atomically and only
# where the file is exactly as vbranch last saw it.


def unapply(ws: Workspace, name: str, at: str) -> list[str]:
    """Take a branch's changes out of the working files; keep them on the shelf (and in git)."""
    from vbranch.core.ownership import RebaseConflict, without_branch
    from vbranch.ops.committing import build_workspace
    from vbranch.ops.oplog import file_write
    from vbranch.state.store import pack_record

    with operation(ws, Kind.UNAPPLY, at) as tx:
        row = require_branch(ws, name)
        if not row.applied:
            raise UsageError(f"{name} is already unapplied", hint=f"`vbranch apply {name}` brings it back")
        records = ws.store.files()
        touched = [rec for rec in records if touches(rec, row.id)]
        try:
            left = {rec.path: without_branch(rec, row.id) for rec in touched}
        except RebaseConflict as error:
            raise Blocked(
                f"{name} shares changes with other branches: " + ", ".join(_where(c) for c in error.conflicts),
                hint="give each contested change to one branch with `vbranch assign`, then unapply",
            ) from None
        _refuse_leased(ws, list(left))
        repo = gitops.open_repo(ws.top)
        writes = [file_write(repo, rec.path, rec.known, left[rec.path].known) for rec in touched if left[rec.path].known != rec.known]
        head = gitops.head_of(repo, row.ref)
        whole = gitops.edit_tree(repo, gitops.tree_of(repo, ws.base), branch_changes(records, row.id))
        parents = [p for p in (head or ws.base,) if p]
        kept = gitops.make_commit(repo, whole, parents, f"vbranch: {name} unapplied\n\nIts whole change, committed and not, while it is out of the workspace.\n")
        new_records = [left.get(rec.path, rec) for rec in records]
        applied = {b.id for b in ws.store.branches() if b.applied and b.id != row.id}
        intent = Intent(refs=[RefUpdate(shelf_ref(name), kept, gitops.head_of(repo, shelf_ref(name)))], writes=writes)
        intent.point_workspace(*build_workspace(ws, repo, new_records, ws.base, None, applied))

        def save() -> None:
            for rec in touched:
                ws.store.put_file(left[rec.path])
                ws.store.put_shelf(row.id, rec.path, pack_record(rec), pack_record(left[rec.path]))
            ws.store.set_applied(row.id, False)

        tx.finish({"branch": name}, intent, save)
        return [w.path for w in writes]


def apply(ws: Workspace, name: str, at: str) -> list[str]:
    """Bring an unapplied branch's changes back into the working files and the workspace."""
    from vbranch.ops.committing import build_workspace

    with operation(ws, Kind.APPLY, at) as tx:
        row = require_branch(ws, name)
        if row.applied:
            raise UsageError(f"{name} is already applied", hint="`vbranch status` shows its changes")
        repo = gitops.open_repo(ws.top)
        back, writes, clashes = _back_from_shelf(ws, repo, row)
        if clashes:
            raise Blocked(
                f"{name}'s changes overlap changes made since it was unapplied (nothing was changed): " + "; ".join(clashes),
                hint="undo or finish those changes, or take the branch's work from its shelf commit "
                f"({shelf_ref(name)}) by hand",
            )
        _refuse_leased(ws, [w.path for w in writes])
        records = {rec.path: rec for rec in ws.store.files()}
        records.update(back)
        applied = {b.id for b in ws.store.branches() if b.applied} | {row.id}
        shelved = gitops.head_of(repo, shelf_ref(name))
        intent = Intent(refs=[RefUpdate(shelf_ref(name), None, shelved)] if shelved else [], writes=writes)
        intent.point_workspace(*build_workspace(ws, repo, list(records.values()), ws.base, None, applied))

        def save() -> None:
            for rec in back.values():
                rec.stat = None
                ws.store.put_file(rec)
            ws.store.clear_shelf(row.id)
            ws.store.set_applied(row.id, True)

        tx.finish({"branch": name}, intent, save)
        return [w.path for w in writes]


def _back_from_shelf(ws: Workspace, repo, row: BranchRow):
    """The records with the shelved branch's changes back: (records by path, writes, clashing paths).

    A record untouched since the branch was unapplied gets its saved version byte for
    byte; otherwise the branch's version is merged into the file as it is now.
    """
    from vbranch.core.merge import branch_state, merge_states
    from vbranch.core.ownership import new_record, record_change
    from vbranch.ops.oplog import file_write
    from vbranch.state.store import pack_record, unpack_record

    base_tree = gitops.tree_of(repo, ws.base)
    back: dict[str, FileOwnership] = {}
    writes, clashes = [], []
    for _bid, path, saved_b, left_b in ws.store.shelf(row.id):
        saved = unpack_record(path, saved_b)
        current = ws.store.file(path) or new_record(path, gitops.state_at(repo, base_tree, path))
        if pack_record(current) == left_b:
            back[path] = saved  # untouched since: exactly as it was, byte for byte
        else:
            merged, where = merge_states(current.base, current.known, branch_state(saved, row.id))
            if merged is None or current.base != saved.base:
                spans = ", ".join(f"base lines {a}-{b}" for a, b in where) if where else "whole file"
                clashes.append(f"{path} ({spans})")
                continue
            back[path] = record_change(current, merged, row.id)
        if back[path].known != current.known:
            writes.append(file_write(repo, path, current.known, back[path].known))
    return back, writes, clashes


def _refuse_leased(ws: Workspace, paths: list[str]) -> None:
    from vbranch.state import leases

    busy = [p for p in paths if leases.live(ws, p)]
    if busy:
        raise StateError(
            f"{', '.join(busy[:5])} {'is' if len(busy) == 1 else 'are'} being written by a session right now",
            hint="run the command again in a moment",
        )


def _where(conflict) -> str:
    return f"{conflict.path} lines {conflict.lines[0]}-{conflict.lines[1]}" if conflict.lines else conflict.path

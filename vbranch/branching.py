"""Branch management and moving ownership: new, rename, delete, assign, diff, log."""
from __future__ import annotations

import re

from . import gitcli, gitops
from .committing import branch_changes, rebuild_workspace
from .errors import UsageError
from .ownership import UNATTRIBUTED, FileOwnership, reassign
from .recording import snapshot
from .split import touches
from .store import BranchRow
from .workspace import Workspace, create_branch, require_branch


def new_branch(ws: Workspace, name: str, at: str) -> BranchRow:
    with ws.lock, ws.store.tx():
        row = create_branch(ws, name, at, exact=True)
        ws.store.log_op(at, "branch-new", {"name": row.name})
        return row


def rename_branch(ws: Workspace, old: str, new: str, at: str) -> None:
    with ws.lock, ws.store.tx():
        row = require_branch(ws, old)
        if ws.store.branch_by_name(new) or gitcli.ref_exists(ws.top, f"refs/heads/{new}"):
            raise UsageError(f"a branch named {new!r} already exists", hint="choose another name")
        if gitcli.ref_exists(ws.top, row.ref):
            gitcli.git(ws.top, "branch", "-m", old, new)
        ws.store.rename_branch(row.id, new)
        ws.store.log_op(at, "branch-rename", {"old": old, "new": new})


def delete_branch(ws: Workspace, name: str, at: str, force: bool = False) -> None:
    """Forget a branch; with force its changes become unattributed and its ref goes."""
    with ws.lock:
        snapshot(ws, at)
        row = require_branch(ws, name)
        owned = [rec.path for rec in ws.store.files() if touches(rec, row.id)]
        head = gitcli.rev_parse(ws.top, row.ref)
        committed = head is not None and head != ws.base
        if (owned or committed) and not force:
            what = f"owns changes in {', '.join(owned[:5])}" if owned else "has commits not on the target"
            raise UsageError(
                f"branch {name!r} {what}",
                hint="assign them elsewhere first (`vbranch assign`), or delete anyway with --force",
            )
        with ws.store.tx():
            for rec in ws.store.files():
                if touches(rec, row.id):
                    ws.store.put_file(_disown(rec, row.id))
            ws.store.delete_branch(row.id)
            if head is not None:
                gitcli.update_refs(ws.top, [(row.ref, None, head)], "vbranch: branch delete")
            ws.store.log_op(at, "branch-delete", {"name": name, "head": head})
        rebuild_workspace(ws, gitops.open_repo(ws.top), ws.store.files())


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
    from .worktree import resolve

    path, lines = parse_target(spec)
    with ws.lock:
        snapshot(ws, at)
        row = require_branch(ws, branch_name)
        rel = resolve(ws.top, path)
        records = [r for r in ws.store.files() if r.changed and (r.path == rel or r.path.startswith(rel + "/"))]
        if not records:
            raise UsageError(f"{path} has no uncommitted changes to assign", hint="`vbranch status` lists them")
        if lines and (len(records) != 1 or records[0].path != rel):
            raise UsageError("a line range needs a single file", hint="give PATH:START-END for one file")
        with ws.store.tx():
            for rec in records:
                ws.store.put_file(reassign(rec, row.id, lines))
            ws.store.log_op(at, "assign", {"path": rel, "lines": lines, "branch": row.name})
        return [r.path for r in records]


def branch_diff(ws: Workspace, name: str, at: str) -> str:
    """The branch's whole change against the base, committed and not, as a patch."""
    snapshot(ws, at)
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

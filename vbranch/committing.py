"""The split engine: one commit per branch, built in memory, and the workspace commit.

A branch's tree is the base tree plus only the changes that branch owns; its
commit goes on the branch's real ref with a compare-and-swap update. The
workspace commit that HEAD points at merges the applied branches over the
base, so plain `git status` shows only uncommitted work. No working file is
touched.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from . import gitcli, gitops
from .ownership import UNATTRIBUTED, Conflict, FileOwnership, FileState, conflicts, lines_eligible, split_lines
from .recording import snapshot
from .split import branch_state, committable, merge_versions, touches
from .store import BranchRow
from .workspace import WORKSPACE_REF, Workspace, require_branch


@dataclass
class CommitReport:
    committed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # branch, commit, paths
    unchanged: list[str] = field(default_factory=list)
    # Contested changes a branch shares: left out of its commit (the rest commits) until settled.
    held_back: dict[str, list[Conflict]] = field(default_factory=dict)
    unapplied: list[str] = field(default_factory=list)  # named but unapplied: not committed


def commit(ws: Workspace, names: list[str] | None, message: str | None, at: str) -> CommitReport:
    """Commit the named branches (all applied ones for None) from their owned changes."""
    from .oplog import perform, recover

    with ws.lock:
        recover(ws)
        snapshot(ws, at)
        branches = [require_branch(ws, n) for n in names] if names else [b for b in ws.store.branches() if b.applied]
        # An unapplied branch's lines are out of the files: a commit now would drop them from it.
        parked = [b.name for b in branches if not b.applied]
        branches = [b for b in branches if b.applied]
        records = ws.store.files()
        repo = gitops.open_repo(ws.top)
        report, updates = plan_commits(ws, repo, branches, records, message)
        report.unapplied = parked
        if updates:
            heads = {ref: new for ref, new, _old in updates}
            new_ws, old_ws = build_workspace(ws, repo, records, ws.base, heads)
            refs = updates + ([(WORKSPACE_REF, new_ws, old_ws)] if new_ws != old_ws else [])
            detail = {"branches": [name for name, _, _ in report.committed], "refs": {ref: [old, new] for ref, new, old in updates}}
            perform(ws, at, "commit", detail, {"refs": refs, "index": ["sync", old_ws, new_ws]})
        return report


def plan_commits(ws: Workspace, repo, branches: list[BranchRow], records: list[FileOwnership], message: str | None):
    """Each branch's next commit, written to the object database: (report, ref updates)."""
    contested = conflicts(records)
    base_tree = gitops.tree_of(repo, ws.base)
    report = CommitReport()
    updates = []
    for branch in branches:
        mine = [c for c in contested if branch.id in c.owners]
        if mine:  # ambiguity holds back only its own lines: a branch's tree has only what it owns alone
            report.held_back[branch.name] = mine
        head = gitops.head_of(repo, branch.ref)
        changes = branch_changes(records, branch.id)
        tree = gitops.edit_tree(repo, base_tree, changes)
        head_tree = gitops.tree_of(repo, head).id if head else base_tree.id
        if tree == head_tree:
            report.unchanged.append(branch.name)
            continue
        paths = gitops.differing(repo[head_tree], repo[tree], [r.path for r in records])
        text = message or _default_message(branch, paths)
        new = gitops.make_commit(repo, tree, [head] if head else [], text + _trailers(ws, branch))
        updates.append((branch.ref, new, head))
        report.committed.append((branch.name, new, paths))
    return report, updates


def branch_changes(records: list[FileOwnership], branch_id: int) -> dict[str, FileState]:
    """Every path where the branch's version differs from the base."""
    changes = {}
    for rec in records:
        if touches(rec, branch_id):
            state = branch_state(committable(rec, branch_id), branch_id)
            if state != rec.base:
                changes[rec.path] = state
    return changes


def _default_message(branch: BranchRow, paths: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in paths[:20])
    more = f"\n- … and {len(paths) - 20} more" if len(paths) > 20 else ""
    return f"{branch.name}: update {len(paths)} file{'s' if len(paths) != 1 else ''}\n\n{listed}{more}"


def _trailers(ws: Workspace, branch: BranchRow) -> str:
    sessions = [s.id for s in ws.store.sessions() if s.branch_id == branch.id]
    lines = [f"Vbranch-Session: {s}" for s in sessions]
    return "\n\n" + "\n".join(lines) + "\n" if lines else "\n"


def rebuild_workspace(ws: Workspace, repo, records: list[FileOwnership]) -> str:
    """Point the workspace ref at a commit merging the applied branches; sync the index."""
    new, old = build_workspace(ws, repo, records, ws.base)
    if new == old:
        return old
    gitcli.update_refs(ws.top, [(WORKSPACE_REF, new, old)], "vbranch: workspace")
    base_tree = gitops.tree_of(repo, ws.base)
    gitops.sync_index(ws.top, gitops.tree_of(repo, old) if old else base_tree, gitops.tree_of(repo, new), [r.path for r in records])
    return new


def build_workspace(
    ws: Workspace, repo, records: list[FileOwnership], base: str | None, heads: dict[str, str | None] | None = None,
    applied: set[int] | None = None, branches: list[BranchRow] | None = None,
) -> tuple[str, str | None]:
    """The workspace commit merging the applied branches over `base`, written but not pointed at.

    `heads` overrides branch refs (ref -> commit) with values not yet in git;
    `applied` overrides which branch ids are applied and `branches` the branch
    rows (all three: a state not yet in git and the store). Returns (new, current
    workspace commit); new is the current one when nothing differs.
    """
    heads = heads or {}
    base_tree = gitops.tree_of(repo, base)
    paths = [rec.path for rec in records]
    parents_heads = []
    versions: dict[str, list[tuple[int, FileState]]] = defaultdict(list)
    for branch in ws.store.branches() if branches is None else branches:
        head = heads[branch.ref] if branch.ref in heads else gitops.head_of(repo, branch.ref)
        on = branch.applied if applied is None else branch.id in applied
        if not on or head is None or head == base:
            continue
        parents_heads.append(head)
        head_tree = gitops.tree_of(repo, head)
        for path in gitops.differing(base_tree, head_tree, paths):
            versions[path].append((branch.id, gitops.state_at(repo, head_tree, path)))
    by_path = {rec.path: rec for rec in records}
    changes = {
        path: _merge_states(gitops.state_at(repo, base_tree, path), found, by_path.get(path))
        for path, found in versions.items()
    }
    tree = gitops.edit_tree(repo, base_tree, changes)
    parents = ([base] if base else []) + parents_heads
    old = gitops.head_of(repo, WORKSPACE_REF)
    if old and repo[old].tree_id == tree and [str(p) for p in repo[old].parent_ids] == parents:
        return old, old
    return gitops.make_commit(repo, tree, parents, WORKSPACE_MESSAGE), old


WORKSPACE_MESSAGE = """vbranch workspace

This commit merges the applied virtual branches so that `git status` shows only
uncommitted work. Do not commit on it: use `vbranch commit`, or `vbranch
teardown` to return to your branch.
"""


def _merge_states(base: FileState, found: list[tuple[int, FileState]], rec: FileOwnership | None) -> FileState:
    """One path's content in the workspace: every branch's committed change to it."""
    states = [state for _, state in found]
    if len(set(states)) == 1:
        return states[0]
    if all(lines_eligible(base, s) for s in states):
        order = _owner_order(rec)
        ranked = sorted(found, key=lambda f: order.get(f[0], len(order) + f[0]))
        merged = merge_versions(split_lines(base.data), [split_lines(s.data) for _, s in ranked])
        if merged is not None:
            return FileState(True, base.mode, b"".join(merged))
    return base  # branches disagree: show the whole change as uncommitted


def _owner_order(rec: FileOwnership | None) -> dict[int, int]:
    """Branches in the order their lines appear in the file, to place same-spot insertions."""
    order: dict[int, int] = {}
    if rec is not None and rec.items is not None:
        for op, owners in rec.items:
            for owner in owners:
                if op == "I" and owner != UNATTRIBUTED:
                    order.setdefault(owner, len(order))
    return order

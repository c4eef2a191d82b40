"""The split engine: one commit per branch, built in memory, and the workspace commit.

A branch's tree is the base tree plus only the changes that branch owns; its
commit goes on the branch's real ref with a compare-and-swap update. The
workspace commit that HEAD points at merges the applied branches over the
base, so plain `git status` shows only uncommitted work. No working file is
touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vbranch.core.merge import branch_state, committable, touches
from vbranch.core.ownership import UNATTRIBUTED, Conflict, FileOwnership, FileState, conflicts
from vbranch.git import gitcli
from vbranch.ops import blobmerge
from vbranch.ops.intent import Intent, Kind, RefUpdate
from vbranch.state.store import BranchRow
from vbranch.state.workspace import WORKSPACE_REF, Workspace, require_branch


@dataclass
class CommitReport:
    committed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # branch, commit, paths
    unchanged: list[str] = field(default_factory=list)
    # Contested changes a branch shares: left out of its commit (the rest commits) until settled.
    held_back: dict[str, list[Conflict]] = field(default_factory=dict)
    unapplied: list[str] = field(default_factory=list)  # named but unapplied: not committed
    # branch id -> (head, base, {path: digest or None}, replace all): for store.set_commit_marks
    marks: dict[int, tuple] = field(default_factory=dict, repr=False)


def commit(ws: Workspace, names: list[str] | None, message: str | None, at: str) -> CommitReport:
    """Commit the named branches (all applied ones for None) from their owned changes."""
    from vbranch.ops.oplog import has_pending
    from vbranch.record.recording import prefetch_fold

    if not has_pending(ws):  # (an interrupted operation is finished first, and may change files)
        prefetch_fold(ws)  # git status runs while pygit2 loads
    try:
        return _commit(ws, names, message, at)
    finally:
        gitcli.drop_prefetch(ws.top)


def _commit(ws: Workspace, names: list[str] | None, message: str | None, at: str) -> CommitReport:
    """Fold, plan, then carry out; only the fold and the carrying out hold the state lock.

    A Stop's commit spent ~150 ms planning with the lock held, and every other session's hooks
    waited. Now the fold ends with a snapshot of the store (a read transaction) and the lock is
    let go: the branch commits and the workspace commit are built from that snapshot while
    hooks go on. Under the lock again, the plan stands if no operation was logged since: a
    hook's change recorded meanwhile is one the commit did not see, as if made just after it
    (the commit marks hold the digests the plan read, so the next commit takes it). Commits of
    other branches meanwhile moved the workspace: only it is built again, from the new one.
    Any other operation (a landing, an undo, a claim, a commit of the same branch) may have
    moved what the plan read: it is planned again under the lock, as a commit always was.
    """
    from vbranch.git import gitops
    from vbranch.ops.operation import operation, up_to_date
    from vbranch.record.recording import fold_unseen

    repo = gitops.open_repo(ws.top)
    with up_to_date(ws, at):
        seen = ws.store.last_op_id()
        snapshot = ws.store.snapshot()
    with snapshot:
        plan = _plan(ws, repo, names, message)
    with operation(ws, Kind.COMMIT, at, fold=False) as tx:
        later = ws.store.ops_after(seen)
        if any(kind != Kind.COMMIT or plan.refs & set(detail.get("refs", ())) for kind, detail in later):
            fold_unseen(ws, at)
            plan = _plan(ws, repo, names, message)
        elif later and plan.updates:
            with gitops.batch(repo):
                plan.workspace = build_workspace(ws, repo, Records(store=ws.store), ws.base, plan.heads())
        return _carry_out(ws, tx, plan)


@dataclass
class _Plan:
    report: CommitReport
    updates: list[RefUpdate]
    workspace: tuple[str, str | None] | None  # (new, current) workspace commit, when any branch moves
    refs: set[str]  # of every branch planned: a commit of one of them meanwhile voids the plan

    def heads(self) -> dict[str, str]:
        return {u.ref: u.new for u in self.updates}


def _plan(ws: Workspace, repo, names: list[str] | None, message: str | None) -> _Plan:
    """The named branches' commits (all applied ones for None) and the workspace over them, written."""
    from vbranch.git import gitops

    branches = [require_branch(ws, n) for n in names] if names else [b for b in ws.store.branches() if b.applied]
    # An unapplied branch's lines are out of the files: a commit now would drop them from it.
    parked = [b.name for b in branches if not b.applied]
    branches = [b for b in branches if b.applied]
    records = Records(store=ws.store)
    with gitops.batch(repo):  # every object in one pack, written before the store transaction
        report, updates = plan_commits(ws, repo, branches, records, message)
        plan = _Plan(report, updates, None, {b.ref for b in branches})
        if updates:
            plan.workspace = build_workspace(ws, repo, records, ws.base, plan.heads())
    report.unapplied = parked
    return plan


def _carry_out(ws: Workspace, tx, plan: _Plan) -> CommitReport:
    report = plan.report

    def remember() -> None:  # what each head was built from: the next commit starts there
        for branch_id, (head, base, changed, replace) in report.marks.items():
            ws.store.set_commit_marks(branch_id, head, base, changed, replace)
        ws.store.prune_commit_marks()

    if plan.updates:
        intent = Intent(refs=list(plan.updates))
        intent.point_workspace(*plan.workspace)
        detail = {"branches": [name for name, _, _ in report.committed], "refs": {u.ref: [u.old, u.new] for u in plan.updates}}
        tx.finish(detail, intent, remember)
    elif any(changed or replace for _h, _b, changed, replace in report.marks.values()):
        with ws.store.tx():  # facts about commits that exist already: no operation to log
            remember()
    return report


class Records:
    """The ownership records an operation reads, by path: a list it holds (a landing's, changed in
    memory), or the store's, read as asked. A commit of branches that each build on their own head
    reads only the records that changed since and those that may be contested, not every record the
    branches own; a branch built whole reads them all."""

    def __init__(self, records: list[FileOwnership] | None = None, store=None):
        self._store = store
        self._all = records
        self._by_path = None if records is None else {rec.path: rec for rec in records}
        self._read: dict[str, FileOwnership | None] = {}

    @staticmethod
    def of(records) -> Records:
        return records if isinstance(records, Records) else Records(records)

    def all(self) -> list[FileOwnership]:
        if self._all is None:
            self._all = self._store.files()
            self._by_path = {rec.path: rec for rec in self._all}
        return self._all

    def get(self, path: str) -> FileOwnership | None:
        if self._by_path is not None:
            return self._by_path.get(path)
        if path not in self._read:
            self._read[path] = self._store.file(path)
        return self._read[path]

    def contested(self) -> list[FileOwnership]:
        """Every record holding a contested change or whole file (all that `conflicts` looks at)."""
        found = self._store.contested_files() if self._all is None else self._all
        return [rec for rec in found if rec.contested]


def plan_commits(ws: Workspace, repo, branches: list[BranchRow], records: Records | list[FileOwnership], message: str | None,
                 base: str | None = None, heads: dict[str, str] | None = None):
    """Each branch's next commit, written to the object database: (report, ref updates).

    A branch whose head is the one its marks (store.commit_marks) were taken at
    is built on that head along the records whose digest changed since: a branch
    with nothing new costs a comparison of digests. Otherwise (first commit, a
    landing or undo moved the head, the base moved) it is built whole from the base.
    `base` and `heads` (ref -> commit) stand for the store's base and the refs where a
    caller has moved them in memory only (landing several branches at once).
    """
    from vbranch.git import gitops

    records = Records.of(records)
    contested = conflicts(records.contested())
    base = ws.base if base is None else base
    base_tree = gitops.tree_of(repo, base)
    base_key = base or ""
    digests = ws.store.raw_digests()
    report = CommitReport()
    updates = []
    for branch in branches:
        mine = [c for c in contested if branch.id in c.owners]
        if mine:  # ambiguity holds back only its own lines: a branch's tree has only what it owns alone
            report.held_back[branch.name] = mine
        head = heads[branch.ref] if heads and branch.ref in heads else gitops.head_of(repo, branch.ref)
        head_tree = gitops.tree_of(repo, head) if head else base_tree
        known = ws.store.commit_marks(branch.id)
        if known is not None and known[0] == (head or "") and known[1] == base_key:
            marks = known[2]
            dirty = [p for p, d in digests.items() if marks.get(p) != d] + [p for p in marks if p not in digests]
            changes = {}
            for path in dirty:
                rec = records.get(path)
                state = _version(rec, branch.id) if rec is not None else None
                if state is None:  # the base's own content there, as the base tree holds it
                    state = gitops.entry_blob(base_tree, path)
                if gitops.differs_at(repo, head_tree, path, state):
                    changes[path] = state
            tree = gitops.edit_tree(repo, head_tree, changes) if changes else head_tree.id
            new_marks, replace = {p: digests.get(p) for p in dirty}, False
        else:
            changes = branch_changes(records.all(), branch.id)
            tree = gitops.edit_tree(repo, base_tree, changes)
            gitops.remember_edit(repo, base_tree, tree, changes)  # a first commit's paths; the landing's base diff
            new_marks, replace = dict(digests), True
        if tree == head_tree.id:
            report.unchanged.append(branch.name)
            report.marks[branch.id] = (head or "", base_key, new_marks, replace)
            continue
        if replace:
            paths = gitops.changed_paths(repo, head_tree, repo[tree])
        else:  # built along `changes`, each of which differs from the head: exactly those paths
            paths = sorted(changes)
            gitops.remember_edit(repo, head_tree, tree, changes)
        text = message or _default_message(branch, paths)
        new = gitops.make_commit(repo, tree, [head] if head else [], text + _trailers(ws, branch))
        updates.append(RefUpdate(branch.ref, new, head))
        report.committed.append((branch.name, new, paths))
        report.marks[branch.id] = (new, base_key, new_marks, replace)
    return report, updates


def _version(rec: FileOwnership, branch_id: int) -> FileState | None:
    """The branch's version of one record; None where it is the base's."""
    if not touches(rec, branch_id):
        return None
    state = branch_state(committable(rec, branch_id), branch_id)
    return None if state == rec.base else state


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


def build_workspace(
    ws: Workspace, repo, records: Records | list[FileOwnership], base: str | None, heads: dict[str, str | None] | None = None,
    applied: set[int] | None = None, branches: list[BranchRow] | None = None,
) -> tuple[str, str | None]:
    """The workspace commit merging the applied branches over `base`, written but not pointed at.

    `heads` overrides branch refs (ref -> commit) with values not yet in git;
    `applied` overrides which branch ids are applied and `branches` the branch
    rows (all three: a state not yet in git and the store). Returns (new, current
    workspace commit); new is the current one when nothing differs.

    When the current workspace commit merges exactly the current base and heads
    (its parents say so), the new one is its tree edited along the paths where
    the base or a branch's head changed (git's tree diff, which skips equal
    subtrees): O(change). Otherwise it is built from the base.
    """
    from vbranch.git import gitops

    heads = heads or {}
    base_tree = gitops.tree_of(repo, base)
    contributing: dict[int, str] = {}  # applied branch id -> head that differs from the base
    for branch in ws.store.branches() if branches is None else branches:
        head = heads[branch.ref] if branch.ref in heads else gitops.head_of(repo, branch.ref)
        on = branch.applied if applied is None else branch.id in applied
        if on and head is not None and head != base:
            contributing[branch.id] = head
    parents = ([base] if base else []) + list(contributing.values())
    old = gitops.head_of(repo, WORKSPACE_REF)
    head_trees = {bid: gitops.tree_of(repo, head) for bid, head in contributing.items()}
    paths = _changed_since(ws, repo, old, base_tree, head_trees)
    if paths is None:  # built whole: every path a branch changed
        start = base_tree
        paths = set()
        for tree in head_trees.values():
            paths.update(gitops.changed_paths(repo, base_tree, tree))
    else:
        start = gitops.tree_of(repo, old)
    records = Records.of(records)
    changes = {}
    for path in paths:
        base_key = gitops.entry_key(base_tree, path)
        keys = {bid: key for bid, tree in head_trees.items() if (key := gitops.entry_key(tree, path)) != base_key}
        if len(set(keys.values())) <= 1:  # one version (or none): the blob as it is, nothing read or written
            key = next(iter(keys.values()), base_key)
            changes[path] = gitops.ABSENT if key is None else gitops.Blob(*key)
            continue
        order = _owner_order(records.get(path))
        ranked = sorted(keys, key=lambda bid: order.get(bid, len(order) + bid))
        changes[path] = blobmerge.merged_versions(repo, base_key, [keys[bid] for bid in ranked])
    tree = gitops.edit_tree(repo, start, changes)
    # The index follows from `start` along these paths (IndexSync): no tree diff needed for it.
    gitops.remember_edit(repo, start, tree, changes)
    if old and repo[old].tree_id == tree and [str(p) for p in repo[old].parent_ids] == parents:
        return old, old
    return gitops.make_commit(repo, tree, parents, WORKSPACE_MESSAGE), old


def _changed_since(ws: Workspace, repo, old: str | None, base_tree, head_trees: dict) -> set[str] | None:
    """Paths where the base or a branch's contribution differs from what the workspace commit `old`
    merges; None when `old` is not the merge of the current base and heads (build whole)."""
    from vbranch.git import gitops

    if old is None:
        return None
    old_base = ws.base
    current: dict[int, str] = {}
    for branch in ws.store.branches():
        head = gitops.head_of(repo, branch.ref)
        if branch.applied and head is not None and head != old_base:
            current[branch.id] = head
    if [str(p) for p in repo[old].parent_ids] != ([old_base] if old_base else []) + list(current.values()):
        return None
    old_base_tree = gitops.tree_of(repo, old_base)
    paths = set(gitops.changed_paths(repo, old_base_tree, base_tree))
    for bid in set(current) | set(head_trees):
        before = gitops.tree_of(repo, current[bid]) if bid in current else old_base_tree
        after = head_trees.get(bid, base_tree)
        if before.id != after.id:
            paths.update(gitops.changed_paths(repo, before, after))
    return paths


WORKSPACE_MESSAGE = """vbranch workspace

This commit merges the applied virtual branches so that `git status` shows only
uncommitted work. Do not commit on it: use `vbranch commit`, or `vbranch
teardown` to return to your branch.
"""


def _owner_order(rec: FileOwnership | None) -> dict[int, int]:
    """Branches in the order their lines appear in the file, to place same-spot insertions."""
    order: dict[int, int] = {}
    if rec is not None and rec.items is not None:
        for op, owners in rec.items:
            for owner in owners:
                if op == "I" and owner != UNATTRIBUTED:
                    order.setdefault(owner, len(order))
    return order

"""Landing branches on the target one at a time, and following the target when it moves.

`land` = commit the branch's owned changes, move the target to them (fast
forward, a merge commit or one squashed commit), then measure everything
else against the new base: the landed branch's lines become base lines
(ownership.rebase_record), the other branches' commits are replayed onto the
new base, and the workspace commit is rebuilt. No working file changes: the
landed lines were already there.

`land_together` = several branches landed in order as one operation, the same result as
landing each in turn, with each branch rebased once instead of once per landing before it.

`update` = the target moved outside vbranch. Its new commits are merged into
each record (ownership.rebase_onto) and into each branch's commits; branches
whose whole change is already upstream are retired. This is the one command
that writes working files, and only files without a conflicting local change,
none under another session's write lease, each replaced atomically.

`verify.land_verified` (land --verify) plans the landing here (`plan_land`) without moving
anything (plan_land), CMD runs on that tree in a scratch checkout, and `_land(expect=plan)`
moves the target only onto the same target commit with the same tree.

Either refuses before changing anything when a change would conflict, naming
files, lines and branches. Both are operations (operation.py): `plan_update` and
`_land` compute the new state writing only objects, `NewBase.save` is the store
change both make, and oplog.perform logs it with the intent, so a crash at any
point is finished by the next command, and both can be undone.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from vbranch.core.merge import branch_state, committable, merge_states, touches
from vbranch.core.ownership import (
    ABSENT,
    UNATTRIBUTED,
    Conflict,
    FileOwnership,
    RebaseConflict,
    conflicts,
    new_record,
    rebase_onto,
    rebase_record,
)
from vbranch.errors import Blocked, LockTimeout, StateError, UsageError
from vbranch.git import gitcli, gitops
from vbranch.git.worktree import read_state
from vbranch.ops import blobmerge
from vbranch.ops.committing import branch_changes, build_workspace, plan_commits
from vbranch.ops.intent import Intent, Kind, RefUpdate
from vbranch.ops.operation import operation, up_to_date
from vbranch.ops.oplog import file_write
from vbranch.record.recording import fold_unseen
from vbranch.state import leases
from vbranch.state.lock import StateLock
from vbranch.state.store import BranchRow, pack_record, unpack_record
from vbranch.state.workspace import WORKSPACE_REF, Workspace, owner_label, require_branch

MODES = ("ff", "merge", "squash")


class Conflicted(Blocked):
    """A landing or update would mix changes that overlap: nothing was changed."""


@dataclass
class LandReport:
    branch: str
    target: str
    old: str | None
    new: str
    mode: str
    committed: str | None = None  # the commit made of the branch's uncommitted changes
    rebased: dict[str, str] = field(default_factory=dict)  # branch -> new head
    warnings: list[str] = field(default_factory=list)
    verified: str | None = None  # the command that passed on the landed tree (--verify)


@dataclass
class UpdateReport:
    target: str
    old: str | None
    new: str | None
    written: list[str] = field(default_factory=list)
    retired: dict[str, str] = field(default_factory=dict)  # branch -> how it was found upstream
    rebased: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@contextmanager
def one_landing(ws: Workspace, what: str):
    """The landing lock, held for the whole landing (or update): a second one waits, then is told who
    holds it. Not the state lock: a landing plans with that let go (see _land)."""
    info = ws.state_dir / "landing"
    lock = StateLock(ws.state_dir / "landing-lock", ws.lock.timeout)
    try:
        lock.__enter__()
    except LockTimeout:
        try:
            holder = info.read_text().strip()
        except OSError:
            holder = "another vbranch command"
        raise LockTimeout(
            f"{holder} is still running; only one landing or update runs at a time",
            hint="wait for it to finish and run the command again",
        ) from None
    try:
        info.write_text(f"{what} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})\n")
        yield
    finally:
        try:
            info.unlink()
        except OSError:
            pass
        lock.__exit__(None, None, None)


@dataclass
class LandPlan:
    """What landing a branch would make, computed without moving anything (for --verify)."""

    branch: str
    target: str
    base: str | None
    head: str  # the branch's head (before any commit of its uncommitted changes)
    new: str  # the commit the target would move to (an unreachable object until landed)
    tree: str


def land(ws: Workspace, name: str, mode: str, at: str) -> LandReport:
    """Integrate one branch into the target and rebase everything else onto it.

    `verify.land_verified` lands only if a command passes on the exact tree the target would get.
    """
    check_mode(mode)
    return _land(ws, name, mode, at)


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"unknown landing mode {mode!r}", hint="--ff-only, --merge or --squash")


def plan_land(ws: Workspace, name: str, mode: str, at: str, fold: bool = True) -> LandPlan:
    """The landing's result, computed under the lock, nothing moved (only unreachable objects written).

    `fold=False`: the working tree's unreported changes are not folded in first (a queue folds
    them in once, before its first branch; what hooks record meanwhile is in the store anyway).
    """
    check_mode(mode)
    repo = gitops.open_repo(ws.top)
    with up_to_date(ws, at, fold):
        plan = _plan(ws, repo, name, mode)
    return LandPlan(name, plan.target, plan.base, gitops.head_of(repo, plan.row.ref) or plan.head, plan.new, plan.tree)


def _land(ws: Workspace, name: str, mode: str, at: str, expect: LandPlan | None = None, fold: bool = True) -> LandReport:
    """Land `name` (see the module doc); `expect`: refuse unless it computes that plan.

    `fold`: fold in the shared tree's unreported changes first (a `git status` of the whole tree).
    A verified landing's final step does not: it lands what was verified, a change a hook recorded
    to the branch meanwhile changes its tree and refuses, and a change nobody reported is folded by
    the next command, measured against the new base, as one made just after the landing would be.

    Planned with the state lock let go, as a commit is (committing._commit): a landing planned
    with it held kept every session's hooks waiting for a median 270-400 ms under load. The
    landing lock keeps it the only landing. The fold ends with a snapshot of the store; the
    landed branch's commit, the target's new commit, the other branches' rebases and the new
    workspace are planned and written from it. Under the lock again (`_settle`), the plan stands
    unless something it rests on moved: then it is planned again there, as it always was.
    """
    repo = gitops.open_repo(ws.top)
    with one_landing(ws, f"landing {name}"):
        with up_to_date(ws, at, fold):
            seen = ws.store.last_op_id()
            snapshot = ws.store.snapshot()
        with snapshot:
            plan = _plan(ws, repo, name, mode, expect)
        with operation(ws, Kind.LAND, at, fold=False) as tx:
            if not _settle(ws, repo, plan, seen):
                if fold:
                    fold_unseen(ws, at)
                plan = _plan(ws, repo, name, mode, expect)
            moved = NewBase(plan.new, plan.records, _rebased_shelf(ws, plan.row.id), {plan.row.id: "landed"})
            intent = Intent(refs=[*plan.updates, RefUpdate(plan.target, plan.new, plan.base), *plan.ref_moves()])
            intent.point_workspace(*plan.workspace)
            detail = {"branch": name, "mode": mode, "target": plan.target, "old": plan.base, "new": plan.new, "head": plan.head}
            tx.finish(detail, intent, lambda: moved.save(ws.store))
    committed = plan.updates[0].new if plan.updates else None
    report = LandReport(name, plan.target, plan.base, plan.new, mode, committed, warnings=tx.warnings)
    report.rebased = {ref.removeprefix("refs/heads/"): new for ref, new in plan.rebased.items()}
    return report


@dataclass
class _Landing:
    """A landing planned, nothing moved yet: what it read, and the objects it wrote."""

    row: BranchRow
    target: str
    base: str | None
    head: str  # the landed head: the branch's head, or its commit of its uncommitted changes
    tree: str  # the landed head's tree
    new: str  # the commit the target moves to
    updates: list[RefUpdate]  # the landed branch's commit of its uncommitted changes
    read: dict[str, FileOwnership]  # every record the plan read, by path
    digests: dict[str, str]  # ... and their digests
    records: dict[str, FileOwnership]  # the records the landed branch touched, rebased onto the new target
    started: dict[str, str | None] = field(default_factory=dict)  # ref -> each other branch's head, as rebased
    rebased: dict[str, str] = field(default_factory=dict)  # ref -> its new head
    workspace: tuple[str, str | None] | None = None  # (new, current) workspace commit

    def ref_moves(self) -> list[RefUpdate]:
        return [RefUpdate(ref, new, self.started[ref]) for ref, new in self.rebased.items() if new != self.started[ref]]


def _plan(ws: Workspace, repo, name: str, mode: str, expect: LandPlan | None = None) -> _Landing:
    """Landing `name`, planned from the store as it reads now: objects written, nothing moved."""
    row = require_branch(ws, name)
    target, base = _target(ws)
    records = ws.store.files()
    _refuse_unlandable(ws, row, records)
    # Every object the landing writes (each rebased branch's blobs, trees and commits) goes into
    # one pack when the block ends, before the store transaction: not hundreds of loose files.
    with gitops.batch(repo):
        _report, updates = plan_commits(ws, repo, [row], records, None)
        head = updates[0].new if updates else gitops.head_of(repo, row.ref)
        if head is None or head == base:
            raise UsageError(f"{name} has nothing to land", hint="`vbranch status` shows what each branch owns")
        _refuse_off_base(repo, row, base, head)
        head_tree = gitops.tree_of(repo, head).id
        new = _target_commit(repo, mode, name, base, head, head_tree)
        if expect is not None:
            _refuse_unverified(expect, name, target, base, str(head_tree))
        # Only the records the landed branch has items in change (rebase_record leaves the others as
        # they are): those alone are rebased and written, so landing costs what the branch touched.
        rebased = {rec.path: rebase_record(rec, row.id) for rec in records if touches(rec, row.id)}
        plan = _Landing(row, target, base, head, str(head_tree), new, updates, {rec.path: rec for rec in records},
                        ws.store.raw_digests(), rebased)
        _rebase_others(ws, repo, plan, [b for b in ws.store.branches() if b.id != row.id])
    return plan


def _rebase_others(ws: Workspace, repo, plan: _Landing, branches: list[BranchRow]) -> None:
    """`branches` rebased onto the plan's new target, and the workspace built over them all (in the plan)."""
    started = {b.ref: gitops.head_of(repo, b.ref) for b in branches}
    rebased, clashes = rebase_branches(repo, branches, plan.base, plan.new, plan.row.name, heads=started)
    if clashes:
        raise Conflicted(
            f"landing {plan.row.name} would conflict with other branches' commits (nothing was changed):\n  " + "\n  ".join(clashes),
            hint="a branch's last commit still holds lines another branch now owns: commit that branch "
            "(`vbranch commit BRANCH`) so its commit matches its lines, then land again",
        )
    plan.started.update(started)
    plan.rebased.update(rebased)
    applied = {b.id for b in ws.store.branches() if b.applied and b.id != plan.row.id}
    records = [plan.records.get(path, rec) for path, rec in plan.read.items()]
    plan.workspace = build_workspace(ws, repo, records, plan.new, plan.rebased, applied)


def _settle(ws: Workspace, repo, plan: _Landing, seen: int) -> bool:
    """Under the lock again: whether a plan made from a snapshot still holds, brought up to date.

    Hooks recorded changes meanwhile: a record the landed branch does not touch is not rewritten
    by landing and stands; one it touches is rebased again as it is now if it still holds the
    version the plan lands (others' lines changed), else the plan is void. Other branches committed,
    or new sessions' branches began, at the old base: those alone are rebased again, and the
    workspace built again. Any other operation logged meanwhile (an undo, an assign, the
    landed branch's own commit...), or the target moved: False, plan again.
    """
    later = ws.store.ops_after(seen)
    if any(kind != Kind.COMMIT or plan.row.ref in detail.get("refs", ()) for kind, detail in later):
        return False
    if gitcli.rev_parse(ws.top, plan.target) != plan.base:
        return False
    now = ws.store.raw_digests()
    for path in {p for p in now.keys() | plan.digests.keys() if now.get(p) != plan.digests.get(p)}:
        before, after = plan.read.get(path), ws.store.file(path)
        if not any(rec is not None and touches(rec, plan.row.id) for rec in (before, after)):
            continue  # a landing does not rewrite it
        if before is None or after is None or not _lands_the_same(before, after, plan.row.id):
            return False
        plan.records[path] = rebase_record(after, plan.row.id)
    others = [b for b in ws.store.branches() if b.id != plan.row.id]
    moved = [b for b in others if b.ref not in plan.started or gitops.head_of(repo, b.ref) != plan.started[b.ref]]
    if moved or gitops.head_of(repo, WORKSPACE_REF) != plan.workspace[1]:
        with gitops.batch(repo):
            _rebase_others(ws, repo, plan, moved)
    return True


def _lands_the_same(before: FileOwnership, after: FileOwnership, landed: int) -> bool:
    """Whether a record changed meanwhile (another session's lines in a file the landed branch
    touched) still holds the version of the file the plan lands. A line of it contested meanwhile
    is left out of what it can commit (`committable`): the version differs, and the plan again refuses."""
    return before.base == after.base and (
        branch_state(committable(before, landed), landed) == branch_state(committable(after, landed), landed)
    )


def _refuse_unlandable(ws: Workspace, row: BranchRow, records: list[FileOwnership]) -> None:
    """An unapplied branch, or one sharing a contested change, cannot land (nothing is changed)."""
    if not row.applied:
        raise UsageError(f"{row.name} is unapplied", hint=f"`vbranch apply {row.name}` first")
    mine = [c for c in conflicts(records) if row.id in c.owners]
    if mine:
        raise Blocked(
            f"{row.name} cannot land: it shares changes with other branches:\n  " + "\n  ".join(_describe(ws, mine)),
            hint="give each contested change to one branch with `vbranch assign PATH:START-END BRANCH`, then land again",
        )


def land_together(ws: Workspace, names: list[str], mode: str, at: str) -> list[LandReport]:
    """Land several branches, in order, in one operation: the result of landing each in turn, but
    each branch is rebased once — a queued one onto the target as it stands at its turn, the others
    onto the final target — not once per landing before it (16 queued branches: 15 rebases, not 120).

    All or nothing: where landing them one by one would refuse one of them, or a branch's commits
    clash with the moved target, this refuses the whole and changes nothing (the queue then lands
    them one at a time, holding out the one that fails). One operation: one undo undoes them all.
    """
    check_mode(mode)
    if len(set(names)) != len(names):
        raise UsageError("a branch is named twice", hint="name each branch once, in the order to land them")
    with one_landing(ws, f"landing {', '.join(names)}"), operation(ws, Kind.LAND, at) as tx:
        target, base0 = _target(ws)
        rows = [require_branch(ws, name) for name in names]
        stored = ws.store.files()
        records = list(stored)
        shelf = {(bid, path): (unpack_record(path, saved), unpack_record(path, left)) for bid, path, saved, left in ws.store.shelf()}
        shelf_moved = set()
        repo = gitops.open_repo(ws.top)
        originals = {row.ref: gitops.head_of(repo, row.ref) for row in rows}
        with gitops.batch(repo):
            base, heads, reports = base0, {}, []
            for row in rows:
                _refuse_unlandable(ws, row, records)
                head = _caught_up(repo, row, originals[row.ref], base0, base)
                _report, updates = plan_commits(ws, repo, [row], records, None, base=base, heads={row.ref: head})
                committed = updates[0].new if updates else None
                head = committed or head
                if head is None or head == base:
                    raise UsageError(f"{row.name} has nothing to land", hint="`vbranch status` shows what each branch owns")
                new_target = _target_commit(repo, mode, row.name, base, head, gitops.tree_of(repo, head).id)
                records = [rebase_record(rec, row.id) if touches(rec, row.id) else rec for rec in records]
                for key, (saved, left) in shelf.items():
                    if touches(saved, row.id) or touches(left, row.id):
                        shelf[key] = (rebase_record(saved, row.id), rebase_record(left, row.id))
                        shelf_moved.add(key)
                heads[row.ref] = head
                reports.append(LandReport(row.name, target, base, new_target, mode, committed))
                base = new_target
            landed = {row.id for row in rows}
            others = [b for b in ws.store.branches() if b.id not in landed]
            rebased, clashes = rebase_branches(repo, others, base0, base, names[-1])
            if clashes:
                raise Conflicted(
                    f"landing {', '.join(names)} would conflict with other branches' commits (nothing was changed):\n  "
                    + "\n  ".join(clashes),
                    hint="commit those branches (`vbranch commit BRANCH`) so each commit holds only its own lines, then land again",
                )
            moves = [RefUpdate(ref, head, originals[ref]) for ref, head in heads.items() if head != originals[ref]]
            intent = Intent(refs=[*moves, RefUpdate(target, base, base0), *_ref_moves(repo, rebased)])
            applied = {b.id for b in others if b.applied}
            intent.point_workspace(*build_workspace(ws, repo, records, base, rebased, applied))
        changed = {new.path: new for old, new in zip(stored, records, strict=True) if new is not old}
        shelf_changed = [(bid, path, *shelf[bid, path]) for bid, path in sorted(shelf_moved)]
        moved = NewBase(base, changed, shelf_changed, {row.id: "landed" for row in rows})
        detail = {"branch": ", ".join(names), "branches": names, "mode": mode, "target": target, "old": base0, "new": base}
        tx.finish(detail, intent, lambda: moved.save(ws.store))
    reports[-1].rebased = {ref.removeprefix("refs/heads/"): new for ref, new in rebased.items()}
    reports[-1].warnings = tx.warnings
    return reports


def _caught_up(repo, row: BranchRow, head: str | None, old_base: str | None, base: str | None) -> str | None:
    """The branch's head on `base`: rebased there from `old_base` (where its ref starts) when the
    target moved in memory since (earlier branches of the same landing)."""
    if head is not None and head != old_base:
        _refuse_off_base(repo, row, old_base, head)
    if base == old_base:
        return head
    if head is None or head == old_base:
        return base
    new_head, clashes = rebase_commits(repo, head, old_base, base)
    if clashes:
        raise Conflicted(
            f"{row.name}'s commits conflict with the branches landed before it (nothing was changed):\n  " + "\n  ".join(clashes),
            hint="land it on its own after the others, or commit it so its commit holds only its own lines",
        )
    return new_head


def _refuse_off_base(repo, row: BranchRow, base: str | None, head: str) -> None:
    if not gitops.is_ancestor(repo, base, head):
        raise StateError(
            f"{row.ref} does not start from the base {(base or '')[:12]}",
            hint="it was moved outside vbranch; `vbranch undo` or reset it to a commit after the base",
        )


def _target_commit(repo, mode: str, name: str, base: str | None, head: str, head_tree) -> str:
    """The commit the target moves to: the branch's head itself, a merge commit, or one squashed commit."""
    if mode == "ff":
        return head
    if mode == "merge":
        return gitops.make_commit(repo, head_tree, [p for p in (base, head) if p], f"Merge branch '{name}'\n")
    return gitops.make_commit(repo, head_tree, [base] if base else [], _squash_message(repo, name, base, head))


def _refuse_unverified(expect: LandPlan, name: str, target: str, base: str | None, head_tree: str) -> None:
    """Fail closed: land only the tree that was verified, onto the target it was verified on."""
    if base != expect.base:
        raise StateError(
            f"{target} moved while {name} was being verified ({(expect.base or 'nothing')[:12]} -> {(base or 'nothing')[:12]}); "
            "nothing was landed",
            hint=f"verify and land again: `vbranch land {name} --verify CMD`",
        )
    if head_tree != expect.tree:
        raise StateError(
            f"{name} changed while it was being verified; nothing was landed",
            hint=f"verify and land again: `vbranch land {name} --verify CMD`",
        )


def _rebased_shelf(ws: Workspace, landed: int) -> list[tuple[int, str, FileOwnership, FileOwnership]]:
    """The shelved records the landed branch touches, measured against the new base."""
    shelf = []
    for bid, path, saved, left in ws.store.shelf():
        saved_rec, left_rec = unpack_record(path, saved), unpack_record(path, left)
        if touches(saved_rec, landed) or touches(left_rec, landed):
            shelf.append((bid, path, rebase_record(saved_rec, landed), rebase_record(left_rec, landed)))
    return shelf


@dataclass
class NewBase:
    """The store's side of moving the base (land, update): records and shelved records measured
    against it, and the branches retired (their refs stay, their sessions get a new branch)."""

    base: str
    records: dict[str, FileOwnership]  # path -> record, only those that changed
    shelf: list[tuple[int, str, FileOwnership, FileOwnership]]  # branch id, path, saved, left behind
    retired: dict[int, str]  # branch id -> why

    def save(self, store) -> None:
        for rec in self.records.values():
            store.put_file(rec)
        for bid, path, saved, left in self.shelf:
            store.put_shelf(bid, path, pack_record(saved), pack_record(left))
        store.set_meta("base", self.base)
        for bid in self.retired:
            store.delete_branch(bid)


def _ref_moves(repo, heads: dict[str, str]) -> list[RefUpdate]:
    """Each branch ref to its new head, where that differs from where it is."""
    moves = []
    for ref, new in heads.items():
        now = gitops.head_of(repo, ref)
        if new != now:
            moves.append(RefUpdate(ref, new, now))
    return moves


def update(ws: Workspace, at: str) -> UpdateReport:
    """Rebase the branches onto a target that moved outside vbranch; retire the integrated ones."""
    with one_landing(ws, "vbranch update"), operation(ws, Kind.UPDATE, at) as tx:
        target, base = ws.target, ws.base
        new = gitcli.rev_parse(ws.top, target) if target else None
        if new is None:
            raise StateError(f"the target {target or '(none)'} names no commit", hint="`vbranch init --target BRANCH` sets one")
        report = UpdateReport(target, base, new, warnings=tx.warnings)
        if new == base:
            return report
        plan = plan_update(ws, target, base, new)
        report.retired = {ws.store.branch_by_id(bid).name: how for bid, how in plan.moved.retired.items()}
        detail = {"target": target, "old": base, "target_head": new, "retired": sorted(report.retired)}
        tx.finish(detail, plan.intent, lambda: plan.moved.save(ws.store))
    report.written = [w.path for w in plan.intent.writes]
    report.rebased = {ref.removeprefix("refs/heads/"): head for ref, head in plan.rebased.items()}
    return report


@dataclass
class UpdatePlan:
    intent: Intent
    moved: NewBase
    rebased: dict[str, str]  # ref -> new head of each branch that stays


def plan_update(ws: Workspace, target: str, base: str | None, new: str) -> UpdatePlan:
    """Everything measured against the target's new commit `new`; refuses (nothing changed) on any overlap.

    Writes only objects: the files and refs to change are in the returned intent.
    """
    repo = gitops.open_repo(ws.top)
    if not gitops.is_ancestor(repo, base, new):
        raise StateError(
            f"{target} was rewritten: it no longer contains the base {(base or '')[:12]}",
            hint="vbranch follows a target that only moves forward; `vbranch teardown`, then `vbranch init` again",
        )
    records = ws.store.files()
    base_tree, new_tree = gitops.tree_of(repo, base), gitops.tree_of(repo, new)
    upstream = gitops.changed_paths(repo, base_tree, new_tree)
    by_path = {rec.path: rec for rec in records}
    states = {p: gitops.state_at(repo, new_tree, p) for p in set(upstream) | set(by_path)}
    branches = ws.store.branches()
    integrated = integrated_branches(ws, repo, branches, records, base, new, states)
    new_records, writes, clashes = _rebase_records(ws, repo, by_path, upstream, integrated, states, base_tree)
    shelf, shelf_clashes = _rebase_shelf(ws, repo, states, new_tree)
    clashes += shelf_clashes
    if clashes:
        raise Conflicted(
            f"{target}'s new commits overlap local changes (nothing was changed):\n  " + "\n  ".join(_describe_local(ws, clashes)),
            hint="finish or undo the local change to those lines (or move a file that is in the way), "
            "then run `vbranch update` again",
        )
    busy = [w.path for w in writes if leases.live(ws, w.path)]
    if busy:
        raise StateError(
            f"{', '.join(busy[:5])} {'is' if len(busy) == 1 else 'are'} being written by a session right now",
            hint="run `vbranch update` again in a moment",
        )
    remaining = [b for b in branches if b.id not in integrated]
    rebased, commit_clashes = rebase_branches(repo, remaining, base, new, target.removeprefix("refs/heads/"))
    integrated.update(_emptied(repo, remaining, records, new_records, rebased, base, new))
    remaining = [b for b in branches if b.id not in integrated]
    rebased = {ref: head for ref, head in rebased.items() if ref in {b.ref for b in remaining}}
    if commit_clashes:
        raise Conflicted(
            f"{target}'s new commits conflict with branches' commits (nothing was changed):\n  " + "\n  ".join(commit_clashes),
            hint="commit those branches (`vbranch commit BRANCH`) so each commit holds only its own lines, then update again",
        )
    applied = {b.id for b in remaining if b.applied}
    intent = Intent(refs=_ref_moves(repo, rebased), writes=writes)
    intent.point_workspace(*build_workspace(ws, repo, new_records, new, rebased, applied))
    moved = NewBase(new, {rec.path: rec for rec in new_records}, shelf, integrated)
    return UpdatePlan(intent, moved, rebased)


def _rebase_records(ws: Workspace, repo, by_path: dict, upstream, integrated: dict, states: dict, base_tree):
    """Each record (and each path upstream changed) rebased onto the new target: (records, writes, conflicts).

    The new `known` is the working file's new content: a write wherever it differs.
    A path upstream changed that nobody recorded but that differs here is a conflict.
    """
    clashes: list[Conflict] = []
    new_records: list[FileOwnership] = []
    writes = []
    for path in sorted(set(upstream) | set(by_path)):
        rec = by_path.get(path)
        if rec is None:
            rec = new_record(path, gitops.state_at(repo, base_tree, path))
            working = read_state(ws.top, path)
            if working != rec.known:  # untracked or ignored here, changed upstream
                clashes.append(Conflict(path, (UNATTRIBUTED,), None))
                continue
        try:
            for bid in integrated:
                rec = rebase_record(rec, bid)
            updated = rebase_onto(rec, states[path])
        except RebaseConflict as error:
            clashes += error.conflicts
            continue
        old_known = rec.known  # the working file now
        updated.stat = by_path[path].stat if path in by_path and updated.known == old_known else None
        new_records.append(updated)
        if updated.known != old_known:
            writes.append(file_write(repo, path, old_known, updated.known))
    return new_records, writes, clashes


def _rebase_shelf(ws: Workspace, repo, states: dict, new_tree):
    """Each unapplied branch's saved records rebased onto the new target: (shelf entries, conflicts)."""
    shelf, clashes = [], []
    for bid, path, saved, left in ws.store.shelf():
        state = states.get(path, gitops.state_at(repo, new_tree, path))
        try:
            shelf.append((bid, path, rebase_onto(unpack_record(path, saved), state), rebase_onto(unpack_record(path, left), state)))
        except RebaseConflict as error:
            clashes += [c._replace(owners=(bid,)) for c in error.conflicts]
    return shelf, clashes


def _emptied(repo, branches: list[BranchRow], records, new_records, rebased: dict, base, new) -> dict[int, str]:
    """Applied branches whose every change turned out to be upstream already (several branches'
    work squashed into one upstream commit): nothing of theirs is left, so they retire too."""
    found = {}
    for branch in (b for b in branches if b.applied):
        had = any(touches(rec, branch.id) for rec in records) or gitops.head_of(repo, branch.ref) not in (None, base)
        if had and rebased.get(branch.ref) == new and not any(touches(rec, branch.id) for rec in new_records):
            found[branch.id] = "content"
    return found


def integrated_branches(ws, repo, branches: list[BranchRow], records, base, new, states) -> dict[int, str]:
    """Branches whose whole change (committed and not) is already in the target: id -> how it was found."""
    found = {}
    contested = {o for c in conflicts(records) for o in c.owners}
    base_tree = gitops.tree_of(repo, base)
    for branch in branches:
        if branch.id in contested or not branch.applied:
            continue
        head = gitops.head_of(repo, branch.ref)
        changes = branch_changes(records, branch.id)
        if not changes and (head is None or head == base):
            continue  # nothing to integrate: an empty branch keeps going
        head_tree = gitops.tree_of(repo, head) if head else base_tree
        uncommitted = any(gitops.state_at(repo, head_tree, p) != s for p, s in changes.items())
        if head and head != base and not uncommitted and gitops.is_ancestor(repo, head, new):
            found[branch.id] = "history"
            continue
        if changes and all(
            merge_states(gitops.state_at(repo, base_tree, p), states.get(p, ABSENT), s)[0] == states.get(p, ABSENT)
            for p, s in changes.items()
        ):
            found[branch.id] = "content"
    return found


def rebase_branches(repo, branches: list[BranchRow], old_base: str | None, new_base: str, onto: str,
                    heads: dict[str, str | None] | None = None) -> tuple[dict[str, str], list[str]]:
    """Each branch's commits replayed onto `new_base`: ({ref: new head}, clash descriptions).

    `heads`: each branch's head as the caller read it (else read now)."""
    rebased: dict[str, str] = {}
    clashes: list[str] = []
    # Every branch's replay asks what the new base changed: diffed once (the trees are large, the
    # change is small), then known to gitops.changed_paths for the rest of this command.
    if branches:
        old_tree, new_tree = gitops.tree_of(repo, old_base), gitops.tree_of(repo, new_base)
        gitops.remember_changes(old_tree.id, new_tree.id, gitops.changed_paths(repo, old_tree, new_tree))
    for branch in branches:
        head = heads[branch.ref] if heads is not None else gitops.head_of(repo, branch.ref)
        if head is None or head == old_base:
            rebased[branch.ref] = new_base  # an empty branch simply starts from the new base
            continue
        new_head, found = rebase_commits(repo, head, old_base, new_base)
        if found:
            clashes += [f"{branch.name}: {c} (conflicts with {onto})" for c in found]
        else:
            rebased[branch.ref] = new_head
    return rebased, clashes


def rebase_commits(repo, head: str, old_base: str | None, new_base: str) -> tuple[str | None, list[str]]:
    """The commits old_base..head replayed onto new_base, in memory.

    Each commit is replayed with vbranch's merge (adjacent lines are fine,
    unlike git's); commits that become empty are dropped. The whole branch is
    also merged at once (base -> head into new_base): that result is what the
    branch must hold. When the replay agrees, the history is kept; when it
    does not (a later commit reverted lines that have since moved to another
    branch), the branch becomes one commit holding that result. A clash in
    the whole-branch merge is a real conflict.
    """
    base_tree, new_tree, head_tree = gitops.tree_of(repo, old_base), gitops.tree_of(repo, new_base), gitops.tree_of(repo, head)
    # Only the paths the new base changed can differ from the head (elsewhere the merge is
    # the branch's own content): the work follows the overlap, not the branch's size.
    moved = gitops.changed_paths(repo, base_tree, new_tree)
    whole = {}
    clashes = []
    for path in moved:
        merged, where = _merge_path(repo, base_tree, new_tree, head_tree, path)
        if merged is None:
            clashes.append(f"{path} " + (", ".join(f"base lines {a}-{b}" for a, b in where) if where else "(whole file)"))
        elif gitops.differs_at(repo, head_tree, path, merged):
            whole[path] = merged
    if clashes:
        return None, clashes
    expected = gitops.edit_tree(repo, head_tree, whole)
    gitops.remember_edit(repo, head_tree, expected, whole)  # the workspace build asks what changed: these paths
    chain = gitops.first_parent_chain(repo, head, old_base)
    if chain is not None and len(chain) == 1:  # one commit: its replay is the whole-branch merge itself
        replayed = new_base if expected == new_tree.id else gitops.replay_commit(repo, head, expected, new_base)
    else:
        replayed = _replay(repo, head, old_base, new_base, moved)
    if replayed is not None and gitops.tree_of(repo, replayed).id == expected:
        return replayed, []
    if expected == new_tree.id:
        return new_base, []
    chain = gitops.first_parent_chain(repo, head, old_base) or [head]
    subjects = "\n".join(f"- {gitops.message_of(repo, c).splitlines()[0]}" for c in chain if gitops.message_of(repo, c).strip())
    message = f"{head[:12]} rebased as one commit\n\nThe commits it was made of:\n{subjects}\n"
    return gitops.make_commit(repo, expected, [new_base], message), []


def _replay(repo, head: str, old_base: str | None, new_base: str, moved: list[str]) -> str | None:
    """Each commit of the branch onto the new base. Each replayed commit's tree is the original's
    with only the `moved` paths (those the new base changed) merged: elsewhere the replayed
    parent equals the original parent, so the original's content stands."""
    chain = gitops.first_parent_chain(repo, head, old_base)
    if chain is None:
        return None
    parent = new_base
    for oid in chain:
        old_parent = gitops.parent_of(repo, oid)
        before, after, onto = gitops.tree_of(repo, old_parent), gitops.tree_of(repo, oid), gitops.tree_of(repo, parent)
        changes = {}
        for path in moved:
            merged, _where = _merge_path(repo, before, onto, after, path)
            if merged is None:
                return None
            if gitops.differs_at(repo, after, path, merged):
                changes[path] = merged
        tree = gitops.edit_tree(repo, after, changes)
        if tree != onto.id:
            parent = gitops.replay_commit(repo, oid, tree, parent)
    return parent


def _merge_path(repo, base, ours, theirs, path: str):
    """merge_states of one path of three trees; where at most one side changed it, the blob as
    it is (compared by id: nothing read or written). Only a path both changed is merged, and
    its merge is written as a blob at once (the caller compares it by id, then puts it in a tree)."""
    b, o, t = gitops.entry_key(base, path), gitops.entry_key(ours, path), gitops.entry_key(theirs, path)
    if o == t or t == b:
        return (ABSENT if o is None else gitops.Blob(*o)), None
    if o == b:
        return (ABSENT if t is None else gitops.Blob(*t)), None
    merged, where = blobmerge.merged_three(repo, b, o, t)
    return (gitops.stored(repo, merged) if merged is not None and merged.exists else merged), where


def _target(ws: Workspace) -> tuple[str, str | None]:
    target, base = ws.target, ws.base
    if not target:
        raise UsageError("no target branch is recorded", hint="`vbranch teardown`, then `vbranch init --target BRANCH`")
    now = gitcli.rev_parse(ws.top, target)
    if now != base:
        raise StateError(
            f"{target} moved since vbranch last saw it ({(base or 'nothing')[:12]} -> {(now or 'nothing')[:12]})",
            hint="run `vbranch update` to bring its new commits in, then land",
        )
    return target, base


def _squash_message(repo, name: str, base: str | None, head: str) -> str:
    chain = gitops.first_parent_chain(repo, head, base) or [head]
    subjects = [gitops.message_of(repo, c).splitlines()[0] for c in chain if gitops.message_of(repo, c).strip()]
    body = "\n".join(f"- {s}" for s in subjects)
    return f"{name} ({len(chain)} commit{'s' if len(chain) != 1 else ''} squashed)\n\n{body}\n"


def _who(ws: Workspace, owners) -> str:
    sessions = ws.store.sessions()
    return " and ".join(owner_label(ws, owner, sessions) for owner in owners)


def _describe(ws: Workspace, found: list[Conflict]) -> list[str]:
    return [
        f"{c.path} {'lines %d-%d' % c.lines if c.lines else '(whole file or removed lines)'}: {_who(ws, c.owners)}"
        for c in found
    ]


def _describe_local(ws: Workspace, found: list[Conflict]) -> list[str]:
    out = []
    for c in found:
        where = f"lines {c.lines[0]}-{c.lines[1]}" if c.lines else "(whole file or removed lines)"
        if c.owners == (UNATTRIBUTED,) and c.lines is None:
            out.append(f"{c.path}: a local file nobody owns is in the way")
        else:
            out.append(f"{c.path} {where}: changed here by {_who(ws, c.owners)}")
    return out

"""Undo and restore: bring refs, ownership and branches back to an earlier operation's state.

Three states meet here: the *target* (the snapshot we return to: the state
before the undone operation, or after the restored one), the *reference* (the
state after the latest operation, i.e. what vbranch last made) and the
*current* state (the reference plus whatever sessions recorded since).

- A ref goes to its target value only if it is still at its reference value;
  a ref moved outside vbranch since (someone pushed the target) makes the
  undo refuse, since going back would throw that work away.
- Branch rows and sessions' branches follow the same rule: what changed since
  the reference stays as it is.
- A working file is never discarded. Files that vbranch itself wrote in the
  reverted operations (update, apply, unapply, earlier undos) are written back
  when still exactly as vbranch left them; if such a file changed since, the
  undo refuses and names it. Every other file stays as it is: where it differs
  from the target state, its later changes are kept and reported (with their
  current ownership if the base is the same, else attributed to the sessions
  that recorded them since, or unattributed).
- The workspace commit and the index are rebuilt from the result.

Undo and restore are operations themselves (logged, crash-safe via
oplog.perform), so `vbranch restore` can also return to the state before an
undo. `plan_restore` computes the state to return to (writing only objects);
`RestorePlan.save` and the intent it holds are the operation's effect.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vbranch.core.ownership import UNATTRIBUTED, FileOwnership, FileState, new_record, record_change
from vbranch.errors import StateError, UsageError
from vbranch.git import gitcli, gitops
from vbranch.git.worktree import read_state, signature
from vbranch.ops.committing import build_workspace
from vbranch.ops.intent import Guard, IndexSync, Intent, Kind, RefUpdate, writes_from_json
from vbranch.ops.operation import Operation, operation
from vbranch.ops.oplog import capture, file_write, read_refs, unpack
from vbranch.record.recording import fold_unseen
from vbranch.state.store import BranchRow, OpRow, unpack_record
from vbranch.state.workspace import WORKSPACE_REF, Workspace

_MISSING = object()


@dataclass
class RestoreReport:
    op_id: int
    restored: int  # the operation whose state we returned to (or undid)
    kept: list[str] = field(default_factory=list)  # files changed after the operation, kept as they are
    written: list[str] = field(default_factory=list)  # files vbranch had written, put back
    warnings: list[str] = field(default_factory=list)


def undo(ws: Workspace, at: str) -> RestoreReport:
    """Revert the last operation not yet undone (undo again to go further back)."""
    with operation(ws, Kind.UNDO, at, fold=False) as tx:
        rows = _since_init(ws)
        candidates = [r for r in rows if r.restorable and r.undone_by is None and r.op != Kind.UNDO]
        if not candidates:
            raise UsageError("nothing to undo", hint="`vbranch oplog` lists the operations")
        op = candidates[-1]
        before, _after = ws.store.op_snapshots(op.id)
        return _return_to(tx, unpack(before), op, [r for r in rows if r.id >= op.id], undoing=True)


def restore(ws: Workspace, op_id: int, at: str) -> RestoreReport:
    """Return to the state right after operation `op_id`."""
    with operation(ws, Kind.RESTORE, at, fold=False) as tx:
        rows = _since_init(ws)
        op = next((r for r in rows if r.id == op_id), None)
        if op is None or not op.restorable:
            raise UsageError(
                f"operation {op_id} cannot be restored",
                hint="`vbranch oplog` lists the operations that can (those since the last `vbranch init`)",
            )
        _before, after = ws.store.op_snapshots(op.id)
        return _return_to(tx, unpack(after), op, [r for r in rows if r.id > op.id])


def _since_init(ws: Workspace) -> list[OpRow]:
    rows = ws.store.op_rows()
    last_init = max((r.id for r in rows if r.op == Kind.INIT), default=0)
    return [r for r in rows if r.id > last_init]


def _return_to(tx: Operation, target: dict, op: OpRow, reverted: list[OpRow], undoing: bool = False) -> RestoreReport:
    """Bring the state to the snapshot `target` (before or after `op`) as operation `tx`."""
    ws = tx.ws
    if target["meta"].get("active") != "1":
        raise UsageError("that state has the workspace torn down", hint="`vbranch teardown` does that")
    was_active = ws.active
    if was_active:  # folded in here, not by operation(): only once the target state is known to be usable
        fold_unseen(ws, tx.at)
    plan = plan_restore(ws, target, op.at, reverted)
    if not was_active:
        plan.intent.guard = Guard.INSTALL

    def save() -> None:
        plan.save(ws.store)
        if undoing:
            ws.store.set_undone(op.id, -1)  # the real id is set once the undo is logged

    tx.finish({"of": op.id, "op": op.op}, plan.intent, save)
    if undoing:
        with ws.store.tx():
            ws.store.set_undone(op.id, tx.id)
    return RestoreReport(tx.id, op.id, plan.kept, [w.path for w in plan.intent.writes], tx.warnings)


@dataclass
class RestorePlan:
    """The state to return to, computed against the current one (objects written, nothing else)."""

    intent: Intent
    branches: list[BranchRow]
    sessions: dict[str, int | None]  # session -> its branch
    records: dict[str, FileOwnership]  # path -> record
    shelf: dict[str, list[str]]  # "branch id\tpath" -> [saved, left behind] record hashes (a snapshot's shelf)
    meta: dict[str, str]
    kept: list[str]  # files whose later changes are kept

    def save(self, store) -> None:
        """The store rows of the returned-to state."""
        keep = {row.id for row in self.branches}
        for branch in store.branches():
            if branch.id not in keep:
                store.delete_branch(branch.id)
        for row in self.branches:
            store.put_branch(row)
        for sid, branch_id in self.sessions.items():
            store.set_session_branch(sid, branch_id)
        for path in store.paths():
            if path not in self.records:
                store.delete_file(path)
        for rec in self.records.values():
            store.put_file(rec)
        store.clear_shelf()
        for key, (saved, left) in self.shelf.items():
            branch_id, path = key.split("\t", 1)
            store.put_shelf(int(branch_id), path, store.kept_record(saved), store.kept_record(left))
        for key, value in self.meta.items():
            store.set_meta(key, value)


def plan_restore(ws: Workspace, target: dict, target_at: str, reverted: list[OpRow]) -> RestorePlan:
    """Return to the snapshot `target` (taken at `target_at`), undoing the operations `reverted`.

    Refuses (nothing changed) where a ref moved outside vbranch since, or a file
    vbranch wrote in `reverted` changed since. Writes only objects.
    """
    latest = [r for r in ws.store.op_rows() if r.restorable]
    reference = unpack(ws.store.op_snapshots(latest[-1].id)[1])
    current, _ = capture(ws)
    repo = gitops.open_repo(ws.top)
    target_base = target["meta"].get("base") or None
    branches_now = ws.store.branches()
    refs, live = _refs_back(ws, target, reference, branches_now)
    final_branches = _three_way(
        {r[0]: r for r in target["branches"]}, {r[0]: r for r in reference["branches"]}, {b.id: list(b) for b in branches_now}
    )
    for branch in branches_now:  # made since the reference, still at the base: follow the base back
        if branch.id not in {r[0] for r in reference["branches"]} and live[branch.ref] == ws.base != target_base:
            refs.append(RefUpdate(branch.ref, target_base, ws.base))
    sessions = {}
    for sid, now in current["sessions"].items():
        left, want = reference["sessions"].get(sid, _MISSING), target["sessions"].get(sid, _MISSING)
        chosen = want if (now == left and want is not _MISSING) else now
        sessions[sid] = chosen if chosen in final_branches else None
    written = _rewind_writes(ws, reverted)
    paths = set(target["files"]) | set(reference["files"]) | set(current["files"]) | set(written)
    events = [e for e in ws.store.events() if e[0] >= target_at]
    records, writes, kept = _records_back(ws, repo, target, sorted(paths), written, events, final_branches)
    rows = [BranchRow(r[0], r[1], bool(r[2]), r[3]) for r in final_branches.values()]
    intent = Intent(refs=refs, head=WORKSPACE_REF, writes=writes)
    heads = {u.ref: u.new for u in refs}
    applied = {r.id for r in rows if r.applied}
    intent.point_workspace(*build_workspace(ws, repo, list(records.values()), target_base, heads, applied, rows))
    # The index follows from HEAD's commit: HEAD is off the workspace when a teardown is undone.
    intent.index = IndexSync(gitcli.rev_parse(ws.top, "HEAD"), intent.index.new)
    return RestorePlan(intent, rows, sessions, records, target["shelf"], target["meta"], kept)


def _refs_back(ws: Workspace, target: dict, reference: dict, branches_now: list[BranchRow]):
    """Refs back to the target only where vbranch left them: (updates, every ref's value now).

    A ref moved outside vbranch since the reference stops us: going back would lose that work.
    """
    names = (set(target["refs"]) | set(reference["refs"])) - {WORKSPACE_REF}
    live = read_refs(ws.top, names | {b.ref for b in branches_now})
    moved, refs = [], []
    for ref in sorted(names):
        want, left, now = target["refs"].get(ref), reference["refs"].get(ref), live[ref]
        if now == want:
            continue
        if now != left:
            moved.append(f"{ref} (now {(now or 'deleted')[:12]}, vbranch left it at {(left or 'nothing')[:12]})")
            continue
        refs.append(RefUpdate(ref, want, now))
    if moved:
        raise StateError(
            "refs moved outside vbranch since its last operation; going back would lose that work:\n  " + "\n  ".join(moved),
            hint="if the target moved, `vbranch update` brings its commits in; otherwise put the ref back first",
        )
    return refs, live


def _records_back(ws: Workspace, repo, target: dict, paths: list[str], written: dict, events: list, final_branches: dict):
    """Each path's record in the returned-to state: (records, writes, paths whose later changes are kept).

    A file goes back only where vbranch wrote it (`written`); every other one stays as
    it is, its later change kept: with its current ownership when the base is the same,
    else attributed to the sessions that recorded it since.
    """
    base_tree = gitops.tree_of(repo, target["meta"].get("base") or None)
    records: dict[str, FileOwnership] = {}
    writes, kept = [], []
    for path in paths:
        working = read_state(ws.top, path)
        if working is None:
            continue  # a directory now: its files are their own records
        final = written.get(path, working)
        t_hash = target["files"].get(path)
        want = unpack_record(path, ws.store.kept_record(t_hash)) if t_hash else new_record(path, gitops.state_at(repo, base_tree, path))
        if final == want.known:
            records[path] = want
        else:
            now_rec = ws.store.file(path)
            if now_rec is not None and now_rec.base == want.base and now_rec.known == final:
                records[path] = now_rec
            else:
                owners = sorted({e[2] for e in events if e[3] == path and e[2] in final_branches})
                actor = owners[0] if owners else UNATTRIBUTED
                records[path] = record_change(want, final, actor, tuple(owners[1:]))
            kept.append(path)
        if final != working:
            writes.append(file_write(repo, path, working, final))
    return records, writes, kept


def _three_way(target: dict, reference: dict, current: dict) -> dict:
    """Per key: the target's value where the current one is still the reference's; else the current one."""
    out = {}
    for key in set(target) | set(reference) | set(current):
        value = target.get(key) if current.get(key) == reference.get(key) else current.get(key)
        if value is not None:
            out[key] = value
    return out


def _rewind_writes(ws: Workspace, reverted: list[OpRow]) -> dict[str, FileState]:
    """Each file the reverted operations wrote, rewound through their writes, newest first:
    the content it goes back to. One changed since vbranch wrote it stops the restore."""
    contents: dict[str, FileState] = {}
    clashed: list[str] = []
    for op in reversed(reverted):
        for write in writes_from_json(op.detail.get("writes", [])):
            if write.path in clashed:
                continue
            state = contents[write.path] if write.path in contents else read_state(ws.top, write.path)
            if signature(state) != write.new_sig:
                clashed.append(write.path)
                continue
            contents[write.path] = FileState(True, write.old_mode, gitcli.blob(ws.top, write.old_blob)) if write.old_blob else FileState()
    if clashed:
        raise StateError(
            "files vbranch wrote in those operations have changed since; nothing was restored:\n  " + "\n  ".join(clashed),
            hint="put those files back (or commit that change on its branch and undo it), then try again",
        )
    return contents

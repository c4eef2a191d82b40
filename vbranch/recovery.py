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
undo.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import gitcli, gitops
from .committing import build_workspace
from .errors import StateError, UsageError
from .oplog import capture, file_write, perform, read_refs, recover, unpack
from .ownership import UNATTRIBUTED, FileOwnership, FileState, new_record, record_change
from .recording import snapshot
from .store import BranchRow, OpRow, unpack_record
from .workspace import WORKSPACE_REF, Workspace
from .worktree import read_state, signature

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
    with ws.lock:
        warnings = recover(ws)
        rows = _since_init(ws)
        candidates = [r for r in rows if r.restorable and r.undone_by is None and r.op != "undo"]
        if not candidates:
            raise UsageError("nothing to undo", hint="`vbranch oplog` lists the operations")
        op = candidates[-1]
        before, _after = ws.store.op_snapshots(op.id)
        reverted = [r for r in rows if r.id >= op.id]
        report = _restore(ws, unpack(before), op.at, reverted, at, "undo", {"of": op.id, "op": op.op}, undone=op.id)
        report.restored = op.id
        report.warnings = warnings + report.warnings
        return report


def restore(ws: Workspace, op_id: int, at: str) -> RestoreReport:
    """Return to the state right after operation `op_id`."""
    with ws.lock:
        warnings = recover(ws)
        rows = _since_init(ws)
        op = next((r for r in rows if r.id == op_id), None)
        if op is None or not op.restorable:
            raise UsageError(
                f"operation {op_id} cannot be restored",
                hint="`vbranch oplog` lists the operations that can (those since the last `vbranch init`)",
            )
        _before, after = ws.store.op_snapshots(op.id)
        reverted = [r for r in rows if r.id > op.id]
        report = _restore(ws, unpack(after), op.at, reverted, at, "restore", {"of": op.id, "op": op.op})
        report.restored = op.id
        report.warnings = warnings + report.warnings
        return report


def _since_init(ws: Workspace) -> list[OpRow]:
    rows = ws.store.op_rows()
    last_init = max((r.id for r in rows if r.op == "init"), default=0)
    return [r for r in rows if r.id > last_init]


def _restore(
    ws: Workspace, target: dict, target_at: str, reverted: list[OpRow], at: str, name: str, detail: dict,
    undone: int | None = None,
) -> RestoreReport:
    if target["meta"].get("active") != "1":
        raise UsageError("that state has the workspace torn down", hint="`vbranch teardown` does that")
    was_active = ws.active
    if was_active:
        snapshot(ws, at)
    latest = [r for r in ws.store.op_rows() if r.restorable]
    reference = unpack(ws.store.op_snapshots(latest[-1].id)[1])
    current, _ = capture(ws)
    repo = gitops.open_repo(ws.top)
    target_base = target["meta"].get("base") or None
    current_base = ws.base

    # Refs: back to the target only where vbranch left them; anything moved outside stops us.
    names = (set(target["refs"]) | set(reference["refs"])) - {WORKSPACE_REF}
    branches_now = ws.store.branches()
    live = read_refs(ws.top, names | {b.ref for b in branches_now})
    moved, refs = [], []
    for ref in sorted(names):
        want, left, now = target["refs"].get(ref), reference["refs"].get(ref), live[ref]
        if now == want:
            continue
        if now != left:
            moved.append(f"{ref} (now {(now or 'deleted')[:12]}, vbranch left it at {(left or 'nothing')[:12]})")
            continue
        refs.append((ref, want, now))
    if moved:
        raise StateError(
            "refs moved outside vbranch since its last operation; going back would lose that work:\n  " + "\n  ".join(moved),
            hint="if the target moved, `vbranch update` brings its commits in; otherwise put the ref back first",
        )

    # Branch rows and sessions: what changed since the reference stays.
    final_branches = _three_way(
        {r[0]: r for r in target["branches"]}, {r[0]: r for r in reference["branches"]}, {b.id: list(b) for b in branches_now}
    )
    for branch in branches_now:  # made since the reference, still at the base: follow the base back
        if branch.id not in {r[0] for r in reference["branches"]} and live[branch.ref] == current_base != target_base:
            refs.append((branch.ref, target_base, current_base))
    sessions = {}
    for sid, now in current["sessions"].items():
        left, want = reference["sessions"].get(sid, _MISSING), target["sessions"].get(sid, _MISSING)
        chosen = want if (now == left and want is not _MISSING) else now
        sessions[sid] = chosen if chosen in final_branches else None

    # Files written by the reverted operations go back where still as vbranch left them.
    written, clashed = _rewind_writes(ws, reverted)
    if clashed:
        raise StateError(
            "files vbranch wrote in those operations have changed since; nothing was restored:\n  " + "\n  ".join(clashed),
            hint="put those files back (or commit that change on its branch and undo it), then try again",
        )
    base_tree = gitops.tree_of(repo, target_base)
    events = [e for e in ws.store.events() if e[0] >= target_at]
    records: dict[str, FileOwnership] = {}
    writes, report_kept = [], []
    paths = set(target["files"]) | set(reference["files"]) | set(current["files"]) | set(written)
    for path in sorted(paths):
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
            report_kept.append(path)
        if final != working:
            writes.append(file_write(repo, path, working, final))

    heads = {ref: new for ref, new, _old in refs}
    rows = [BranchRow(r[0], r[1], bool(r[2]), r[3]) for r in final_branches.values()]
    applied = {r.id for r in rows if r.applied}
    record_list = [records[p] for p in sorted(records)]
    new_ws, old_ws = build_workspace(ws, repo, record_list, target_base, heads, applied, rows)
    if new_ws != old_ws:
        refs.append((WORKSPACE_REF, new_ws, old_ws))
    head_now = gitcli.rev_parse(ws.top, "HEAD")
    plan = {
        "refs": refs,
        "head": WORKSPACE_REF,
        "writes": writes,
        "index": ["sync", head_now, new_ws],
        "guard": None if was_active else "install",
    }

    def mutate() -> None:
        for branch in ws.store.branches():
            if branch.id not in final_branches:
                ws.store.delete_branch(branch.id)
        for row in rows:
            ws.store.put_branch(row)
        for sid, branch_id in sessions.items():
            ws.store.set_session_branch(sid, branch_id)
        for path in ws.store.paths():
            if path not in records:
                ws.store.delete_file(path)
        for rec in record_list:
            ws.store.put_file(rec)
        ws.store.clear_shelf()
        for key, (saved, left) in target["shelf"].items():
            branch_id, path = key.split("\t", 1)
            ws.store.put_shelf(int(branch_id), path, ws.store.kept_record(saved), ws.store.kept_record(left))
        for key, value in target["meta"].items():
            ws.store.set_meta(key, value)
        if undone is not None:
            ws.store.set_undone(undone, -1)  # the real id is set once the undo is logged

    op_id, warnings = perform(ws, at, name, {**detail, "writes": writes}, plan, mutate)
    if undone is not None:
        with ws.store.tx():
            ws.store.set_undone(undone, op_id)
    return RestoreReport(op_id, 0, report_kept, [w[0] for w in writes], warnings)


def _three_way(target: dict, reference: dict, current: dict) -> dict:
    """Per key: the target's value where the current one is still the reference's; else the current one."""
    out = {}
    for key in set(target) | set(reference) | set(current):
        value = target.get(key) if current.get(key) == reference.get(key) else current.get(key)
        if value is not None:
            out[key] = value
    return out


def _rewind_writes(ws: Workspace, reverted: list[OpRow]) -> tuple[dict[str, FileState], list[str]]:
    """Each file the reverted operations wrote, rewound through their writes, newest first.

    Returns the content each such file goes back to, and the files that
    changed since vbranch wrote them (which stop the restore).
    """
    contents: dict[str, FileState] = {}
    clashed: list[str] = []
    for op in reversed(reverted):
        for write in op.detail.get("writes", []):
            path, new_sig = write[0], write[2]
            if path in clashed:
                continue
            state = contents[path] if path in contents else read_state(ws.top, path)
            if signature(state) != new_sig:
                clashed.append(path)
                continue
            old_blob, old_mode = write[5], write[6]
            contents[path] = FileState(True, old_mode, gitcli.blob(ws.top, old_blob)) if old_blob else FileState()
    return contents, clashed

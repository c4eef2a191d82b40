"""The operation log: what each operation changed, carried out so that a crash loses nothing.

Every operation (commit, assign, claim/disown, land, update, branch changes,
apply/unapply, rescue, teardown, undo, restore) runs in the same order, started
by operation.operation (the lock, `finish_interrupted`, `fold_unseen` of the working tree)
and ended by `perform`:

1. write every git object it needs (commits, trees, blobs): harmless alone;
2. in ONE store transaction: the new ownership rows, and an oplog row holding
   a snapshot of the state before and after, plus the *intent* (`pending`,
   intent.Intent): the ref transaction, HEAD, the working files to write, the
   index change and the git guard;
3. carry out the intent: refs in one atomic update-ref transaction, then the
   files (each written to a temporary file and renamed), then the index;
4. clear the intent.

A process killed anywhere leaves either no trace (before 2: only unreachable
objects) or a pending intent, which `finish_interrupted` finishes at the next command:
each step checks what is already done (a ref already at its new value, a file
already written) and does the rest. Rolling forward is always possible once
the intent exists, because every object it names was written first.

A snapshot holds the refs (target, workspace, every branch), HEAD, the meta
values (base, target, active), the branch rows, each session's branch, every
ownership record (by content hash, each stored once in op_records) and the
shelf of unapplied branches. The records' `known` states are the working
files as vbranch last saw them.
"""
from __future__ import annotations

import json
import os
import time
import zlib
from hashlib import sha1
from pathlib import Path

from vbranch.core.ownership import FileState
from vbranch.errors import StateError
from vbranch.git import gitcli
from vbranch.git.worktree import read_state, signature
from vbranch.ops.intent import FileWrite, Guard, IndexReset, IndexSync, Intent, Kind, RefUpdate, writes_to_json
from vbranch.state.store import record_digest
from vbranch.state.workspace import WORKSPACE_REF, Workspace

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from typing import Callable

META_KEYS = ("base", "target", "active", "origin")

# Bounds of the operation log and the event log: the one place they are set.
# Every operation stores two snapshots (~10 KB for 400 records) plus each record
# version it has not seen (op_records), and every recorded change adds an event;
# a working day of 8 sessions committing every turn and hooks on every tool call
# would grow both without end. What undo and restore need is kept:
# - KEEP_SNAPSHOTS: the newest operations keep their before/after snapshots, so
#   `undo` goes back that many operations and `restore` returns to any of them;
#   older rows stay listed (`vbranch oplog`) but are no longer restorable, and
#   op_records no kept snapshot names are deleted.
# - KEEP_OPS: rows of the log at all (their details name the files undo rewinds,
#   only needed within the snapshot window).
# - Events are read by undo/restore (who recorded a path since the target state)
#   and by the hooks (paths a session changed this turn): kept while newer than
#   the oldest kept snapshot or KEEP_EVENT_DAYS, whichever reaches further back,
#   and never more than KEEP_EVENTS rows.
# - Compaction runs inside an operation's own transaction (crash-safe with it)
#   every COMPACT_EVERY operations, so its cost (reading the kept snapshots) is spread.
KEEP_SNAPSHOTS = 200
KEEP_OPS = 2000
KEEP_EVENTS = 100_000
KEEP_EVENT_DAYS = 7
COMPACT_EVERY = 50


def capture(
    ws: Workspace, overlay: dict[str, str | None] | None = None, head: str | None = None, also=()
) -> tuple[dict, dict[str, bytes]]:
    """The state now (refs overlaid with `overlay`): a snapshot and the packed records it names.

    `also` names more refs to keep: an operation's after-state keeps every ref its
    before-state had, so a branch it retires still has its ref's value on record.
    """
    files = ws.store.raw_digests()
    keep = ws.store.unkept_records()  # the others are in op_records already
    shelf = {}
    for branch_id, path, saved, left in ws.store.shelf():
        shelf[f"{branch_id}\t{path}"] = [record_digest(saved), record_digest(left)]
        keep[record_digest(saved)], keep[record_digest(left)] = saved, left
    branches = ws.store.branches()
    wanted = {ws.target, WORKSPACE_REF, *(b.ref for b in branches), *(shelf_ref(b.name) for b in branches), *also} - {""}
    refs = read_refs(ws.top, wanted)
    refs.update(overlay or {})
    snap = {
        "refs": {r: v for r, v in sorted(refs.items()) if v is not None},
        "head": head or gitcli.symbolic_head(ws.top) or gitcli.rev_parse(ws.top, "HEAD"),
        "meta": {k: ws.store.get_meta(k, "") for k in META_KEYS},
        "branches": [list(b) for b in branches],
        "sessions": {s.id: s.branch_id for s in ws.store.sessions()},
        "files": files,
        "shelf": shelf,
    }
    return snap, keep


def pack(snap: dict) -> bytes:
    return zlib.compress(json.dumps(snap, separators=(",", ":")).encode(), 6)


def unpack(blob: bytes) -> dict:
    return json.loads(zlib.decompress(blob))


def shelf_ref(name: str) -> str:
    """Where an unapplied branch's whole change (committed and not) is kept in git."""
    return f"refs/vbranch/shelf/{name}"


def read_refs(top: Path, refs) -> dict[str, str | None]:
    """The current value of each named ref (None where it does not exist)."""
    refs = sorted(set(refs))
    found = gitcli.refs(top, *refs) if refs else {}
    return {r: found.get(r) for r in refs}


def check_refs(ws: Workspace, updates: list[RefUpdate]) -> None:
    """Refuse, before anything is written, when a ref is no longer where the plan read it."""
    now = read_refs(ws.top, [u.ref for u in updates])
    moved = [u.ref for u in updates if now[u.ref] != u.old]
    if moved:
        raise gitcli.GitError(
            f"{', '.join(moved)} moved while vbranch was working",
            hint="another program changed the branch; run the command again",
        )


def perform(
    ws: Workspace, at: str, kind: Kind, detail: dict, intent: Intent, save: Callable[[], None] | None = None
) -> tuple[int, list[str]]:
    """Log and carry out one operation: the store change and its intent commit together.

    `save` writes the new store rows inside the transaction; `detail` is what
    the log shows (an operation that writes files also keeps its writes there,
    for undo). The caller holds ws.lock. Returns the operation's id and any
    warnings from carrying it out.
    """
    check_refs(ws, intent.refs)
    with ws.store.tx():
        before, keep = capture(ws)
        if save is not None:
            save()
        overlay = {u.ref: u.new for u in intent.refs}
        after, keep_after = capture(ws, overlay, intent.head, also=set(before["refs"]) | set(overlay))
        ws.store.keep_records({**keep, **keep_after})
        if kind.logs_writes:
            detail = {**detail, "writes": writes_to_json(intent.writes)}
        pending = None if intent.empty else intent.to_json()
        op_id = ws.store.begin_op(at, kind.value, detail, pack(before), pack(after), pending)
        if op_id % COMPACT_EVERY == 0:
            compact(ws)
    return op_id, ([] if intent.empty else carry_out(ws, op_id, kind, intent))


def compact(ws: Workspace) -> None:
    """Bring the oplog, op_records and events within their bounds (see KEEP_*); caller's transaction."""
    kept = ws.store.snapshot_ops()
    if len(kept) > KEEP_SNAPSHOTS:
        ws.store.drop_snapshots(kept[-KEEP_SNAPSHOTS - 1])
        named: set[str] = set()
        for blob in ws.store.snapshot_blobs():
            snap = unpack(blob)
            named.update(snap["files"].values())
            for pair in snap["shelf"].values():
                named.update(pair)
        ws.store.drop_records_except(named)
    ids = ws.store.op_ids()
    if len(ids) > KEEP_OPS:
        ws.store.drop_ops(ids[-KEEP_OPS - 1])
    kept = ws.store.snapshot_ops()
    oldest = ws.store.op_at(kept[0]) if kept else None
    t = time.time() - KEEP_EVENT_DAYS * 86400
    days_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000+00:00"
    ws.store.prune_events(min(oldest, days_ago) if oldest else days_ago, KEEP_EVENTS)


def carry_out(ws: Workspace, op_id: int, op: str, intent: Intent) -> list[str]:
    """Bring refs, HEAD, files and index to the intent's state; each step skips what is done."""
    warnings: list[str] = []
    head = intent.head
    if head and head != WORKSPACE_REF:
        _set_head(ws, head)  # leaving the workspace ref first: HEAD never names a deleted ref
    if intent.refs:
        warnings += _move_refs(ws, op, intent.refs)
    if head == WORKSPACE_REF:
        _set_head(ws, head)  # onto the workspace ref once it exists
    for write in intent.writes:
        warning = write_planned(ws, write)
        if warning:
            warnings.append(warning)
    if isinstance(intent.index, IndexSync):
        from vbranch.git import gitops

        repo = gitops.open_repo(ws.top)
        old, new = gitops.tree_of(repo, intent.index.old), gitops.tree_of(repo, intent.index.new)
        gitops.sync_index(ws.top, old, new, gitops.changed_paths(repo, old, new))
    elif isinstance(intent.index, IndexReset):
        gitcli.git(ws.top, "reset", "-q")
    if intent.guard:
        from vbranch.git import precommit

        (precommit.install_guard if intent.guard == Guard.INSTALL else precommit.remove_guard)(ws.top)
    with ws.store.tx():
        ws.store.finish_op(op_id)
    return warnings


def _move_refs(ws: Workspace, op: str, updates: list[RefUpdate]) -> list[str]:
    """The refs not yet at their new value, in one update-ref transaction; one moved by someone else stays."""
    warnings = []
    now = read_refs(ws.top, [u.ref for u in updates])
    todo = []
    for u in updates:
        if now[u.ref] == u.new:
            continue
        if now[u.ref] == u.old:
            todo.append((u.ref, u.new, u.old))
        else:  # someone else moved it since: theirs stays
            warnings.append(f"{u.ref} was moved outside vbranch (to {(now[u.ref] or 'nothing')[:12]}); left there")
    if todo:
        gitcli.update_refs(ws.top, todo, f"vbranch: {op}")
    return warnings


def _set_head(ws: Workspace, head: str) -> None:
    if (gitcli.symbolic_head(ws.top) if head.startswith("refs/") else gitcli.rev_parse(ws.top, "HEAD")) != head:
        gitcli.set_head(ws.top, head)


def finish_interrupted(ws: Workspace) -> list[str]:
    """Finish every operation a killed process left half done; the caller holds ws.lock."""
    warnings = []
    for op_id, op, pending in ws.store.pending_ops():
        try:
            found = carry_out(ws, op_id, op, Intent.from_json(pending))
        except gitcli.GitError as error:
            raise StateError(
                f"operation {op_id} ({op}) was interrupted and cannot be finished yet: {error.message}",
                hint="remove a stale git lock file if one is named above, then run any vbranch command again",
            ) from None
        warnings += [f"finished interrupted operation {op_id} ({op})"] + found
    return warnings


def has_pending(ws: Workspace) -> bool:
    return bool(ws.store.pending_ops())


# Working files: written only by update, apply/unapply, undo and restore, and only
# where the file is still exactly what vbranch expects.


def write_planned(ws: Workspace, write: FileWrite) -> str | None:
    """Carry out one write unless done already; a warning instead where the file changed meanwhile."""
    current = signature(read_state(ws.top, write.path))
    if current == write.new_sig:
        return None
    if current != write.old_sig:
        return f"{write.path} changed meanwhile: left as it is (vbranch's version is blob {write.new_blob or 'deleted'})"
    state = FileState(True, write.new_mode, gitcli.blob(ws.top, write.new_blob)) if write.new_blob else FileState()
    write_file(ws.top, ws.state_dir, write.path, state)
    return None


def write_file(top: Path, state_dir: Path, rel: str, state: FileState) -> None:
    """Replace one working file atomically: a temporary file outside the tree, then a rename."""
    full = os.path.join(top, rel)
    if not state.exists:
        if os.path.lexists(full):
            os.unlink(full)
        _prune_dirs(top, os.path.dirname(full))
        return
    os.makedirs(os.path.dirname(full) or str(top), exist_ok=True)
    if os.path.isdir(full) and not os.path.islink(full):
        raise StateError(f"{rel} is a directory in the working tree", hint="move it away and run the command again")
    tmp_dir = state_dir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    tmp = str(tmp_dir / f"{os.getpid()}-{sha1(rel.encode()).hexdigest()[:16]}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    if state.mode == 0o120000:
        os.symlink(os.fsdecode(state.data), tmp)
    else:
        with open(tmp, "wb") as f:
            f.write(state.data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755 if state.mode == 0o100755 else 0o644)
    try:
        os.replace(tmp, full)
    except OSError:  # the git directory is on another file system: rename within the tree
        import shutil

        local = os.path.join(os.path.dirname(full), f".{os.path.basename(full)}.vbranch-tmp")
        shutil.move(tmp, local)
        os.replace(local, full)


def _prune_dirs(top: Path, folder: str) -> None:
    """Remove directories left empty by a deletion, as git does."""
    top = os.path.abspath(top)
    folder = os.path.abspath(folder)
    while folder != top and folder.startswith(top + os.sep):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)


def file_write(repo, path: str, old: FileState, new: FileState) -> FileWrite:
    """One planned write, old -> new, both contents kept as blobs (undo writes the old one back)."""
    from vbranch.git import gitops

    new_blob = gitops.write_blob(repo, new.data) if new.exists else None
    old_blob = gitops.write_blob(repo, old.data) if old.exists else None
    return FileWrite(path, signature(old), signature(new), new_blob, new.mode, old_blob, old.mode)


# Listing


def describe(op: str, detail: dict) -> str:
    """One line for `vbranch oplog`: the operation and what it was about."""
    if op == Kind.COMMIT:
        return "commit " + ", ".join(detail.get("branches", [])) if detail.get("branches") else "commit"
    if op in (Kind.LAND, Kind.APPLY, Kind.UNAPPLY, Kind.BRANCH_NEW, Kind.BRANCH_DELETE):
        return f"{op} {detail.get('branch') or detail.get('name', '')}".strip()
    if op == Kind.ASSIGN:
        return f"assign {detail.get('path')} to {detail.get('branch')}"
    if op in (Kind.CLAIM, Kind.DISOWN):
        return f"{op} {detail.get('path')} by session {detail.get('session')}"
    if op == Kind.BRANCH_RENAME:
        return f"branch-rename {detail.get('old')} -> {detail.get('new')}"
    if op == Kind.UPDATE:
        return f"update onto {str(detail.get('target_head', ''))[:12]}"
    if op in (Kind.UNDO, Kind.RESTORE):
        return f"{op} of operation {detail.get('of')}"
    return op

"""The operation log: every operation type undone and restored; later work kept; refusals change nothing."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB, git, tree_files, work_files, write
from tests.test_landing import BASE, outside_commit, three_sessions
from vbranch.errors import StateError, UsageError
from vbranch.ops import branching, landing, lifecycle
from vbranch.ops import undo as undoing


def call(v: VB, fn, *args):
    ws = v.ws()
    try:
        return fn(ws, *args, v.at())
    finally:
        ws.close()


def undo(v: VB):
    ws = _any(v)
    try:
        return undoing.undo(ws, v.at())
    finally:
        ws.close()


def restore(v: VB, op: int):
    ws = _any(v)
    try:
        return undoing.restore(ws, op, v.at())
    finally:
        ws.close()


def _any(v: VB):
    from vbranch.state.workspace import open_state

    return open_state(v.repo)


def last_op(v: VB) -> int:
    ws = _any(v)
    try:
        return ws.store.op_rows()[-1].id
    finally:
        ws.close()


def state(v: VB) -> dict:
    """Everything an undo must bring back, and nothing that may differ (commit ids of rebuilt workspaces)."""
    repo = v.repo
    refs = dict(line.split(" ", 1)[::-1] for line in git(repo, "for-each-ref", "--format=%(objectname) %(refname)").splitlines())
    workspace = refs.pop("refs/heads/vbranch/workspace", None)
    ws = _any(v)
    try:
        records = [(r.path, r.base, r.known, r.items, r.owners) for r in ws.store.files() if r.changed]
        branches = [(b.name, b.applied) for b in ws.store.branches()]
        sessions = {s.id: (ws.store.branch_by_id(s.branch_id).name if s.branch_id else None) for s in ws.store.sessions()}
        meta = {k: ws.store.get_meta(k) for k in ("base", "target", "active")}
        shelf = [(b, p) for b, p, _s, _l in ws.store.shelf()]
    finally:
        ws.close()
    return {
        "refs": refs,
        "workspace": (git(repo, "rev-parse", f"{workspace}^{{tree}}"), git(repo, "log", "-1", "--format=%P", workspace)) if workspace else None,
        "head": git(repo, "symbolic-ref", "-q", "HEAD", check=False).strip(),
        "records": records,
        "branches": branches,
        "sessions": sessions,
        "meta": meta,
        "shelf": shelf,
        "files": work_files(repo),
        "status": git(repo, "status", "--porcelain"),
    }


def do_commit(v):
    v.commit()


def do_assign(v):
    call(v, branching.assign, str(v.repo / "f.txt") + ":2", "session-b")


def do_land(v):
    call(v, landing.land, "session-a", "ff")


def push_outside(v):
    outside_commit(v.repo, {"f.txt": BASE["f.txt"].replace("line 6\n", "UP6\n"), "up.txt": "up\n"})


def do_update(v):
    call(v, lambda ws, at: landing.update(ws, at))


def do_branch_new(v):
    call(v, branching.new_branch, "fresh")


def do_branch_rename(v):
    call(v, branching.rename_branch, "session-c", "renamed")


def do_branch_delete(v):
    call(v, branching.delete_branch, "session-c", True)


def do_unapply(v):
    call(v, branching.unapply, "session-b")


def unapply_b(v):
    call(v, branching.unapply, "session-b")


def do_apply(v):
    call(v, branching.apply, "session-b")


def do_teardown(v):
    call(v, lambda ws, at: lifecycle.teardown(ws, at))


def nothing(v):
    pass


OPERATIONS = {  # name: (setup, operation)
    "commit": (nothing, do_commit),
    "assign": (nothing, do_assign),
    "land": (nothing, do_land),
    "update": (push_outside, do_update),
    "branch-new": (nothing, do_branch_new),
    "branch-rename": (nothing, do_branch_rename),
    "branch-delete": (nothing, do_branch_delete),
    "unapply": (nothing, do_unapply),
    "apply": (unapply_b, do_apply),
    "teardown": (nothing, do_teardown),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_undo_and_restore_every_operation(vb, name):
    v = three_sessions(vb)
    v.commit("session-c")
    setup, operation = OPERATIONS[name]
    setup(v)
    before = state(v)
    operation(v)
    op = last_op(v)
    after = state(v)
    assert after != before
    report = undo(v)
    assert report.restored == op
    assert state(v) == before, f"undo of {name}"
    assert report.kept == []
    if name == "teardown":
        with pytest.raises(UsageError, match="torn down"):
            restore(v, op)
        return
    restore(v, op)
    assert state(v) == after, f"restore of {name}"


def test_undo_keeps_work_done_after_the_operation_and_says_so(vb):
    v = three_sessions(vb)
    do_land(v)
    changed = (v.repo / "f.txt").read_text().replace("line 9\n", "C9\n")
    v.edit("c", "f.txt", changed)  # after the landing
    write(v.repo, "stray.txt", "nobody\n")  # and a change nobody reported
    files = work_files(v.repo)
    report = undo(v)
    assert work_files(v.repo) == files
    assert report.kept == ["f.txt", "stray.txt"]
    status = v.status()
    owned = {b.name: {f.path: f.lines for f in b.files} for b in status.branches}
    assert owned["session-a"]["f.txt"] == [(2, 2)]  # a owns its lines again, against the old base
    assert owned["session-c"]["f.txt"] == [(9, 10)]  # C8+ and the new C9 after it, both c's
    assert [f.path for f in status.unattributed] == ["stray.txt"]
    assert status.contested == []
    assert git(v.repo, "rev-parse", "main") == git(v.repo, "rev-parse", "HEAD^1")


def test_undo_goes_further_back_each_time_and_restore_redoes(vb):
    v = three_sessions(vb)
    s0 = state(v)
    v.commit()
    s1 = state(v)
    do_land(v)
    land_op = last_op(v)
    s2 = state(v)
    assert undo(v).restored == land_op
    assert state(v) == s1
    undo(v)
    assert state(v) == s0
    with pytest.raises(UsageError, match="nothing to undo"):
        undo(v)
    restore(v, land_op)
    assert state(v) == s2


def test_undo_refuses_when_the_target_moved_outside(vb):
    v = three_sessions(vb)
    do_land(v)
    outside_commit(v.repo, {"zzz.txt": "someone pushed\n"})
    before = state(v)
    with pytest.raises(StateError, match="refs/heads/main") as raised:
        undo(v)
    assert "vbranch update" in raised.value.hint
    assert state(v) == before


def test_undo_of_update_refuses_when_a_written_file_changed_since(vb):
    v = three_sessions(vb)
    push_outside(v)
    do_update(v)
    v.edit("a", "up.txt", "up\nmine\n")
    before = state(v)
    with pytest.raises(StateError, match="up.txt"):
        undo(v)
    assert state(v) == before


def test_oplog_undo_and_restore_on_the_command_line(make_repo):
    repo = make_repo({"f.txt": "1\n2\n"})

    def vbranch(*args):
        proc = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), *args], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    vbranch("init")
    write(repo, "f.txt", "one\n2\n")
    vbranch("record", "--session", "s", "f.txt")
    vbranch("commit", "--all")
    assert "landed session-s on refs/heads/main" in vbranch("land", "session-s")
    ops = json.loads(vbranch("oplog", "--json"))
    assert [o["op"] for o in ops] == ["init", "commit", "land"]
    assert "land session-s" in vbranch("oplog")
    assert "undid operation 3" in vbranch("undo")
    assert tree_files(repo, "main") == {"f.txt": b"1\n2\n"}
    assert "(undone by 4)" in vbranch("oplog")
    assert "restored the state after operation 3" in vbranch("restore", "3")
    assert tree_files(repo, "main") == {"f.txt": b"one\n2\n"}
    assert git(repo, "status", "--porcelain") == ""


# Bounded state: the oplog, its records and the events stay within oplog.KEEP_*.


def test_oplog_and_events_stay_bounded_and_undo_works_in_the_window(vb, monkeypatch):
    from vbranch.ops import oplog

    monkeypatch.setattr(oplog, "KEEP_SNAPSHOTS", 6)
    monkeypatch.setattr(oplog, "KEEP_OPS", 10)
    monkeypatch.setattr(oplog, "KEEP_EVENTS", 15)
    monkeypatch.setattr(oplog, "COMPACT_EVERY", 3)
    v = vb({"f.txt": "".join(f"line {i}\n" for i in range(1, 40))})
    for i in range(30):  # each round: a new version of the record, recorded (an event) and committed (an op)
        v.edit("a", "f.txt", (v.repo / "f.txt").read_text().replace(f"line {i + 1}\n", f"A{i}\n"))
        v.commit()
        ws = _any(v)
        try:
            snaps = ws.store.snapshot_ops()
            assert len(snaps) <= 6 + 3 and len(ws.store.op_ids()) <= 10 + 3
            assert ws.store.count_events() <= 15 + 3 * 2
            # Only records a kept snapshot names are kept (each version of f.txt, once).
            assert ws.store.count_records() <= 2 * (6 + 3)
        finally:
            ws.close()
    ws = _any(v)
    try:
        rows = ws.store.op_rows()
        assert not rows[0].restorable and rows[-1].restorable
        # Every kept snapshot still restores: its records are all there.
        for op_id in ws.store.snapshot_ops():
            for blob in ws.store.op_snapshots(op_id):
                for digest in oplog.unpack(blob)["files"].values():
                    ws.store.kept_record(digest)
    finally:
        ws.close()
    head = git(v.repo, "rev-parse", "refs/heads/session-a").strip()
    undo(v)  # the last commit, undone within the window
    assert git(v.repo, "rev-parse", "refs/heads/session-a").strip() == git(v.repo, "rev-parse", head + "^").strip()
    assert (v.repo / "f.txt").read_text().startswith("A0\nA1\n")  # later work kept in the file
    assert "A29" in tree_files(v.repo, head)["f.txt"].decode()
    restore(v, last_op(v) - 1)  # back to the state after that commit
    assert git(v.repo, "rev-parse", "refs/heads/session-a").strip() == head
    assert git(v.repo, "status", "--porcelain") == ""


# Rows stored by earlier versions: the intent and the log detail in their stored JSON form.

OLD_PENDING = (  # as vbranch has always written `pending`: lists read by position
    '{"refs": [["refs/heads/legacy", "%(base)s", null]], '
    '"writes": [["f.txt", "%(old_sig)s", "%(new_sig)s", "%(new_blob)s", 33188, "%(old_blob)s", 33188]], '
    '"index": ["sync", "%(ws)s", "%(ws)s"]}'
)
OLD_DETAIL = '{"branch": "legacy", "writes": [["f.txt", "%(old_sig)s", "%(new_sig)s", "%(new_blob)s", 33188, "%(old_blob)s", 33188]]}'


def test_the_intent_reads_and_writes_the_stored_form_unchanged():
    from vbranch.ops.intent import FileWrite, Guard, IndexReset, IndexSync, Intent, RefUpdate

    stored = {
        "refs": [["refs/heads/x", "1" * 40, None], ["refs/heads/y", None, "2" * 40]],
        "head": "refs/heads/main",
        "writes": [["f.txt", None, "100644:" + "3" * 40, "3" * 40, 0o100644, None, 0]],
        "index": ["reset"],
        "guard": "remove",
    }
    intent = Intent.from_json(json.loads(json.dumps(stored)))
    assert intent.refs == [RefUpdate("refs/heads/x", "1" * 40, None), RefUpdate("refs/heads/y", None, "2" * 40)]
    assert intent.writes == [FileWrite("f.txt", None, "100644:" + "3" * 40, "3" * 40, 0o100644, None, 0)]
    assert intent.index == IndexReset() and intent.guard == Guard.REMOVE and intent.head == "refs/heads/main"
    assert intent.to_json() == stored
    sync = Intent.from_json({"index": ["sync", None, "4" * 40]})
    assert sync.index == IndexSync(None, "4" * 40) and sync.to_json() == {"index": ["sync", None, "4" * 40]}
    assert Intent().empty and Intent().to_json() == {}


def test_an_old_format_row_is_finished_by_recover_and_rewound_by_undo(vb):
    from vbranch.git.worktree import read_state, signature
    from vbranch.ops import oplog

    v = vb({"f.txt": "one\n"})
    repo = v.repo
    ws = v.ws()
    try:
        old_blob = git(repo, "hash-object", "-w", "f.txt").strip()
        write(repo, "new.tmp", "legacy\n")
        new_blob = git(repo, "hash-object", "-w", "new.tmp").strip()
        new_sig = signature(read_state(repo, "new.tmp"))
        (repo / "new.tmp").unlink()
        values = {
            "base": ws.base, "ws": git(repo, "rev-parse", "HEAD").strip(), "old_blob": old_blob, "new_blob": new_blob,
            "old_sig": signature(read_state(repo, "f.txt")), "new_sig": new_sig,
        }
        before, keep = oplog.capture(ws)
        after, _ = oplog.capture(ws, {"refs/heads/legacy": ws.base})
        with ws.store.tx():
            ws.store.keep_records(keep)
            ws.store.db.execute(
                "INSERT INTO oplog(at, op, detail, before, after, pending) VALUES (?, 'apply', ?, ?, ?, ?)",
                (v.at(), OLD_DETAIL % values, oplog.pack(before), oplog.pack(after), OLD_PENDING % values),
            )
        with ws.lock:
            warnings = oplog.finish_interrupted(ws)
        assert any("finished interrupted operation" in w for w in warnings)
        assert ws.store.pending_ops() == []
    finally:
        ws.close()
    assert (repo / "f.txt").read_text() == "legacy\n"
    assert git(repo, "rev-parse", "refs/heads/legacy").strip() == values["base"]
    assert "apply legacy" in oplog.describe("apply", last_row(v).detail)

    report = undo(v)
    assert report.written == ["f.txt"]
    assert (repo / "f.txt").read_text() == "one\n"
    assert git(repo, "rev-parse", "-q", "--verify", "refs/heads/legacy", check=False).strip() == ""


def last_row(v: VB):
    ws = _any(v)
    try:
        return ws.store.op_rows()[-1]
    finally:
        ws.close()


def test_records_carry_the_digest_snapshots_name_them_by(vb):
    """put_file writes each record's digest; a snapshot reads it instead of hashing every record, and
    reads only the records op_records does not hold yet."""
    from vbranch.state.store import record_digest

    v = vb({"a.txt": "1\n2\n", "b.txt": "x\n"})
    v.edit("s1", "a.txt", "1\nA\n")
    v.edit("s2", "b.txt", "x\ny\n")
    v.commit()
    ws = v.ws()
    try:
        raw = ws.store.raw_files()
        assert ws.store.raw_digests() == {path: record_digest(packed) for path, packed in raw.items()}
        assert ws.store.unkept_records() == {}  # the commit's snapshots kept both
    finally:
        ws.close()
    v.edit("s1", "a.txt", "1\nA\nB\n")
    ws = v.ws()
    try:
        changed = ws.store.raw_files()["a.txt"]
        assert ws.store.unkept_records() == {record_digest(changed): changed}
    finally:
        ws.close()


def test_a_state_database_of_schema_9_is_migrated_and_undo_still_works(vb):
    """Rows written before the digest column: their digests are found from the rows."""
    from vbranch.state.store import SCHEMA_VERSION, record_digest

    v = vb({"a.txt": "1\n2\n"})
    v.edit("s1", "a.txt", "1\nA\n")
    v.commit()
    ws = v.ws()
    try:
        before = ws.store.raw_digests()
        ws.store.db.execute("ALTER TABLE files DROP COLUMN digest")
        ws.store.db.execute("PRAGMA user_version = 9")
    finally:
        ws.close()
    ws = v.ws()  # opening migrates
    try:
        assert ws.store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert ws.store.raw_digests() == before
        assert set(ws.store.unkept_records()) == {record_digest(p) for p in ws.store.raw_files().values()}
    finally:
        ws.close()
    v.edit("s1", "a.txt", "1\nA\nmore\n")
    v.commit()
    undo(v)
    assert v.files_of("s1")["a.txt"] == b"1\nA\n"


def test_a_line_owned_file_is_kept_as_its_inserted_lines_and_an_older_whole_one_still_reads(vb):
    """Schema 11: a record's file is packed as the lines it inserts over its base (a few bytes for a
    one-line edit of a large file); rows an older vbranch wrote whole read as before."""
    from vbranch.state import store as store_module

    big = "".join(f"line {i} of a large file\n" for i in range(5000))
    v = vb({"big.txt": big})
    v.edit("s1", "big.txt", big.replace("line 2500 of", "line 2500 (edited) of"))
    ws = v.ws()
    try:
        rec = ws.store.file("big.txt")
        assert rec.known.data == (v.repo / "big.txt").read_bytes()
        known_packed = ws.store.db.execute("SELECT known FROM files WHERE path = 'big.txt'").fetchone()[0]
        assert known_packed.split(b"\n", 1)[0].endswith(b" i") and len(known_packed) < 100
        with ws.store.tx():  # as a schema-10 vbranch wrote it: the whole file, compressed
            ws.store.db.execute("UPDATE files SET known = ? WHERE path = 'big.txt'", (store_module._pack_state(rec.known),))
        assert ws.store.file("big.txt").known == rec.known
    finally:
        ws.close()
    v.edit("s1", "big.txt", big.replace("line 2500 of", "line 2500 (edited twice) of"))
    v.commit()
    assert v.files_of("s1")["big.txt"] == (v.repo / "big.txt").read_bytes()


def test_an_alignment_that_does_not_rebuild_its_file_is_kept_whole():
    """Checked at every write, not assumed: the store never keeps a file it could not give back."""
    from vbranch.core.ownership import FileOwnership, FileState
    from vbranch.state import store as store_module

    base = FileState(True, 0o100644, b"a\nb\n")
    known = FileState(True, 0o100644, b"a\nX\n")
    wrong = FileOwnership("f", base, known, [("K", ()), ("K", ())])  # says b is kept: it is not
    short = FileOwnership("f", base, FileState(True, 0o100644, b"a\n"), [("K", ())])  # counts one base line of two
    for rec in (wrong, short):
        packed = store_module.pack_record(rec)
        assert store_module.unpack_record("f", packed).known == rec.known
        assert b" i\n" not in packed  # kept whole

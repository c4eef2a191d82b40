"""The watcher's hook server reuses open workspaces (state/workspace.WorkspacePool): one is never
used by two requests at once, never reused with an open transaction or a held lock, and never
reused once its database file was deleted or made anew."""
from __future__ import annotations

import threading

import pytest

from tests.conftest import VB, git
from tests.hookdriver import payload
from vbranch.errors import NotInitialized
from vbranch.hooks import handler
from vbranch.ops import lifecycle
from vbranch.state.workspace import WorkspacePool


def test_a_workspace_given_back_is_taken_again_for_its_repository_only(make_repo):
    one, two = VB(make_repo({"a.txt": "a\n"})).init(), VB(make_repo({"b.txt": "b\n"})).init()
    pool = WorkspacePool()
    ws = pool.take(one.repo)
    assert ws.store.db.execute("PRAGMA cache_size").fetchone()[0] == -256  # kept open: a small page cache each
    pool.give_back(ws)
    assert pool.take(two.repo) is not ws
    assert pool.take(one.repo / "sub") is ws  # found from anywhere in the repository
    other = pool.take(one.repo)  # the first is taken: a second request gets its own
    assert other is not ws and other.top == ws.top
    pool.close()


def test_a_workspace_left_in_a_transaction_or_holding_the_lock_is_closed_not_kept(vb):
    repo = vb({"a.txt": "a\n"}).repo
    pool = WorkspacePool()
    in_tx = pool.take(repo)
    in_tx.store.db.execute("BEGIN")
    pool.give_back(in_tx)
    locked = pool.take(repo)
    assert locked is not in_tx
    locked.lock.__enter__()
    pool.give_back(locked)
    assert pool.free == []
    locked.lock.__exit__(None, None, None)
    pool.close()


def test_a_recreated_database_is_opened_afresh(vb):
    """`vbranch init` after the state was deleted: a kept connection would write into the deleted file."""
    v = vb({"a.txt": "a\n"})
    pool = WorkspacePool()
    old = pool.take(v.repo)
    pool.give_back(old)
    state = v.repo / ".git" / "vbranch"
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (state / name).unlink(missing_ok=True)
    with pytest.raises(NotInitialized):
        pool.take(v.repo)
    git(v.repo, "symbolic-ref", "HEAD", "refs/heads/main")  # as the hook's notice says, to start again
    lifecycle.init(v.repo, None, "2026-01-01T00:00:09").close()
    new = pool.take(v.repo)
    assert new is not old
    with new.store.tx():
        new.store.set_meta("written", "here")
    assert v.ws().store.get_meta("written") == "here"
    pool.close()


def test_a_torn_down_workspace_is_not_handed_out(vb):
    v = vb({"a.txt": "a\n"})
    pool = WorkspacePool()
    pool.give_back(pool.take(v.repo))
    lifecycle.teardown(v.ws(), "2026-01-01T00:00:09")
    with pytest.raises(NotInitialized):
        pool.take(v.repo)
    assert pool.free == []


def test_hooks_from_many_threads_share_the_pool_and_attribute_exactly(vb):
    """As the hook server runs them: each request on its own thread, workspaces handed between threads."""
    v = vb({f"f{i}.txt": f"line {i}\n" for i in range(8)})
    pool = WorkspacePool(keep=2)

    def session(i: int) -> None:
        sid, path = f"s{i}", v.repo / f"f{i}.txt"
        for name, fields in (("SessionStart", {}), ("UserPromptSubmit", {"prompt": f"task {i}"})):
            fire(payload(name, v.repo, session_id=sid, **fields), pool)
        edit = {"file_path": str(path), "old_string": f"line {i}", "new_string": f"line {i} by {sid}", "replace_all": False}
        call = f"toolu_{i}"
        fire(payload("PreToolUse_Edit", v.repo, session_id=sid, tool_input=edit, tool_use_id=call), pool)
        original = path.read_text()
        path.write_text(original.replace(f"line {i}", f"line {i} by {sid}"))
        response = {"filePath": str(path), "oldString": edit["old_string"], "newString": edit["new_string"],
                    "originalFile": original, "structuredPatch": [], "userModified": False, "replaceAll": False}
        fire(payload("PostToolUse_Edit", v.repo, session_id=sid, tool_input=edit, tool_use_id=call, tool_response=response), pool)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = v.status()
    assert report.unattributed == [] and report.contested == []
    by_session = {s.id: b for b in report.branches for s in b.sessions}
    assert {sid: [f.path for f in b.files] for sid, b in by_session.items()} == {f"s{i}": [f"f{i}.txt"] for i in range(8)}
    assert 1 <= len(pool.free) <= 2
    pool.close()


def fire(data: dict, pool: WorkspacePool) -> None:
    import io
    import json

    out = io.StringIO()
    assert handler.main(io.BytesIO(json.dumps(data).encode()), out, io.StringIO(), workspaces=pool) == 0
    assert "systemMessage" not in out.getvalue() and "deny" not in out.getvalue(), out.getvalue()

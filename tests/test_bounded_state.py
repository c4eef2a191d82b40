"""Live state that stays bounded over a working day: records of paths that hold no change are not kept.

(The watcher's dirty set, the other half, is tested in test_watch_integration.py.)
"""
from __future__ import annotations

from tests.conftest import write
from vbranch.ops import landing


def test_a_landed_path_leaves_no_record(vb):
    v = vb({"a.txt": "one\n", "b.txt": "one\n"})
    v.edit("s1", "a.txt", "two\n")
    v.edit("s2", "b.txt", "two\n")
    v.commit()
    ws = v.ws()
    try:
        assert ws.store.file("a.txt") is not None
        landing.land(ws, v.branch_of("s1"), "ff", v.at())
        assert ws.store.file("a.txt") is None  # its change is the base now: nothing left to own
        assert ws.store.file("b.txt").changed  # the other session's stays
        assert set(ws.store.paths()) == {"b.txt"}
    finally:
        ws.close()
    # Found again when it changes again.
    write(v.repo, "a.txt", "three\n")
    assert [f.path for f in v.status().unattributed] == ["a.txt"]


def test_a_change_undone_leaves_no_record(vb):
    v = vb({"a.txt": "one\n"})
    v.edit("s1", "a.txt", "two\n")
    v.edit("s1", "a.txt", "one\n")
    ws = v.ws()
    try:
        assert ws.store.file("a.txt") is None and list(ws.store.paths()) == []
    finally:
        ws.close()
    report = v.status()
    assert not report.unattributed and not report.contested


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



def test_large_states_are_packed_once_and_the_kept_ones_stay_few(vb):
    """A record's large base is packed again at every put: the store keeps the last few packings
    (and unpackings). What it gives back is what it would compute, and it keeps no more than its budget."""
    import zlib

    from vbranch.core.ownership import FileState, new_record, record_change
    from vbranch.state import store

    v = vb({"a.txt": "one\n"})
    ws = v.ws()
    try:
        for k in range(12):  # more large files than are kept
            data = b"".join(b"line %d of file %d\n" % (i, k) for i in range(8000))
            base = FileState(True, 0o100644, data)
            rec = record_change(new_record(f"big{k}.txt", base), FileState(True, 0o100644, data + b"more\n"), 1, ())
            with ws.store.tx():
                ws.store.put_file(rec)
                ws.store.put_file(rec)  # the same base again: packed once
            got = ws.store.file(f"big{k}.txt")
            assert got.base == base and got.known.data == data + b"more\n"
            assert store._pack_state(base).partition(b"\n")[2] == zlib.compress(data, 1)
        for kept in (store._packed, store._unpacked):
            assert kept.size == sum(len(k) + len(v) for k, v in kept.results.items()) <= kept.budget
    finally:
        ws.close()


def test_a_state_just_packed_is_read_back_without_unpacking_and_a_state_in_use_stays_kept(vb, monkeypatch):
    """Each hook on a large file stores its new version and the next one reads it back: that read
    unpacks no large state (the file is rebuilt from the kept base and its few inserted lines). A
    base read at every hook stays kept while others come and go."""
    import zlib

    from vbranch.core.ownership import FileState, new_record, record_change
    from vbranch.state import store

    unpacked = []
    decompress = zlib.decompress
    monkeypatch.setattr(store.zlib, "decompress", lambda blob: unpacked.append(len(out := decompress(blob))) or out)
    v = vb({"a.txt": "one\n"})
    ws = v.ws()
    try:
        base = FileState(True, 0o100644, b"".join(b"base line %d\n" % i for i in range(8000)))
        rec = new_record("big.txt", base)
        for k in range(24):
            rec = record_change(rec, FileState(True, 0o100644, base.data + b"edit %d\n" % k), 1, ())
            with ws.store.tx():
                ws.store.put_file(rec)
            got = ws.store.file("big.txt")
            assert got.base == base and got.known == rec.known and got.items == rec.items
        # The base, at most once (it may have been packed before this test); else only inserted lines.
        assert len([n for n in unpacked if n > 1000]) <= 1 and sum(n < 1000 for n in unpacked) <= 24
    finally:
        ws.close()


def test_the_kept_results_are_the_most_recently_used_within_the_budget():
    from vbranch.state.store import _Recent

    made = []
    kept = _Recent(budget=3 * 2000, from_size=100)  # room for three keys of 1000 bytes and their results
    make = lambda key: made.append(key) or key.upper()  # noqa: E731
    keys = [bytes([97 + k]) * 1000 for k in range(5)]
    for key in keys[:3]:
        assert kept.get(key, make) == key.upper()
    assert kept.get(keys[0], make) == keys[0].upper() and len(made) == 3  # kept; now the most recent
    kept.get(keys[3], make)  # the least recently used goes: keys[1]
    assert set(kept.results) == {keys[0], keys[2], keys[3]} and kept.size == 6000
    kept.get(b"small", make)
    kept.get(b"small", make)  # below from_size: made each time, never kept
    assert made[-2:] == [b"small", b"small"] and b"small" not in kept.results
    kept.put(b"x" * 7000, b"")  # larger than the whole budget: not kept
    assert kept.size == 6000

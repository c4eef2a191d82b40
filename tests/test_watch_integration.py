"""The watcher in use: status, command windows and lanes read its dirty set."""
from __future__ import annotations

import os
import time

from tests.conftest import wait_for, write
from tests.hookdriver import Session
from tests.test_watch import outside
from vbranch.git import gitcli
from vbranch.state import config
from vbranch.state.models import write_config
from vbranch.watch import dirtyset


def test_an_outside_write_shows_in_status_through_the_watcher(vb, watcher, monkeypatch):
    v = vb({"a.txt": "one\n"})
    watcher(v.repo)
    before, _after = outside(v.repo, "open('a.txt', 'a').write('two\\n')")
    ws = v.ws()
    seen = wait_for(lambda: ws.store.dirty_since(0).get("a.txt"), 5)
    assert seen and seen >= before  # stamped when marked, after the write began (no wall-clock bound: loaded machines)
    dirtyset.candidate_paths(ws)  # seeds the set once for this watcher
    ws.close()

    def no_scan(*args, **kwargs):
        raise AssertionError("git status ran although the watcher is live")

    monkeypatch.setattr(gitcli, "dirty_paths", no_scan)
    assert [f.path for f in v.status().unattributed] == ["a.txt"]


def test_the_watcher_adds_changes_made_before_it_started_by_itself(vb, watcher, monkeypatch):
    """Seeded at start (one git status of the watcher's own): the first status runs none."""
    v = vb({"a.txt": "one\n"})
    write(v.repo, "a.txt", "two\n")  # before the watcher: no event will tell it
    watcher(v.repo)
    ws = v.ws()
    try:
        def seeded():
            started = ws.store.get_meta(dirtyset.META_STARTED)
            return started is not None and ws.store.get_meta(dirtyset.META_SEEDED) == started

        assert wait_for(seeded, 10)
        assert "a.txt" in ws.store.dirty_since(0)
    finally:
        ws.close()

    def no_scan(*args, **kwargs):
        raise AssertionError("git status ran although the watcher is live and seeded")

    monkeypatch.setattr(gitcli, "dirty_paths", no_scan)
    assert [f.path for f in v.status().unattributed] == ["a.txt"]


def test_the_barrier_makes_a_write_just_before_it_visible(vb, watcher):
    v = vb({"a.txt": "one\n"})
    watcher(v.repo)
    ws = v.ws()
    try:
        for i in range(30):
            write(v.repo, f"f{i}.txt", "x\n")
            assert dirtyset.settle(ws)  # at once: no waiting for the watcher's flush interval
            assert f"f{i}.txt" in ws.store.dirty_since(0)
    finally:
        ws.close()


def test_the_barrier_fails_without_a_watcher(vb):
    v = vb({"a.txt": "one\n"})
    ws = v.ws()
    try:
        assert not dirtyset.settle(ws)  # no watcher ever ran: no sync directory
        (ws.state_dir / dirtyset.SYNC_DIR).mkdir()
        assert not dirtyset.settle(ws, wait=0.2)  # nobody answers
        assert list((ws.state_dir / dirtyset.SYNC_DIR).iterdir()) == []  # and the token is not left behind
    finally:
        ws.close()


def test_command_windows_ask_the_watcher_not_git(vb, watcher, monkeypatch):
    v = vb({"a.txt": "one\n"})
    watcher(v.repo)
    ws = v.ws()
    dirtyset.candidate_paths(ws)  # seeds the set once for this watcher (one git status)
    ws.close()

    def no_scan(*args, **kwargs):
        raise AssertionError("git status ran although the watcher is live")

    monkeypatch.setattr(gitcli, "dirty_paths", no_scan)
    s = Session(v.repo, "cmd")
    s.start()
    outside(v.repo, "open('by-hand.txt', 'w').write('typed\\n')")  # just before the command: not the session's
    made = [f"gen/{i}.txt" for i in range(10)]
    for path in made:
        # The command's last write comes right before its PostToolUse: the barrier must catch it.
        s.bash("generate", lambda path=path: write(v.repo, path, "out\n"))
    report = v.status()
    assert [f.path for f in report.branches[0].files] == sorted(made)
    assert [f.path for f in report.unattributed] == ["by-hand.txt"]


def test_changes_present_before_the_watcher_are_not_missed(vb, watcher):
    v = vb({"a.txt": "one\n", "b.txt": "b\n"})
    write(v.repo, "a.txt", "changed before the watcher\n")
    watcher(v.repo)
    assert {f.path for f in v.status().unattributed} == {"a.txt"}


def test_a_change_inside_a_sessions_command_goes_to_it(vb, watcher):
    v = vb({"a.txt": "one\n"})
    watcher(v.repo)
    s = Session(v.repo, "cmd")
    s.start()
    s.bash("make", lambda: write(v.repo, "built.txt", "out\n"))
    report = v.status()
    assert [f.path for f in report.branches[0].files] == ["built.txt"] and report.unattributed == []


def test_outside_changes_go_to_the_configured_lane(vb, watcher):
    v = vb({"a.txt": "one\n"})
    state = v.repo / ".git" / "vbranch"
    write_config(state, {**config.load(state), "lane": "human"})
    watcher(v.repo)
    outside(v.repo, "open('a.txt', 'a').write('typed by hand\\n')")
    report = v.status()
    assert [(b.name, [f.path for f in b.files]) for b in report.branches] == [("human", ["a.txt"])]
    assert report.unattributed == []


def test_session_start_starts_a_watcher(vb, monkeypatch):
    v = vb({"a.txt": "one\n"})
    monkeypatch.delenv("VBRANCH_WATCHER", raising=False)
    Session(v.repo, "starter").start()
    ws = v.ws()
    try:
        assert wait_for(lambda: dirtyset.watcher_live(ws), 15)
        from vbranch.cli.watch import stop_watcher

        assert stop_watcher(ws)
    finally:
        ws.close()


# --- the dirty set stays bounded --------------------------------------------------------------

def test_a_fold_forgets_the_paths_it_found_unchanged(vb, watcher):
    v = vb({"a.txt": "one\n", "b.txt": "one\n"})
    watcher(v.repo)
    write(v.repo, "a.txt", "two\n")
    write(v.repo, "a.txt", "one\n")  # back as committed: nothing to own
    write(v.repo, "b.txt", "two\n")  # changed, and it stays so
    write(v.repo, "new.txt", "x\n")
    os.unlink(v.repo / "new.txt")  # came and went
    ws = v.ws()
    assert dirtyset.settle(ws)
    assert {"a.txt", "b.txt", "new.txt"} <= set(ws.store.dirty_since(0))
    ws.close()
    assert [f.path for f in v.status().unattributed] == ["b.txt"]
    ws = v.ws()
    assert set(ws.store.dirty_since(0)) == {"b.txt"}
    ws.close()
    # A later change of a forgotten path is marked again, and found.
    write(v.repo, "a.txt", "three\n")
    assert [f.path for f in v.status().unattributed] == ["a.txt", "b.txt"]


def test_the_watcher_s_seed_never_lowers_a_later_mark(vb):
    """Controlled interleaving: the watcher seeds its dirty set with what changed before it started
    (one git status, stamped with its start), and may write that after it marked a newer change of
    the same file. Lowered to the start, the mark would be forgotten by a fold that read the file
    between the two, though the file changed after that read (seen once in a full test run)."""
    v = vb({"a.txt": "one\n"})
    ws = v.ws()
    try:
        started, read_at, changed = 1000.0, 1001.0, 1002.0
        ws.store.mark_dirty(["a.txt"], changed)  # the watcher marks a write
        ws.store.mark_dirty(["a.txt"], started)  # its seed, late
        assert ws.store.dirty_since(0) == {"a.txt": changed}
        ws.store.forget_dirty(["a.txt"], read_at)  # a fold that read a.txt before the write
        assert ws.store.dirty_since(0) == {"a.txt": changed}
    finally:
        ws.close()


def test_a_change_made_after_the_fold_read_the_file_keeps_its_mark(vb, monkeypatch):
    """Controlled interleaving: the watcher marks a change right after the fold read the file
    (found unchanged) and before the fold forgets what it read. That mark must stay."""
    from vbranch.record import recording

    v = vb({"a.txt": "one\n", "b.txt": "one\n"})
    ws = v.ws()
    earlier = time.time() - 1
    ws.store.mark_dirty(["a.txt", "b.txt"], earlier)  # both changed and went back before the fold
    monkeypatch.setattr(recording, "vouched_paths", lambda ws: set(ws.store.dirty_since(0)) | set(ws.store.paths()))
    real_fold = recording._fold

    def fold_then_a_write(ws, *args, **kwargs):
        folded = real_fold(ws, *args, **kwargs)
        write(v.repo, "a.txt", "two\n")
        ws.store.mark_dirty(["a.txt"], time.time())  # as the watcher does, stamped when it marks
        return folded

    monkeypatch.setattr(recording, "_fold", fold_then_a_write)
    try:
        recording.fold_unseen(ws, v.at())
        assert set(ws.store.dirty_since(0)) == {"a.txt"}  # b.txt forgotten; a.txt's new change not
        monkeypatch.setattr(recording, "_fold", real_fold)
        recording.fold_unseen(ws, v.at())
        assert ws.store.file("a.txt") is not None and ws.store.file("a.txt").changed
    finally:
        ws.close()


def test_the_watcher_stamps_a_change_after_it_was_made(vb, watcher):
    v = vb({"a.txt": "one\n"})
    watcher(v.repo)
    ws = v.ws()
    try:
        for i in range(20):
            before = time.time()
            write(v.repo, "a.txt", f"{i}\n")
            assert dirtyset.settle(ws)
            assert ws.store.dirty_since(0)["a.txt"] >= before
    finally:
        ws.close()

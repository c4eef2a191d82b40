"""The watcher in use: status, command windows and lanes read its dirty set."""
from __future__ import annotations

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
    before, after = outside(v.repo, "open('a.txt', 'a').write('two\\n')")
    ws = v.ws()
    seen = wait_for(lambda: ws.store.dirty_since(0).get("a.txt"), 5)
    assert seen and seen - after < 1.0
    dirtyset.candidate_paths(ws)  # seeds the set once for this watcher
    ws.close()

    def no_scan(*args, **kwargs):
        raise AssertionError("git status ran although the watcher is live")

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

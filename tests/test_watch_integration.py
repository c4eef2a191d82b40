"""The watcher in use: status, command windows and lanes read its dirty set."""
from __future__ import annotations

import os
import time

import pytest

from tests.conftest import VB, write
from tests.hookdriver import Session
from tests.test_watch import live, outside, wait_for, watcher  # noqa: F401  (the fixture)
from vbranch import config, dirtyset, gitcli


def test_an_outside_write_shows_in_status_through_the_watcher(vb, watcher, monkeypatch):  # noqa: F811
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


def test_changes_present_before_the_watcher_are_not_missed(vb, watcher):  # noqa: F811
    v = vb({"a.txt": "one\n", "b.txt": "b\n"})
    write(v.repo, "a.txt", "changed before the watcher\n")
    watcher(v.repo)
    assert {f.path for f in v.status().unattributed} == {"a.txt"}


def test_a_change_inside_a_sessions_command_goes_to_it(vb, watcher):  # noqa: F811
    v = vb({"a.txt": "one\n"})
    watcher(v.repo)
    s = Session(v.repo, "cmd")
    s.start()
    s.bash("make", lambda: write(v.repo, "built.txt", "out\n"))
    report = v.status()
    assert [f.path for f in report.branches[0].files] == ["built.txt"] and report.unattributed == []


def test_outside_changes_go_to_the_configured_lane(vb, watcher):  # noqa: F811
    v = vb({"a.txt": "one\n"})
    state = v.repo / ".git" / "vbranch"
    config.write(state, {**config.load(state), "lane": "human"})
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
        from vbranch.watch import stop_watcher

        assert stop_watcher(ws)
    finally:
        ws.close()

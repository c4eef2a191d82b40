"""gitcli reads trees the same way through git processes (hooks) and through pygit2 (the watcher)."""
from __future__ import annotations

import os

import pytest

from tests.conftest import git
from vbranch.errors import GitError
from vbranch.git import gitcli

PATHS = ["a.txt", "bin/run", "link", "deep/er/c.txt", "deep", "missing.txt", "deep/missing", "ü.txt"]


@pytest.fixture
def repo(make_repo):
    top = make_repo({"a.txt": "one\n", "bin/run": "#!/bin/sh\n", "deep/er/c.txt": b"\x00bin\r\n", "ü.txt": "u\n"})
    os.chmod(top / "bin" / "run", 0o755)
    os.symlink("a.txt", top / "link")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "modes")
    return top


@pytest.fixture
def in_process(monkeypatch):
    def switch(on: bool) -> None:
        monkeypatch.setattr(gitcli, "_pygit2", None)
        if on:
            gitcli.read_trees_in_process()
    return switch


def test_both_ways_read_the_same_states_and_signatures(repo, in_process):
    answers = []
    for on in (False, True):
        in_process(on)
        answers.append((gitcli.tree_states(repo, "HEAD", PATHS), gitcli.tree_signatures(repo, "HEAD", PATHS)))
    assert answers[0] == answers[1]
    states, signatures = answers[1]
    assert states["bin/run"].mode == 0o100755 and states["link"].mode == 0o120000 and states["link"].data == b"a.txt"
    assert states["deep/er/c.txt"].data == b"\x00bin\r\n"
    assert not states["deep"].exists and not states["missing.txt"].exists  # a directory is no file
    assert signatures["a.txt"].startswith("100644:") and signatures["deep"] is None


def test_the_watcher_reads_trees_without_a_git_process(repo, in_process, monkeypatch):
    in_process(True)

    def no_git(*args, **kwargs):
        raise AssertionError("a git process ran")

    monkeypatch.setattr(gitcli, "git", no_git)
    assert gitcli.tree_states(repo, "HEAD", ["a.txt"])["a.txt"].data == b"one\n"
    assert gitcli.tree_signatures(repo, "HEAD", ["a.txt"])["a.txt"].startswith("100644:")


def test_a_rev_that_does_not_resolve_fails_as_git_says(repo, in_process):
    in_process(True)
    with pytest.raises(GitError):
        gitcli.tree_states(repo, "nosuchbranch", ["a.txt"])
    assert gitcli.tree_signatures(repo, "nosuchbranch", ["a.txt"]) == {"a.txt": None}

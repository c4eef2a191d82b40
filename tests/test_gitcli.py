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


def test_both_ways_read_the_same_refs_and_heads(repo, in_process):
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "tag", "v1")  # a lightweight tag, and an annotated one naming the same commit
    git(repo, "tag", "-a", "-m", "note", "v2")
    for name in ("refs/heads/vb/a/x", "refs/heads/vb/a/y", "refs/heads/vb/ab", "refs/vbranch/shelf/x"):
        git(repo, "update-ref", name, head)
    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/vb/ab")
    prefixes = [("refs/heads/",), ("refs/heads/vb/a",), ("refs/heads/vb/a", "refs/vbranch/shelf/x", "refs/nothing"),
                ("refs/tags",), ("refs/heads/alias",)]
    revs = ["HEAD", "v1", "v2", "refs/heads/vb/ab", "nosuchbranch", "refs/heads/nothing", head, head[:10], "HEAD~5", ""]
    answers = []
    for on in (False, True):
        in_process(on)
        found = [gitcli.refs(repo, *p) for p in prefixes]
        heads = [gitcli.symbolic_head(repo)]
        git(repo, "checkout", "-q", "--detach")
        heads.append(gitcli.symbolic_head(repo))
        git(repo, "checkout", "-q", "-")
        answers.append((found, heads, [gitcli.rev_parse(repo, rev) for rev in revs]))
    assert answers[0] == answers[1]
    found, heads, parsed = answers[1]
    assert set(found[1]) == {"refs/heads/vb/a/x", "refs/heads/vb/a/y"}  # not vb/ab: a prefix ends at a slash
    assert found[2]["refs/vbranch/shelf/x"] == head and found[3]["refs/tags/v2"] != head  # a tag object's id
    assert found[4] == {"refs/heads/alias": head}
    assert heads[0].startswith("refs/heads/") and heads[1] is None
    assert parsed[:4] == [head] * 4 and parsed[4:6] == [None, None] and parsed[6:8] == [head, head]


def test_the_watcher_reads_refs_without_a_git_process(repo, in_process, monkeypatch):
    in_process(True)

    def no_git(*args, **kwargs):
        raise AssertionError("a git process ran")

    monkeypatch.setattr(gitcli, "git", no_git)
    assert gitcli.rev_parse(repo, "HEAD") and gitcli.symbolic_head(repo).startswith("refs/heads/")
    assert gitcli.rev_parse(repo, "refs/heads/nothing") is None
    assert list(gitcli.refs(repo, "refs/heads/"))

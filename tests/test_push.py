"""Pushing a virtual branch to a git remote, and taking a branch out of the workspace and back."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB, fingerprint, git, tree_files, work_files
from tests.test_landing import land, three_sessions
from vbranch.errors import Blocked, GitError, UsageError
from vbranch.ops import branching, remote


def push(v: VB, name: str, where: str | None = None):
    ws = v.ws()
    try:
        return remote.push(ws, name, where, v.at())
    finally:
        ws.close()


def bare(tmp_path, name="remote.git"):
    path = tmp_path / name
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def test_push_to_a_local_bare_repository_and_clone_it_back(vb, tmp_path):
    v = three_sessions(vb)
    v.commit()
    origin = bare(tmp_path)
    git(v.repo, "remote", "add", "origin", str(origin))
    git(v.repo, "push", "-q", "origin", "main")
    before = fingerprint(v.repo)
    report = push(v, "session-a")
    assert report.remote == "origin" and report.uncommitted == []
    assert fingerprint(v.repo) == before
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "session-a", str(origin), str(clone)], check=True)
    assert work_files(clone) == tree_files(v.repo, "refs/heads/session-a")
    assert git(clone, "rev-parse", "HEAD") == git(v.repo, "rev-parse", "session-a")
    assert git(clone, "log", "--format=%s", "-1").startswith("session-a:")
    assert git(v.repo, "rev-parse", "refs/remotes/origin/session-a") == git(v.repo, "rev-parse", "session-a")


def test_a_rebased_branch_replaces_its_own_push_but_never_someone_elses(vb, tmp_path):
    v = three_sessions(vb)
    v.commit()
    where = str(bare(tmp_path))  # a remote given as a path: no remote-tracking refs
    push(v, "session-b", where)
    land(v, "a")  # rebases b: its pushed commit is no longer its head
    push(v, "session-b", where)
    assert git(v.repo, "ls-remote", where, "refs/heads/session-b").split()[0] == git(v.repo, "rev-parse", "session-b").strip()
    # someone else pushes to c's branch there: vbranch will not overwrite it
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", where, str(other)], check=True)
    git(other, "config", "user.email", "o@example.invalid")
    git(other, "config", "user.name", "O")
    git(other, "commit", "-q", "--allow-empty", "-m", "theirs")
    git(other, "push", "-q", "origin", "HEAD:refs/heads/session-c")
    with pytest.raises(GitError, match="never had"):
        push(v, "session-c", where)


def test_push_says_what_is_not_committed_and_needs_a_remote(vb, tmp_path):
    v = three_sessions(vb)
    with pytest.raises(UsageError, match="no remote"):
        push(v, "session-a")
    v.commit("session-a")
    v.edit("a", "a.txt", "new from a\nand more\n")
    report = push(v, "session-a", str(bare(tmp_path)))
    assert report.uncommitted == ["a.txt"]


def test_push_on_the_command_line(vb, tmp_path):
    v = three_sessions(vb)
    v.commit()
    where = bare(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(v.repo), "push", "session-c", "--remote", str(where)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "pushed session-c" in proc.stdout
    assert git(where, "rev-parse", "session-c") == git(v.repo, "rev-parse", "session-c")


# apply / unapply


def unapply(v: VB, name: str):
    ws = v.ws()
    try:
        return branching.unapply(ws, name, v.at())
    finally:
        ws.close()


def apply(v: VB, name: str):
    ws = v.ws()
    try:
        return branching.apply(ws, name, v.at())
    finally:
        ws.close()


def many_kinds(vb) -> VB:
    v = vb({"text.txt": "1\n2\n3\n4\n", "crlf.txt": b"a\r\nb\r\n", "tail.txt": "x\ny", "img.bin": b"\x89PNG\0\x01", "gone.txt": "bye\n", "run.sh": "echo\n"})
    v.edit("a", "text.txt", "1\nA\n3\n4\n")
    v.edit("b", "text.txt", "1\nA\n3\nB\n")
    v.edit("b", "crlf.txt", b"a\r\nB\r\nc\r\n")
    v.edit("b", "tail.txt", "x\nY")
    v.edit("b", "img.bin", b"\x89PNG\0\x02\xff")
    v.delete("b", "gone.txt")
    (v.repo / "run.sh").chmod(0o755)
    v.record("b", "run.sh")
    os.symlink("text.txt", v.repo / "link")
    v.record("b", "link")
    v.edit("b", "new/deep/file.txt", "new\n")
    return v


def test_unapply_and_apply_round_trip_keeps_every_byte(vb):
    v = many_kinds(vb)
    v.commit("session-b")  # some of it committed, then more on top
    v.edit("b", "text.txt", "1\nA\n3\nB\nB2\n")
    files, modes = work_files(v.repo), {p: os.lstat(v.repo / p).st_mode for p in work_files(v.repo)}
    status = v.status()
    written = unapply(v, "session-b")
    assert sorted(written) == sorted(["text.txt", "crlf.txt", "tail.txt", "img.bin", "gone.txt", "run.sh", "link", "new/deep/file.txt"])
    now = work_files(v.repo)
    assert now["text.txt"] == b"1\nA\n3\n4\n"  # a's line stays
    assert now["crlf.txt"] == b"a\r\nb\r\n" and now["gone.txt"] == b"bye\n" and "link" not in now
    assert not (v.repo / "new").exists()
    assert git(v.repo, "status", "--porcelain") == " M text.txt\n"  # only a's change is left
    assert [b.applied for b in v.status().branches] == [True, False]
    apply(v, "session-b")
    assert work_files(v.repo) == files
    assert {p: os.lstat(v.repo / p).st_mode for p in files} == modes
    assert v.status() == status
    assert git(v.repo, "status", "--porcelain") == " M text.txt\n"  # b's commit is back in the workspace; its newest line uncommitted
    subprocess.run(["git", "-C", str(v.repo), "diff", "--quiet", "HEAD", "--", "crlf.txt"], check=True)


def test_apply_merges_with_changes_made_meanwhile(vb):
    v = many_kinds(vb)
    unapply(v, "session-b")
    v.edit("a", "text.txt", "1\nA\nA3\n4\n")  # a line next to b's
    apply(v, "session-b")
    assert (v.repo / "text.txt").read_bytes() == b"1\nA\nA3\nB\n"
    owned = {b.name: {f.path: f.lines for f in b.files} for b in v.status().branches}
    assert owned["session-a"]["text.txt"] == [(2, 3)] and owned["session-b"]["text.txt"] == [(4, 4)]


def test_apply_refuses_when_a_change_meanwhile_overlaps(vb):
    v = many_kinds(vb)
    unapply(v, "session-b")
    v.edit("a", "text.txt", "1\nA\n3\nmine\n")  # b's line 4, rewritten while b was out
    before = fingerprint(v.repo)
    with pytest.raises(Blocked, match="text.txt"):
        apply(v, "session-b")
    assert fingerprint(v.repo) == before
    assert [b.applied for b in v.status().branches] == [True, False]


def test_an_unapplied_branch_follows_a_landing(vb):
    v = many_kinds(vb)
    unapply(v, "session-b")
    land(v, "a")
    apply(v, "session-b")
    assert (v.repo / "text.txt").read_bytes() == b"1\nA\n3\nB\n"
    assert tree_files(v.repo, "main")["text.txt"] == b"1\nA\n3\n4\n"
    changed = [l for l in git(v.repo, "diff", "-U0", "main", "--", "text.txt").splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
    assert changed == ["-4", "+B"]


def test_an_unapplied_branch_is_not_committed_assigned_or_retired(vb):
    v = many_kinds(vb)
    v.commit("session-b")
    head = git(v.repo, "rev-parse", "session-b")
    unapply(v, "session-b")
    report = v.commit("session-b")
    assert report.unapplied == ["session-b"] and report.committed == []
    assert git(v.repo, "rev-parse", "session-b") == head
    from vbranch.ops.branching import assign

    ws = v.ws()
    with pytest.raises(UsageError, match="unapplied"):
        assign(ws, str(v.repo / "text.txt"), "session-b", v.at())
    ws.close()
    from vbranch.ops import landing

    ws = v.ws()
    outside = git(v.repo, "rev-parse", "main").strip()
    git(v.repo, "update-ref", "refs/heads/main", head.strip())  # b's commit merged upstream meanwhile
    report = landing.update(ws, v.at())
    ws.close()
    assert report.retired == {} and [b.name for b in v.status().branches] == ["session-a", "session-b"]
    assert outside != head


def test_renaming_or_deleting_an_unapplied_branch_takes_its_shelf_along(vb):
    v = many_kinds(vb)
    unapply(v, "session-b")
    ws = v.ws()
    branching.rename_branch(ws, "session-b", "parked", v.at())
    ws.close()
    assert git(v.repo, "rev-parse", "--verify", "-q", "refs/vbranch/shelf/session-b", check=False) == ""
    shelf = git(v.repo, "rev-parse", "refs/vbranch/shelf/parked").strip()
    apply(v, "parked")
    assert (v.repo / "img.bin").read_bytes() == b"\x89PNG\0\x02\xff"
    unapply(v, "parked")
    ws = v.ws()
    with pytest.raises(UsageError, match="owns changes"):
        branching.delete_branch(ws, "parked", v.at())
    branching.delete_branch(ws, "parked", v.at(), force=True)
    assert ws.store.shelf() == []
    ws.close()
    assert shelf

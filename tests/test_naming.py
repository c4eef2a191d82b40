"""Branch names: always valid git refs under refs/heads/, and naming always ends."""
from __future__ import annotations

import subprocess

import pytest
from conftest import git
from hypothesis import given, settings
from hypothesis import strategies as st

from vbranch.errors import UsageError
from vbranch.git import gitcli
from vbranch.state import workspace
from vbranch.state.workspace import branch_name_from, create_branch, prompt_branch_name, session_branch_name

NASTY = [
    "x/.y", "../../x", "a/../b", ".hidden", "a.lock", "a/b.lock/c", "a.lock.lock", "x.lock/", "a@{1}", "@",
    "@{u}", "HEAD", ".", "..", "/", "//a//b//", "a/./b", "x.", "x./y", "-x", "a/-b", "a..b", "a~1^2:3?*[", "a\\b",
    "tab\there", "ünïcödé", "", "   ", "-.-/.-./", "refs/heads/main", "a" * 100, "a/" * 40 + "b",
    "x" * 59 + ".lock", "x" * 58 + "/.y", "session-team/alice",
]


def git_accepts(name: str) -> bool:
    branch = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True).returncode == 0
    ref = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True).returncode == 0
    return branch and ref


def check_name(name: str) -> None:
    assert git_accepts(name), name
    assert branch_name_from(name) == name  # idempotent: a made name is accepted as given
    assert 0 < len(name) <= 60
    assert name != "HEAD" and not name.startswith("refs/heads/refs")


@pytest.mark.parametrize("text", NASTY)
def test_nasty_texts_make_valid_names(text):
    check_name(branch_name_from(text))
    check_name(session_branch_name(text))
    made = prompt_branch_name(text)
    if made is not None:
        check_name(made)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./-@{}~^:?*[\\ lockHEAD\tü"), max_size=70))
def test_any_text_makes_a_valid_name(text):
    check_name(branch_name_from(text))


def test_readable_names_are_kept():
    for name in ("fix-login", "feature/x", "team/alice", "v1.2", "Fix_Thing"):
        assert branch_name_from(name) == name


def heads(repo) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/").split())


def new_branch(repo, wanted: str, exact: bool = False) -> str:
    ws = workspace.open_workspace(repo)
    try:
        with ws.store.db:
            return create_branch(ws, wanted, "2026-01-01T00:00:00", exact=exact).name
    finally:
        ws.close()


@pytest.mark.parametrize(("existing", "wanted"), [("team", "team/alice"), ("team/alice", "team"), ("a/b/c", "a")])
def test_a_directory_file_clash_counts_as_taken(vb, existing, wanted):
    v = vb({"f.txt": "x\n"})
    git(v.repo, "branch", existing)
    name = new_branch(v.repo, wanted)
    assert name != wanted and f"refs/heads/{name}" in heads(v.repo)
    check_name(name)
    with pytest.raises(UsageError, match="clashes"):
        new_branch(v.repo, wanted, exact=True)


def test_a_clash_with_a_vbranch_branch_counts_as_taken(vb):
    v = vb({"f.txt": "x\n"})
    assert new_branch(v.repo, "team") == "team"
    name = new_branch(v.repo, "team/alice")
    assert not name.startswith("team/") and f"refs/heads/{name}" in heads(v.repo)


def test_every_numbered_name_taken_falls_back_to_a_flat_unique_name(vb):
    v = vb({"f.txt": "x\n"})
    git(v.repo, "branch", "team")  # blocks team/alice and every team/alice-N
    name = new_branch(v.repo, "team/alice")
    assert "/" not in name and name.startswith("team-alice-")
    assert f"refs/heads/{name}" in heads(v.repo)


def test_naming_gives_up_after_a_bounded_number_of_tries(vb, monkeypatch):
    v = vb({"f.txt": "x\n"})
    calls = []
    monkeypatch.setattr(gitcli, "create_ref", lambda top, ref, oid: calls.append(ref) or False)
    with pytest.raises(UsageError, match="could not create"):
        new_branch(v.repo, "anything")
    assert 0 < len(calls) <= workspace.NAME_TRIES + 3
    assert all(ref.startswith("refs/heads/") for ref in calls)


@pytest.mark.parametrize("session", ["x/.y", "../../x", "team/alice", "a.lock", "a@{1}/b"])
def test_sessions_with_awkward_ids_get_a_branch_through_record(vb, session):
    v = vb({"f.txt": "x\n"})
    git(v.repo, "branch", "session-team")  # makes session-team/alice a clash
    v.edit(session, "f.txt", "y\n")
    name = v.branch_of(session)
    check_name(name)
    assert f"refs/heads/{name}" in heads(v.repo)
    assert v.files_of(session) == {"f.txt": b"x\n"}  # the ref exists (at the base until a commit)

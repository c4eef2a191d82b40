"""The guard by effect: work another change took away is kept, and `vbranch rescue` puts it back.

Whatever the spelling of what took it away: commands run for real through the tracer here.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB
from tests.hookdriver import Session
from tests.test_tracer import traced
from vbranch.core.losses import losses
from vbranch.core.ownership import FileState, new_record, record_change

SHARED = "".join(f"line {i}\n" for i in range(1, 7))


def vbranch(repo, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), *args], capture_output=True, text=True, cwd=ROOT)
    assert not check or proc.returncode == 0, proc.stderr
    return proc


def run_command(session: Session, command: str) -> dict | None:
    """A Bash call of `session`: its hooks, and the command for real under the tracer (unless denied)."""
    tool_input = {"command": command, "description": "x"}
    _, out = session.pre("Bash", tool_input, "t-" + command[:20])
    if out and out.get("hookSpecificOutput", {}).get("permissionDecision") == "deny":
        return out
    assert traced(session.repo, session.id, command).wait(timeout=60) is not None
    return session.post("Bash", tool_input, "t-" + command[:20], {})[1]


@pytest.fixture
def shared(make_repo):
    repo = make_repo({"src/shared.txt": SHARED, "src/other.txt": "other\n"})
    VB(repo).init()
    a, b = Session(repo, "A"), Session(repo, "B")
    a.start(), b.start()
    assert a.edit("src/shared.txt", "line 2\n", "line 2 by A\n") is None
    assert a.write("src/a_new.txt", "new file of A\n") is None
    assert b.edit("src/shared.txt", "line 5\n", "line 5 by B\n") is None
    return repo, a, b


@pytest.mark.parametrize("command", [
    "cd src && git show HEAD:src/shared.txt > shared.txt",  # past any spelling guard: a plain redirection
    "cp src/other.txt src/shared.txt && git show HEAD:src/shared.txt > src/shared.txt",
    "python3 -c \"import subprocess; subprocess.run(['git', 'show', 'HEAD:src/shared.txt'], stdout=open('src/shared.txt', 'w'))\"",
    "rm src/a_new.txt src/shared.txt",
    "sed -i '/by A/d' src/shared.txt",
])
def test_a_command_that_takes_work_away_is_told_and_rescue_puts_it_back(shared, command):
    repo, a, b = shared
    out = run_command(b, command)
    told = out["hookSpecificOutput"]["additionalContext"]
    assert "took away uncommitted work of other sessions" in told and "vbranch rescue" in told
    assert "vbranch rescue" in out["systemMessage"]
    assert [r.branch for r in VB(repo).status().rescue] and all(r.by == "B" for r in VB(repo).status().rescue)

    vbranch(repo, "rescue")
    text = (repo / "src/shared.txt").read_text()
    assert "line 2 by A\n" in text  # A's work is back in the working file
    if (repo / "src/a_new.txt").exists() or "rm" in command:
        assert (repo / "src/a_new.txt").read_text() == "new file of A\n"
    assert VB(repo).status().rescue == []
    v = VB(repo)
    v.commit()
    mine = v.files_of("A")
    assert "line 2 by A\n" in mine["src/shared.txt"].decode() and mine["src/a_new.txt"] == b"new file of A\n"
    assert "line 5 by B" not in mine["src/shared.txt"].decode()


def test_rescue_keeps_what_the_other_session_did_since(shared):
    repo, a, b = shared
    run_command(b, "git show HEAD:src/shared.txt > src/shared.txt && echo 'line 7 by B' >> src/shared.txt")
    vbranch(repo, "rescue", "src/shared.txt")
    assert (repo / "src/shared.txt").read_text() == SHARED.replace("line 2\n", "line 2 by A\n") + "line 7 by B\n"


def test_rescue_is_an_operation_undo_reverts(shared):
    repo, a, b = shared
    run_command(b, "sed -i '/by A/d' src/shared.txt")
    after_command = (repo / "src/shared.txt").read_text()
    vbranch(repo, "rescue")
    assert "line 2 by A" in (repo / "src/shared.txt").read_text()
    vbranch(repo, "undo")
    assert (repo / "src/shared.txt").read_text() == after_command


def test_a_change_next_to_others_lines_keeps_nothing(shared):
    repo, a, b = shared
    out = run_command(b, "sed -i 's/^line 4$/line 4 by B/' src/shared.txt")
    assert out is None
    assert VB(repo).status().rescue == []


def test_losses_are_each_branch_version_that_changed():
    base = FileState(True, 0o100644, b"1\n2\n3\n")
    rec = record_change(new_record("f", base), FileState(True, 0o100644, b"1\nA\n3\n"), 1)
    rec = record_change(rec, FileState(True, 0o100644, b"1\nA\nB\n"), 2)
    reverted = record_change(rec, FileState(True, 0o100644, b"1\n2\nB\n"), 2)  # 2 undoes 1's line
    assert [(b, v.data) for b, v in losses(rec, reverted, {2})] == [(1, b"1\nA\n3\n")]
    adjacent = record_change(rec, FileState(True, 0o100644, b"0\n1\nA\nB\n"), 2)
    assert losses(rec, adjacent, {2}) == []

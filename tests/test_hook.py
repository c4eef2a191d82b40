"""`vbranch hook` on payloads captured from the real Claude Code CLI."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB, git, ignore_questions, tree_files, write
from tests.hookdriver import Session, denied_reason, fire, payload
from vbranch.hooks import handler as hook
from vbranch.state import config
from vbranch.state.models import write_config


@pytest.fixture
def repo(make_repo):
    repo = make_repo({"app.py": "a = 1\nb = 2\nc = 3\nd = 4\n", "shared.log": "start\n"})
    VB(repo).init()
    return repo


def set_config(repo, **values):
    state = repo / ".git" / "vbranch"
    write_config(state, {**config.load(state), **values})


def test_the_captured_session_lands_on_a_branch_named_from_its_prompt(repo):
    steps = ["SessionStart", "UserPromptSubmit", "PreToolUse_Write", "PostToolUse_Write", "PreToolUse_Edit",
             "PostToolUse_Edit", "PreToolUse_Bash", "PostToolUse_Bash", "Stop", "SessionEnd"]
    effects = {
        "PreToolUse_Write": lambda: write(repo, "hello.txt", "hello from fake model\n"),
        "PreToolUse_Edit": lambda: write(repo, "hello.txt", "hello EDITED by fake model\n"),
        "PreToolUse_Bash": lambda: write(repo, "notes.txt", "hi\n"),
    }
    for step in steps:
        code, out = fire(payload(step, repo, prompt="Add a hello file please") if step == "UserPromptSubmit" else payload(step, repo))
        assert code == 0 and denied_reason(out) is None
        effects.get(step, lambda: None)()
    files = tree_files(repo, "add-hello-file")
    assert files["hello.txt"] == b"hello EDITED by fake model\n" and files["notes.txt"] == b"hi\n"
    message = git(repo, "log", "-1", "--format=%B", "add-hello-file")
    assert message.startswith("Add a hello file please\n") and "- hello.txt" in message
    assert "Vbranch-Session: 0a28f3d1-9586-4e3d-a0ee-beb5ab83b709" in message
    status = VB(repo).status()
    assert status.branches[0].sessions[0].ended and status.unattributed == []


def test_an_edit_of_another_live_sessions_lines_is_denied(repo):
    a, b = Session(repo, "sess-a"), Session(repo, "sess-b")
    a.start(), b.start()
    a.edit("app.py", "b = 2", "b = 20")
    out = b.edit("app.py", "b = 20", "b = 200")
    reason = denied_reason(out)
    assert reason and "app.py lines 2-2" in reason and "session sess-a" in reason and "vbranch assign app.py:2-2" in reason
    assert (repo / "app.py").read_text() == "a = 1\nb = 20\nc = 3\nd = 4\n"
    assert denied_reason(b.edit("app.py", "c = 3", "c = 30")) is None  # the next line is free
    assert denied_reason(b.write("app.py", "a = 1\nb = 20\nc = 30\nd = 40\n")) is None  # keeps a's line
    assert denied_reason(b.write("app.py", "rewritten\n")) is not None


def test_an_ended_sessions_lines_are_no_longer_guarded(repo):
    a, b = Session(repo, "a1"), Session(repo, "b1")
    a.start(), b.start()
    a.edit("app.py", "a = 1", "a = 10")
    a.end()
    assert denied_reason(b.edit("app.py", "a = 10", "a = 11")) is None
    assert VB(repo).status().contested[0].lines == (1, 1)  # shown, for the user to resolve


def test_a_new_file_of_another_session_is_guarded_whole(repo):
    a, b = Session(repo, "a2"), Session(repo, "b2")
    a.start(), b.start()
    a.write("new.py", "x = 1\n")
    assert "the whole file" in denied_reason(b.write("new.py", "y = 2\n"))


def test_writes_outside_the_repository_are_allowed_but_into_git_or_other_worktrees_denied(repo, tmp_path):
    s = Session(repo, "s")
    s.start()
    outside = tmp_path / "outside.txt"
    assert s.pre("Write", {"file_path": str(outside), "content": "x"}, "t0") == (0, None)  # memory, plans, /tmp
    for inside_git in (repo / ".git" / "config", repo / "sub" / ".git" / "hooks" / "x"):
        code, out = s.pre("Write", {"file_path": str(inside_git), "content": "x"}, "t2")
        assert ".git" in denied_reason(out)
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "wt-branch")
    code, out = s.pre("Write", {"file_path": str(tmp_path / "wt" / "a.txt"), "content": "x"}, "t2b")
    assert "another worktree" in denied_reason(out)
    set_config(repo, guard_outside="off")
    code, out = s.pre("Write", {"file_path": str(repo / ".git" / "HEAD"), "content": "x"}, "t2c")
    assert ".git" in denied_reason(out)  # whatever guard_outside says
    set_config(repo, guard_outside="deny")  # the worktree-era rule, for who wants it
    code, out = s.pre("Write", {"file_path": str(outside), "content": "x"}, "t1")
    assert "outside the repository" in denied_reason(out)
    os.symlink(tmp_path, repo / "link")
    code, out = s.pre("Edit", {"file_path": str(repo / "link" / "outside.txt"), "old_string": "a", "new_string": "b"}, "t3")
    assert denied_reason(out) is not None
    set_config(repo, guard_outside="warn")
    code, out = s.pre("Write", {"file_path": str(outside), "content": "x"}, "t4")
    assert denied_reason(out) is None and "outside the repository" in out["systemMessage"]
    set_config(repo, guard_outside="off")
    assert s.pre("Write", {"file_path": str(outside), "content": "x"}, "t5") == (0, None)


@pytest.mark.parametrize(
    "command",
    ["git stash", "git stash push -m x", "git reset --hard", "git clean -fd", "git checkout main", "git switch -c x",
     "cd sub && git checkout -b topic", "git rebase main", "git status\ngit reset --hard",
     "ls  # look first\ngit stash", "make \\\n  && git clean -xfd"],
)
def test_git_commands_that_discard_shared_work_are_denied(repo, command):
    s = Session(repo, "s")
    s.start()
    reason = denied_reason(s.bash(command))
    assert reason and reason.startswith("vbranch:")


def test_git_commit_is_denied_with_what_to_do_instead(repo):
    s = Session(repo, "s")
    s.start()
    s.edit("app.py", "a = 1", "a = 2")
    reason = denied_reason(s.bash("git commit -am 'wip'"))
    assert "committed to your own branch" in reason and "CLAUDE_CODE_SESSION_ID" in reason and "vbranch commit" in reason


def test_restoring_files_is_denied_only_where_others_have_changes(repo):
    a, b = Session(repo, "a3"), Session(repo, "b3")
    a.start(), b.start()
    a.edit("app.py", "a = 1", "a = 5")
    b.write("mine.txt", "b\n")
    assert "app.py" in denied_reason(b.bash("git checkout -- app.py"))
    assert "app.py" in denied_reason(b.bash("git restore ."))
    assert denied_reason(a.bash("git checkout -- app.py")) is None  # its own changes
    assert denied_reason(b.bash("git restore --staged app.py")) is None
    assert denied_reason(b.bash("git status && git diff")) is None


def test_git_policy_warn_and_off(repo):
    s = Session(repo, "s")
    s.start()
    set_config(repo, guard_git="warn")
    _, out = s.pre("Bash", {"command": "git stash list; git stash"}, "tw")
    assert denied_reason(out) is None and "git stash" in out["systemMessage"]
    set_config(repo, guard_git="off")
    assert s.bash("git stash") is None


def test_bash_changes_go_to_the_session_that_ran_them(repo):
    s = Session(repo, "bash-s")
    s.start()
    s.bash("echo x >> shared.log; mkdir -p gen; echo y > gen/out.txt", lambda: (
        write(repo, "shared.log", "start\nx\n"), write(repo, "gen/out.txt", "y\n")))
    report = VB(repo).status()
    assert {f.path for f in report.branches[0].files} == {"shared.log", "gen/out.txt"}
    assert report.unattributed == []


def test_overlapping_commands_changing_one_file_are_contested(repo):
    a, b = Session(repo, "over-a"), Session(repo, "over-b")
    a.start(), b.start()
    a.pre("Bash", {"command": "sh a.sh"}, "ta")
    b.pre("Bash", {"command": "sh b.sh"}, "tb")
    write(repo, "shared.log", "start\nfrom a or b\n")
    a.post("Bash", {"command": "sh a.sh"}, "ta")
    _, out = b.post("Bash", {"command": "sh b.sh"}, "tb")
    contested = VB(repo).status().contested
    assert len(contested) == 1 and contested[0].path == "shared.log"
    assert sorted(contested[0].sessions) == ["over-a", "over-b"]


def test_commands_one_after_another_are_not_contested(repo):
    a, b = Session(repo, "seq-a"), Session(repo, "seq-b")
    a.start(), b.start()
    a.bash("echo a >> shared.log", lambda: write(repo, "shared.log", "start\na\n"))
    b.bash("echo b >> shared.log", lambda: write(repo, "shared.log", "start\na\nb\n"))
    VB(repo).commit()
    assert tree_files(repo, "session-seq-a")["shared.log"] == b"start\na\n"
    assert tree_files(repo, "session-seq-b")["shared.log"] == b"start\nb\n"


def test_a_command_that_changed_others_lines_tells_the_agent(repo):
    a, b = Session(repo, "own-a"), Session(repo, "own-b")
    a.start(), b.start()
    a.edit("app.py", "d = 4", "d = 44")
    out = b.bash("sed -i s/44/45/ app.py", lambda: write(repo, "app.py", "a = 1\nb = 2\nc = 3\nd = 45\n"))
    text = out["hookSpecificOutput"]["additionalContext"]
    assert "app.py lines 4-4" in text and "own-a" in text and "contested" in text


def test_an_edit_during_another_sessions_command_gets_only_its_own_change(repo):
    a, b = Session(repo, "mix-a"), Session(repo, "mix-b")
    a.start(), b.start()
    b.pre("Bash", {"command": "long"}, "tb")
    tool_input = {"file_path": str(repo / "app.py"), "old_string": "a = 1", "new_string": "a = 100"}
    a.pre("Edit", tool_input, "ta")
    original = (repo / "app.py").read_text()
    write(repo, "app.py", original.replace("a = 1", "a = 100"))
    write(repo, "app.py", (repo / "app.py").read_text().replace("d = 4", "d = 99"))  # b's command, meanwhile
    a.post("Edit", tool_input, "ta", {"originalFile": original})
    b.post("Bash", {"command": "long"}, "tb")
    VB(repo).commit()
    assert tree_files(repo, "session-mix-a")["app.py"] == b"a = 100\nb = 2\nc = 3\nd = 4\n"
    assert tree_files(repo, "session-mix-b")["app.py"] == b"a = 1\nb = 2\nc = 3\nd = 99\n"


def test_same_file_writes_of_two_sessions_wait_for_the_lease(repo):
    set_config(repo, lease_wait=0.3)
    a, b = Session(repo, "lease-a"), Session(repo, "lease-b")
    a.start(), b.start()
    edit_a = {"file_path": str(repo / "app.py"), "old_string": "a = 1", "new_string": "a = 2"}
    assert a.pre("Edit", edit_a, "ta") == (0, None)  # a holds the lease until its PostToolUse
    edit_b = {"file_path": str(repo / "app.py"), "old_string": "c = 3", "new_string": "c = 4"}
    _, out = b.pre("Edit", edit_b, "tb")
    assert "being written right now" in denied_reason(out) and "lease-a" in denied_reason(out)
    a.post("Edit", edit_a, "ta", {"originalFile": (repo / "app.py").read_text()})
    assert b.pre("Edit", edit_b, "tb2") == (0, None)


def test_a_lease_whose_holder_never_reports_back_expires(repo):
    set_config(repo, lease_wait=2.0, lease_ttl=0.2)
    a, b = Session(repo, "dead-a"), Session(repo, "live-b")
    a.start(), b.start()
    a.pre("Write", {"file_path": str(repo / "app.py"), "content": "x\n"}, "ta")  # a dies here
    assert b.pre("Write", {"file_path": str(repo / "app.py"), "content": "y\n"}, "tb") == (0, None)


def test_a_lease_whose_agent_died_is_free_at_once_and_a_live_ones_is_waited_for(repo):
    """No ttl to wait out when the holder's agent process is gone; a live one is waited for, then named."""
    set_config(repo, lease_wait=0.3, lease_ttl=3600)
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        a, b = Session(repo, "gone-a"), Session(repo, "next-b")
        data = payload("PreToolUse_Write", repo, session_id="gone-a", tool_name="Write", tool_use_id="ta",
                       tool_input={"file_path": str(repo / "app.py"), "content": "x\n"})
        out = io.StringIO()
        assert hook.main(stdin=io.BytesIO(json.dumps(data).encode()), stdout=out, agent_pid=agent.pid) == 0
        _, refused = b.pre("Write", {"file_path": str(repo / "app.py"), "content": "y\n"}, "tb")
        assert "gone-a" in denied_reason(refused) and "its agent is running" in denied_reason(refused)
    finally:
        agent.kill()
        agent.wait()
    assert b.pre("Write", {"file_path": str(repo / "app.py"), "content": "y\n"}, "tb2") == (0, None)


def test_subagent_changes_go_to_the_parent_sessions_branch(repo):
    parent = Session(repo, "parent")
    parent.start()
    parent.prompt("refactor things")
    child = Session(repo, "parent", agent_id="agent-7")
    child.write("sub.txt", "from the subagent\n")
    parent.write("main.txt", "from the parent\n")
    report = VB(repo).status()
    assert len(report.branches) == 1 and {f.path for f in report.branches[0].files} == {"sub.txt", "main.txt"}
    ws = VB(repo).ws()
    assert ("sub.txt", "agent-7") in {(e[3], e[5]) for e in ws.store.events()}
    ws.close()


def test_a_resumed_session_keeps_its_branch(repo):
    s = Session(repo, "resume-me")
    s.start()
    s.prompt("first task")
    s.write("one.txt", "1\n")
    s.stop(), s.end()
    s.start(source="resume")
    s.prompt("second task")
    s.write("two.txt", "2\n")
    s.stop()
    report = VB(repo).status()
    assert [b.name for b in report.branches] == ["first-task"]
    assert not report.branches[0].sessions[0].ended
    assert set(tree_files(repo, "first-task")) >= {"one.txt", "two.txt"}


def test_branch_names_from_prompts_are_unique(repo):
    for sid in ("p1", "p2"):
        s = Session(repo, sid)
        s.start()
        s.prompt("Fix the login bug")
        s.write(f"{sid}.txt", sid)
    assert [b.name for b in VB(repo).status().branches] == ["fix-login-bug", "fix-login-bug-2"]


def test_stop_commits_only_when_configured(repo):
    set_config(repo, commit_on="never")
    s = Session(repo, "nc")
    s.start()
    s.write("x.txt", "x\n")
    s.stop()
    assert git(repo, "rev-parse", "session-nc") == git(repo, "rev-parse", "main")
    set_config(repo, commit_on="session-end")
    s.end()
    assert tree_files(repo, "session-nc")["x.txt"] == b"x\n"


def test_stop_with_contested_lines_tells_the_user(repo):
    a, b = Session(repo, "ca"), Session(repo, "cb")
    a.start(), b.start()
    a.edit("app.py", "a = 1", "a = 2")
    b.bash("sed", lambda: write(repo, "app.py", "a = 3\nb = 2\nc = 3\nd = 4\n"))
    _, out = b.stop()
    assert "committed without its contested changes in app.py lines 1-1" in out["systemMessage"]
    assert "`vbranch claim app.py:1-1`" in out["systemMessage"] and "`vbranch disown app.py:1-1`" in out["systemMessage"]
    _, told = a.prompt("next task")  # the other session hears of it at its next turn
    assert "app.py lines 1-1" in told["hookSpecificOutput"]["additionalContext"]


def test_a_failed_command_still_attributes_its_changes(repo):
    s = Session(repo, "fail")
    s.start()
    tool_input = {"command": "make", "description": "x"}
    s.pre("Bash", tool_input, "tf")
    write(repo, "partial.out", "half\n")
    code, _ = s.post("Bash", tool_input, "tf", failed=True)
    assert code == 0
    assert [f.path for f in VB(repo).status().branches[0].files] == ["partial.out"]


def test_malformed_input_is_a_clear_non_blocking_error(repo):
    for raw in (b"{not json", b"[1, 2]", b'{"hook_event_name": "Stop"}'):
        proc = subprocess.run([sys.executable, "-m", "vbranch", "hook"], input=raw, capture_output=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 1 and proc.stdout == b""
        assert proc.stderr.startswith(b"vbranch hook: ") and b"Traceback" not in proc.stderr


def test_an_internal_error_is_logged_and_shown_never_blocking(repo, monkeypatch):
    from vbranch.hooks import handler as hook

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(hook.HANDLERS, "PreToolUse", broken)
    code, out = fire(payload("PreToolUse_Write", repo))
    assert code == 0 and "disk on fire" in out["systemMessage"]
    assert "RuntimeError: disk on fire" in (repo / ".git/vbranch/hook.log").read_text()


def test_a_repository_without_vbranch_is_left_alone(make_repo):
    plain = make_repo({"x": "x"})
    assert fire(payload("PreToolUse_Bash", plain, tool_input={"command": "git stash"})) == (0, None)
    assert not (plain / ".git/vbranch").exists()


def test_other_events_are_accepted_and_ignored(repo):
    assert fire(payload("failcase_PostToolBatch", repo)) == (0, None)
    assert fire({"hook_event_name": "Notification", "session_id": "x", "cwd": str(repo)}) == (0, None)


def test_captured_concurrent_payloads_replay_cleanly(repo):
    """The four sessions' hooks in the order the real CLI fired them, with the files they wrote."""
    lines = (ROOT / "tests/payloads/concurrent_4_sessions_hooks.jsonl").read_text().splitlines()
    for line in lines:
        data = json.loads(line.replace("/home/dev/project", str(repo)))
        if data["hook_event_name"] == "PostToolUse" and data["tool_name"] in ("Write", "Edit"):
            response = data["tool_response"]
            new = response.get("content")
            if new is None:
                new = response["originalFile"].replace(response["oldString"], response["newString"], 1)
            write(repo, os.path.relpath(response["filePath"], repo), new)
        code, out = fire(data)
        assert code == 0 and denied_reason(out) is None
    report = VB(repo).status()
    assert report.unattributed == [] and report.contested == []
    assert len(report.branches) == 4


@pytest.mark.parametrize("command_also_writes", [False, True])
def test_a_command_ending_during_anothers_edit_leaves_the_edit_to_its_author(repo, command_also_writes):
    a, b = Session(repo, "ed-a"), Session(repo, "cmd-b")
    a.start(), b.start()
    b.pre("Bash", {"command": "long"}, "tb")
    tool_input = {"file_path": str(repo / "app.py"), "old_string": "a = 1", "new_string": "a = 100"}
    a.pre("Edit", tool_input, "ta")  # a holds the lease on app.py
    original = (repo / "app.py").read_text()
    write(repo, "app.py", original.replace("a = 1", "a = 100"))
    if command_also_writes:
        write(repo, "app.py", (repo / "app.py").read_text().replace("c = 3", "c = 33"))
    b.post("Bash", {"command": "long"}, "tb")  # b's command ends before a's PostToolUse
    a.post("Edit", tool_input, "ta", {"originalFile": original})
    VB(repo).commit()
    assert tree_files(repo, "session-ed-a")["app.py"] == b"a = 100\nb = 2\nc = 3\nd = 4\n"
    expected_b = b"a = 1\nb = 2\nc = 33\nd = 4\n" if command_also_writes else b"a = 1\nb = 2\nc = 3\nd = 4\n"
    assert tree_files(repo, "session-cmd-b").get("app.py") == expected_b
    assert VB(repo).status().contested == []
    ws = VB(repo).ws()
    assert ws.store.windows() == []  # the window kept open for the edit is closed
    ws.close()


def test_a_tool_writing_an_ignored_file_records_nothing(make_repo):
    repo = make_repo({".gitignore": "*.log\n"})
    VB(repo).init()
    s = Session(repo, "ign")
    s.start()
    s.write("debug.log", "noise\n")
    s.write("real.txt", "real\n")
    s.stop()
    assert [f.path for b in VB(repo).status().branches for f in b.files] == ["real.txt"]
    assert "debug.log" not in tree_files(repo, "session-ign")


def test_a_state_that_cannot_be_opened_is_reported_not_ignored(repo):
    import sqlite3

    db = sqlite3.connect(repo / ".git/vbranch/state.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    code, out = fire(payload("PreToolUse_Bash", repo, tool_input={"command": "git stash"}))
    assert code == 0 and "newer than this vbranch knows" in out["systemMessage"]


def test_a_hook_finishes_an_operation_a_killed_command_left_half_done(repo, monkeypatch):
    from vbranch.ops import committing, oplog

    s = Session(repo, "after-crash")
    s.start()
    s.write("work.txt", "work\n")

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(oplog, "carry_out", killed)
    ws = VB(repo).ws()
    with pytest.raises(Killed):
        committing.commit(ws, None, None, "2030-01-01T00:00:00")
    ws.lock.depth, ws.lock.fd = 0, None  # a killed process's flock dies with it
    ws.close()
    monkeypatch.undo()
    assert git(repo, "rev-parse", "session-after-crash") == git(repo, "rev-parse", "main")  # not applied yet
    s.bash("ls")
    ws = VB(repo).ws()
    assert ws.store.pending_ops() == []
    ws.close()
    assert tree_files(repo, "session-after-crash")["work.txt"] == b"work\n"


def test_whether_git_ignores_a_new_file_is_asked_with_the_state_lock_free(make_repo, monkeypatch):
    """The check-ignore process reads the whole index: every other session's hooks would wait for it."""
    repo = make_repo({".gitignore": "*.log\n", "old.txt": "old\n"})
    VB(repo).init()
    asked = ignore_questions(monkeypatch)
    s = Session(repo, "ign")
    s.start()
    s.write("debug.log", "noise\n")
    s.write("real.txt", "real\n")
    s.write("old.txt", "new\n")  # tracked: nothing to ask
    assert asked == [(["debug.log"], False), (["real.txt"], False)]
    s.stop()
    assert [f.path for b in VB(repo).status().branches for f in b.files] == ["old.txt", "real.txt"]

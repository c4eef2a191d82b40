"""The command line as a user meets it: output, exit codes, errors, every subcommand."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, git, tree_files, write


def vbranch(repo, *args, env=None, check=True):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CLAUDE_CODE_SESSION_ID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "vbranch", "-C", str(repo), *args], capture_output=True, text=True, env=full_env, cwd=ROOT
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vbranch {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def repo(make_repo):
    repo = make_repo({"app.py": "a = 1\nb = 2\nc = 3\n", "notes.md": "# notes\n"})
    vbranch(repo, "init")
    return repo


def status(repo) -> dict:
    return json.loads(vbranch(repo, "status", "--json").stdout)


def test_status_json_names_branches_sessions_files_and_lines(repo):
    write(repo, "app.py", "a = 10\nb = 2\nc = 3\n")
    vbranch(repo, "record", "--session", "s1", "app.py")
    write(repo, "app.py", "a = 10\nb = 20\nc = 3\n")
    vbranch(repo, "record", "--session", "s2", "--branch", "feature-b", "app.py")
    data = status(repo)
    assert [(b["name"], b["ref"]) for b in data["branches"]] == [
        ("session-s1", "refs/heads/session-s1"),
        ("feature-b", "refs/heads/feature-b"),
    ]
    assert data["branches"][0]["head"] == git(repo, "rev-parse", "main").strip()
    assert data["branches"][1]["sessions"][0]["id"] == "s2"
    assert data["branches"][0]["files"] == [
        {"path": "app.py", "lines": [[1, 1]], "deleted": [[1, 1]], "whole": False, "change": "modified"}
    ]
    assert data["branches"][1]["files"][0]["lines"] == [[2, 2]]
    assert data["unattributed"] == [] and data["contested"] == []


def test_contested_lines_are_held_back_with_paths_lines_and_sessions(repo):
    write(repo, "app.py", "a = 10\nb = 2\nc = 3\n")
    vbranch(repo, "record", "--session", "s1", "app.py")
    write(repo, "app.py", "a = 11\nb = 2\nc = 3\n")
    vbranch(repo, "record", "--session", "s2", "app.py")
    write(repo, "notes.md", "# notes\nmore\n")
    vbranch(repo, "record", "--session", "s3", "notes.md")
    proc = vbranch(repo, "commit", "--all", check=False)
    assert proc.returncode == 5
    assert "app.py lines 1-1" in proc.stderr
    assert "session-s1 (session s1)" in proc.stderr and "session-s2 (session s2)" in proc.stderr
    assert "hint: " in proc.stderr and "Traceback" not in proc.stderr
    assert "session-s3: committed" in proc.stdout
    assert "held back" in proc.stderr and "vbranch claim app.py:1-1" in proc.stderr
    contested = status(repo)["contested"]
    assert contested == [
        {"path": "app.py", "lines": [1, 1], "removed": 0, "branches": ["session-s1", "session-s2"],
         "sessions": ["s1", "s2"], "unattributed": False}
    ]
    vbranch(repo, "assign", "app.py:1", "session-s2")
    assert status(repo)["contested"] == []
    vbranch(repo, "commit", "--all")
    assert tree_files(repo, "session-s2")["app.py"] == b"a = 11\nb = 2\nc = 3\n"
    assert tree_files(repo, "session-s1")["app.py"] == b"a = 1\nb = 2\nc = 3\n"


def test_assign_gives_unattributed_changes_to_a_branch(repo):
    write(repo, "notes.md", "# notes\nby hand\n")
    assert status(repo)["unattributed"][0]["path"] == "notes.md"
    vbranch(repo, "branch", "new", "manual")
    vbranch(repo, "assign", "notes.md", "manual")
    data = status(repo)
    assert data["unattributed"] == [] and data["branches"][0]["files"][0]["path"] == "notes.md"


def test_run_attributes_exactly_what_the_command_changed(repo):
    write(repo, "notes.md", "# notes\nunrelated edit\n")  # already dirty, not touched by the command
    proc = vbranch(repo, "run", "--session", "bash1", "--", "sh", "-c", "echo x >> app.py && echo new > made.txt")
    assert proc.returncode == 0
    data = status(repo)
    files = {f["path"] for f in data["branches"][0]["files"]}
    assert files == {"app.py", "made.txt"}
    assert [f["path"] for f in data["unattributed"]] == ["notes.md"]


def test_run_passes_the_command_exit_code_through(repo):
    assert vbranch(repo, "run", "--session", "x", "--", "sh", "-c", "exit 3", check=False).returncode == 3


def test_branch_new_list_rename_delete(repo):
    vbranch(repo, "branch", "new", "topic")
    assert git(repo, "rev-parse", "topic") == git(repo, "rev-parse", "main")
    vbranch(repo, "branch", "rename", "topic", "topic2")
    assert "topic2" in vbranch(repo, "branch", "list").stdout
    assert git(repo, "rev-parse", "--verify", "-q", "topic", check=False) == ""
    write(repo, "notes.md", "# notes\nx\n")
    vbranch(repo, "assign", "notes.md", "topic2")
    refused = vbranch(repo, "branch", "delete", "topic2", check=False)
    assert refused.returncode == 2 and "owns changes in notes.md" in refused.stderr
    vbranch(repo, "branch", "delete", "topic2", "--force")
    assert [f["path"] for f in status(repo)["unattributed"]] == ["notes.md"]
    taken = vbranch(repo, "branch", "new", "main", check=False)
    assert taken.returncode == 2 and "already exists" in taken.stderr


def test_log_and_diff(repo):
    write(repo, "app.py", "a = 1\nb = 2\nc = 30\n")
    vbranch(repo, "record", "--session", "s1", "app.py")
    diff = vbranch(repo, "diff", "session-s1").stdout
    assert "-c = 3\n+c = 30" in diff
    vbranch(repo, "commit", "session-s1", "-m", "set c")
    assert vbranch(repo, "log", "session-s1").stdout.split(" ", 2)[2].strip() == "set c"


def test_commit_without_names_uses_the_agent_session(repo):
    write(repo, "app.py", "a = 5\nb = 2\nc = 3\n")
    vbranch(repo, "record", "--session", "mine", "app.py")
    write(repo, "notes.md", "# other\n")
    vbranch(repo, "record", "--session", "theirs", "notes.md")
    out = vbranch(repo, "commit", env={"VBRANCH_SESSION": "mine"}).stdout
    assert "session-mine: committed" in out and "theirs" not in out


def test_paths_outside_the_repository_or_in_git_are_refused(repo, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x\n")
    proc = vbranch(repo, "record", "--session", "s", str(outside), check=False)
    assert proc.returncode == 8 and "outside the repository" in proc.stderr
    proc = vbranch(repo, "record", "--session", "s", ".git/config", check=False)
    assert proc.returncode == 8 and "inside .git" in proc.stderr
    os.symlink(tmp_path, repo / "escape")
    proc = vbranch(repo, "record", "--session", "s", "escape/elsewhere.txt", check=False)
    assert proc.returncode == 8
    assert status(repo)["branches"] == []  # a refused record creates nothing


def test_errors_are_one_message_and_a_hint_tracebacks_only_when_verbose(make_repo):
    bare = make_repo({"x": "x"})
    proc = vbranch(bare, "status", check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: vbranch is not set up") and "hint: run `vbranch init`" in proc.stderr
    assert "Traceback" not in proc.stderr
    verbose = vbranch(bare, "--verbose", "status", check=False)
    assert "Traceback" in verbose.stderr and verbose.returncode == 3
    assert vbranch(bare, "record", "x", check=False).returncode == 2


def test_output_pipes_cleanly_and_honours_no_color(repo):
    write(repo, "notes.md", "# unowned\n")
    for env in ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, {}):
        out = vbranch(repo, "status", env=env).stdout
        assert "\x1b[" not in out
        assert "unattributed" in out and "notes.md" in out


def test_teardown_and_init_again(repo):
    write(repo, "app.py", "changed\n")
    vbranch(repo, "record", "--session", "s1", "app.py")
    vbranch(repo, "teardown")
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert (repo / "app.py").read_text() == "changed\n"
    assert vbranch(repo, "status", check=False).returncode == 3
    vbranch(repo, "init")
    assert [f["path"] for f in status(repo)["unattributed"]] == ["app.py"]
    assert vbranch(repo, "init", check=False).returncode == 2


def test_init_with_an_unknown_target_changes_nothing(make_repo):
    repo = make_repo({"x": "x"})
    proc = vbranch(repo, "init", "--target", "nope", check=False)
    assert proc.returncode == 2 and "names no commit" in proc.stderr
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_demo_builds_three_branches_with_their_own_lines(tmp_path):
    target = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "vbranch", "demo", "--dir", str(target)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "contested" in proc.stdout and "held back" in proc.stdout
    voice = tree_files(target, "session-voice")
    og = tree_files(target, "session-og-fix")
    cite = tree_files(target, "session-citations")
    assert "audio/voice_buffer.py" in voice and "audio/voice_buffer.py" not in og
    assert b"voice-buffer" in voice["skills/INDEX.md"] and b"citation-tracker" not in voice["skills/INDEX.md"]
    assert b"citation-tracker" in cite["skills/INDEX.md"] and b"Updated: 2026-11-21" in cite["skills/INDEX.md"]
    assert b"(og:type once)" in og["skills/INDEX.md"] and b"Updated: 2026-11-01" in og["skills/INDEX.md"]
    assert og["web/meta.py"].count(b"og:type") == 1
    # merged, the three branches give back the working directory's index with every entry
    index = (target / "skills/INDEX.md").read_bytes()
    assert tree_files(target, "HEAD")["skills/INDEX.md"] == index
    assert all(entry in index for entry in (b"voice-buffer", b"(og:type once)", b"citation-tracker"))


def test_record_claims_a_change_a_snapshot_saw_first(repo):
    write(repo, "late.txt", "made before anyone said so\n")
    assert [f["path"] for f in status(repo)["unattributed"]] == ["late.txt"]  # status snapshots it
    vbranch(repo, "record", "--session", "slow", "late.txt")
    data = status(repo)
    assert data["unattributed"] == [] and data["branches"][0]["files"][0]["path"] == "late.txt"


def test_watch_install_agent_and_agent_hooks_from_the_command_line(repo):
    started = vbranch(repo, "watch", "--background", "--idle-exit", "30", env={"VBRANCH_WATCHER": "auto"})
    assert "watcher started" in started.stdout
    assert "already running" in vbranch(repo, "watch", "--background").stdout
    from vbranch.cli.watch import stop_watcher
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(repo)
    assert stop_watcher(ws)
    ws.close()
    out = vbranch(repo, "install", "--agent", "gemini").stdout
    assert ".gemini/settings.json" in out and "hook --agent gemini" in (repo / ".gemini/settings.json").read_text()
    proc = subprocess.run([sys.executable, "-m", "vbranch", "hook", "--agent", "cursor"], input=b"not json",
                          capture_output=True, cwd=repo)
    assert proc.returncode == 1 and proc.stdout.strip() == b"{}"
    vbranch(repo, "uninstall", "--agent", "gemini")
    assert "vbranch" not in (repo / ".gemini/settings.json").read_text()


def test_land_with_several_branches_lands_them_as_one_operation_or_none(repo):
    write(repo, "app.py", "a = 10\nb = 2\nc = 3\n")
    vbranch(repo, "record", "--session", "s1", "--branch", "one", "app.py")
    write(repo, "app.py", "a = 10\nb = 20\nc = 3\n")
    vbranch(repo, "record", "--session", "s2", "--branch", "two", "app.py")
    write(repo, "notes.md", "# notes\nthree\n")
    vbranch(repo, "record", "--session", "s3", "--branch", "three", "notes.md")
    refused = vbranch(repo, "land", "one", "two", "--verify", "true", check=False)
    assert refused.returncode != 0 and "--queue" in refused.stderr
    missing = vbranch(repo, "land", "one", "nosuch", check=False)
    assert missing.returncode != 0 and "nosuch" in missing.stderr
    assert tree_files(repo, "main")["app.py"] == b"a = 1\nb = 2\nc = 3\n"  # "one" did not land alone
    out = vbranch(repo, "land", "one", "two").stdout
    assert "one" in out and "two" in out
    assert tree_files(repo, "main")["app.py"] == b"a = 10\nb = 20\nc = 3\n"
    assert "three" not in tree_files(repo, "main")["notes.md"].decode()
    vbranch(repo, "undo")  # one operation: one undo takes both back
    assert tree_files(repo, "main")["app.py"] == b"a = 1\nb = 2\nc = 3\n"

"""Proof that the harness drives the real Claude Code CLI offline, with hooks."""

import json
import os
import shlex
import subprocess
import sys
import uuid

import pytest

from . import claude_cli
from .fake_api import FakeAnthropic, fill_placeholders, next_step, tool_results

SESSION_TIMEOUT = 90

# Appends every hook payload (plus the env vars vbranch cares about) to the
# JSONL file in argv[1]. With argv[2], a PreToolUse on a file whose name
# starts with that prefix is denied through the JSON form.
HOOK_SCRIPT = r'''
import json, os, sys
payload = json.load(sys.stdin)
payload["_env"] = {k: os.environ.get(k) for k in
                   ("CLAUDE_PROJECT_DIR", "CLAUDE_CODE_SESSION_ID")}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (json.dumps(payload) + "\n").encode())  # one write: no interleaving
os.close(fd)
path = payload.get("tool_input", {}).get("file_path", "")
if (len(sys.argv) > 2 and payload["hook_event_name"] == "PreToolUse"
        and os.path.basename(path).startswith(sys.argv[2])):
    print(json.dumps({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "DENIED-BY-TEST: " + os.path.basename(path)}}))
'''


@pytest.fixture(scope="session")
def claude_bin():
    path = claude_cli.find_claude()
    if path is None:
        pytest.fail("Claude Code CLI not usable (VBRANCH_CLAUDE_BIN=%r) and npm "
                    "could not install it: run `npm install --prefix %s %s`" % (
                        os.environ.get("VBRANCH_CLAUDE_BIN"),
                        claude_cli.install_dir(), claude_cli.PACKAGE))
    return path


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=30)
    return path


def make_settings(tmp_path, deny_prefix=None):
    """Settings with the logging hook on every event; returns (settings, log)."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    log = tmp_path / "hooks.jsonl"
    args = [sys.executable, str(script), str(log)] + ([deny_prefix] if deny_prefix else [])
    command = " ".join(shlex.quote(a) for a in args)
    settings = claude_cli.write_settings(tmp_path / "settings.json",
                                         claude_cli.hook_settings(command))
    return settings, log


def read_log(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def events(records):
    return [(r["hook_event_name"], r.get("tool_name")) for r in records]


def test_next_step_counts_parallel_results():
    write = {"tool": "Write", "input": {}}
    steps = [write, [write, write, write], write, "end"]
    assert [next_step(steps, n) for n in (0, 1, 4, 5)] == steps
    assert next_step(steps, 6) == "All scripted steps done."


def test_tool_results_flattens_content():
    body = {"messages": [
        {"role": "user", "content": "SCRIPT=x"},
        {"role": "system", "content": "reminder"},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "plain"},
            {"type": "tool_result", "tool_use_id": "t2", "is_error": True,
             "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}]}
    assert tool_results(body) == [
        {"tool_use_id": "t1", "content": "plain", "is_error": False},
        {"tool_use_id": "t2", "content": "a\nb", "is_error": True}]


def test_one_session_write_edit_bash(claude_bin, repo, tmp_path):
    scripts = fill_placeholders({"basic": [
        {"tool": "Write", "input": {"file_path": "{repo}/a.txt", "content": "line A\n"}},
        {"tool": "Edit", "input": {"file_path": "{repo}/a.txt",
                                   "old_string": "line A", "new_string": "line A edited"}},
        {"tool": "Bash", "input": {"command": "echo hi >> notes.txt",
                                   "description": "append hi"}},
        "All done.",
    ]}, repo=repo)
    settings, log = make_settings(tmp_path)
    with FakeAnthropic(scripts) as api:
        run = claude_cli.run_claude(claude_bin, repo, "SCRIPT=basic", settings,
                                    api.url, tmp_path / "home", timeout=SESSION_TIMEOUT)
    assert run.returncode == 0, run.describe()
    assert run.output["result"] == "All done."
    assert run.output["permission_denials"] == []
    assert (repo / "a.txt").read_text() == "line A edited\n"
    assert (repo / "notes.txt").read_text() == "hi\n"
    assert [r["is_error"] for r in api.tool_results("basic")] == [False] * 3
    assert not api.errors

    records = read_log(log)
    assert events(records) == [
        ("SessionStart", None), ("UserPromptSubmit", None),
        ("PreToolUse", "Write"), ("PostToolUse", "Write"),
        ("PreToolUse", "Edit"), ("PostToolUse", "Edit"),
        ("PreToolUse", "Bash"), ("PostToolUse", "Bash"),
        ("Stop", None), ("SessionEnd", None)]
    session_id = run.output["session_id"]
    for r in records:
        assert r["session_id"] == session_id
        assert r["_env"] == {"CLAUDE_PROJECT_DIR": str(repo),
                             "CLAUDE_CODE_SESSION_ID": session_id}
    assert records[2]["tool_input"]["file_path"] == str(repo / "a.txt")


def test_pre_tool_use_json_deny(claude_bin, repo, tmp_path):
    scripts = fill_placeholders({"deny": [
        {"tool": "Write", "input": {"file_path": "{repo}/denied.txt", "content": "no\n"}},
        {"tool": "Write", "input": {"file_path": "{repo}/ok.txt", "content": "yes\n"}},
        "Finished.",
    ]}, repo=repo)
    settings, log = make_settings(tmp_path, deny_prefix="denied")
    with FakeAnthropic(scripts) as api:
        run = claude_cli.run_claude(claude_bin, repo, "SCRIPT=deny", settings,
                                    api.url, tmp_path / "home", timeout=SESSION_TIMEOUT)
    assert run.returncode == 0, run.describe()
    assert not (repo / "denied.txt").exists()
    assert (repo / "ok.txt").read_text() == "yes\n"

    denials = run.output["permission_denials"]
    assert [d["tool_name"] for d in denials] == ["Write"]
    assert denials[0]["tool_input"]["file_path"] == str(repo / "denied.txt")

    denied, allowed = api.tool_results("deny")
    assert denied["is_error"] is True
    assert "DENIED-BY-TEST: denied.txt" in denied["content"]
    assert allowed["is_error"] is False
    # Only the allowed Write gets a PostToolUse.
    assert events(read_log(log)).count(("PostToolUse", "Write")) == 1


def test_four_sessions_at_once(claude_bin, repo, tmp_path):
    names = ["s%d" % i for i in range(1, 5)]
    scripts = fill_placeholders({name: [
        {"tool": "Write", "input": {"file_path": "{repo}/%s.txt" % name,
                                    "content": "%s line A\n" % name}},
        {"tool": "Edit", "input": {"file_path": "{repo}/%s.txt" % name,
                                   "old_string": "line A", "new_string": "line A edited"}},
        {"tool": "Bash", "input": {"command": "echo %s >> shared.txt" % name,
                                   "description": "append to shared"}},
        "Done %s." % name,
    ] for name in names}, repo=repo)
    settings, log = make_settings(tmp_path)
    session_ids = {name: str(uuid.uuid4()) for name in names}
    with FakeAnthropic(scripts) as api:
        procs = {name: claude_cli.start_claude(
                     claude_bin, repo, "SCRIPT=" + name, settings, api.url,
                     tmp_path / "home", session_id=session_ids[name])
                 for name in names}
        runs = {name: claude_cli.finish_claude(p, SESSION_TIMEOUT)
                for name, p in procs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, run.describe()
        assert run.output["session_id"] == session_ids[name]
        assert run.output["result"] == "Done %s." % name
        assert (repo / ("%s.txt" % name)).read_text() == "%s line A edited\n" % name
    assert sorted((repo / "shared.txt").read_text().split()) == names

    records = read_log(log)
    for name in names:
        mine = [r for r in records if r["session_id"] == session_ids[name]]
        got = events(mine)
        assert got[0] == ("SessionStart", None) and got[-1] == ("SessionEnd", None)
        assert got.count(("PostToolUse", "Write")) == 1
        assert got.count(("PostToolUse", "Bash")) == 1


def test_parallel_tool_calls_in_one_message(claude_bin, repo, tmp_path):
    scripts = fill_placeholders({"par": [
        [{"tool": "Write", "input": {"file_path": "{repo}/p1.txt", "content": "1\n"}},
         {"tool": "Write", "input": {"file_path": "{repo}/p2.txt", "content": "2\n"}}],
        "Both written.",
    ]}, repo=repo)
    settings, log = make_settings(tmp_path)
    with FakeAnthropic(scripts) as api:
        run = claude_cli.run_claude(claude_bin, repo, "SCRIPT=par", settings,
                                    api.url, tmp_path / "home", timeout=SESSION_TIMEOUT)
    assert run.returncode == 0, run.describe()
    assert run.output["result"] == "Both written."
    assert (repo / "p1.txt").read_text() == "1\n"
    assert (repo / "p2.txt").read_text() == "2\n"
    # One assistant message with two tool_use blocks, then one more request.
    assert len(api.script_requests("par")) == 2
    assert len(api.tool_results("par")) == 2
    assert events(read_log(log)).count(("PreToolUse", "Write")) == 2

"""Codex, Gemini CLI and Cursor: their hook files, and their payloads through vbranch's hook handler."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from vbranch import agents
from vbranch.agents import codex
from vbranch.agents import settings as inst
from vbranch.core import guard
from vbranch.errors import VbranchError
from vbranch.state.workspace import open_workspace

PAYLOADS = Path(__file__).parent / "payloads" / "agents"
CAPTURED_ROOT = "/home/dev/project"
COMMAND = inst.hook_command()


def sample(name: str, repo: Path | str = CAPTURED_ROOT, **fields) -> dict:
    data = json.loads((PAYLOADS / f"{name}.json").read_text().replace(CAPTURED_ROOT, str(repo)))
    data.update(fields)
    return data


def run(agent: str, data: dict) -> tuple[int, str]:
    out = io.StringIO()
    code = agents.main(agent, stdin=io.BytesIO(json.dumps(data).encode()), stdout=out)
    return code, out.getvalue().strip()


def session_paths(repo: Path, session: str) -> set[str]:
    ws = open_workspace(repo)
    try:
        return {path for _at, sid, _branch, path, _source, _agent in ws.store.events() if sid == session and path}
    finally:
        ws.close()


# --- normalize ----------------------------------------------------------------------------------


def test_every_sample_is_a_documented_event():
    names = sorted(p.stem for p in PAYLOADS.glob("*.json"))
    assert {n.split("_")[0] for n in names} == set(agents.AGENTS)
    for name in names:
        agent = name.split("_")[0]
        data = sample(name)
        out = agents.normalize(agent, data)
        if out is None:
            continue
        assert out["hook_event_name"] in {"SessionStart", "SessionEnd", "UserPromptSubmit", "PreToolUse", "PostToolUse",
                                          "PostToolUseFailure", "Stop", "SubagentStart", "SubagentStop"}, name
        assert out["session_id"] and out["vbranch_agent"] == agent
        assert out["cwd"].startswith(CAPTURED_ROOT), name
        if "Tool" in out["hook_event_name"]:
            assert out["tool_name"] in {"Write", "Edit", "Bash"} and out["tool_use_id"], name


def test_codex_patch_paths():
    patch = sample("codex_PreToolUse_apply_patch")["tool_input"]["command"]
    assert codex.patch_paths(patch) == ["src/app.py", "scripts/release.sh", "docs/usage.md", "old_name.py", "new_name.py", "obsolete.txt"]
    assert codex.patch_paths("") == []
    assert codex.patch_paths("*** Begin Patch\n*** Add File: a b.txt  \n+x\n*** End Patch") == ["a b.txt"]


def test_codex_apply_patch_becomes_a_command_window():
    pre = agents.normalize("codex", sample("codex_PreToolUse_apply_patch"))
    post = agents.normalize("codex", sample("codex_PostToolUse_apply_patch"))
    assert pre["hook_event_name"] == "PreToolUse" and post["hook_event_name"] == "PostToolUse"
    assert pre["tool_name"] == post["tool_name"] == "Bash"
    assert pre["tool_use_id"] == post["tool_use_id"] == "call_Jx81mQk2VhT4rPzL0aN3"
    # The command names the files, never the patch: its context lines (`git stash`) would look like
    # a git command that discards work to vbranch's guard.
    assert pre["tool_input"]["command"] == "apply_patch src/app.py scripts/release.sh docs/usage.md old_name.py new_name.py obsolete.txt"
    assert "\n" not in pre["tool_input"]["command"] and not guard.git_risks(pre["tool_input"]["command"])
    assert "git stash" in pre["tool_input"]["patch"]
    assert pre["tool_input"]["paths"][0] == f"{CAPTURED_ROOT}/src/app.py"
    assert pre["turn_id"] == "7"


def test_codex_passes_bash_and_lifecycle_through_and_skips_other_tools():
    data = sample("codex_PreToolUse_Bash")
    assert agents.normalize("codex", data) == {**data, "vbranch_agent": "codex", "vbranch_stop_closes_windows": True}
    assert agents.normalize("codex", sample("codex_SessionStart"))["source"] == "startup"
    assert agents.normalize("codex", sample("codex_UserPromptSubmit"))["prompt"].startswith("Greet")
    assert agents.normalize("codex", sample("codex_PreToolUse_mcp")) is None
    assert agents.normalize("codex", {"hook_event_name": "PreCompact", "session_id": "s"}) is None


def test_gemini_events_and_tools():
    n = lambda name: agents.normalize("gemini", sample(name))  # noqa: E731
    assert n("gemini_SessionStart")["hook_event_name"] == "SessionStart"
    assert n("gemini_SessionEnd")["hook_event_name"] == "SessionEnd"
    prompt = n("gemini_BeforeAgent")
    assert prompt["hook_event_name"] == "UserPromptSubmit" and prompt["prompt"] == "Add a usage section to the README"
    assert n("gemini_AfterAgent")["hook_event_name"] == "Stop"
    write_pre, write_post = n("gemini_BeforeTool_write_file"), n("gemini_AfterTool_write_file")
    assert write_pre["tool_name"] == "Write" and write_post["hook_event_name"] == "PostToolUse"
    assert write_pre["tool_input"] == {"file_path": f"{CAPTURED_ROOT}/README.md", "content": "# Project\n\n## Usage\n\nRun `make`.\n"}
    assert write_pre["tool_use_id"] == write_post["tool_use_id"]  # paired without an id from Gemini
    edit = n("gemini_BeforeTool_replace")
    assert edit["tool_name"] == "Edit" and edit["tool_input"]["old_string"] == "print('Hi')" and not edit["tool_input"]["replace_all"]
    shell_pre, shell_post = n("gemini_BeforeTool_run_shell_command"), n("gemini_AfterTool_run_shell_command")
    assert shell_pre["tool_name"] == "Bash" and shell_pre["tool_input"]["command"] == "make fmt"
    assert shell_pre["cwd"] == f"{CAPTURED_ROOT}/src"  # `directory` is relative to the project
    assert shell_pre["tool_use_id"] == shell_post["tool_use_id"] != write_pre["tool_use_id"]
    failed = n("gemini_AfterTool_run_shell_command_failed")
    assert failed["hook_event_name"] == "PostToolUseFailure" and failed["tool_use_id"] == shell_pre["tool_use_id"]
    assert n("gemini_BeforeTool_read_file") is None
    many = sample("gemini_BeforeTool_replace")
    many["tool_input"]["expected_replacements"] = 3
    assert agents.normalize("gemini", many)["tool_input"]["replace_all"]


def test_cursor_events():
    n = lambda name: agents.normalize("cursor", sample(name))  # noqa: E731
    conversation = sample("cursor_stop")["conversation_id"]
    assert {n(x)["hook_event_name"] for x in ("cursor_sessionStart", "cursor_sessionEnd", "cursor_stop", "cursor_beforeSubmitPrompt")} == \
        {"SessionStart", "SessionEnd", "Stop", "UserPromptSubmit"}
    assert n("cursor_stop")["session_id"] == conversation and n("cursor_stop")["cwd"] == CAPTURED_ROOT
    pre, post = n("cursor_beforeShellExecution"), n("cursor_afterShellExecution")
    assert pre["tool_name"] == post["tool_name"] == "Bash" and pre["tool_use_id"] == post["tool_use_id"]
    assert (pre["hook_event_name"], post["hook_event_name"]) == ("PreToolUse", "PostToolUse")
    edit = n("cursor_afterFileEdit")
    assert edit["hook_event_name"] == "PostToolUse" and edit["tool_name"] == "Edit"
    assert edit["tool_input"]["file_path"] == f"{CAPTURED_ROOT}/src/app.ts"
    assert n("cursor_beforeReadFile") is None
    assert agents.normalize("cursor", {"hook_event_name": "stop"}) is None  # no conversation: no session


def test_unknown_agent():
    with pytest.raises(VbranchError):
        agents.normalize("aider", {})


# --- answers ------------------------------------------------------------------------------------

DENY = json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                          "permissionDecisionReason": "someone else's lines"}})
CONTEXT = json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": "contested"}})


def test_render():
    assert agents.render("codex", {"hook_event_name": "PreToolUse"}, DENY) == DENY
    assert agents.render("codex", {}, None) is None
    assert json.loads(agents.render("gemini", {"hook_event_name": "BeforeTool"}, DENY)) == {"decision": "deny", "reason": "someone else's lines"}
    assert json.loads(agents.render("gemini", {"hook_event_name": "AfterTool"}, CONTEXT)) == \
        {"hookSpecificOutput": {"hookEventName": "AfterTool", "additionalContext": "contested"}}
    assert json.loads(agents.render("gemini", {"hook_event_name": "AfterAgent"}, json.dumps({"systemMessage": "not committed"}))) == \
        {"systemMessage": "not committed"}
    assert agents.render("gemini", {"hook_event_name": "BeforeTool"}, None) is None
    assert json.loads(agents.render("cursor", {"hook_event_name": "beforeShellExecution"}, DENY)) == \
        {"permission": "deny", "user_message": "someone else's lines", "agent_message": "someone else's lines"}
    # Cursor wants JSON on every path, and never an "allow" from us.
    assert agents.render("cursor", {"hook_event_name": "beforeShellExecution"}, None) == "{}"
    assert agents.render("cursor", {"hook_event_name": "afterFileEdit"}, CONTEXT) == "{}"


# --- through the real handler -------------------------------------------------------------------


def test_codex_apply_patch_is_attributed(vb):
    v = vb({"src/app.py": "def greet():\n    print('Hi')\n", "obsolete.txt": "old\n", "old_name.py": "x = 1\n",
            "scripts/release.sh": "set -e\ngit stash\nmake dist\ngit stash pop\n"})
    repo = v.repo
    assert run("codex", sample("codex_SessionStart", repo))[0] == 0
    assert run("codex", sample("codex_UserPromptSubmit", repo))[0] == 0
    code, out = run("codex", sample("codex_PreToolUse_apply_patch", repo))
    assert code == 0 and "deny" not in out  # the patch's `git stash` context line is not a command
    (repo / "src/app.py").write_text("def greet():\n    name = 'world'\n    print(f'Hello, {name}!')\n")
    (repo / "scripts/release.sh").write_text('set -e\ngit stash\nmake dist VERSION="$1"\ngit stash pop\n')
    (repo / "docs").mkdir()
    (repo / "docs/usage.md").write_text("# Usage\nRun `python -m app`.\n")
    (repo / "old_name.py").rename(repo / "new_name.py")
    (repo / "new_name.py").write_text("x = 2\n")
    (repo / "obsolete.txt").unlink()
    assert run("codex", sample("codex_PostToolUse_apply_patch", repo))[0] == 0
    sid = sample("codex_SessionStart")["session_id"]
    assert session_paths(repo, sid) >= {"src/app.py", "scripts/release.sh", "docs/usage.md", "old_name.py", "new_name.py", "obsolete.txt"}
    assert run("codex", sample("codex_Stop", repo))[0] == 0


@pytest.mark.parametrize("agent, first", [("codex", "codex_UserPromptSubmit"), ("gemini", "gemini_BeforeAgent"),
                                          ("cursor", "cursor_beforeSubmitPrompt")])
def test_a_session_first_seen_at_its_prompt_is_its_agent_s(vb, agent, first):
    """A session can start before vbranch is installed: its first hook is then a prompt. It was recorded as Claude Code's."""
    v = vb({"a.txt": "a\n"})
    assert run(agent, sample(first, v.repo))[0] == 0
    ws = open_workspace(v.repo)
    try:
        assert [s.agent for s in ws.store.sessions()] == [agent]
    finally:
        ws.close()


def test_codex_patch_window_covers_only_the_files_it_names(vb):
    v = vb({"src/app.py": "def greet():\n    print('Hi')\n", "obsolete.txt": "old\n", "old_name.py": "x = 1\n",
            "scripts/release.sh": "set -e\n", "notes.txt": "mine\n"})
    repo = v.repo
    assert run("codex", sample("codex_SessionStart", repo))[0] == 0
    assert run("codex", sample("codex_PreToolUse_apply_patch", repo))[0] == 0
    (repo / "src/app.py").write_text("def greet():\n    print('Hello')\n")
    (repo / "notes.txt").write_text("mine, typed while the patch ran\n")  # someone else, not named by the patch
    assert run("codex", sample("codex_PostToolUse_apply_patch", repo))[0] == 0
    report = v.status()
    assert [f.path for f in report.unattributed] == ["notes.txt"] and report.contested == []
    assert [f.path for b in report.branches for f in b.files] == ["src/app.py"]


def test_codex_failed_command_window_closes_at_stop(vb):
    """Codex sends no PostToolUse for a failed call: the turn's end closes its window."""
    v = vb({"a.txt": "one\n"})
    repo = v.repo
    sid = sample("codex_SessionStart")["session_id"]
    assert run("codex", sample("codex_SessionStart", repo))[0] == 0
    assert run("codex", sample("codex_PreToolUse_Bash", repo))[0] == 0
    (repo / "build.log").write_text("failed halfway\n")
    ws = open_workspace(repo)
    try:
        assert [w.session for w in ws.store.windows()] == [sid]
    finally:
        ws.close()
    assert run("codex", sample("codex_Stop", repo))[0] == 0
    ws = open_workspace(repo)
    try:
        assert ws.store.windows() == []
    finally:
        ws.close()
    assert "build.log" in session_paths(repo, sid)


def test_gemini_write_and_shell_are_attributed(vb):
    v = vb({"README.md": "# Project\n", "src/app.py": "print('Hi')\n"})
    repo = v.repo
    sid = sample("gemini_SessionStart")["session_id"]
    code, out = run("gemini", sample("gemini_SessionStart", repo))
    assert code == 0 and json.loads(out)["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert run("gemini", sample("gemini_BeforeAgent", repo))[0] == 0
    assert run("gemini", sample("gemini_BeforeTool_write_file", repo)) == (0, "")
    (repo / "README.md").write_text("# Project\n\n## Usage\n\nRun `make`.\n")
    assert run("gemini", sample("gemini_AfterTool_write_file", repo))[0] == 0
    assert run("gemini", sample("gemini_BeforeTool_run_shell_command", repo))[0] == 0
    (repo / "src/app.py").write_text("print('Hi')  # formatted\n")
    assert run("gemini", sample("gemini_AfterTool_run_shell_command", repo))[0] == 0
    assert session_paths(repo, sid) >= {"README.md", "src/app.py"}
    assert run("gemini", sample("gemini_AfterAgent", repo))[0] == 0
    assert run("gemini", sample("gemini_SessionEnd", repo))[0] == 0


def test_cursor_edit_and_shell_are_attributed(vb):
    v = vb({"src/app.ts": "export function greet() {}\n", "package.json": "{}\n"})
    repo = v.repo
    sid = sample("cursor_stop")["conversation_id"]
    assert run("cursor", sample("cursor_sessionStart", repo))[0] == 0
    assert run("cursor", sample("cursor_beforeSubmitPrompt", repo)) == (0, '{"continue": true}')
    (repo / "src/app.ts").write_text("export function welcome() {}\n")
    assert run("cursor", sample("cursor_afterFileEdit", repo)) == (0, "{}")
    assert run("cursor", sample("cursor_beforeShellExecution", repo)) == (0, "{}")
    (repo / "package.json").write_text('{"name": "x"}\n')
    assert run("cursor", sample("cursor_afterShellExecution", repo))[0] == 0
    assert session_paths(repo, sid) >= {"src/app.ts", "package.json"}
    assert run("cursor", sample("cursor_stop", repo))[0] == 0


def test_bad_input_fails_open():
    out = io.StringIO()
    assert agents.main("cursor", stdin=io.BytesIO(b"not json"), stdout=out) == 1
    assert out.getvalue().strip() == "{}"
    out = io.StringIO()
    assert agents.main("gemini", stdin=io.BytesIO(b"[]"), stdout=out) == 0 and out.getvalue() == ""


# --- installing ---------------------------------------------------------------------------------


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def ours(agent: str, data: dict) -> list[tuple[str, dict]]:
    found = []
    for event, entries in data.get("hooks", {}).items():
        if not isinstance(entries, list):
            continue
        for entry in entries:
            hooks = entry.get("hooks", []) if agent != "cursor" else [entry]
            found += [(event, h) for h in hooks if inst.is_ours(h)]
    return found


EXPECTED = {
    "codex": {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop"},
    "gemini": {"SessionStart", "BeforeAgent", "BeforeTool", "AfterTool", "AfterAgent", "SessionEnd"},
    "cursor": {"sessionStart", "beforeSubmitPrompt", "beforeShellExecution", "afterShellExecution", "afterFileEdit", "stop", "sessionEnd"},
}


@pytest.mark.parametrize("agent", agents.AGENTS)
@pytest.mark.parametrize("scope", agents.SCOPES)
def test_fresh_install(tmp_path, agent, scope):
    top, home = tmp_path / "repo", tmp_path / "home"
    top.mkdir()
    path = agents.install_agent(top, agent, scope, home=home)
    assert path == (home if scope == "user" else top) / agents.get(agent).project_file
    data = load(path)
    found = ours(agent, data)
    assert {event for event, _ in found} == EXPECTED[agent] and len(found) == len(EXPECTED[agent])
    for _, hook in found:
        assert hook["command"] == f"{COMMAND} hook --agent {agent}"
        # the native client's command (a C compiler is there): the Python client it falls back to gets the same words
        assert inst.split_native(hook["command"])[1] == f"{inst.python_hook_command()} hook --agent {agent}"
    if agent == "cursor":
        assert data["version"] == 1
    if agent == "gemini":  # milliseconds
        assert all(h["timeout"] >= 1000 for _, h in found) and all(h["name"].startswith("vbranch") for _, h in found)
        tools = data["hooks"]["BeforeTool"][0]["matcher"]
        assert all(t in tools for t in ("write_file", "replace", "run_shell_command"))
    if agent == "codex":  # seconds
        assert all(h["timeout"] <= 600 for _, h in found)
        assert "apply_patch" in data["hooks"]["PreToolUse"][0]["matcher"]


def test_local_scope_is_kept_out_of_git(make_repo):
    top = make_repo({"a.txt": "a\n"})
    path = agents.install_agent(top, "gemini", "local")
    assert path == top / ".gemini/settings.json"
    exclude = (top / ".git/info/exclude").read_text().splitlines()
    assert ".gemini/settings.json" in exclude and f"*{inst.BACKUP_SUFFIX}" in exclude
    agents.install_agent(top, "codex", "project")  # a project file is meant to be committed
    assert ".codex/hooks.json" not in (top / ".git/info/exclude").read_text().splitlines()


def test_codex_user_scope_follows_codex_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    assert agents.settings_path(tmp_path, "codex", "user") == tmp_path / "codex-home" / "hooks.json"


THEIRS = {
    "codex": {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit", "timeout": 5}]}],
                        "PermissionRequest": [{"hooks": [{"type": "command", "command": "approve-safe"}]}]}},
    "gemini": {"theme": "GitHub", "tools": {"enableHooks": True},
               "hooks": {"enabled": True, "disabled": ["secret-scanner"],
                         "BeforeTool": [{"matcher": "write_file", "hooks": [{"name": "secret-scanner", "type": "command", "command": "scan", "timeout": 5000}]}]}},
    "cursor": {"version": 1, "hooks": {"afterFileEdit": [{"command": "./hooks/format.sh"}], "beforeReadFile": [{"command": "./hooks/deny-env.sh"}]}},
}


@pytest.mark.parametrize("agent", agents.AGENTS)
def test_merge_keeps_theirs_and_uninstall_restores(tmp_path, agent):
    top = tmp_path / "repo"
    path = top / agents.get(agent).project_file
    path.parent.mkdir(parents=True)
    original = json.dumps(THEIRS[agent], indent=4) + "\n"
    path.write_text(original)
    agents.install_agent(top, agent)
    data = load(path)
    assert (path.parent / (path.name + inst.BACKUP_SUFFIX)).read_text() == original
    # Their entries are all still there, theirs first where they were first.
    for event, entries in THEIRS[agent]["hooks"].items():
        if isinstance(entries, list) and event != "disabled":
            assert data["hooks"][event][: len(entries)] == entries
    assert data["hooks"].get("disabled", THEIRS[agent]["hooks"].get("disabled")) == THEIRS[agent]["hooks"].get("disabled")
    for key, value in THEIRS[agent].items():
        if key != "hooks":
            assert data[key] == value
    # Reinstalling changes nothing; a newer interpreter path replaces ours in place.
    before = path.read_bytes()
    agents.install_agent(top, agent)
    assert path.read_bytes() == before
    agents.uninstall_agent(top, agent)
    assert load(path) == THEIRS[agent]


def test_reinstall_replaces_an_old_command_in_place(tmp_path):
    top = tmp_path / "repo"
    path = top / ".cursor/hooks.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "hooks": {"afterFileEdit": [
        {"command": "/old/venv/bin/vbranch hook --agent cursor"}, {"command": "./fmt.sh"}]}}))
    agents.install_agent(top, "cursor")
    entries = load(path)["hooks"]["afterFileEdit"]
    assert entries == [{"command": f"{COMMAND} hook --agent cursor"}, {"command": "./fmt.sh"}]


@pytest.mark.parametrize("agent", agents.AGENTS)
def test_refuses_what_it_cannot_read(tmp_path, agent):
    top = tmp_path / "repo"
    path = top / agents.get(agent).project_file
    path.parent.mkdir(parents=True)
    for text in ("{not json", "[1, 2]", '{"hooks": 3}'):
        path.write_text(text)
        with pytest.raises(VbranchError):
            agents.install_agent(top, agent)
        assert path.read_text() == text


def test_uninstall_without_a_file_writes_nothing(tmp_path):
    for agent in agents.AGENTS:
        path = agents.uninstall_agent(tmp_path, agent)
        assert not path.exists()


def test_templates_ship_with_the_package():
    root = Path(__file__).resolve().parent.parent / "hooks"
    for agent in agents.AGENTS:
        text = (root / agents.get(agent).template).read_text()
        assert f"{inst.PLACEHOLDER} hook --agent {agent}" in text


# --- the registry -------------------------------------------------------------------------------


def test_every_registered_agent_is_one_module_with_its_own_template():
    for name in agents.REGISTRY:
        agent = agents.get(name)
        assert agent.name == name and agent.project_file
        assert f"{inst.PLACEHOLDER} hook" in (Path(__file__).resolve().parent.parent / "hooks" / agent.template).read_text()
    assert agents.fail_open("cursor") == "{}\n" and agents.fail_open("gemini") == "" and agents.fail_open("aider") == ""
    assert set(agents.NOTES) == {"codex", "gemini", "cursor"}


def test_a_hook_loads_no_heavy_module_and_no_settings_mechanics():
    import subprocess
    import sys

    code = ("import sys; from vbranch import agents; from vbranch.hooks import handler\n"
            "for name in agents.REGISTRY: agents.get(name)\n"
            "agents.normalize('cursor', {}); agents.render('gemini', {}, None)\n"
            "print(sorted(m for m in ('rich', 'pydantic', 'pygit2', 'argparse', 'typing', 'hashlib', 'copy',\n"
            "                         'vbranch.agents.settings', 'vbranch.resources') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The installer that merges vbranch's hooks into Claude Code settings files."""
from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vbranch import hookclient, native, tracer
from vbranch.agents import claude_code as inst
from vbranch.agents.settings import hook_command, is_ours, merge_hooks, remove_hooks
from vbranch.errors import VbranchError
from vbranch.resources import hook_file

EVENTS = {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure",
          "Stop", "SubagentStart", "SubagentStop", "SessionEnd"}
TOOLS = "Write|Edit|MultiEdit|NotebookEdit|Bash"
# What `vbranch install` writes where a C compiler is (the tests need one): the native client through
# /bin/sh, which starts the Python client (python -S hookclient.py) when the binary is gone.
PYTHON_COMMAND = f"{shlex.quote(sys.executable)} -S {shlex.quote(str(Path(hookclient.__file__)))}"
NATIVE_COMMAND = ("/bin/sh -c " + shlex.quote(f'[ -x "$0" ] && exec "$0" {shlex.quote(sys.executable)} '
                                              f'{shlex.quote(str(Path(hookclient.__file__)))} "$@"; exec {PYTHON_COMMAND} "$@"')
                  + f" {shlex.quote(str(native.cached(native.HOOK_CLIENT_SOURCE)))}")

THEIRS = {
    "permissions": {"allow": ["Bash(ls:*)"]},
    "model": "opus",
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "audit-bash", "timeout": 3}]},
            {"matcher": "Read", "hooks": [{"type": "command", "command": "log-read"}]},
        ],
        "Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}],
    },
    "env": {"FOO": "1"},
}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def ours_in(settings: dict) -> list[tuple[str, dict]]:
    return [(event, h) for event, groups in settings.get("hooks", {}).items()
            for g in groups for h in g["hooks"] if is_ours(h)]


@pytest.mark.parametrize("scope,rel", [("project", ".claude/settings.json"),
                                       ("local", ".claude/settings.local.json"),
                                       ("user", "home/.claude/settings.json")])
def test_fresh_install_each_scope(tmp_path, scope, rel):
    top = tmp_path / "repo"
    top.mkdir()
    path = inst.install(top, scope, home=tmp_path / "home")
    base = tmp_path if scope == "user" else top
    assert path == base / rel
    data = load(path)
    assert set(data) == {"hooks", "env", "worktree"} and set(data["hooks"]) == EVENTS
    assert data["env"] == {
        "CLAUDE_CODE_SHELL_PREFIX": f"{shlex.quote(sys.executable)} -S {shlex.quote(str(Path(tracer.__file__).with_name('trace_command.py')))}",
        "VBRANCH_INSTALL_SET": "worktree.bgIsolation",
    }
    assert data["worktree"] == {"bgIsolation": "none"}  # background sessions stay in the shared directory
    for event, groups in data["hooks"].items():
        assert len(groups) == 1 and len(groups[0]["hooks"]) == 1
        hook = groups[0]["hooks"][0]
        assert hook["type"] == "command" and is_ours(hook)
        assert hook["command"] == f"{NATIVE_COMMAND} hook"
        # Read too after it: what a session saw of a shared memory file (harness.py)
        assert groups[0].get("matcher") == (TOOLS + "|Read" if event == "PostToolUse" else TOOLS if "Tool" in event else None)
    timeouts = {e: g[0]["hooks"][0]["timeout"] for e, g in data["hooks"].items()}
    assert timeouts["PreToolUse"] == timeouts["PostToolUse"] == timeouts["PostToolUseFailure"] == 30
    assert timeouts["Stop"] == 60 and timeouts["SessionEnd"] == 5
    assert not path.with_name(path.name + ".vbranch-backup").exists()  # nothing was there to back up


def test_template_has_placeholder_only():
    raw = json.loads(hook_file(inst.TEMPLATE))
    commands = {h["command"] for gs in raw["hooks"].values() for g in gs for h in g["hooks"]}
    assert commands == {"{vbranch} hook"}


def test_merge_keeps_theirs_and_order(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps(THEIRS, indent=4))
    inst.install(tmp_path)
    data = load(path)
    assert list(data) == ["permissions", "model", "hooks", "env", "worktree"]
    assert {k: data[k] for k in ("permissions", "model")} == {k: THEIRS[k] for k in ("permissions", "model")}
    assert data["env"] == {**THEIRS["env"], "CLAUDE_CODE_SHELL_PREFIX": inst.tracer_command(),
                           "VBRANCH_INSTALL_SET": "worktree.bgIsolation"}  # their variables kept
    assert data["hooks"]["Notification"] == THEIRS["hooks"]["Notification"]
    pre = data["hooks"]["PreToolUse"]
    assert pre[:2] == THEIRS["hooks"]["PreToolUse"]  # theirs first, in their order
    assert pre[2]["matcher"] == TOOLS and is_ours(pre[2]["hooks"][0])
    assert list(data["hooks"])[:2] == ["PreToolUse", "Notification"]


def test_install_twice_is_idempotent(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps(THEIRS))
    inst.install(tmp_path)
    first = path.read_bytes()
    inst.install(tmp_path)
    assert path.read_bytes() == first
    assert len(ours_in(load(path))) == len(EVENTS)
    assert merge_hooks(load(path), inst.our_hooks()) == load(path)


def test_reinstall_with_new_command_replaces_ours_in_place():
    old = merge_hooks(THEIRS, inst.our_hooks("'/old venv/bin/python' -m vbranch"))
    # someone adds a hook after ours; a reinstall must not move ours behind it
    old["hooks"]["PreToolUse"].append({"matcher": "Write", "hooks": [{"type": "command", "command": "later"}]})
    new = merge_hooks(old, inst.our_hooks("/new/python -m vbranch"))
    commands = {h["command"] for _, h in ours_in(new)}
    assert commands == {"/new/python -m vbranch hook"}
    assert len(ours_in(new)) == len(EVENTS)
    assert [g["hooks"][0]["command"] for g in new["hooks"]["PreToolUse"]] == [
        "audit-bash", "log-read", "/new/python -m vbranch hook", "later"]
    # and from `-m vbranch` to the fast client of this version
    client = merge_hooks(new, inst.our_hooks())
    assert {h["command"] for _, h in ours_in(client)} == {hook_command() + " hook"}
    assert len(ours_in(client)) == len(EVENTS)


def test_merge_recognises_plain_and_path_forms_and_drops_stale_events():
    settings = {"hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "vbranch hook"}, {"type": "command", "command": "say done"}]}],
        "PreCompact": [{"hooks": [{"type": "command", "command": "/usr/local/bin/vbranch hook"}]}],
        "Notification": [{"hooks": [{"type": "command", "command": "myvbranch hook"}]}],  # not ours
    }}
    merged = merge_hooks(settings, inst.our_hooks("/py -m vbranch"))
    assert "PreCompact" not in merged["hooks"]  # an event we no longer use loses our stale entry
    assert merged["hooks"]["Notification"] == settings["hooks"]["Notification"]
    stop = merged["hooks"]["Stop"]
    assert stop[0]["hooks"][0]["command"] == "/py -m vbranch hook"  # ours back where the old one was
    assert stop[1] == {"hooks": [{"type": "command", "command": "say done"}]}  # theirs kept, ours cut out
    assert settings["hooks"]["PreCompact"]  # pure: the input is not modified


def test_uninstall_restores_theirs_and_drops_empty_containers(tmp_path):
    path = tmp_path / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text(json.dumps(THEIRS))
    inst.install(tmp_path, "local")
    assert inst.uninstall(tmp_path, "local") == path
    assert load(path) == THEIRS and list(load(path)) == list(THEIRS)

    only_ours = tmp_path / ".claude" / "settings.json"
    inst.install(tmp_path, "project")
    inst.uninstall(tmp_path, "project")
    assert load(only_ours) == {}  # no empty event lists, no empty "hooks"


def test_remove_hooks_leaves_foreign_empties_alone():
    settings = {"hooks": {"Stop": [], "SessionEnd": [{"hooks": [{"type": "command", "command": "x -m vbranch hook"}]}]}}
    assert remove_hooks(settings) == {"hooks": {"Stop": []}}
    assert remove_hooks({"a": 1}) == {"a": 1}


def test_uninstall_without_file_does_nothing(tmp_path):
    path = inst.uninstall(tmp_path, "project")
    assert not path.exists() and not path.parent.exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"text"', '{"hooks": []}'])
def test_bad_file_refused_and_untouched(tmp_path, content):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(VbranchError) as err:
        inst.install(tmp_path)
    assert err.value.hint
    assert str(path) in err.value.message + err.value.hint
    assert path.read_text() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]  # no backup, no temp left


def test_backup_and_permissions(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    original = json.dumps(THEIRS, indent=4).encode()
    path.write_bytes(original)
    path.chmod(0o600)
    inst.install(tmp_path)
    backup = path.with_name("settings.json.vbranch-backup")
    assert backup.read_bytes() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json", "settings.json.vbranch-backup"]
    installed = path.read_bytes()
    inst.install(tmp_path)  # no change: no rewrite, backup stays the pre-install file
    assert backup.read_bytes() == original and path.read_bytes() == installed


def test_symlinked_settings_written_through(tmp_path):
    real = tmp_path / "dotfiles" / "claude.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"model": "opus"}))
    link = tmp_path / "home" / ".claude" / "settings.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    inst.install(tmp_path, "user", home=tmp_path / "home")
    assert link.is_symlink()
    assert load(real)["model"] == "opus" and set(load(real)["hooks"]) == EVENTS


def test_unknown_scope(tmp_path):
    with pytest.raises(VbranchError):
        inst.install(tmp_path, "global")


def test_installed_command_runs(tmp_path):
    path = inst.install(tmp_path, "local")
    command = load(path)["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    interpreter = shlex.split(command)[0]
    assert os.path.isabs(interpreter) and os.access(interpreter, os.X_OK)
    payload = json.dumps({"hook_event_name": "Notification", "session_id": "x", "cwd": str(tmp_path)})
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "VIRTUAL_ENV")} | {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["sh", "-c", command], input=payload.encode(), cwd=tmp_path, env=env,
                          capture_output=True, timeout=60)
    if b"invalid choice: 'hook'" in proc.stderr:
        pytest.skip("`vbranch hook` is not there yet; the interpreter and module did start")
    assert proc.returncode in (0, 1), proc.stderr.decode()


def test_local_settings_and_backups_stay_out_of_the_shared_work(tmp_path):
    import subprocess

    from vbranch.agents.claude_code import install

    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    install(repo, "local")
    install(repo, "project")
    (repo / ".claude" / "settings.json.vbranch-backup").write_text("{}")
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "-uall"], capture_output=True, text=True).stdout
    assert status.strip() == "?? .claude/settings.json"  # the project's settings are a real change
    install(repo, "local")
    assert (repo / ".git/info/exclude").read_text().count(".claude/settings.local.json") == 1


def test_someone_elses_shell_prefix_is_kept_and_reported(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"env": {"CLAUDE_CODE_SHELL_PREFIX": "/opt/audit-wrapper"}}))
    inst.install(tmp_path)
    assert load(path)["env"]["CLAUDE_CODE_SHELL_PREFIX"] == "/opt/audit-wrapper"
    assert inst.foreign_prefix(path) == "/opt/audit-wrapper"
    inst.uninstall(tmp_path)
    assert load(path)["env"] == {"CLAUDE_CODE_SHELL_PREFIX": "/opt/audit-wrapper"}  # not ours to remove


def test_uninstall_removes_our_prefix_only(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"env": {"FOO": "1"}}))
    inst.install(tmp_path)
    assert inst.foreign_prefix(path) is None and "CLAUDE_CODE_SHELL_PREFIX" in load(path)["env"]
    inst.uninstall(tmp_path)
    assert load(path)["env"] == {"FOO": "1"}


def test_background_isolation_off_is_set_unless_the_user_chose_and_uninstall_takes_out_only_ours(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    inst.install(tmp_path)
    assert load(path)["worktree"] == {"bgIsolation": "none"}
    inst.uninstall(tmp_path)
    assert "worktree" not in load(path) and "env" not in load(path)
    path.write_text(json.dumps({"worktree": {"bgIsolation": "always", "other": 1}}))
    inst.install(tmp_path)
    assert load(path)["worktree"] == {"bgIsolation": "always", "other": 1}  # the user's choice stands
    inst.uninstall(tmp_path)
    assert load(path) == {"worktree": {"bgIsolation": "always", "other": 1}}


def test_without_a_compiler_the_python_client_is_installed(tmp_path, monkeypatch):
    import shutil

    from vbranch.agents.settings import split_native

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    binary = native.cached(native.HOOK_CLIENT_SOURCE)
    failed = binary.with_suffix(".failed")
    which = shutil.which
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert hook_command() == PYTHON_COMMAND and "no C compiler" in failed.read_text()
    monkeypatch.setattr(shutil, "which", which)
    monkeypatch.setenv("CC", "false")  # a compiler that fails: the same, and why is kept
    assert hook_command() == PYTHON_COMMAND and "could not build hookclient.c" in failed.read_text()
    monkeypatch.delenv("CC")  # a compiler again: the next install builds it
    assert split_native(hook_command()) == (str(binary), PYTHON_COMMAND)
    assert os.access(binary, os.X_OK) and not failed.exists()
    monkeypatch.setenv(native.HOOK_CLIENT_SWITCH, "off")
    assert hook_command() == PYTHON_COMMAND


@pytest.mark.parametrize("where", ["/opt/cache", "/opt/it's a cache"])
def test_the_native_command_is_ours_and_names_its_fallback(where):
    from vbranch.agents.settings import native_hook_command, split_native

    command = native_hook_command(f"{where}/vbranch/hookclient-0123456789abcdef") + " hook --agent codex"
    assert is_ours({"command": command})
    assert split_native(command) == (f"{where}/vbranch/hookclient-0123456789abcdef", f"{PYTHON_COMMAND} hook --agent codex")
    assert split_native(f"{PYTHON_COMMAND} hook") is None
    assert split_native("/bin/sh -c 'echo hi' x hook") is None

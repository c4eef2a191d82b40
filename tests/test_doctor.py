"""`vbranch doctor` (vbranch/cli/doctor.py): a fresh setup is all green; each broken setup is named with its fix.

The setups are real: a repository set up with the library, hooks installed into its
settings file, a watcher process, the command tracer probed for real. Only Claude Code
is a stand-in (a script answering `--version`), found through VBRANCH_CLAUDE_BIN, and the
user's home is a scratch directory, so ~/.claude of whoever runs the tests plays no part.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, with_ws
from vbranch.agents import claude_code
from vbranch.cli import doctor, watch
from vbranch.state.workspace import WORKSPACE_REF


def fake_claude(folder: Path, version: str = doctor.PINNED_CLAUDE) -> str:
    path = folder / f"claude-{version}"
    path.write_text(f'#!/bin/sh\necho "{version} (Claude Code)"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def setup(vb, watcher, tmp_path):
    """A fresh setup as a user makes it: init, install, a live watcher. Returns a namespace-ish dict."""
    repo = vb({"a.txt": "a\n"}).repo
    settings = claude_code.install(repo, "local")
    w = watcher(repo)
    env = {**os.environ, "VBRANCH_CLAUDE_BIN": fake_claude(tmp_path)}
    home = tmp_path / "home"

    def run(probe: bool = False, **kwargs) -> dict:
        return doctor.run(repo, env=kwargs.get("env", env), home=home, probe=probe)

    return {"repo": repo, "settings": settings, "watcher": w, "env": env, "home": home, "run": run}


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def failed(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"] if not c["ok"]}


def edit_settings(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


# --- a fresh setup ------------------------------------------------------------------------------


def test_fresh_setup_is_all_green(setup):
    report = setup["run"](probe=True)
    levels = {c["name"]: c["level"] for c in report["checks"]}
    assert set(levels.values()) == {"ok"}, json.dumps(report, indent=2)
    assert report["ok"] and report["exit_code"] == 0
    assert list(levels) == ["repository", "vbranch set up", "hooks", "shell prefix", "worktree.bgIsolation",
                            "watcher", "config", "command tracer", "libseccomp", "Claude Code"]
    assert "settings.local.json" in by_name(report)["hooks"]["detail"]
    assert all(c["fix"] is None for c in report["checks"])
    json.dumps(report)  # --json is json.dumps of it


def test_probe_never_touches_the_repository(setup):
    traces = setup["repo"] / ".git" / "vbranch" / "traces"
    before = sorted(os.listdir(traces)) if traces.exists() else []
    assert doctor.probe_tracer(setup["repo"] / ".git" / "vbranch")["traced"]
    assert (sorted(os.listdir(traces)) if traces.exists() else []) == before
    assert not (setup["repo"] / doctor.PROBE_FILE).exists()


# --- broken setups, each named with its fix -----------------------------------------------------


def test_hooks_missing(setup):
    claude_code.uninstall(setup["repo"], "local")
    report = setup["run"]()
    bad = failed(report)
    assert report["exit_code"] == 1
    assert bad["hooks"]["fix"] == "vbranch install"
    assert "no settings file" in bad["hooks"]["detail"]
    assert bad["shell prefix"]["fix"] == "vbranch install"


def test_watcher_dead(setup):
    assert with_ws(setup["repo"], watch.stop_watcher)
    report = setup["run"]()
    assert set(failed(report)) == {"watcher"}
    assert failed(report)["watcher"]["fix"] == "vbranch watch --background"
    assert "not running" in failed(report)["watcher"]["detail"]
    assert report["exit_code"] == 1


@pytest.mark.parametrize("content, said", [
    ('{"guard_lines": "maybe"}', "guard_lines"),
    ('{"guard_lines": ', "not valid JSON"),
    ('{"gaurd_lines": "deny"}', "unknown setting"),
])
def test_config_invalid(setup, content, said):
    path = setup["repo"] / ".git" / "vbranch" / "config.json"
    path.write_text(content)
    report = setup["run"]()
    assert set(failed(report)) == {"config"}
    assert said in failed(report)["config"]["detail"]
    assert str(path) in failed(report)["config"]["fix"]


def test_stale_install_path(setup):
    """The settings run another interpreter (an old venv): the hooks would run old code, or none."""
    stale = "/opt/old-venv/bin/python -S /opt/old-checkout/vbranch/hookclient.py hook"

    def point_elsewhere(data):
        for groups in data["hooks"].values():
            for group in groups:
                for hook in group["hooks"]:
                    hook["command"] = stale

    edit_settings(setup["settings"], point_elsewhere)
    report = setup["run"]()
    assert set(failed(report)) == {"hooks"}
    assert stale in failed(report)["hooks"]["detail"]
    assert failed(report)["hooks"]["fix"] == "vbranch install"
    claude_code.install(setup["repo"], "local")  # the fix fixes it
    assert setup["run"]()["ok"]


def set_hook_commands(path: Path, command: str) -> None:
    def change(data):
        for groups in data["hooks"].values():
            for group in groups:
                for hook in group["hooks"]:
                    hook["command"] = command

    edit_settings(path, change)


def test_which_hook_client_the_hooks_start(setup, tmp_path):
    """The native client, or the Python one (as installs before it wrote, or once its binary is gone):
    both work, so the Python one is a warning with its fix, never a failure."""
    from vbranch import native
    from vbranch.agents import settings

    hooks = by_name(setup["run"]())["hooks"]
    assert hooks["level"] == "ok" and f"native client ({native.cached(native.HOOK_CLIENT_SOURCE)})" in hooks["detail"]

    set_hook_commands(setup["settings"], settings.python_hook_command() + " hook")  # an install before the native client
    report = setup["run"]()
    assert report["ok"] and by_name(report)["hooks"]["level"] == "warn"
    assert "starts the Python client" in by_name(report)["hooks"]["detail"]
    assert by_name(report)["hooks"]["fix"] == "vbranch install"

    gone = tmp_path / "wiped-cache" / native.cached(native.HOOK_CLIENT_SOURCE).name
    set_hook_commands(setup["settings"], settings.native_hook_command(str(gone)) + " hook")
    hooks = by_name(setup["run"]())["hooks"]
    assert hooks["level"] == "warn" and f"{gone}, which is gone" in hooks["detail"] and hooks["fix"] == "vbranch install"

    earlier = tmp_path / "hookclient-0123456789abcdef"
    shutil.copy2(native.cached(native.HOOK_CLIENT_SOURCE), earlier)
    set_hook_commands(setup["settings"], settings.native_hook_command(str(earlier)) + " hook")
    hooks = by_name(setup["run"]())["hooks"]
    assert hooks["level"] == "warn" and "an earlier build" in hooks["detail"]

    set_hook_commands(setup["settings"], settings.native_hook_command("/x/hookclient-0123456789abcdef").replace(
        settings.python_hook_command(), "/opt/old-venv/bin/python -S /opt/old/vbranch/hookclient.py") + " hook")
    assert failed(setup["run"]())["hooks"]["fix"] == "vbranch install"  # the Python client it falls back to is another's

    claude_code.install(setup["repo"], "local")  # the fix fixes it
    assert by_name(setup["run"]())["hooks"]["level"] == "ok"


def test_a_python_client_without_a_compiler_says_why():
    where = "installed in local (x), pointing at this installation"
    settings_ = [{"scope": "local", "path": "x", "clients": [{"binary": None, "present": False}]}]
    facts = {"settings": settings_, "expected": {"client": {"native": None, "why": "no C compiler (cc or gcc) to build it"}}}
    no_cc = doctor.check_hook_client(facts, where)
    assert no_cc["level"] == "warn" and "Python client: no C compiler" in no_cc["detail"] and "C compiler" in no_cc["fix"]
    facts["expected"]["client"]["why"] = "VBRANCH_HOOK_NATIVE=off"  # asked for
    assert doctor.check_hook_client(facts, where)["level"] == "ok"
    settings_[0]["clients"] = [{"binary": "/c/hookclient-0123456789abcdef", "present": True}]  # built before the compiler went
    assert doctor.check_hook_client(facts, where)["level"] == "ok"


def test_stale_tracer_path(setup):
    edit_settings(setup["settings"], lambda d: d["env"].update({claude_code.PREFIX: "/opt/old/bin/python -S /opt/old/vbranch/tracer.py"}))
    bad = failed(setup["run"]())
    assert set(bad) == {"shell prefix"}
    assert "not this installation's tracer" in bad["shell prefix"]["detail"]
    assert bad["shell prefix"]["fix"] == "vbranch install"


def test_tracer_prefix_of_an_earlier_install(setup):
    """This installation's tracer named directly, as installs before trace_command.py did: it works,
    only slower, so a warning with the fix."""
    earlier = claude_code.tracer_command().replace("trace_command.py", "tracer.py")
    edit_settings(setup["settings"], lambda d: d["env"].update({claude_code.PREFIX: earlier}))
    report = setup["run"]()
    assert report["ok"] and not failed(report)
    check = by_name(report)["shell prefix"]
    assert check["level"] == "warn" and "earlier form" in check["detail"] and check["fix"] == "vbranch install"


def test_shell_prefix_missing(setup):
    edit_settings(setup["settings"], lambda d: d["env"].pop(claude_code.PREFIX))
    bad = failed(setup["run"]())
    assert set(bad) == {"shell prefix"}
    assert "time windows" in bad["shell prefix"]["detail"]
    assert bad["shell prefix"]["fix"] == "vbranch install"


def test_shell_prefix_foreign(setup):
    edit_settings(setup["settings"], lambda d: d["env"].update({claude_code.PREFIX: "/usr/local/bin/my-wrapper"}))
    bad = failed(setup["run"]())
    assert set(bad) == {"shell prefix"}
    assert "someone else's" in bad["shell prefix"]["detail"] and "my-wrapper" in bad["shell prefix"]["detail"]
    assert bad["shell prefix"]["fix"].startswith(f"remove {claude_code.PREFIX} from the env of {setup['settings']}")


def test_bg_isolation_missing(setup):
    edit_settings(setup["settings"], lambda d: d.pop("worktree", None))
    bad = failed(setup["run"]())
    assert set(bad) == {"worktree.bgIsolation"}
    assert bad["worktree.bgIsolation"]["fix"] == "vbranch install"


def test_stale_copy_in_another_scope_names_that_scope(setup):
    """A current install in settings.local.json does not hide an old one in settings.json: both run."""
    project = claude_code.settings_path(setup["repo"], "project")
    project.write_text(json.dumps(claude_code.our_hooks("/old/venv/bin/python -S /old/vbranch/hookclient.py")))
    bad = failed(setup["run"]())
    assert set(bad) == {"hooks"}
    assert str(project) in bad["hooks"]["detail"]
    assert bad["hooks"]["fix"] == "vbranch install --scope project"


def test_unreadable_settings_file(setup):
    setup["settings"].write_text("{ not json")
    bad = failed(setup["run"]())
    assert "not valid JSON" in bad["hooks"]["detail"]
    assert bad["hooks"]["fix"] == f"fix {setup['settings']} by hand"


def test_not_set_up_and_not_a_repository(make_repo, tmp_path):
    repo = make_repo({"a.txt": "a\n"})
    report = doctor.run(repo, env={**os.environ, "VBRANCH_CLAUDE_BIN": fake_claude(tmp_path)}, home=tmp_path / "h", probe=False)
    bad = failed(report)
    assert bad["vbranch set up"]["fix"] == "vbranch init"
    assert "watcher" not in by_name(report)  # the setup check says it
    assert bad["hooks"]["fix"] == "vbranch install"
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    report = doctor.run(nowhere, env={**os.environ, "VBRANCH_CLAUDE_BIN": fake_claude(tmp_path)}, home=tmp_path / "h", probe=False)
    assert by_name(report)["repository"]["level"] == "fail"
    assert report["exit_code"] == 1


def test_head_moved_off_the_workspace(setup):
    git(setup["repo"], "symbolic-ref", "HEAD", "refs/heads/main")
    bad = failed(setup["run"]())
    assert set(bad) == {"vbranch set up"}
    assert bad["vbranch set up"]["fix"].startswith(f"git symbolic-ref HEAD {WORKSPACE_REF}")


def test_claude_missing_or_untested(setup, tmp_path):
    env = {k: v for k, v in setup["env"].items() if k != "VBRANCH_CLAUDE_BIN"}
    env["PATH"] = str(tmp_path / "empty-bin")
    bad = failed(setup["run"](env=env))
    assert set(bad) == {"Claude Code"}
    assert "npm install -g @anthropic-ai/claude-code" in bad["Claude Code"]["fix"]
    newer = {**setup["env"], "VBRANCH_CLAUDE_BIN": fake_claude(tmp_path, "9.0.0")}
    report = setup["run"](env=newer)
    assert report["ok"] and by_name(report)["Claude Code"]["level"] == "warn"
    assert doctor.NEWEST_TESTED_CLAUDE in by_name(report)["Claude Code"]["detail"]
    current = {**setup["env"], "VBRANCH_CLAUDE_BIN": fake_claude(tmp_path, doctor.NEWEST_TESTED_CLAUDE)}
    assert by_name(setup["run"](env=current))["Claude Code"]["level"] == "ok"


# --- pure pieces ---------------------------------------------------------------------------------


def test_same_command_accepts_another_link_to_the_same_interpreter(tmp_path):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    (bin_dir / "python").symlink_to("python3")
    other = tmp_path / "other" / "bin"
    other.mkdir(parents=True)
    (other / "python").symlink_to(sys.executable)
    expected = f"{bin_dir / 'python'} -S /x/vbranch/hookclient.py hook"
    assert doctor.same_command(f"{bin_dir / 'python3'} -S /x/vbranch/hookclient.py hook", expected)
    assert not doctor.same_command(f"{other / 'python'} -S /x/vbranch/hookclient.py hook", expected)
    assert not doctor.same_command(f"{bin_dir / 'python'} -S /y/vbranch/hookclient.py hook", expected)


def test_tracer_failures_name_a_fix():
    facts = {"probe": {"traced": False, "reason": "no seccomp filter could be built (libseccomp or pyseccomp missing)"},
             "tracer_mode": None, "seccomp": {"platform": "linux"}}
    assert "libseccomp" in doctor.check_attribution(facts)["fix"]
    facts["probe"]["reason"] = "seccomp user notification is not available here (Invalid argument)"
    assert "Linux >= 5.5" in doctor.check_attribution(facts)["fix"]
    facts["seccomp"]["platform"] = "darwin"
    assert doctor.check_attribution(facts)["fix"] is None
    facts = {"probe": {"traced": True, "reason": "ok"}, "seccomp": {"platform": "linux"},
             "tracer_mode": {"mode": "window", "why": "the last command ran without the tracer: no prefix"}}
    assert doctor.check_attribution(facts)["level"] == "warn"
    # Traced, but through the Python loop (no compiler built the native one): exact, slower; said, with the fix.
    facts = {"probe": {"traced": True, "reason": "ok", "loop": "python: no C compiler (cc or gcc) to build the native loop"},
             "seccomp": {"platform": "linux"}, "tracer_mode": None}
    slower = doctor.check_attribution(facts)
    assert slower["level"] == "warn" and "no C compiler" in slower["detail"] and "C compiler" in slower["fix"]
    facts["probe"]["loop"] = "native"
    assert doctor.check_attribution(facts)["level"] == "ok"


# --- through the command line -------------------------------------------------------------------


def test_command_line(setup):
    """`vbranch doctor --json`: all green; with the watcher stopped, exit 1 and the fix."""
    proc = subprocess.run([sys.executable, "-m", "vbranch", "doctor", "--json"], cwd=setup["repo"],
                          env={**setup["env"], "HOME": str(setup["home"])}, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert report["ok"] and all(c["level"] == "ok" for c in report["checks"])
    assert with_ws(setup["repo"], watch.stop_watcher)
    proc = subprocess.run([sys.executable, "-m", "vbranch", "doctor"], cwd=setup["repo"],
                          env={**setup["env"], "HOME": str(setup["home"])}, capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert b"vbranch watch --background" in proc.stdout


def test_doctor_run_by_an_agent_under_the_tracer(setup):
    """An agent's `vbranch doctor` runs under the tracer: seccomp allows one listener, so the probe
    cannot nest; the traced process itself is the proof. Without the tracer's mark, EBUSY is explained."""
    from vbranch import tracer

    code = ("import json, os, sys; from vbranch.cli import doctor\n"
            "if sys.argv[1] == 'unmarked': os.environ.pop('VBRANCH_TRACED', None)\n"
            "probe = doctor.probe_tracer(None)\n"
            "print(json.dumps([probe, doctor.check_attribution({'probe': probe, 'tracer_mode': None,"
            " 'seccomp': {'platform': sys.platform}})]))")
    env = {**setup["env"], "VBRANCH_SESSION": "agent-1"}
    for variant in ("marked", "unmarked"):
        proc = subprocess.run([sys.executable, "-S", tracer.__file__, "--", sys.executable, "-c", code, variant],
                              cwd=setup["repo"], env=env, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        probe, judged = json.loads(proc.stdout)
        if variant == "marked":
            assert probe["traced"] and "itself runs as a traced command (session agent-1)" in probe["reason"]
            assert judged["level"] == "ok"
        else:
            assert not probe["traced"] and "busy" in probe["reason"].lower()
            assert judged["level"] == "fail" and "outside the sandbox or supervisor" in judged["fix"]

"""The installed hook command: hookclient.py, answered by the watcher's hook server or by the full hook."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import git, wait_for
from tests.hookdriver import payload
from tests.test_agents import sample
from vbranch import hookclient
from vbranch.cli.watch import run_hook


def client(repo: Path, data: dict | bytes, *args: str, mode: str = "auto") -> subprocess.CompletedProcess:
    """The hook command as `vbranch install` writes it, run in the repository."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    env = {**os.environ, "VBRANCH_HOOK_SERVER": mode}
    return subprocess.run([sys.executable, "-S", hookclient.__file__, "hook", *args], input=raw, cwd=repo, env=env,
                          capture_output=True)


def stash(repo: Path) -> dict:
    return payload("PreToolUse_Bash", repo, tool_input={"command": "git stash", "description": "stash"})


def decision(proc: subprocess.CompletedProcess) -> str | None:
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return out.get("hookSpecificOutput", {}).get("permissionDecision")


def test_without_a_server_the_full_hook_answers(vb):
    repo = vb({"a.txt": "a\n"}).repo
    assert decision(client(repo, stash(repo))) == "deny"
    only = client(repo, stash(repo), mode="only")
    assert only.returncode == 1 and b"no hook server answered" in only.stderr


def test_the_server_answers_as_the_full_hook_would(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo
    watcher(repo)
    assert decision(client(repo, stash(repo), mode="only")) == "deny"
    allowed = client(repo, payload("PreToolUse_Bash", repo, tool_input={"command": "ls"}), mode="only")
    assert allowed.returncode == 0 and decision(allowed) is None
    # Malformed input: the same exit code and message as `python -m vbranch hook`.
    served = client(repo, b"{not json", mode="only")
    full = client(repo, b"{not json", mode="off")
    assert (served.returncode, served.stdout, served.stderr) == (full.returncode, full.stdout, full.stderr)
    assert served.returncode == 1 and b"goes ahead unchecked" in served.stderr


def test_the_server_runs_other_agents_hooks(vb, watcher):
    v = vb({"a.txt": "a\n"})
    watcher(v.repo)
    served = client(v.repo, sample("cursor_beforeSubmitPrompt", v.repo), "--agent", "cursor", mode="only")
    assert (served.returncode, served.stdout.strip()) == (0, b'{"continue": true}')
    bad = client(v.repo, b"not json", "--agent", "cursor", mode="only")
    assert (bad.returncode, bad.stdout.strip()) == (1, b"{}")


def test_a_server_that_does_not_answer_leaves_it_to_the_full_hook(vb):
    """A stale socket (nobody listening), then a server that hangs up mid-request: same answer."""
    repo = vb({"a.txt": "a\n"}).repo
    path = repo / ".git" / "vbranch" / hookclient.SOCKET_NAME
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert decision(client(repo, stash(repo))) == "deny"

    path.unlink()
    rude = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    rude.bind(str(path))
    rude.listen(1)
    hung_up = []

    def hang_up():
        conn, _ = rude.accept()
        conn.recv(1 << 16)
        hung_up.append(True)
        conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        assert decision(client(repo, stash(repo))) == "deny"
    finally:
        thread.join(timeout=10)
        rude.close()
    assert hung_up


def test_a_repository_without_vbranch_is_left_alone(make_repo):
    repo = make_repo({"a.txt": "a\n"})
    proc = client(repo, stash(repo))
    assert (proc.returncode, proc.stdout) == (0, b"")


@pytest.mark.parametrize("reply", [b"", b"0", b"0 10\n{}", b"x 2\n{}"])
def test_a_partial_reply_is_no_reply(reply):
    assert hookclient.parse_reply(reply) is None


def test_a_reply_splits_into_code_stdout_and_stderr():
    assert hookclient.parse_reply(b"1 2\n{}oops\n") == (1, b"{}", b"oops\n")


def test_run_hook_fails_open_on_an_internal_error(monkeypatch):
    from vbranch import agents
    from vbranch.hooks import handler as hook

    def boom(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(hook, "main", boom)
    monkeypatch.setattr(agents, "main", boom)
    assert run_hook("claude\0\0/tmp", b"{}") == (1, b"", b"vbranch hook: internal error: RuntimeError('broken')\n")
    assert run_hook("cursor\0\0/tmp", b"{}")[:2] == (1, b"{}\n")


def test_the_server_answers_with_the_handler_it_is_given(tmp_path, monkeypatch):
    from vbranch.watch.hookserver import HookServer

    monkeypatch.chdir(tmp_path)  # hookclient.ask moves into the state directory
    asked = []

    def handler(header: str, data: bytes, agent_pid):
        asked.append((header, data, agent_pid))
        return 3, b"out", b"err"

    server = HookServer(tmp_path, lambda message: None, handler)
    assert server.start()
    try:
        assert hookclient.ask(str(tmp_path), b"cursor\0/project\0/cwd\n{}") == (3, b"out", b"err")
    finally:
        server.stop()
    assert asked == [("cursor\0/project\0/cwd", b"{}", os.getppid())]  # the client (this process)'s parent
    assert not (tmp_path / hookclient.SOCKET_NAME).exists()


def test_the_server_keeps_its_threads_for_the_next_requests_and_never_bounds_how_many_run(tmp_path):
    """Threads are reused (starting one per request cost a sixth of a hook's work), yet any number of
    requests run at once: one waiting for a lease must never keep the one releasing it from running."""
    from vbranch.watch.hookserver import HookServer, Workers

    new_threads, per_thread, everyone_in = [], threading.local(), threading.Barrier(Workers.KEEP + 8, timeout=60)

    def handler(header, data, agent_pid):
        if not getattr(per_thread, "served", False):  # (a thread's ident can be reused: its locals cannot)
            per_thread.served = True
            new_threads.append(1)
        if data == b"wait":
            everyone_in.wait()  # returns only once KEEP + 8 requests run at the same time
        return 0, b"", b""

    server = HookServer(tmp_path, lambda message: None, handler)
    assert server.start()
    try:
        for _ in range(20):
            assert hookclient.ask(str(tmp_path), b"claude\0\0/cwd\nquick") == (0, b"", b"")
            # (the answer goes out before its thread is idle again)
            assert wait_for(lambda: len(server.workers.idle) == 1, timeout=30, step=0.001)
        assert len(new_threads) == 1  # one after the other: the one thread each time
        answers = []
        clients = [threading.Thread(target=lambda: answers.append(hookclient.ask(str(tmp_path), b"claude\0\0/cwd\nwait")))
                   for _ in range(Workers.KEEP + 8)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        assert answers == [(0, b"", b"")] * (Workers.KEEP + 8)
        assert len(server.workers.idle) <= Workers.KEEP
    finally:
        server.stop()


# --- `vbranch status` and `vbranch commit`, run by the watcher (cli/served.py) ------------------


def vbranch_cli(repo: Path, *args: str, mode: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "VBRANCH_HOOK_SERVER": mode, "COLUMNS": "100", **env}
    for name in ("NO_COLOR", "VBRANCH_SESSION", "CLAUDE_CODE_SESSION_ID"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "vbranch", *args], cwd=repo, env=full, capture_output=True, text=True)


def busy_workspace(vb):
    """Two branches, one file each, a line both changed (contested), a file nobody reported."""
    v = vb({"a.txt": "a\n", "shared.txt": "one\ntwo\n"})
    v.edit("s1", "a.txt", "a by s1\n")
    v.edit("s2", "b.txt", "b by s2\n")
    v.edit("s1", "shared.txt", "one by s1\ntwo\n")
    v.edit("s2", "shared.txt", "one by s2\ntwo\n")
    (v.repo / "stray.txt").write_text("nobody\n")
    return v


def test_status_from_the_watcher_is_what_the_command_prints(vb, watcher):
    v = busy_workspace(vb)
    watcher(v.repo)
    for args in (("status",), ("status", "--json")):
        served = vbranch_cli(v.repo, *args, mode="only")
        direct = vbranch_cli(v.repo, *args, mode="off")
        assert served.returncode == direct.returncode == 0, served.stderr + direct.stderr
        assert served.stdout == direct.stdout and served.stderr == direct.stderr == ""
    assert "stray.txt" in served.stdout and "contested" in vbranch_cli(v.repo, "status", mode="only").stdout


def test_status_from_the_watcher_on_a_terminal_has_the_terminal_s_width_and_colours(vb, watcher):
    import fcntl
    import pty
    import struct
    import termios

    v = busy_workspace(vb)
    watcher(v.repo)

    def on_a_terminal(mode: str) -> bytes:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 72, 0, 0))
        env = {**os.environ, "VBRANCH_HOOK_SERVER": mode, "TERM": "xterm-256color"}
        for name in ("COLUMNS", "NO_COLOR", "COLORTERM", "FORCE_COLOR"):
            env.pop(name, None)
        proc = subprocess.Popen([sys.executable, "-m", "vbranch", "status"], cwd=v.repo, env=env, stdout=follower,
                                stderr=subprocess.PIPE)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        return b"".join(chunks)

    served = on_a_terminal("only")
    assert served == on_a_terminal("off")
    assert b"\x1b[" in served  # coloured, as rich colours a terminal


def test_commit_from_the_watcher_commits_the_caller_s_branch_and_says_what_is_held_back(vb, watcher):
    v = busy_workspace(vb)
    watcher(v.repo)
    heads = {b: git(v.repo, "rev-parse", f"refs/heads/{b}").strip() for b in ("session-s1", "session-s2")}
    mine = vbranch_cli(v.repo, "commit", mode="only", VBRANCH_SESSION="s2")  # the caller's session, from its environment
    assert mine.returncode == 5, mine.stderr  # Blocked: the contested line stays out, the rest is committed
    assert mine.stdout.startswith("session-s2: committed") and "session-s1" not in mine.stdout
    assert "contested changes held back" in mine.stderr and "shared.txt lines 1-1" in mine.stderr
    assert git(v.repo, "rev-parse", "refs/heads/session-s1").strip() == heads["session-s1"]
    assert git(v.repo, "show", "refs/heads/session-s2:b.txt") == "b by s2\n"
    every = vbranch_cli(v.repo, "commit", "-m", "both", mode="only")  # no session known: every branch, as the command does
    assert every.returncode == 5 and "session-s1: committed" in every.stdout and "session-s2: nothing to commit" in every.stdout
    assert git(v.repo, "log", "-1", "--format=%s", "refs/heads/session-s1").strip() == "both"


def test_land_from_the_watcher_unless_it_verifies(vb, watcher):
    """A plain landing (or an unverified queue) is run by the watcher; one with a verify command
    (given or configured) stays with the client, which can interrupt it."""
    from vbranch.state import config
    from vbranch.state.models import write_config

    v = vb({"a.txt": "a\n", "b.txt": "b\n"})
    v.edit("s1", "a.txt", "a by s1\n")
    v.edit("s2", "b.txt", "b by s2\n")
    v.commit()
    watcher(v.repo)
    landed = vbranch_cli(v.repo, "land", "session-s1", mode="only")
    assert landed.returncode == 0, landed.stderr
    assert landed.stdout.startswith("landed session-s1 on refs/heads/main")
    assert git(v.repo, "show", "main:a.txt") == "a by s1\n"
    log = vbranch_cli(v.repo, "log", "session-s2", mode="only")
    assert log.returncode == 0 and log.stdout == vbranch_cli(v.repo, "log", "session-s2", mode="off").stdout != ""
    for args in (("land", "session-s2", "--verify", "true"), ("land", "--queue", "--verify", "true")):
        assert "the watcher did not answer" in vbranch_cli(v.repo, *args, mode="only").stderr
    state = v.repo / ".git" / "vbranch"
    write_config(state, {**config.load(state), "land_verify": "true"})
    for args in (("land", "session-s2"), ("land", "--queue")):
        assert "the watcher did not answer" in vbranch_cli(v.repo, *args, mode="only").stderr
    queued = vbranch_cli(v.repo, "land", "--queue", "--no-verify", mode="only")
    assert queued.returncode == 0 and "landed session-s2 on refs/heads/main" in queued.stdout
    assert git(v.repo, "show", "main:b.txt") == "b by s2\n"


def test_commands_are_left_to_the_client_when_the_watcher_should_not_run_them(vb, watcher, monkeypatch, capfd):
    from vbranch.cli import commands, served
    from vbranch.ops import oplog

    v = busy_workspace(vb)

    def answer(where: Path, *argv: str, raw: bytes | None = None) -> int:
        request = raw or json.dumps({"argv": list(argv), "width": 80, "color_system": None}).encode()
        return served.answer(str(where), request, lambda: commands.build_parser(quiet=True), commands.run)[0]

    assert answer(v.repo, "status") == 0
    assert answer(v.repo, raw=b"{not json") == served.NOT_SERVED
    assert answer(v.repo, "status", "--no-such-option") == served.NOT_SERVED
    assert answer(v.repo, "status", "--help") == served.NOT_SERVED
    assert capfd.readouterr() == ("", "")  # the watcher printed neither refusal nor help: the client will
    assert answer(v.repo, "record", "a.txt") == served.NOT_SERVED  # paths: relative to the client
    assert answer(v.repo.parent, "status") == served.NOT_SERVED  # not a workspace
    monkeypatch.setattr(oplog, "has_pending", lambda ws: True)  # an interrupted operation: the command finishes it
    assert answer(v.repo, "status") == served.NOT_SERVED
    # No watcher: the command runs itself, or with VBRANCH_HOOK_SERVER=only says it was not answered.
    assert vbranch_cli(v.repo, "status", mode="auto").stdout == vbranch_cli(v.repo, "status", mode="off").stdout
    only = vbranch_cli(v.repo, "status", mode="only")
    assert only.returncode == 1 and "the watcher did not answer" in only.stderr
    # git settings in the caller's environment would not reach git in the watcher: run here.
    watcher(v.repo)
    assert vbranch_cli(v.repo, "status", mode="only").returncode == 0
    assert "did not answer" in vbranch_cli(v.repo, "commit", mode="only", GIT_AUTHOR_NAME="Someone").stderr

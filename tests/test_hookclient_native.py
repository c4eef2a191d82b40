"""The native hook client (hookclient.c) as `vbranch install` writes it: hookclient.py's answers and decisions.

Every command here runs as an agent runs it, through a shell (`/bin/sh -c COMMAND hook ARGS`).
Where the native client must answer by itself, it is run with an interpreter that does not exist,
so a hand-over to the Python client would show as a failure instead of the same answer.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import git
from tests.hookdriver import payload
from tests.test_agents import sample
from vbranch import hookclient, native
from vbranch.agents.settings import native_hook_command, python_hook_command, split_native

NOWHERE = "/nonexistent/python"


@pytest.fixture(scope="module")
def binary() -> str:
    built, why = native.hook_client()
    assert built, f"the native hook client was not built: {why}"
    return built


def run(command: str, repo: Path, data: dict | bytes, *args: str, mode: str = "auto", **env: str) -> tuple:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    full = {**os.environ, "VBRANCH_HOOK_SERVER": mode, **env}
    for name in [name for name, value in env.items() if value is None]:
        del full[name]
    proc = subprocess.run(["/bin/sh", "-c", " ".join([command, "hook", *map(shlex.quote, args)])], input=raw, cwd=repo,
                          env=full, capture_output=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def python(repo: Path, data, *args: str, **kw) -> tuple:
    return run(python_hook_command(), repo, data, *args, **kw)


def alone(binary: str, repo: Path, data, *args: str, **kw) -> tuple:
    """The native client with no Python client to hand over to."""
    return run(shlex.join([binary, NOWHERE, hookclient.__file__]), repo, data, *args, **kw)


def stash(repo: Path, padding: int = 0) -> dict:
    return payload("PreToolUse_Bash", repo, tool_input={"command": "git stash", "description": "x" * padding})


def denied(result: tuple) -> bool:
    out = json.loads(result[1]) if result[1].strip() else {}
    return out.get("hookSpecificOutput", {}).get("permissionDecision") == "deny"


class FakeServer:
    """A hook server at `state_dir/hook.sock` that records each request and sends `reply`."""

    def __init__(self, state_dir: Path, reply: bytes):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.requests: list[bytes] = []
        self.reply = reply
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        here = os.getcwd()
        os.chdir(state_dir)  # bind by a relative name, as the watcher does: socket paths are short
        try:
            self.sock.bind(hookclient.SOCKET_NAME)
        finally:
            os.chdir(here)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                chunks = []
                while chunk := conn.recv(1 << 16):
                    chunks.append(chunk)
                self.requests.append(b"".join(chunks))
                conn.sendall(self.reply)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake():
    servers = []

    def start(repo: Path, reply: bytes = b"0 0\n") -> FakeServer:
        servers.append(FakeServer(repo / ".git" / "vbranch", reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_the_watcher_s_answers_are_byte_for_byte_the_python_client_s(vb, watcher, binary):
    v = vb({"a.txt": "a\n"})
    watcher(v.repo)
    cases = [
        (stash(v.repo), ()),
        (payload("PreToolUse_Bash", v.repo, tool_input={"command": "ls"}), ()),
        (payload("UserPromptSubmit", v.repo), ()),
        (b"{not json", ()),
        (b"", ()),
        (sample("cursor_beforeSubmitPrompt", v.repo), ("--agent", "cursor")),
        (b"not json", ("--agent", "cursor")),
        (sample("codex_PreToolUse_Bash", v.repo, tool_input={"command": "git stash"}), ("--agent", "codex")),
        (sample("gemini_BeforeAgent", v.repo), ("--agent", "gemini")),
    ]
    for data, args in cases:
        native_answer = alone(binary, v.repo, data, *args, mode="only")
        assert native_answer == python(v.repo, data, *args, mode="only"), data
    assert denied(alone(binary, v.repo, stash(v.repo), mode="only"))
    assert alone(binary, v.repo, b"{not json", mode="only")[0] == 1
    assert alone(binary, v.repo, b"not json", "--agent", "cursor", mode="only")[0] == 1
    # From a subdirectory, and with the project directory given: the same again.
    (v.repo / "sub").mkdir()
    for env in ({}, {"CLAUDE_PROJECT_DIR": str(v.repo)}):
        assert alone(binary, v.repo / "sub", stash(v.repo), **env) == python(v.repo / "sub", stash(v.repo), **env)


def test_the_request_and_the_reply_are_hookclient_py_s(make_repo, fake, binary):
    repo = make_repo({"a.txt": "a\n"})
    (repo / "deep" / "er").mkdir(parents=True)
    server = fake(repo, b"7 5\n{\"a\"}to stderr\n")
    for cwd, args, env in ((repo, (), {"CLAUDE_PROJECT_DIR": None}),
                           (repo / "deep" / "er", ("--agent", "cursor"), {"CLAUDE_PROJECT_DIR": "/some/project"})):
        answers = [client(cwd, b'{"x": 1}', *args, mode="only", **env)
                   for client in (lambda *a, **k: alone(binary, *a, **k), python)]
        assert answers[0] == answers[1] == (7, b'{"a"}', b"to stderr\n")
        assert server.requests[-2] == server.requests[-1]
    assert server.requests[0] == b"claude\0\0" + str(repo).encode() + b'\n{"x": 1}'
    assert server.requests[2] == b"cursor\0/some/project\0" + str(repo / "deep" / "er").encode() + b'\n{"x": 1}'


@pytest.mark.parametrize("reply", [b"", b"0", b"0 10\n{}", b"x 2\n{}", b"0 0", b"+3 2\n{}e", b"1 2 3\n{}", b"-1 0\n"])
def test_whole_and_partial_replies_are_judged_as_hookclient_py_judges_them(make_repo, fake, binary, reply):
    """With VBRANCH_HOOK_SERVER=only a reply that is not whole fails, the same way in both clients."""
    repo = make_repo({"a.txt": "a\n"})
    fake(repo, reply)
    assert alone(binary, repo, b"{}", mode="only") == python(repo, b"{}", mode="only")


def test_without_a_watcher_the_python_client_gets_the_whole_payload(vb, binary, tmp_path):
    """The hand-over: the payload again on the Python client's stdin (a memory file, or a pipe where there is
    none: that build is made here by hiding Linux from the compiler), also when it is larger than 64 KB."""
    repo = vb({"a.txt": "a\n"}).repo
    piped = tmp_path / "hookclient-pipe"
    assert native.build(native.HOOK_CLIENT_SOURCE, piped, ["-U__linux__"], "the hook client without memfd") is None
    for build in (binary, str(piped)):
        for data in (stash(repo), stash(repo, padding=100_000), stash(repo, padding=300)):
            answer = run(native_hook_command(build), repo, data)
            assert denied(answer) and answer == python(repo, data), (build, len(json.dumps(data)))
    assert run(native_hook_command(binary), repo, b"{not json") == python(repo, b"{not json")


def test_a_server_that_hangs_up_mid_answer_leaves_it_to_the_python_client(vb, fake, binary):
    repo = vb({"a.txt": "a\n"}).repo
    server = fake(repo, b"0 100\n{\"partial")
    data = stash(repo, padding=70_000)
    assert denied(run(native_hook_command(binary), repo, data))  # the full hook's answer
    body = json.dumps(data).encode()
    assert [r.partition(b"\n")[2] for r in server.requests] == [body, body]  # the native client, then the Python one


def test_only_and_off_as_in_hookclient_py(vb, fake, binary):
    repo = vb({"a.txt": "a\n"}).repo
    # No watcher, =only: no answer is a failure, said the same way.
    only = alone(binary, repo, stash(repo), mode="only")
    assert only == python(repo, stash(repo), mode="only")
    assert only[0] == 1 and b"no hook server answered (VBRANCH_HOOK_SERVER=only)" in only[2]
    # =off: the server is not asked; the full hook answers.
    server = fake(repo, b"0 3\nfake")
    assert denied(run(native_hook_command(binary), repo, stash(repo), mode="off"))
    assert server.requests == []


def test_git_dir_or_a_gitfile_means_not_asked(vb, fake, binary, tmp_path):
    repo = vb({"a.txt": "a\n"}).repo
    server = fake(repo, b"0 3\nfake")
    command = native_hook_command(binary)
    got = run(command, repo, stash(repo), GIT_DIR=str(repo / ".git"))
    assert denied(got) and got == python(repo, stash(repo), GIT_DIR=str(repo / ".git"))
    assert alone(binary, repo, stash(repo), mode="only", GIT_DIR=str(repo / ".git")) == \
        python(repo, stash(repo), mode="only", GIT_DIR=str(repo / ".git"))
    # A linked worktree's .git is a file: left to the full hook, which resolves it.
    git(repo, "worktree", "add", "-q", str(tmp_path / "linked"))
    assert run(command, tmp_path / "linked", stash(repo)) == python(tmp_path / "linked", stash(repo))
    assert server.requests == []
    assert run(command, repo, stash(repo))[1] == b"fak"  # and the server is there to be asked


def test_the_installed_command_works_once_the_binary_is_gone(vb, watcher, fake, binary, tmp_path):
    """Someone wipes ~/.cache: the command starts the Python client, with the same words after it."""
    v = vb({"a.txt": "a\n"})
    copy = tmp_path / "cache" / Path(binary).name
    copy.parent.mkdir()
    shutil.copy2(binary, copy)
    command = native_hook_command(str(copy))
    assert split_native(command)[0] == str(copy)
    answers = []
    for present in (True, False):
        if not present:
            copy.unlink()
        server = fake(v.repo, b"0 2\nok")
        assert run(command, v.repo, b"{}", "--agent", "cursor")[:2] == (0, b"ok")
        assert server.requests[-1].startswith(b"cursor\0")  # the appended words reached this branch
        server.close()
        (v.repo / ".git" / "vbranch" / hookclient.SOCKET_NAME).unlink()
        w = watcher(v.repo)
        answers.append(run(command, v.repo, sample("cursor_beforeSubmitPrompt", v.repo), "--agent", "cursor", mode="only"))
        w.stop()
    assert answers[0] == answers[1] and (answers[0][0], answers[0][1].strip()) == (0, b'{"continue": true}')
    assert not copy.exists()

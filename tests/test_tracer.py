"""The command tracer: every file a command's processes write, attributed to its session by process.

Commands run through the real tracer (`python -S vbranch/tracer.py '<command>'`, as Claude Code
runs them with the installed shell prefix); the hooks around them are fired as Claude Code would.
Interleavings are fixed with FIFOs the commands block on, never with sleeps. Every test with a
repository runs twice: with the supervisor's native loop (supervise.c) and with its Python loop.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VB, git, ignore_questions, tree_files, wait_for
from tests.hookdriver import Session
from vbranch import tracer
from vbranch.record import recording, traces
from vbranch.state.workspace import open_workspace

TRACER = [sys.executable, "-S", tracer.__file__]


def traced(repo: Path, session: str, command: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "CLAUDE_CODE_SESSION_ID": session}
    env.pop(tracer.TRACED_MARK, None)
    return subprocess.Popen(TRACER + [command], cwd=repo, env=env, **kwargs)


def logs(repo: Path) -> list[traces.Trace]:
    return traces.read_all(repo / ".git" / "vbranch", done=True)


def all_ended(repo: Path) -> bool:
    return all(t.ended is not None for t in logs(repo))


def gate(tmp_path: Path, name: str) -> Path:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    return fifo


def release(fifo: Path) -> None:
    with open(fifo, "w") as f:  # blocks until the command is waiting on it
        f.write("go\n")


def loop_of(trace: traces.Trace) -> str:
    """Who answered the notifications: the header's last field (`native`, or `python: why`)."""
    return trace.file.read_text().split("\n")[0].split("\t")[8]


def counts_of(trace: traces.Trace) -> tuple[int, int]:
    """A native loop's N line: notifications it answered, and those it left to Python."""
    [line] = [l for l in trace.file.read_text().splitlines() if l.startswith("N\t")]
    return tuple(int(x) for x in line.split("\t")[1:])


@pytest.fixture(params=["native", "python"])
def loop(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setenv(tracer.NATIVE_SWITCH, "off")
    else:
        monkeypatch.delenv(tracer.NATIVE_SWITCH, raising=False)
    return request.param


@pytest.fixture
def repo(make_repo, loop):
    repo = make_repo({
        "a.txt": "a\n",
        "b.txt": "b\n",
        "dir/c.txt": "c\n",
        "shared.txt": "".join(f"line {i}\n" for i in range(1, 7)),
    })
    VB(repo).init()
    return repo


def test_log_names_every_file_the_command_changes(repo, tmp_path, loop):
    outside = tmp_path / "scratch.txt"
    command = (
        "echo x > new.txt; rm a.txt; mv b.txt moved.txt; sed -i s/c/C/ dir/c.txt; ln -s new.txt link; "
        f"chmod +x new.txt; cat shared.txt > /dev/null; echo y > {outside}; "
        "python3 -c \"open('py.txt', 'w').write('1')\"; (cd dir && touch deep.txt); echo out; exit 7"
    )
    proc = traced(repo, "s1", command, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7 and out == b"out\n"  # the command's status and output, untouched
    assert wait_for(lambda: all_ended(repo))
    [trace] = logs(repo)
    assert trace.session == "s1" and trace.traced and trace.reason is None
    assert loop_of(trace) == "native" if loop == "native" else loop_of(trace).startswith("python: ")
    written = traces.worktree_paths(trace)
    assert {"new.txt", "a.txt", "b.txt", "moved.txt", "dir/c.txt", "link", "py.txt", "dir/deep.txt"} <= written
    assert "shared.txt" not in written  # read, not written
    assert not any(p.startswith("..") or p.startswith("/") for p in trace.paths)  # nothing outside the tree


def test_the_installed_prefix_runs_commands_under_the_tracer(repo):
    """`vbranch install`'s prefix runs trace_command.py, which imports the tracer (a script is compiled at
    every run, an imported module's compiled form is cached): the same tracing, the same exit status."""
    import shlex

    from vbranch.agents.claude_code import tracer_command

    env = {**os.environ, "CLAUDE_CODE_SESSION_ID": "s-prefix"}
    env.pop(tracer.TRACED_MARK, None)
    proc = subprocess.run(shlex.split(tracer_command()) + ["echo x > a.txt; exit 3"], cwd=repo, env=env)
    assert proc.returncode == 3
    assert wait_for(lambda: all_ended(repo))
    assert [(t.session, t.traced, sorted(t.paths)) for t in logs(repo)] == [("s-prefix", True, ["a.txt"])]


def test_a_background_process_stays_traced_after_the_command_returns(repo, tmp_path):
    go = gate(tmp_path, "go")
    proc = traced(repo, "s1", f"(read x < {go}; echo late > late.txt) > /dev/null 2>&1 & echo early > early.txt")
    assert proc.wait(timeout=60) == 0  # the command returned; its background child still runs
    [trace] = logs(repo)
    assert trace.ended is None and traces.worktree_paths(trace) == {"early.txt"}
    release(go)
    assert wait_for(lambda: all_ended(repo))
    assert traces.worktree_paths(logs(repo)[0]) == {"early.txt", "late.txt"}


def test_a_signal_ends_the_command_as_the_shell_reports_it(repo):
    proc = traced(repo, "s1", "kill -TERM $$")
    assert proc.wait(timeout=60) == 128 + 15


def test_no_session_or_no_vbranch_runs_the_command_plainly(repo, make_repo):
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CODE_SESSION_ID", "VBRANCH_SESSION", "CODEX_THREAD_ID")}
    assert subprocess.run(TRACER + ["echo x > plain.txt"], cwd=repo, env=env).returncode == 0
    other = make_repo({"x": "x\n"})  # git, but no vbranch
    assert traced(other, "s1", "echo y > y.txt").wait(timeout=60) == 0
    assert (repo / "plain.txt").exists() and (other / "y.txt").exists()
    assert logs(repo) == [] and not (other / ".git" / "vbranch").exists()


def _bash(me: Session, call: str, command: str, run):
    """A Bash tool call whose command runs under the tracer between its hooks; `run` waits for it."""
    tool_input = {"command": command, "description": "test"}
    me.pre("Bash", tool_input, call)
    proc = traced(me.repo, me.id, command)
    return tool_input, proc


def test_two_sessions_commands_at_once_are_attributed_exactly(repo, tmp_path):
    """Both windows are open the whole time: by time window every file would be contested."""
    a, b = Session(repo, "A"), Session(repo, "B")
    for s, task in ((a, "task a"), (b, "task b")):
        s.start()
        s.prompt(task)
    gate_a, gate_b = gate(tmp_path, "ga"), gate(tmp_path, "gb")
    in_a, proc_a = _bash(a, "ta", f"echo a > own-a.txt; read x < {gate_a}; sed -i 's/^line 2$/line 2 by A/' shared.txt", None)
    in_b, proc_b = _bash(b, "tb", f"echo b > own-b.txt; mkdir -p gen; for i in 1 2 3; do echo $i > gen/f$i.txt; done; read x < {gate_b}; sed -i 's/^line 5$/line 5 by B/' shared.txt", None)
    release(gate_a)
    assert proc_a.wait(timeout=60) == 0
    release(gate_b)
    assert proc_b.wait(timeout=60) == 0
    assert a.post("Bash", in_a, "ta", {"stdout": ""})[1] is None
    assert b.post("Bash", in_b, "tb", {"stdout": ""})[1] is None
    a.stop()
    b.stop()

    report = VB(repo).status()
    assert report.contested == [] and report.unattributed == []
    v = VB(repo)
    base = tree_files(repo, "main")
    files_a, files_b = v.files_of("A"), v.files_of("B")
    assert files_a["own-a.txt"] == b"a\n" and "own-b.txt" not in files_a and "gen/f1.txt" not in files_a
    assert files_b["own-b.txt"] == b"b\n" and {f"gen/f{i}.txt" for i in (1, 2, 3)} <= set(files_b)
    assert files_a["shared.txt"] == base["shared.txt"].replace(b"line 2\n", b"line 2 by A\n")
    assert files_b["shared.txt"] == base["shared.txt"].replace(b"line 5\n", b"line 5 by B\n")


def test_a_file_both_sessions_commands_wrote_is_contested(repo):
    a, b = Session(repo, "A"), Session(repo, "B")
    in_a, proc_a = _bash(a, "ta", "echo a >> both.txt", None)
    in_b, proc_b = _bash(b, "tb", "echo b >> both.txt", None)
    assert proc_a.wait(timeout=60) == 0 and proc_b.wait(timeout=60) == 0
    a.post("Bash", in_a, "ta", {})
    b.post("Bash", in_b, "tb", {})
    [contest] = VB(repo).status().contested
    assert contest.path == "both.txt" and set(contest.sessions) == {"A", "B"}


def test_a_traced_session_takes_no_signatures_at_its_next_command(repo):
    me = Session(repo, "A")
    tool_input, proc = _bash(me, "t1", "echo 1 > one.txt", None)
    proc.wait(timeout=60)
    me.post("Bash", tool_input, "t1", {})
    me.pre("Bash", {"command": "true"}, "t2")
    ws = open_workspace(repo)
    try:
        window = ws.store.window("t2")
        assert window.partial and window.before == {}  # the log will say what it wrote
    finally:
        ws.close()


def test_a_command_the_tracer_could_not_watch_is_reported(repo):
    state = repo / ".git" / "vbranch"
    filt = (state / tracer.FILTER_FILE)
    assert traced(repo, "A", "true").wait(timeout=60) == 0  # builds the filter
    head, _, bpf = filt.read_bytes().partition(b"\n\n")
    lines = head.split(b"\n")
    version, machine, _nr = lines[0].split()
    filt.write_bytes(b"\n".join([b" ".join([version, machine, b"999999"]), *lines[1:]]) + b"\n\n" + bpf)

    me = Session(repo, "B")
    tool_input, proc = _bash(me, "t1", "echo 1 > one.txt", None)
    assert proc.wait(timeout=60) == 0 and (repo / "one.txt").exists()  # the command still ran
    out = me.post("Bash", tool_input, "t1", {})[1]
    assert "ran without the command tracer" in out["systemMessage"]
    assert "not available" in out["systemMessage"]
    # attributed by its window instead:
    assert "one.txt" in {f.path for b in VB(repo).status().branches for s in b.sessions if s.id == "B" for f in b.files}


def test_a_person_s_edit_is_not_blamed_on_the_next_file_tool(repo):
    """The PreToolUse snapshot runs under the caller's own fresh lease: that lease saw nothing."""
    (repo / "shared.txt").write_text((repo / "shared.txt").read_text().replace("line 1\n", "line 1 by a person\n"))
    me = Session(repo, "A")
    assert me.edit("shared.txt", "line 4\n", "line 4 by A\n") is None
    report = VB(repo).status()
    assert [u.path for u in report.unattributed] == ["shared.txt"]
    v = VB(repo)
    v.commit()
    assert v.files_of("A")["shared.txt"] == tree_files(repo, "main")["shared.txt"].replace(b"line 4\n", b"line 4 by A\n")


def test_a_failed_file_tool_takes_nothing(repo):
    me = Session(repo, "A")
    tool_input = {"file_path": str(repo / "a.txt"), "old_string": "a\n", "new_string": "A\n"}
    me.pre("Edit", tool_input, "t1")
    (repo / "a.txt").write_text("changed by someone else\n")  # so Claude Code refuses the edit
    me.post("Edit", tool_input, "t1", failed=True)
    report = VB(repo).status()
    assert [u.path for u in report.unattributed] == ["a.txt"]
    assert all(s.id != "A" for b in report.branches for s in b.sessions if b.files)


def test_git_sees_the_traced_command_as_it_is(repo):
    """A traced `git` works as usual (its own writes into .git go through the tracer too)."""
    proc = traced(repo, "A", "git status --porcelain > status.out && git log --oneline -1", stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == git(repo, "log", "--oneline", "-1").strip().encode()


def test_a_person_s_edit_before_a_command_s_write_stays_unattributed(repo):
    (repo / "shared.txt").write_text((repo / "shared.txt").read_text().replace("line 1\n", "line 1 by a person\n"))
    me = Session(repo, "A")
    tool_input, proc = _bash(me, "t1", "echo 'line 7 by A' >> shared.txt", None)
    assert proc.wait(timeout=60) == 0
    me.post("Bash", tool_input, "t1", {})
    report = VB(repo).status()
    [unattributed] = report.unattributed
    assert unattributed.path == "shared.txt"
    v = VB(repo)
    v.commit()
    assert v.files_of("A")["shared.txt"] == tree_files(repo, "main")["shared.txt"] + b"line 7 by A\n"


def test_what_a_command_overwrote_is_kept(repo):
    """B's command throws away A's uncommitted line: the version it overwrote is in B's trace."""
    a, b = Session(repo, "A"), Session(repo, "B")
    assert a.edit("shared.txt", "line 3\n", "line 3 by A\n") is None
    tool_input, proc = _bash(b, "t1", "git checkout -- shared.txt 2>/dev/null || git show HEAD:shared.txt > shared.txt", None)
    assert proc.wait(timeout=60) == 0
    assert b"line 3 by A" not in (repo / "shared.txt").read_bytes()
    [trace] = [t for t in logs(repo) if t.session == "B"]
    kept = [traces.version(e) for e in trace.events if e.path == "shared.txt"]
    assert any(v is not None and b"line 3 by A\n" in v.data for v in kept)


def test_a_done_log_stays_while_its_window_is_open_then_leaves_what_hooks_read(repo):
    """Hooks list the trace folder: a folded command's log stays there while its window is open (its
    PostToolUse finds that it was traced), then goes to kept/ with the version it overwrote."""
    a = Session(repo, "A")
    tool_input, proc = _bash(a, "t1", "echo new > a.txt", None)
    assert proc.wait(timeout=60) == 0
    assert VB(repo).status().unattributed == []  # a snapshot meanwhile folds the change: the log is done
    [trace] = logs(repo)
    assert trace.done  # folded, but its window is open
    a.post("Bash", tool_input, "t1", {})
    ws = open_workspace(repo)
    try:
        assert recording.expects_trace(ws, "A")  # its PostToolUse found the command traced
    finally:
        ws.close()
    VB(repo).commit()  # its snapshot moves the log
    assert VB(repo).files_of("A")["a.txt"] == b"new\n"
    assert logs(repo) == []  # the status's snapshot moved it
    kept = repo / ".git" / "vbranch" / tracer.TRACE_DIR / traces.KEPT_DIR
    assert sorted(p.suffix for p in kept.iterdir()) == [".done", ".v"]
    assert (kept / trace.file.with_suffix(".v").name).read_bytes() == b"a\n"


@pytest.mark.parametrize("command, protected", [
    ("git symbolic-ref HEAD refs/heads/main", "HEAD"),
    ("echo '[alias] st = !rm -rf .' >> .git/config", "config"),
    ("git config alias.st '!echo pwned'", "config"),
    ("printf '#!/bin/sh\\nexit 0\\n' > .git/hooks/pre-commit", "hooks/pre-commit"),
    ("rm -rf .git/vbranch", "vbranch/"),
    ("git update-ref refs/heads/vbranch/workspace HEAD~0", "refs/heads/vbranch/workspace"),
])
def test_writes_into_git_s_own_files_are_refused_and_explained(repo, command, protected):
    """By effect, whatever the spelling: with the spelling guard off, the tracer still refuses."""
    (repo / ".git" / "vbranch" / "config.json").write_text('{"guard_git": "off"}')
    guarded = ("HEAD", "config", "hooks/pre-commit", "refs/heads/vbranch/workspace")
    before = {p: (repo / ".git" / p).read_bytes() for p in guarded}
    me = Session(repo, "A")
    tool_input, proc = _bash(me, "t1", command, None)
    proc.wait(timeout=60)
    out = me.post("Bash", tool_input, "t1", {})[1]
    told = out["hookSpecificOutput"]["additionalContext"]
    assert "writes into .git" in told and protected.rstrip("/") in told
    assert {p: (repo / ".git" / p).read_bytes() for p in guarded} == before
    assert (repo / ".git" / "vbranch" / "state.db").exists()
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/vbranch/workspace"


def test_vbranch_run_by_an_agent_may_write_its_own_state(repo):
    """`vbranch commit` and `vbranch rescue` in a Bash call: vbranch's own writes (and its git's) go through."""
    (repo / "a.txt").write_text("changed\n")
    me = Session(repo, "A")
    tool_input, proc = _bash(me, "t1", f"{sys.executable} -m vbranch commit --all -m 'by the agent'", None)
    assert proc.wait(timeout=120) == 0
    out = me.post("Bash", tool_input, "t1", {})[1]
    assert out is None or "writes into .git" not in out.get("hookSpecificOutput", {}).get("additionalContext", "")


def test_lost_state_is_reported_at_every_hook(repo):
    import shutil

    shutil.rmtree(repo / ".git" / "vbranch")  # e.g. by a person, or a command outside the tracer
    code, out = Session(repo, "A").pre("Edit", {"file_path": str(repo / "a.txt"), "old_string": "a", "new_string": "b"}, "t1")
    assert code == 0 and "state" in out["systemMessage"] and "no guard is on" in out["systemMessage"]


def test_a_command_s_write_waits_for_a_file_tool_mid_edit(repo):
    """The race of an Edit (read, check, write) with another session's command writing the same file:
    the command's write waits for the Edit's PostToolUse, so neither overwrites the other."""
    a, b = Session(repo, "A"), Session(repo, "B")
    path = repo / "shared.txt"
    tool_input = {"file_path": str(path), "old_string": "line 2\n", "new_string": "line 2 by A\n"}
    assert a.pre("Edit", tool_input, "edit-1")[1] is None  # A's Edit holds the lease now
    original = path.read_text()
    cmd_input, proc = _bash(b, "t1", "echo 'line 7 by B' >> shared.txt", None)
    assert wait_for(lambda: any(l.startswith("L\t") for t in logs(repo) for l in t.file.read_text().splitlines()))
    assert path.read_text() == original and proc.poll() is None  # B's append is held at its open
    path.write_text(original.replace("line 2\n", "line 2 by A\n"))  # Claude Code's write of A's Edit
    a.post("Edit", tool_input, "edit-1", {"filePath": str(path), "originalFile": original})
    assert proc.wait(timeout=60) == 0
    b.post("Bash", cmd_input, "t1", {})
    assert path.read_text() == original.replace("line 2\n", "line 2 by A\n") + "line 7 by B\n"
    report = VB(repo).status()
    assert report.contested == [] and report.unattributed == []
    v = VB(repo)
    v.commit()
    assert v.files_of("A")["shared.txt"] == original.replace("line 2\n", "line 2 by A\n").encode()
    assert v.files_of("B")["shared.txt"] == (original + "line 7 by B\n").encode()


def test_the_command_outlives_a_killed_waiter_and_stays_traced(repo, tmp_path):
    """Claude Code may kill the process it waits for (a timeout): the command's own processes go on,
    still traced, and the supervisor does not die with a broken pipe."""
    import signal

    go = gate(tmp_path, "go")
    proc = traced(repo, "s1", f"read x < {go}; echo after > after.txt", start_new_session=True)
    assert wait_for(lambda: len(logs(repo)) == 1)
    proc.send_signal(signal.SIGKILL)  # W only: the command and the supervisor are not its children's group
    proc.wait(timeout=60)
    release(go)
    assert wait_for(lambda: all_ended(repo))
    assert (repo / "after.txt").read_text() == "after\n"  # its write was let through, not failed with ENOSYS
    assert "after.txt" in logs(repo)[0].paths


def test_a_lease_taken_while_a_command_runs_holds_its_next_write(repo, tmp_path):
    """The supervisor reads the leased paths again only when the lease hint has grown: a lease taken
    after the command's first write (when it read: no lease anywhere) still holds the next one."""
    a, b = Session(repo, "A"), Session(repo, "B")
    path = repo / "shared.txt"
    go = gate(tmp_path, "go")
    cmd_input, proc = _bash(b, "t1", f"echo one > b.txt; read x < {go}; echo 'line 7 by B' >> shared.txt", None)
    assert wait_for(lambda: any("b.txt" in traces.worktree_paths(t) for t in logs(repo)))
    tool_input = {"file_path": str(path), "old_string": "line 2\n", "new_string": "line 2 by A\n"}
    assert a.pre("Edit", tool_input, "edit-1")[1] is None  # A's Edit takes the lease now
    original = path.read_text()
    release(go)
    assert wait_for(lambda: any(l.startswith("L\t") for t in logs(repo) for l in t.file.read_text().splitlines()))
    assert path.read_text() == original and proc.poll() is None
    path.write_text(original.replace("line 2\n", "line 2 by A\n"))
    a.post("Edit", tool_input, "edit-1", {"filePath": str(path), "originalFile": original})
    assert proc.wait(timeout=60) == 0
    assert path.read_text() == original.replace("line 2\n", "line 2 by A\n") + "line 7 by B\n"


def test_caller_memory_reads_a_string_up_to_the_end_of_its_mapping():
    """A path may end right before an unmapped page: it is read; one running into it is not a path."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = mmap.PAGESIZE
    base = libc.mmap(None, 2 * page, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert libc.munmap(base + page, page) == 0  # the second page is gone: reading into it faults
    try:
        memory = tracer.CallerMemory()
        text = b"/repo/a/path.txt"
        ctypes.memmove(base + page - len(text) - 1, text + b"\0", len(text) + 1)
        assert memory.string(os.getpid(), base + page - len(text) - 1) == text
        ctypes.memmove(base + page - 4, b"abcd", 4)  # no NUL before the mapping ends
        assert memory.string(os.getpid(), base + page - 4) is None
        ctypes.memmove(base + 8, b"two\0", 4)
        assert memory.string(os.getpid(), base + 8) == b"two"
    finally:
        libc.munmap(base, page)


@pytest.mark.skipif(tuple(map(int, os.uname().release.split(".")[:2])) < (6, 6), reason="SYNC_WAKE_UP is Linux 6.6+")
def test_the_supervisor_s_listener_takes_the_fast_wake_up(repo):
    """The flag is the ioctl's value: passed as a buffer it failed (EINVAL, swallowed as "an older
    kernel") and every notification cost ~3.5x as much. Run in a child: the filter stays on its process."""
    state = repo / ".git" / "vbranch"
    script = (f"from vbranch import tracer; fd = tracer._install_filter(tracer.read_filter({str(state)!r})); "
              "print(tracer._wake_on_our_cpu(fd))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_the_hooks_and_the_tracer_name_one_lease_hint():
    from vbranch.state import leases

    assert leases.HINT_FILE == tracer.LEASE_HINT


def _committed_after_post(repo: Path, s: Session, tool_input: dict, call: str) -> dict[str, bytes]:
    """The command's PostToolUse, then: nothing unattributed or contested, and the files of `s`'s commit."""
    assert s.post("Bash", tool_input, call, {"stdout": ""})[1] is None
    report = VB(repo).status()
    assert report.unattributed == [] and report.contested == []
    v = VB(repo)
    v.commit()
    return v.files_of(s.id)


def test_a_command_s_file_the_dirty_set_had_not_heard_of_stays_its_session_s(repo, monkeypatch):
    """A command writes a new file and ends; before its PostToolUse, another session's commit folds
    the tree with a dirty set that has not heard of the file yet (asked a moment before), then
    another with one that has. The trace says whose the file is: it is never left unattributed."""
    from vbranch.record import recording

    a = Session(repo, "A")
    a.start()
    a.prompt("task a")
    tool_input, proc = _bash(a, "t1", "echo late > late.txt", None)
    assert proc.wait(timeout=60) == 0
    ws = open_workspace(repo)
    try:
        with monkeypatch.context() as m:
            m.setattr(recording, "candidate_paths", lambda ws: set())  # the dirty set's answer came first
            recording.fold_unseen(ws, "2030-01-01T00:00:00")
        recording.fold_unseen(ws, "2030-01-01T00:00:01")
    finally:
        ws.close()
    assert _committed_after_post(repo, a, tool_input, "t1")["late.txt"] == b"late\n"


def test_a_write_opened_between_reading_the_logs_and_the_file_is_its_command_s(repo, monkeypatch):
    """A fold reads the trace logs, then the files: a command that opens a file in between (its event
    logged, then its write) must not leave its change unattributed; the logs read again after the
    file name the writer. (Seen in the soak benchmark: fold at 45.81 s, the command's open at 45.94 s.)"""
    from vbranch.record import recording

    a = Session(repo, "A")
    a.start()
    a.prompt("task a")
    warm_input, warm = _bash(a, "t0", "echo warm > warm.txt", None)  # A's commands are traced: its windows take no signatures
    assert warm.wait(timeout=60) == 0 and a.post("Bash", warm_input, "t0", {"stdout": ""})[1] is None
    tool_input, proc = _bash(a, "t1", "echo 'line 7 by A' >> shared.txt", None)
    assert proc.wait(timeout=60) == 0
    real = traces.read_all
    first = [True]

    def stale_first(state_dir, done=False):  # the fold's own read came before the command's open
        if first[0]:
            first[0] = False
            return []
        return real(state_dir, done=done)

    ws = open_workspace(repo)
    try:
        monkeypatch.setattr(traces, "read_all", stale_first)
        recording.fold_unseen(ws, "2030-01-01T00:00:00")
        monkeypatch.setattr(traces, "read_all", real)
    finally:
        ws.close()
    assert _committed_after_post(repo, a, tool_input, "t1")["shared.txt"] == tree_files(repo, "main")["shared.txt"] + b"line 7 by A\n"


def _events(repo: Path, session: str) -> list[tuple[str, str, object]]:
    [trace] = [t for t in logs(repo) if t.session == session]
    return [(e.path, e.version.partition("+")[0] if e.version[:1].isdigit() else e.version, traces.version(e)) for e in trace.events]


# openat2 (its flags are in a struct the filter cannot read): a write-open, then a read-only one.
OPENAT2 = """
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for name, flags, mode in ((b"o2.txt", os.O_WRONLY | os.O_CREAT, 0o644), (b"b2.txt", os.O_RDONLY, 0)):
    how = ctypes.create_string_buffer(struct.pack("=QQQ", flags, mode, 0))
    fd = libc.syscall(437, -100, ctypes.c_char_p(name), how, 24)  # openat2: 437 on every architecture
    assert fd >= 0, os.strerror(ctypes.get_errno())
    os.close(fd)
"""


def test_the_native_and_the_python_loop_write_the_same_log(make_repo, monkeypatch, tmp_path):
    """Every kind of path the supervisor resolves (relative to the cwd or a dirfd, `..`, a symlinked
    directory, quoting), versions kept, a path opened twice unchanged (one event), git's files and
    files outside: the two loops' logs say the same, byte for byte but the times."""
    outside = tmp_path / "outside.txt"
    command = (
        "echo x > new.txt; echo more >> a.txt; rm b.txt; mv new.txt moved.txt; ln -s moved.txt link; "
        "mkdir -p dir/sub; ln -s dir alias; echo y > alias/via-link.txt; echo z > dir/sub/../up.txt; "
        "printf 't' > \"$(printf 'tab\\tname\\\\x')\"; chmod +x a.txt; truncate -s 1 a.txt; "
        f"echo o > {outside}; echo n > /dev/null; git status --porcelain > /dev/null; "
        "python3 -c \"import os; d = os.open('dir', os.O_RDONLY); os.close(os.open('at.txt', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d)); "
        "open('a.txt', 'a'); open('a.txt', 'a'); os.rename('dir/at.txt', 'dir/sub/at2.txt')\"; "
        f"python3 -c {shlex.quote(OPENAT2)}"
    )
    seen = {}
    for how in ("native", "python"):
        repo = make_repo({"a.txt": "a\n", "b.txt": "b\n", "b2.txt": "b2\n"})
        VB(repo).init()
        if how == "python":
            monkeypatch.setenv(tracer.NATIVE_SWITCH, "off")
        assert traced(repo, "s1", command).wait(timeout=60) == 0
        assert wait_for(lambda repo=repo: all_ended(repo))
        [trace] = logs(repo)
        assert loop_of(trace) == "native" if how == "native" else loop_of(trace).startswith("python: ")
        seen[how] = _events(repo, "s1")
        if how == "native":
            answered, handed = counts_of(trace)
            assert answered > handed > 0  # the first write in the tree asks Python about leases; most are answered in C
        (repo / "alias").unlink()  # the other repository gets its own
    assert seen["native"] == seen["python"]
    paths = [p for p, _, _ in seen["native"]]
    assert {"dir/via-link.txt", "dir/up.txt", "tab\tname\\x", "dir/at.txt", "dir/sub/at2.txt", "o2.txt"} <= set(paths)
    assert "b2.txt" not in paths  # opened read-only
    assert paths.count("a.txt") == 4  # append, chmod, truncate, the first of the two unchanged opens


def test_a_failed_build_of_the_native_loop_falls_back_and_says_so(make_repo, monkeypatch, tmp_path):
    import shutil

    from vbranch import tracefilter

    repo = make_repo({"a.txt": "a\n"})
    VB(repo).init()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    why = tracefilter.build_native()
    assert why is not None and "could not build" in why
    assert Path(tracer.native_library()).with_suffix(".failed").exists()
    assert traced(repo, "s1", "echo x > x.txt").wait(timeout=60) == 0
    assert wait_for(lambda: all_ended(repo))
    [trace] = logs(repo)
    assert loop_of(trace) == f"python: {why}" and traces.worktree_paths(trace) == {"x.txt"}

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
    monkeypatch.delenv("CC")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "no C compiler" in tracefilter.build_native()

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("HOME")  # nowhere to keep it: said, and not tried at every command
    assert traced(repo, "s2", "echo y > y.txt").wait(timeout=60) == 0
    assert wait_for(lambda: all_ended(repo))
    [trace] = [t for t in logs(repo) if t.session == "s2"]
    assert loop_of(trace).startswith("python: no native loop") and traces.worktree_paths(trace) == {"y.txt"}


def test_a_command_builds_the_native_loop_when_it_is_missing(make_repo, monkeypatch, tmp_path):
    """`vbranch init` builds it; a command after an upgrade (a new source) or with a new cache builds it once."""
    repo = make_repo({"a.txt": "a\n"})
    VB(repo).init()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(tracer.NATIVE_SWITCH, raising=False)
    assert not Path(tracer.native_library()).exists()
    assert traced(repo, "s1", "echo x > x.txt").wait(timeout=60) == 0
    assert wait_for(lambda: all_ended(repo))
    [trace] = logs(repo)
    assert loop_of(trace) == "native" and traces.worktree_paths(trace) == {"x.txt"}
    assert Path(tracer.native_library()).exists()


def test_whether_git_ignores_a_command_s_new_files_is_asked_with_the_state_lock_free(repo, monkeypatch):
    (repo / ".git" / "info" / "exclude").write_text("*.log\n")
    asked = ignore_questions(monkeypatch)
    me = Session(repo, "A")
    tool_input, proc = _bash(me, "t1", "echo x > made.txt; echo y > debug.log; echo z >> a.txt", None)
    assert proc.wait(timeout=60) == 0
    me.post("Bash", tool_input, "t1", {})
    assert asked == [(["debug.log", "made.txt"], False)]
    files = VB(repo).status().branches[0].files
    assert sorted(f.path for f in files) == ["a.txt", "made.txt"]

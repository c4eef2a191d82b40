"""8 sessions x 2 parallel tool calls each (a main agent and a subagent: same session id,
different tool_use_id and agent_id), 16 processes at once: every branch exact, nothing lost,
nothing refused. Commands run through the real command tracer, as the installed shell prefix
runs them; hooks run in their own processes, or through the installed hook command answered
by the live watcher's hook server."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB, tree_files

SESSIONS = 8

WORKER = """
import os, subprocess, sys
from pathlib import Path
from tests.hookdriver import Session, denied_reason, fire
from vbranch import tracer

repo, s, role = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def check(out):
    if (out or {}).get("systemMessage") or denied_reason(out):
        raise SystemExit(f"session {s} {role}: unexpected hook output {out}")

def traced(command):
    env = {**os.environ, "CLAUDE_CODE_SESSION_ID": f"s{s}"}
    subprocess.run([sys.executable, "-S", tracer.__file__, command], cwd=repo, env=env, check=True)

def bash(me, command):
    check(me.bash(command, lambda: traced(command)))

if role == "tools":
    me = Session(repo, f"s{s}")
    check(me.start()[1]); check(me.prompt(f"task {s}")[1])
    check(me.write(f"s{s}/own.txt", f"own {s}\\n"))
    check(me.edit(f"s{s}/own.txt", f"own {s}", f"own {s} edited"))
    check(me.edit("shared.txt", f"line {s}\\n", f"line {s} edited by s{s}\\n"))
    bash(me, f"echo built > s{s}/build.out; printf 'a\\nb\\n' > s{s}/cmds.txt; sed -i 's/^b$/b by s{s}/' s{s}/cmds.txt")
    check(me.write(f"s{s}/second.txt", "second\\n"))
else:  # a subagent of the same session, at the same time, on the same shared file
    sub = Session(repo, f"s{s}", agent_id=f"agent-{s}")
    bash(sub, "git status --porcelain > /dev/null")  # a command that changes nothing in the tree
    check(sub.edit("shared.txt", f"row {s}\\n", f"row {s} by s{s}\\n"))
    bash(sub, f"mkdir -p s{s}/logs && for i in 1 2 3; do echo $i >> s{s}/logs/log.txt; done")
"""


@pytest.mark.parametrize("via", ["process", "server"])
def test_eight_sessions_two_parallel_calls_each(make_repo, watcher, via):
    """Each hook in its own process (`python -m vbranch hook`), or all through the watcher's hook server."""
    repo = make_repo({
        "shared.txt": "".join(f"line {i}\n" for i in range(SESSIONS)) + "".join(f"row {i}\n" for i in range(SESSIONS)),
    })
    v = VB(repo).init()
    env = dict(os.environ)
    if via == "server":
        watcher(repo)
        env["VBRANCH_TEST_HOOKS_VIA"] = "server"
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(repo), str(s), role], cwd=ROOT, env=env, stderr=subprocess.PIPE)
        for s in range(SESSIONS)
        for role in ("tools", "sub")
    ]
    errors = [p.communicate(timeout=600)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(errors)

    # Every change is in the working tree: no edit lost to another's read-modify-write.
    assert (repo / "shared.txt").read_text() == (
        "".join(f"line {i} edited by s{i}\n" for i in range(SESSIONS)) + "".join(f"row {i} by s{i}\n" for i in range(SESSIONS))
    )
    for s in range(SESSIONS):
        fire_stop(repo, s, env)
    report = v.status()
    assert report.unattributed == [] and report.contested == []
    by_session = {s.id: b for b in report.branches for s in b.sessions}
    for s in range(SESSIONS):
        files = {f.path: f for f in by_session[f"s{s}"].files}
        assert files["shared.txt"].lines == [(s + 1, s + 1), (SESSIONS + s + 1, SESSIONS + s + 1)]
        assert {f"s{s}/own.txt", f"s{s}/second.txt", f"s{s}/build.out", f"s{s}/logs/log.txt", f"s{s}/cmds.txt"} <= set(files)

    ws = v.ws()
    events = ws.store.events()
    ws.close()
    writes = [e for e in events if e[4] == "write"]
    assert len(writes) == SESSIONS * 5  # own.txt twice, shared.txt twice, second.txt: once each

    v.commit()
    for s in range(SESSIONS):
        tree = tree_files(repo, by_session[f"s{s}"].name)
        shared = tree["shared.txt"].decode().splitlines()
        assert shared[s] == f"line {s} edited by s{s}" and shared[SESSIONS + s] == f"row {s} by s{s}"
        assert sum(" by s" in line for line in shared) == 2
        assert tree[f"s{s}/logs/log.txt"] == b"1\n2\n3\n" and tree[f"s{s}/build.out"] == b"built\n"
        assert tree[f"s{s}/cmds.txt"] == f"a\nb by s{s}\n".encode()
        assert not any(p.startswith(f"s{o}/") for p in tree for o in range(SESSIONS) if o != s)
    fsck = subprocess.run(["git", "-C", str(repo), "fsck"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    status_json = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), "status", "--json"],
                                 capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert json.loads(status_json)["unattributed"] == []


def fire_stop(repo, s: int, env: dict) -> None:
    """Each session's Stop, after both of its calls are done: its commit must hold back nothing."""
    code = "import sys; from pathlib import Path; from tests.hookdriver import Session; " \
           "out = Session(Path(sys.argv[1]), sys.argv[2]).stop()[1]; sys.exit(f'Stop said {out}' if out else 0)"
    proc = subprocess.run([sys.executable, "-c", code, str(repo), f"s{s}"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

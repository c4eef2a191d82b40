"""16 processes firing hook payloads for 8 sessions at once: nothing lost, nothing failed."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB, git, tree_files

SESSIONS = 8

WORKER = """
import sys
from pathlib import Path
from tests.hookdriver import Session, denied_reason, fire

repo, s, role = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def check(out, contested_logs_ok=False):
    message = (out or {}).get("systemMessage", "")
    # Files written by commands of two sessions running at once are contested, by design.
    if contested_logs_ok and "not committed: contested changes in" in message:
        named = message.split("contested changes in ")[1].split(". Run")[0].split(", ")
        message = "" if all(n.endswith("/log.txt") for n in named) else message
    if message or denied_reason(out):
        raise SystemExit(f"session {s} {role}: unexpected hook output {out}")

if role == "tools":
    me = Session(repo, f"s{s}")
    check(me.start()[1]); check(me.prompt(f"task {s}")[1])
    check(me.write(f"s{s}/own.txt", f"own {s}\\n"))
    check(me.edit(f"s{s}/own.txt", f"own {s}", f"own {s} edited"))
    check(me.edit("shared.txt", f"line {s}\\n", f"line {s} edited by s{s}\\n"))
    check(me.write(f"s{s}/second.txt", "second\\n"))
    check(me.stop()[1], contested_logs_ok=True)
else:  # a subagent of the same session, at the same time
    sub = Session(repo, f"s{s}", agent_id=f"agent-{s}")
    check(sub.bash("pytest -q"))  # a command that changes nothing
    check(sub.edit("shared2.txt", f"row {s}\\n", f"row {s} by s{s}\\n"))
    log = repo / f"s{s}" / "log.txt"
    check(sub.bash(f"echo done >> {log}", lambda: (log.parent.mkdir(exist_ok=True), log.write_text("done\\n"))))
"""


@pytest.mark.parametrize("via", ["process", "server"])
def test_sixteen_hook_processes_for_eight_sessions(make_repo, watcher, via):
    """Each hook in its own process (`python -m vbranch hook`), or all through the watcher's hook server."""
    repo = make_repo({
        "shared.txt": "".join(f"line {i}\n" for i in range(SESSIONS)),
        "shared2.txt": "".join(f"row {i}\n" for i in range(SESSIONS)),
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
    assert (repo / "shared.txt").read_text() == "".join(f"line {i} edited by s{i}\n" for i in range(SESSIONS))
    assert (repo / "shared2.txt").read_text() == "".join(f"row {i} by s{i}\n" for i in range(SESSIONS))
    report = v.status()
    assert report.unattributed == []
    # Edits through file tools are attributed exactly; only files written by overlapping
    # commands may be contested, and then the session that wrote them is among the claimants.
    for contest in report.contested:
        assert contest.path.endswith("/log.txt")
        assert f"s{contest.path.split('/')[0][1:]}" in contest.sessions
    by_session = {s.id: b for b in report.branches for s in b.sessions}
    for s in range(SESSIONS):
        files = {f.path: f for f in by_session[f"s{s}"].files}
        assert files["shared.txt"].lines == [(s + 1, s + 1)]
        assert files["shared2.txt"].lines == [(s + 1, s + 1)]
        assert {f"s{s}/own.txt", f"s{s}/second.txt"} <= set(files)

    ws = v.ws()
    events = ws.store.events()
    ws.close()
    writes = [e for e in events if e[4] == "write"]
    assert len(writes) == SESSIONS * 5  # own.txt twice, shared.txt, second.txt, shared2.txt: once each

    for name in [b.name for b in report.branches]:
        git(repo, "log", "-1", name)  # every branch is a real ref
    v.commit()  # branches whose Stop was held back by a contested log commit now, others add nothing
    for s in range(SESSIONS):
        name = by_session[f"s{s}"].name
        if any(name in c.branches for c in report.contested):
            continue
        shared = tree_files(repo, name)["shared.txt"].decode().splitlines()
        assert shared[s] == f"line {s} edited by s{s}" and sum("edited" in line for line in shared) == 1
    fsck = subprocess.run(["git", "-C", str(repo), "fsck"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    status_json = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), "status", "--json"],
                                 capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert json.loads(status_json)["unattributed"] == []

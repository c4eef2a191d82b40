"""Many processes recording at once: nothing lost, nothing duplicated, state intact."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, VB, git, tree_files
from vbranch.ops import landing

SESSIONS = 8
ROUNDS = 6

WORKER = """
import fcntl, sys
from pathlib import Path
from vbranch.record.recording import record
from vbranch.state.workspace import open_workspace

repo, session, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ws = open_workspace(repo)
for r in range(rounds):
    own = repo / f"s{session}" / f"file{r}.txt"
    own.parent.mkdir(exist_ok=True)
    own.write_text(f"session {session} round {r}\\n")
    record(ws, f"s{session}", [str(own)], f"t{r}")
    # The shared file: this session's own line, edited read-modify-write like an editor tool.
    with open(repo / ".git" / "test-edit-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shared = repo / "shared.txt"
        lines = shared.read_text().splitlines(keepends=True)
        lines[session] = f"line {session} edited {r} times by s{session}\\n"
        shared.write_text("".join(lines))
        record(ws, f"s{session}", [str(shared)], f"t{r}")
"""

# A session as Claude Code runs one, through its hooks: each write under the file's lease
# (PreToolUse to PostToolUse), a Stop (its branch's commit) after every round.
HOOK_SESSION = """
import sys
from pathlib import Path
from tests.hookdriver import Session

repo, session, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = Session(repo, f"s{session}")
s.start()
old = f"line {session}\\n"
for r in range(rounds):
    s.write(f"s{session}/file{r}.txt", f"session {session} round {r}\\n")
    new = f"line {session} edited {r} times by s{session}\\n"
    s.edit("shared.txt", old, new)
    old = new
    s.stop()
"""

LANDER = """
import sys
from pathlib import Path
from vbranch.ops.landing import land
from vbranch.state.workspace import open_workspace

ws = open_workspace(Path(sys.argv[1]))
for name in sys.argv[2:]:
    land(ws, name, "ff", "landed")
"""


def test_eight_processes_recording_at_once_lose_nothing(make_repo):
    repo = make_repo({"shared.txt": "".join(f"line {i}\n" for i in range(SESSIONS))})
    v = VB(repo).init()
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(repo), str(s), str(ROUNDS)], cwd=ROOT, stderr=subprocess.PIPE)
        for s in range(SESSIONS)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()

    ws = v.ws()
    events = ws.store.events()
    ws.close()
    # Every record call that changed something left exactly one event.
    assert len(events) == SESSIONS * ROUNDS * 2
    report = v.commit()
    assert report.held_back == {} and len(report.committed) == SESSIONS
    for s in range(SESSIONS):
        files = tree_files(repo, v.branch_of(f"s{s}"))
        expected_shared = "".join(
            f"line {s} edited {ROUNDS - 1} times by s{s}\n" if i == s else f"line {i}\n" for i in range(SESSIONS)
        )
        assert files["shared.txt"].decode() == expected_shared
        own = {p for p in files if p.startswith("s")}
        assert own == {f"s{s}/file{r}.txt" for r in range(ROUNDS)} | {"shared.txt"}
    assert git(repo, "status", "--porcelain") == ""
    assert v.status().unattributed == []


def test_concurrent_cli_records_and_a_commit(make_repo):
    """The command line under load: records of 8 sessions while commits run."""
    repo = make_repo({"base.txt": "base\n"})
    VB(repo).init()
    for s in range(SESSIONS):
        (repo / f"cli{s}.txt").write_text(f"{s}\n")
    cmd = [sys.executable, "-m", "vbranch", "-C", str(repo)]
    procs = [subprocess.Popen(cmd + ["record", "--session", f"c{s}", f"cli{s}.txt"]) for s in range(SESSIONS)]
    procs += [subprocess.Popen(cmd + ["commit", "--all"]) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0] * len(procs)
    assert subprocess.run(cmd + ["commit", "--all"]).returncode == 0
    status = json.loads(subprocess.run(cmd + ["status", "--json"], capture_output=True, check=True).stdout)
    owned = sorted(f["path"] for b in status["branches"] for f in b["files"])
    assert owned == [f"cli{s}.txt" for s in range(SESSIONS)]
    for s in range(SESSIONS):
        assert tree_files(repo, f"refs/heads/session-c{s}")[f"cli{s}.txt"] == f"{s}\n".encode()
    fsck = subprocess.run(["git", "-C", str(repo), "fsck"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert not list(Path(repo, ".git").rglob("*.lock"))



def _run_all(procs) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()


def test_landings_while_other_sessions_record_and_commit(make_repo):
    """Three branches land, one after another, while three other sessions, through their hooks, edit
    their own files and their own lines of a file all six share, their Stop committing every round:
    each landing carries exactly its session's lines, and in the end the target holds everyone's
    last version (a landing plans with the state lock let go and settles what moved meanwhile)."""
    repo = make_repo({"shared.txt": "".join(f"line {i}\n" for i in range(6))})
    v = VB(repo).init()

    def run(script: str, *args: str):
        return subprocess.Popen([sys.executable, "-c", script, str(repo), *args], cwd=ROOT, stderr=subprocess.PIPE)

    _run_all([run(WORKER, str(s), "3") for s in range(3)])
    v.commit()
    landed = [v.branch_of(f"s{s}") for s in range(3)]
    _run_all([run(HOOK_SESSION, str(s), "3") for s in range(3, 6)] + [run(LANDER, *landed)])
    v.commit()
    ws = v.ws()
    try:
        for s in range(3, 6):
            landing.land(ws, v.branch_of(f"s{s}"), "ff", v.at())
    finally:
        ws.close()
    final = tree_files(repo, "main")
    assert final["shared.txt"].decode() == "".join(f"line {i} edited 2 times by s{i}\n" for i in range(6))
    assert {p for p in final if p != "shared.txt"} == {f"s{s}/file{r}.txt" for s in range(6) for r in range(3)}
    steps = git(repo, "reflog", "show", "--format=%H", "refs/heads/main").split()[::-1]
    assert len(steps) == 7  # the first commit, then six landings
    for old, new in zip(steps, steps[1:], strict=False):
        changed = [line for line in git(repo, "diff", "-U0", old, new).splitlines()
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert len({m for line in changed for m in re.findall(r"(?:session |by s)(\d)", line)}) == 1, changed
    assert git(repo, "status", "--porcelain") == ""
    assert v.status().unattributed == [] and v.status().contested == []
    fsck = subprocess.run(["git", "-C", str(repo), "fsck"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr

"""Four real Claude Code sessions whose Bash commands run at the same time, under the command tracer.

vbranch's install puts the tracer in `CLAUDE_CODE_SHELL_PREFIX`, so every Bash command of
every session runs under it and its writes are attributed by process, not by time window.
The four sessions' commands start at the same instant (a barrier) and write at several
moments: a loop writing one file over a second, a background process that goes on writing
after its command returned, a `sed -i` of the session's own lines of a shared file, a loop
creating a directory of files; another session Edits a shared file while they run. Each
branch must hold exactly its session's changes, nothing contested or unattributed, no Stop
commit held back. Run with the pinned CLI and with the newest release, each through the installed
hook command answered by a live watcher (what users get) and without a watcher (the fallback).
"""

import subprocess
import sys
import time

import pytest

from vbranch.cli import watch
from vbranch.state.workspace import open_workspace

from .test_vbranch_sessions import (
    branch_of,
    describe,
    git,
    make_repo,
    replace_line,
    run_scripts,
    tree_files,
    vb_status,
    vbranch,
    work_files,
)

SHARED = "".join("shared %d\n" % i for i in range(1, 9))
BASE = {"shared.txt": SHARED, "README": "readme\n"}

def scripts(repo):
    def path(p):
        return "%s/%s" % (repo, p)

    def bash(command, **ann):
        return dict({"tool": "Bash", "input": {"command": command, "description": "work"}}, **ann)

    return {
        # writes one file at several moments over about a second
        "alpha": [bash("for i in 1 2 3 4; do echo alpha $i >> alpha.log; sleep 0.25; done", barrier="commands"),
                  {"tool": "Write", "input": {"file_path": path("alpha_new.txt"), "content": "alpha new\n"}},
                  "alpha done"],
        # leaves a process running that writes after the command (and the turn) ended
        "beta": [bash("(sleep 0.5; echo beta late >> beta_bg.log; sleep 0.5; echo beta later >> beta_bg.log) "
                      "> /dev/null 2>&1 & echo started > beta.txt", barrier="commands"),
                 "beta done"],
        # its own line of the shared file with sed -i, and a directory of generated files
        "gamma": [bash("sed -i 's/^shared 3$/shared 3 gamma/' shared.txt && mkdir -p gen && "
                       "for i in $(seq 1 12); do echo $i > gen/g$i.txt; done", barrier="commands"),
                  {"tool": "Write", "input": {"file_path": path("gamma_new.txt"), "content": "gamma new\n"},
                   "arrive": "gamma-command-done"},
                  "gamma done"],
        # an Edit of the shared file while the others' commands still run (after gamma's sed)
        "delta": [bash("echo delta > delta.txt", barrier="commands"),
                  {"tool": "Read", "input": {"file_path": path("shared.txt")}, "after": "gamma-command-done"},
                  {"tool": "Edit", "input": {"file_path": path("shared.txt"), "old_string": "shared 6\n",
                                             "new_string": "shared 6 delta\n"}, "retry": 3},
                  "delta done"],
    }


def expected():
    return {
        "alpha": dict(BASE, **{"alpha.log": "".join("alpha %d\n" % i for i in range(1, 5)), "alpha_new.txt": "alpha new\n"}),
        "beta": dict(BASE, **{"beta.txt": "started\n", "beta_bg.log": "beta late\nbeta later\n"}),
        "gamma": dict(BASE, **{"shared.txt": replace_line(SHARED, 3, "shared 3 gamma"), "gamma_new.txt": "gamma new\n",
                               **{"gen/g%d.txt" % i: "%d\n" % i for i in range(1, 13)}}),
        "delta": dict(BASE, **{"shared.txt": replace_line(SHARED, 6, "shared 6 delta"), "delta.txt": "delta\n"}),
    }


@pytest.mark.parametrize("watcher", ["watcher", "no-watcher"])
def test_four_sessions_with_overlapping_commands_get_exactly_their_changes(claude_bin, tmp_path, watcher, monkeypatch):
    repo = make_repo(tmp_path, BASE)
    if watcher == "watcher":
        subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), "watch", "--background"], check=True, timeout=60)
        monkeypatch.setenv("VBRANCH_HOOK_SERVER", "only")  # every hook must be answered by the watcher's server
    try:
        _four_sessions(claude_bin, tmp_path, repo)
    finally:
        if watcher == "watcher":
            ws = open_workspace(repo)
            try:
                watch.stop_watcher(ws)
            finally:
                ws.close()


def _four_sessions(claude_bin, tmp_path, repo):
    base = git(repo, "rev-parse", "main").strip()
    names = ["alpha", "beta", "gamma", "delta"]
    api, sessions, runs = run_scripts(claude_bin, repo, tmp_path, scripts(repo), "work on the %s task", {"commands": 4})
    for name in names:  # Claude Code's own read-before-edit refusals are retried; vbranch refused nothing
        assert not any("vbranch" in r["content"] for r in api.tool_results(name) if r["is_error"]), describe(api, runs, repo)

    # beta's background process outlives its session: wait until the tracer saw it end.
    late = repo / "beta_bg.log"
    deadline = time.monotonic() + 60
    while not (late.exists() and b"later" in late.read_bytes()):
        assert time.monotonic() < deadline, "beta's background process never finished"
        time.sleep(0.1)
    vbranch(repo, "commit", "--all")  # what beta's process wrote after beta's Stop

    want = expected()
    status = vb_status(repo)
    assert status["unattributed"] == [] and status["contested"] == [], status
    work = work_files(repo)
    assert work["shared.txt"] == replace_line(replace_line(SHARED, 3, "shared 3 gamma"), 6, "shared 6 delta")
    for name in names:
        branch = branch_of(status, sessions.ids[name])
        assert tree_files(repo, branch["ref"]) == want[name], (name, describe(api, runs, repo))
        git(repo, "merge-base", "--is-ancestor", base, branch["ref"])
        # Stop committed it without holding anything back
        log = git(repo, "log", "--format=%s", branch["ref"])
        assert "work on the %s task" % name in log, (name, log)

"""Verified landing and the landing queue: the target moves only for a tree whose command passed."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VB, fingerprint, git, tree_files, wait_for
from vbranch.errors import LockTimeout, StateError
from vbranch.ops import verify
from vbranch.ops.verify import VerifyFailed, land_queue

BASE = {"app.txt": "app\n"}
# Passes unless both x.txt and y.txt are there: two branches each fine alone, broken together.
NOT_BOTH = f"{sys.executable} -c \"import os, sys; sys.exit(os.path.exists('x.txt') and os.path.exists('y.txt'))\""


def rev(v: VB, ref: str = "main") -> str:
    return git(v.repo, "rev-parse", ref).strip()


def with_branches(vb, files: dict[str, dict[str, str]], commit: bool = True) -> VB:
    """One session per key, each adding its files; committed so the queue picks them up."""
    v = vb(BASE)
    for session, added in files.items():
        for path, content in added.items():
            v.edit(session, path, content)
    if commit:
        v.commit()
    return v


def land(v: VB, session: str, command: str, timeout: float = 60):
    ws = v.ws()
    try:
        return verify.land_verified(ws, v.branch_of(session), "ff", v.at(), command, timeout)
    finally:
        ws.close()


def queue(v: VB, names=None, command: str = "true", timeout: float = 60):
    ws = v.ws()
    try:
        return land_queue(ws, names, "ff", v.at(), command, timeout, clock=v.at)
    finally:
        ws.close()


def verification(v: VB, branch: str):
    ws = v.ws()
    try:
        return ws.store.verification(branch)
    finally:
        ws.close()


def test_a_branch_that_breaks_the_command_is_not_landed(vb):
    v = with_branches(vb, {"a": {"bad.txt": "oops\n"}}, commit=False)
    name = v.branch_of("a")
    before, target = fingerprint(v.repo), rev(v)
    with pytest.raises(VerifyFailed, match="exited 1"):
        land(v, "a", "echo checking; test ! -f bad.txt")
    assert rev(v) == target and fingerprint(v.repo) == before
    assert [b.name for b in v.status().branches] == [name]  # still there, still owning its change
    found = verification(v, name)
    assert found.exit_code == 1 and found.target == target and "checking" in found.tail and not found.landed
    landing = v.status().branches[0].landing
    assert landing.state == "failed" and landing.exit_code == 1 and "checking" in landing.tail


def test_a_passing_branch_lands_and_the_scratch_checkout_is_reused_clean(vb):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}, "b": {"b.txt": "b\n"}})
    before = fingerprint(v.repo)
    # The command runs in the scratch checkout at the would-be target: a.txt there, its litter not kept.
    report = land(v, "a", "test -f a.txt && test ! -f b.txt && test ! -f litter && touch litter")
    assert report.verified and tree_files(v.repo, "main") == {"app.txt": b"app\n", "a.txt": b"a\n"}
    report = land(v, "b", "test -f a.txt && test -f b.txt && test ! -f litter && touch litter")
    assert tree_files(v.repo, "main") == {"app.txt": b"app\n", "a.txt": b"a\n", "b.txt": b"b\n"}
    assert fingerprint(v.repo) == before  # the shared working directory: not one file touched
    assert not (v.repo / "litter").exists()
    assert (v.repo / ".git" / "vbranch" / "verify" / "tree" / "litter").exists()
    found = verification(v, "session-b")  # the branch row is retired; its verification stays
    assert found.landed and found.exit_code == 0


def test_two_branches_fine_alone_but_broken_together_the_second_is_held_out(vb):
    v = with_branches(vb, {"a": {"x.txt": "x\n"}, "b": {"y.txt": "y\n"}})
    a, b = v.branch_of("a"), v.branch_of("b")
    results = queue(v, [a, b], NOT_BOTH)
    assert [(r.branch, r.landed) for r in results] == [(a, True), (b, False)]
    assert tree_files(v.repo, "main") == {"app.txt": b"app\n", "x.txt": b"x\n"}
    held = verification(v, b)
    assert held.exit_code == 1 and held.target == rev(v) and not held.landed
    status = {s.name: s.landing for s in v.status().branches}
    assert status[b].state == "failed" and status[b].command == NOT_BOTH and status[b].target == rev(v)


def test_a_queue_of_eight_lands_the_passing_branches_in_order(vb):
    files = {s: {f"{s}.txt": f"{s}\n"} for s in "abcdefgh"}
    files["c"]["broken/c"] = "1\n"
    files["e"]["broken/e"] = "1\n"
    v = with_branches(vb, files)
    names = [v.branch_of(s) for s in "abcdefgh"]
    before = fingerprint(v.repo)
    results = queue(v, None, "test ! -d broken")  # the default: every branch with commits
    assert [(r.branch, r.landed) for r in results] == [(n, s not in "ce") for n, s in zip(names, "abcdefgh")]
    assert tree_files(v.repo, "main") == {"app.txt": b"app\n", **{f"{s}.txt": f"{s}\n".encode() for s in "abdfgh"}}
    history = git(v.repo, "rev-list", "--first-parent", "main").split()  # newest first
    added = [git(v.repo, "log", "--format=%H", "--diff-filter=A", "main", "--", f"{s}.txt").strip() for s in "abdfgh"]
    positions = [history.index(c) for c in added]
    assert positions == sorted(positions, reverse=True)  # landed one after another: a first, f last
    assert fingerprint(v.repo) == before
    states = {s.name: s.landing.state for s in v.status().branches}
    assert states == {names[2]: "failed", names[4]: "failed"}


def test_a_command_that_times_out_lands_nothing(vb):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    target = rev(v)
    with pytest.raises(VerifyFailed, match="timed out"):
        land(v, "a", "sleep 30", timeout=1)
    assert rev(v) == target
    found = verification(v, v.branch_of("a"))
    assert found.exit_code is None and "stopped after 1 s" in found.tail


def test_a_target_moved_outside_during_verification_lands_nothing(vb):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    tree = git(v.repo, "rev-parse", "main^{tree}").strip()
    elsewhere = git(v.repo, "commit-tree", tree, "-p", "main", "-m", "pushed meanwhile").strip()
    with pytest.raises(StateError, match="moved"):
        land(v, "a", f"git -C {v.repo} update-ref refs/heads/main {elsewhere}")
    assert rev(v) == elsewhere  # where the other writer put it, not the branch
    assert [b.name for b in v.status().branches] == [v.branch_of("a")]


def test_a_landing_by_another_process_during_verification_lands_nothing(vb):
    """The state lock is not held while the command runs: another landing goes ahead, this one refuses."""
    v = with_branches(vb, {"a": {"a.txt": "a\n"}, "b": {"b.txt": "b\n"}})
    other = f"{sys.executable} -m vbranch -C {v.repo} land {v.branch_of('b')}"
    with pytest.raises(StateError, match="moved while"):
        land(v, "a", f"cd {ROOT} && {other}")
    assert tree_files(v.repo, "main") == {"app.txt": b"app\n", "b.txt": b"b\n"}


def test_a_change_recorded_to_the_branch_during_verification_lands_nothing(vb):
    """The final landing does not fold the working tree in again, but a change a hook recorded
    to the branch meanwhile changes its tree: refused, the change kept for the next landing."""
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    target = rev(v)
    record = f"cd {v.repo} && printf 'a2\\n' > a.txt && cd {ROOT} && {sys.executable} -m vbranch -C {v.repo} record --session a a.txt"
    with pytest.raises(StateError, match="changed while it was being verified"):
        land(v, "a", record)
    assert rev(v) == target
    report = land(v, "a", "grep -q a2 a.txt")
    assert tree_files(v.repo, "main")["a.txt"] == b"a2\n" and report.new == rev(v)


def test_a_queue_lands_what_a_session_recorded_while_it_ran(vb):
    """Later branches of a queue are planned from the store as it is then: a change a hook
    recorded while an earlier branch was verified is in the later branch's landing."""
    v = with_branches(vb, {"a": {"a.txt": "a\n"}, "b": {"b.txt": "b\n"}})
    a, b = v.branch_of("a"), v.branch_of("b")
    record = (f"if [ -f a.txt ] && [ ! -f b.txt ]; then cd {v.repo} && printf 'b2\\n' > b.txt && cd {ROOT} && "
              f"{sys.executable} -m vbranch -C {v.repo} record --session b b.txt; fi")
    results = queue(v, [a, b], record)
    assert [(r.branch, r.landed) for r in results] == [(a, True), (b, True)]
    assert tree_files(v.repo, "main") == {"app.txt": b"app\n", "a.txt": b"a\n", "b.txt": b"b2\n"}


def test_two_queues_at_once_the_second_refuses(vb, tmp_path):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}, "b": {"b.txt": "b\n"}})
    started, go = tmp_path / "started", tmp_path / "go"
    command = f"touch {started}; while [ ! -f {go} ]; do sleep 0.05; done"
    env = {**os.environ}
    env.pop("CLAUDE_CODE_SESSION_ID", None)
    first = subprocess.Popen([sys.executable, "-m", "vbranch", "-C", str(v.repo), "land", "--queue", "--verify", command],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(started.exists, timeout=30)
        second = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(v.repo), "land", "--queue", "--verify", "true"],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        assert second.returncode == 7 and "already running" in second.stderr
        ws = v.ws()
        try:
            with pytest.raises(LockTimeout):
                verify.land_verified(ws, v.branch_of("b"), "ff", v.at(), "true", 5)
        finally:
            ws.close()
    finally:
        go.touch()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert tree_files(v.repo, "main") == {"app.txt": b"app\n", "a.txt": b"a\n", "b.txt": b"b\n"}


def test_the_cli_uses_the_configured_command_and_shows_the_log(vb):
    from vbranch.state import config
    from vbranch.state.models import write_config

    v = with_branches(vb, {"a": {"bad.txt": "1\n"}})
    name = v.branch_of("a")
    write_config(v.repo / ".git" / "vbranch", {**config.load(v.repo / ".git" / "vbranch"), "land_verify": "echo tail-line; false"})

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "vbranch", "-C", str(v.repo), *args], cwd=ROOT, capture_output=True, text=True)

    refused = cli("land", name)
    assert refused.returncode == 1 and "not landed" in refused.stderr
    log = cli("land", "--log", name)
    assert log.returncode == 0 and "echo tail-line; false" in log.stdout and "exit 1" in log.stdout and "tail-line" in log.stdout
    shown = cli("status")
    assert "failed" in shown.stdout and "tail-line" in shown.stdout
    landing = json.loads(cli("status", "--json").stdout)["branches"][0]["landing"]
    assert landing["state"] == "failed" and landing["exit_code"] == 1 and landing["command"] == "echo tail-line; false"
    landed = cli("land", name, "--no-verify")
    assert landed.returncode == 0, landed.stderr
    assert "bad.txt" in tree_files(v.repo, "main")


def test_vbranch_killed_during_verification_lands_nothing_and_the_next_landing_works(vb, tmp_path):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    name, target = v.branch_of("a"), rev(v)
    started, go = tmp_path / "started", tmp_path / "go"
    command = f"touch {started}; while [ ! -f {go} ]; do sleep 0.05; done"  # ends by itself once `go` exists
    env = {**os.environ}
    env.pop("CLAUDE_CODE_SESSION_ID", None)
    proc = subprocess.Popen([sys.executable, "-m", "vbranch", "-C", str(v.repo), "land", name, "--verify", command],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(started.exists, timeout=30)
        proc.kill()  # SIGKILL, mid-verification: its command is left running
        proc.wait()
        assert rev(v) == target and [b.name for b in v.status().branches] == [name]
        leftover = int((v.repo / ".git" / "vbranch" / "verify" / "running").read_text())
        assert running(leftover)
        report = land(v, "a", "test -f a.txt")  # the queue lock died with it; the scratch checkout is reused
        assert report.new == rev(v) and "a.txt" in tree_files(v.repo, "main")
        assert wait_for(lambda: not running(leftover), timeout=30)  # the next verification stopped the leftover first
    finally:
        go.touch()


def running(pgid: int) -> bool:
    """Whether a live (not zombie) process of that group is left."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_killed_at_random_points_of_a_verified_landing(tmp_path):
    """test_kill's random SIGKILLs, on `land --verify`: the state before or after, never between."""
    import random
    import shutil
    import time

    from tests.conftest import lock_files
    from tests.test_kill import kill_after, make_template, outcome
    from tests.test_kill import vbranch as run

    template = make_template(tmp_path / "t", committed="bc")
    command = ("land", "session-a", "--verify", "test -f own/a.txt && test ! -f own/b.txt")
    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    started = time.monotonic()
    run(reference, *command)
    duration = time.monotonic() - started
    before, after = outcome(template), outcome(reference)
    assert before != after
    rng = random.Random("vbranch-kill-verify")
    seen = set()
    for trial in range(8):
        repo = tmp_path / f"trial{trial}"
        shutil.copytree(template, repo, symlinks=True)
        files = fingerprint(repo)
        kill_after(repo, command, rng.uniform(0, duration * 1.1))
        assert fingerprint(repo) == files, f"trial {trial}: a working file changed"
        assert lock_files(repo) == [], f"trial {trial}: a lock file was left"
        run(repo, "status")
        found = outcome(repo)
        assert found in (before, after), f"trial {trial}: neither the state before nor after"
        seen.add("after" if found == after else "before")
        if found == before:  # and the landing still goes through afterwards, reusing what the kill left
            run(repo, *command)
            assert outcome(repo) == after
        shutil.rmtree(repo)


def test_the_session_whose_branch_failed_is_told_once_at_its_next_hook(vb):
    from tests.hookdriver import Session

    v = with_branches(vb, {"a": {"bad.txt": "oops\n"}}, commit=False)
    with pytest.raises(VerifyFailed):
        land(v, "a", "test ! -f bad.txt")
    me = Session(v.repo, "a")
    _, out = me.prompt("next task")
    told = out["hookSpecificOutput"]["additionalContext"]
    assert "was not landed" in told and f"vbranch land --log {v.branch_of('a')}" in told
    _, again = me.prompt("and the next")
    assert again is None or "was not landed" not in again["hookSpecificOutput"].get("additionalContext", "")


def scratch_registered(repo) -> bool:
    listed = git(repo, "worktree", "list", "--porcelain")
    return "vbranch/verify/tree" in listed or any((repo / ".git" / "worktrees").glob("*"))


def teardown(v: VB):
    from vbranch.ops.lifecycle import teardown as down

    ws = v.ws()
    try:
        return down(ws, v.at())
    finally:
        ws.close()


def test_teardown_removes_the_scratch_checkout(vb):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    land(v, "a", "touch litter")
    scratch = v.repo / ".git" / "vbranch" / "verify"
    assert (scratch / "tree" / "a.txt").exists() and scratch_registered(v.repo)
    before = fingerprint(v.repo)
    teardown(v)
    assert not scratch.exists() and not scratch_registered(v.repo)
    assert fingerprint(v.repo) == before
    git(v.repo, "worktree", "prune")  # nothing of it left for git to find either
    assert "vbranch" not in git(v.repo, "worktree", "list", "--porcelain")


def test_teardown_without_a_scratch_checkout(vb):
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    teardown(v)
    assert not (v.repo / ".git" / "vbranch" / "verify").exists() and not scratch_registered(v.repo)


@pytest.mark.parametrize("damage", ["files", "dotgit", "registration"])
def test_teardown_of_a_half_deleted_scratch_checkout(vb, damage):
    import shutil

    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    land(v, "a", "true")
    tree = v.repo / ".git" / "vbranch" / "verify" / "tree"
    if damage == "files":  # the checkout's directory gone, its registration left
        shutil.rmtree(tree)
    elif damage == "dotgit":  # its files there, its link to the repository gone
        (tree / ".git").unlink()
    else:  # registered nowhere, its files still there
        shutil.rmtree(v.repo / ".git" / "worktrees")
    teardown(v)
    assert not tree.parent.exists() and not scratch_registered(v.repo)


def test_teardown_refuses_while_a_queue_runs(vb):
    from vbranch.state.workspace import WORKSPACE_REF

    """A running queue keeps its scratch checkout: teardown refuses at once, changing nothing."""
    v = with_branches(vb, {"a": {"a.txt": "a\n"}})
    land(v, "a", "true")
    ws = v.ws()
    try:
        with verify.queue_lock(ws):
            with pytest.raises(LockTimeout, match="already running"):
                teardown(v)
    finally:
        ws.close()
    assert (v.repo / ".git" / "vbranch" / "verify" / "tree" / "a.txt").exists() and scratch_registered(v.repo)
    assert git(v.repo, "symbolic-ref", "HEAD").strip() == WORKSPACE_REF  # still set up

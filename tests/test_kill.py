"""Crash safety: vbranch processes killed (SIGKILL) at random points, and at every step of an operation.

After a kill, `git fsck` is clean, no working file changed (land, commit and
undo write none), the next vbranch command succeeds, and the repository is
in exactly the state before the operation or exactly the state after it:
same target, same branch trees, same ownership, same working files. Nothing
half done, nothing lost.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, VB, fingerprint, git, lock_files, work_files, write
from tests.test_landing import outside_commit
from vbranch.ops import committing, landing, oplog, undo
from vbranch.state.workspace import open_state, open_workspace

SESSIONS = "abc"
FILES = 6


def make_template(root: Path, committed: str, land_first: bool = False, outside: bool = False) -> Path:
    """Six shared files; sessions a, b, c each change their own lines of every file (adjacent ones too)."""
    repo = root / "template"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.invalid")
    for i in range(FILES):
        write(repo, f"src/f{i}.txt", "".join(f"file {i} line {n}\n" for n in range(40)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    v = VB(repo).init()
    for k, session in enumerate(SESSIONS):
        for i in range(FILES):
            path = repo / f"src/f{i}.txt"
            text = path.read_text().replace(f"file {i} line {10 + k}\n", f"{session} was here {i}\n")
            v.edit(session, f"src/f{i}.txt", text)
        v.edit(session, f"own/{session}.txt", f"{session}'s own file\n")
    for session in committed:
        v.commit(f"session-{session}")
    if land_first:
        ws = v.ws()
        landing.land(ws, "session-a", "ff", v.at())
        ws.close()
    if outside:
        f0 = git(repo, "show", "main:src/f0.txt").replace("file 0 line 30\n", "upstream 30\n")
        outside_commit(repo, {"src/f0.txt": f0, "up.txt": "up\n"})
    return repo


def outcome(repo: Path) -> dict:
    """What an operation changes, by content (commit ids of rebuilt commits may differ)."""
    ws = open_state(repo)
    try:
        branches = [(b.name, b.applied) for b in ws.store.branches()]
        records = sorted((r.path, r.base, r.known, tuple(r.items or ()), r.owners) for r in ws.store.files() if r.changed)
        base = ws.base
    finally:
        ws.close()
    refs = ["main", "HEAD"] + [f"refs/heads/session-{s}" for s in SESSIONS]
    trees = git(repo, "rev-parse", *[f"{r}^{{tree}}" for r in refs]).split()
    return {
        "trees": dict(zip(refs, trees)),
        "base": git(repo, "rev-parse", f"{base}^{{tree}}").strip(),
        "branches": branches,
        "records": records,
        "files": work_files(repo),
        "status": git(repo, "status", "--porcelain"),
    }


def vbranch(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VBRANCH_SESSION", "CLAUDE_CODE_SESSION_ID")}
    proc = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), *args], capture_output=True, text=True, env=env, cwd=ROOT)
    assert not check or proc.returncode == 0, f"vbranch {' '.join(args)}: {proc.stderr}"
    return proc


def start(repo: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("VBRANCH_SESSION", "CLAUDE_CODE_SESSION_ID")}
    return subprocess.Popen([sys.executable, "-m", "vbranch", "-C", str(repo), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_group(pgid: int, limit: float = 10.0) -> None:
    """Wait until every process of the group is gone (git children of the killed process finish on their own)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError("a child of the killed vbranch process is still running")


def kill_after(repo: Path, command: tuple[str, ...], delay: float) -> None:
    """Start `vbranch COMMAND`, SIGKILL it after `delay` seconds (if still running), wait until its
    process group is gone, and check the repository is consistent."""
    proc = start(repo, *command)
    time.sleep(delay)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    wait_for_group(proc.pid)
    fsck_clean(repo)


def fsck_clean(repo: Path) -> None:
    proc = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr


CASES = {  # name: (template kwargs, command, random kills)
    "land": ({"committed": "bc"}, ("land", "session-a"), 26),
    "commit": ({"committed": ""}, ("commit", "--all"), 24),
    "update": ({"committed": "c", "outside": True}, ("update",), 5),
    "undo": ({"committed": "bc", "land_first": True}, ("undo",), 5),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Per case, built once: the template, its outcome before and after the command, the command's duration."""
    cache = {}

    def get(name: str):
        if name not in cache:
            kwargs, command, _ = CASES[name]
            root = tmp_path_factory.mktemp(name)
            template = make_template(root, **kwargs)
            reference = root / "reference"
            shutil.copytree(template, reference, symlinks=True)
            started = time.monotonic()
            vbranch(reference, *command)
            cache[name] = (template, outcome(template), outcome(reference), time.monotonic() - started)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(CASES))
def test_killed_at_random_points(tmp_path, prepared, name):
    _kwargs, command, trials = CASES[name]
    template, before, after, duration = prepared(name)
    assert after != before

    rng = random.Random(f"vbranch-kill-{name}")
    seen = {"before": 0, "after": 0, "recovered": 0}
    for trial in range(trials):
        repo = tmp_path / f"trial{trial}"
        shutil.copytree(template, repo, symlinks=True)
        files = fingerprint(repo)
        # Half the kills anywhere in the run, half in its last part, where the work is
        # done (the start is mostly Python loading modules).
        kill_after(repo, command, rng.uniform(0, duration * 1.1) if trial % 2 else rng.uniform(0.55 * duration, 1.05 * duration))
        if name != "update":  # update writes files: they are checked against the outcome below
            assert fingerprint(repo) == files, f"trial {trial}: a working file changed"
        assert lock_files(repo) == [], f"trial {trial}: a lock file was left"
        finished = "finished interrupted operation" in vbranch(repo, "status").stderr  # the next command
        found = outcome(repo)
        assert found in (before, after), f"trial {trial}: neither the state before nor after {name}"
        seen["after" if found == after else "before"] += 1
        seen["recovered"] += finished
        # nothing lost: every change can still be committed, and the workspace matches
        ws = open_workspace(repo)
        try:
            report = committing.commit(ws, None, None, "2030-01-01T00:00:00")
        finally:
            ws.close()
        assert report.held_back == {}
        assert git(repo, "status", "--porcelain") == ""
        fsck_clean(repo)
        shutil.rmtree(repo)
    print(f"{name}: {trials} kills: {seen['before']} left the state before, {seen['after']} the state after "
          f"({seen['recovered']} of them finished by the next command)")


# Every step boundary, deterministically: the process "dies" right after the intent is
# stored, or after each later step of carrying it out; the next command finishes it.

STEPS = ["intent", "refs", "writes", "index"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no cleanup either."""


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("name", ["land", "commit", "update", "undo"])
def test_interrupted_at_every_step_is_finished_by_the_next_command(tmp_path, prepared, monkeypatch, name, step):
    original, _before, after, _duration = prepared(name)
    template = tmp_path / "repo"
    shutil.copytree(original, template, symlinks=True)

    real_update_refs, real_write = oplog.gitcli.update_refs, oplog.write_planned

    def die_after(fn):
        def wrapped(*args, **kwargs):
            fn(*args, **kwargs)
            raise Killed()
        return wrapped

    if step == "intent":
        monkeypatch.setattr(oplog, "carry_out", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    elif step == "refs":
        monkeypatch.setattr(oplog.gitcli, "update_refs", die_after(real_update_refs))
    elif step == "writes":
        monkeypatch.setattr(oplog, "write_planned", die_after(real_write))
    else:
        from vbranch.git import gitops

        monkeypatch.setattr(gitops, "sync_index", die_after(gitops.sync_index))

    ws = open_state(template)
    try:
        with pytest.raises(Killed) if _reaches(name, step) else _nothing():
            if name == "land":
                landing.land(ws, "session-a", "ff", "2030-01-01T00:00:01")
            elif name == "commit":
                committing.commit(ws, None, None, "2030-01-01T00:00:01")
            elif name == "update":
                landing.update(ws, "2030-01-01T00:00:01")
            else:
                undo.undo(ws, "2030-01-01T00:00:01")
    finally:
        ws.lock.depth, ws.lock.fd = 0, None  # the "killed" process's flock dies with it
        ws.close()
    monkeypatch.undo()
    vbranch(template, "status")
    assert outcome(template) == after
    fsck_clean(template)


def _reaches(name: str, step: str) -> bool:
    """Whether the operation gets to that step at all (only update writes files)."""
    return step != "writes" or name == "update"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_an_interrupted_operation_that_cannot_be_finished_is_explained(tmp_path, prepared, monkeypatch):
    original, _before, after, _duration = prepared("land")
    repo = tmp_path / "repo"
    shutil.copytree(original, repo, symlinks=True)
    monkeypatch.setattr(oplog, "carry_out", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    ws = open_state(repo)
    with pytest.raises(Killed):
        landing.land(ws, "session-a", "ff", "2030-01-01T00:00:01")
    ws.lock.depth, ws.lock.fd = 0, None
    ws.close()
    monkeypatch.undo()
    stale = repo / ".git" / "refs" / "heads" / "main.lock"  # a git process that died holding the ref
    stale.write_text("")
    proc = vbranch(repo, "status", check=False)
    assert proc.returncode == 4
    assert "interrupted" in proc.stderr and "land" in proc.stderr and "main.lock" in proc.stderr
    stale.unlink()
    vbranch(repo, "status")
    assert outcome(repo) == after


def _branches_exact(repo: Path) -> None:
    """Every branch's tree is base + its own items, and the workspace merges them (a build from scratch)."""
    from vbranch.git import gitops

    ws = open_state(repo)
    try:
        grepo = gitops.open_repo(ws.top)
        records = ws.store.files()
        base_tree = gitops.tree_of(grepo, ws.base)
        for branch in ws.store.branches():
            whole = gitops.edit_tree(grepo, base_tree, committing.branch_changes(records, branch.id))
            head = gitops.head_of(grepo, branch.ref)
            assert (gitops.tree_of(grepo, head).id if head else base_tree.id) == whole, branch.name
    finally:
        ws.close()
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("where", ["before-log", "intent", "refs"])
def test_a_commit_interrupted_anywhere_leaves_the_next_commit_exact(tmp_path, monkeypatch, where):
    """The commit marks (what each head was built from) commit with the operation: a commit
    killed before its log, or after it, never lets the next commit build on the wrong head."""
    repo = make_template(tmp_path, "a")
    v = VB(repo)
    v.edit("a", "own/a.txt", "a's own file, changed\n")
    v.edit("b", "own/b.txt", "b's own file, changed\n")
    if where == "before-log":
        monkeypatch.setattr(oplog, "capture", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    elif where == "intent":
        monkeypatch.setattr(oplog, "carry_out", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    else:
        real = oplog.gitcli.update_refs

        def die_after(*args, **kwargs):
            real(*args, **kwargs)
            raise Killed()

        monkeypatch.setattr(oplog.gitcli, "update_refs", die_after)
    ws = open_state(repo)
    try:
        with pytest.raises(Killed):
            committing.commit(ws, None, None, v.at())
    finally:
        ws.lock.depth, ws.lock.fd = 0, None
        ws.close()
    monkeypatch.undo()
    v.edit("a", "own/a.txt", "a's own file, changed twice\n")
    v.edit("c", "src/f1.txt", (repo / "src/f1.txt").read_text().replace("file 1 line 30\n", "c again\n"))
    v.commit()
    _branches_exact(repo)
    assert v.files_of("a")["own/a.txt"] == b"a's own file, changed twice\n"
    assert v.files_of("b")["own/b.txt"] == b"b's own file, changed\n"
    fsck_clean(repo)

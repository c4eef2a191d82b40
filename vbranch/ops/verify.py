"""Verified landing: run a command on the exact tree the target would get, land only if it passes.

`land_verified` computes the landing without moving anything (landing.plan_land, under the
state lock), checks that commit out in a scratch checkout vbranch keeps under
`.git/vbranch/verify/tree` (a detached `git worktree`, reused: `git checkout --detach
--force` rewrites only the files that differ; `git clean -ffd` drops what the last run left
untracked, run while the landing is planned; ignored build caches stay), runs the command
there with the state lock released (hooks go on), then lands under the lock only if the
command exited 0 and the landing still computes the same tree onto the same target commit.
Anything else (a non-zero exit, a timeout, a command that cannot start, a crash of vbranch
itself, a target or branch that moved meanwhile) lands nothing: the target moves only in the
final oplog.perform, after the check. That final step does not fold the shared tree in again
(a change a hook recorded meanwhile still changes the branch's tree and refuses); a queue
folds it in once, before its first branch. The shared working directory is never written.
A command left running by a killed vbranch is stopped before the next verification starts
(stop_leftovers), so it cannot write into the next run's checkout. `vbranch teardown`
removes the scratch checkout (remove_scratch).

Each run's result (target commit, branch head, command, exit status, the last 4 KB of its
output) is kept in the store's `verifications` table: `vbranch land --log BRANCH` and
`vbranch status` show it.

`land_queue` lands several branches one at a time, each verified on top of those landed
before it; a failing branch stays out, the others go on. Without a verify command it first
lands them all in one operation (landing.land_together: each branch rebased once, not once
per landing before it), and one at a time only when one of them cannot land. One verified landing or queue at
a time: a second one finds the queue lock (an flock on `.git/vbranch/queue`) held and
refuses at once (LockTimeout, exit 7).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vbranch.core.ownership import conflicts
from vbranch.errors import GitError, LockTimeout, VbranchError
from vbranch.git import gitcli
from vbranch.ops.landing import LandReport, _land, check_mode, land_together, plan_land
from vbranch.state import flock
from vbranch.state.store import Verification
from vbranch.state.workspace import Workspace

TAIL = 4096
TIMED_OUT = None  # exit_code of a command that was stopped (or never started)
# Variables a command run by vbranch (a hook's shell, a test) may carry that would point git
# at the shared checkout instead of the scratch one.
GIT_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")


class VerifyFailed(VbranchError):
    """The verify command did not pass: nothing was landed."""

    exit_code = 1


@dataclass
class QueueResult:
    branch: str
    landed: bool
    report: LandReport | None = None
    reason: str = ""


@contextmanager
def queue_lock(ws: Workspace):
    """One verified landing or queue at a time; a second refuses at once (exit 7)."""
    path = ws.state_dir / "queue"
    fd = flock.take(path)
    if fd is None:
        try:
            holder = path.read_text(errors="replace").strip()
        except OSError:
            holder = ""
        raise LockTimeout(
            f"a landing queue is already running ({holder or 'another vbranch process'}); only one verified landing runs at a time",
            hint="wait for it to finish (`vbranch status` shows what it verified), then run the command again",
        )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield
    finally:
        flock.release(fd)


@contextmanager
def tidying(tree: Path):
    """`git clean -ffdq` of the kept scratch checkout, run while the block runs (the landing is
    planned meanwhile); yields a list that holds True once it has succeeded.

    It does not depend on the commit to check out: with the command's leftovers stopped first,
    what it removes is what the last run left untracked, whichever commit comes next.
    """
    done: list[bool] = []
    proc = None
    fresh = tree.parent / "fresh"
    if (tree / ".git").is_file():
        clean = "exec git --no-optional-locks clean -ffdq"
        if fresh.exists():
            # Just made: its index was written in the same second as many of its files, which git
            # then compares by content at every use (racy git) until the index is written again.
            clean = "git update-index -q --refresh >/dev/null 2>&1; " + clean
        proc = subprocess.Popen(["/bin/sh", "-c", clean], cwd=tree,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield done
    finally:
        if proc is not None and proc.wait() == 0:
            done.append(True)
            fresh.unlink(missing_ok=True)


def scratch_checkout(ws: Workspace, commit: str, cleaned: bool = False) -> Path:
    """The kept scratch checkout, at `commit` (detached), with nothing left from the last run but ignored files.

    `cleaned`: its untracked files were removed already (`tidying`), only the commit is checked out.
    """
    root = ws.state_dir / "verify"
    root.mkdir(exist_ok=True)
    tree = root / "tree"
    quiet = ("-c", "core.hooksPath=/dev/null")
    if (tree / ".git").is_file():
        try:
            gitcli.git(tree, *quiet, "checkout", "--detach", "--force", "--quiet", commit)
            if not cleaned:
                gitcli.git(tree, "clean", "-ffdq")
            return tree
        except GitError:
            pass  # a broken scratch checkout is made again
    shutil.rmtree(tree, ignore_errors=True)
    gitcli.git(ws.top, "worktree", "prune")
    gitcli.git(ws.top, *quiet, "worktree", "add", "--detach", "--force", "--quiet", str(tree), commit)
    (root / "fresh").touch()
    return tree


def remove_scratch(ws: Workspace) -> None:
    """Take the scratch checkout away (teardown): its files and its registration as a git worktree.

    Works on one that was never made or is half deleted: whatever git no longer recognizes as
    a worktree is unregistered by hand (only its own entry under `worktrees/`, not a prune of
    the user's other worktrees), then the directory goes.
    """
    root = ws.state_dir / "verify"
    tree = root / "tree"
    stop_leftovers(tree)
    gitcli.git(ws.top, "worktree", "remove", "--force", "--force", str(tree), check=False)
    common = Path(gitcli.git(ws.top, "rev-parse", "--path-format=absolute", "--git-common-dir").decode().strip())
    for gitdir in (common / "worktrees").glob("*/gitdir"):
        try:
            registered = Path(gitdir.read_text().strip())
        except OSError:
            continue
        if registered == tree / ".git" or registered.resolve() == (tree / ".git").resolve():
            shutil.rmtree(gitdir.parent, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


def stop_leftovers(tree: Path) -> None:
    """Stop what a verification whose vbranch was killed left running in the scratch checkout.

    Its process group was written to `running`; only members of that group whose working
    directory is inside the scratch checkout are stopped (a reused process id is left alone).
    """
    marker = tree.parent / "running"
    try:
        pgid = int(marker.read_text())
    except (OSError, ValueError):
        return
    inside = str(tree.resolve())
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            cwd = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue
        if cwd == inside or cwd.startswith(inside + os.sep):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass
    marker.unlink(missing_ok=True)


def run_command(command: str, cwd: Path, timeout: float, log: Path) -> tuple[int | None, str]:
    """(exit status or None if it timed out or could not start, the last TAIL bytes of its output)."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_VARS}
    env["VBRANCH_VERIFY"] = "1"
    note = ""
    marker = cwd.parent / "running"
    with open(log, "wb") as out:
        try:
            # Its own process group (a timeout stops the command and its children), written to the
            # marker by the shell itself before the command runs: a vbranch killed at any moment
            # leaves nothing running that the next verification does not know of.
            proc = subprocess.Popen(
                ["/bin/sh", "-c", 'echo $$ > "$0" && exec /bin/sh -c "$1"', str(marker), command],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as error:
            return TIMED_OUT, f"[vbranch: the command could not start: {error}]\n"
        try:
            code = proc.wait(timeout=timeout)
        except BaseException as error:  # a timeout, or vbranch interrupted: stop the command, land nothing
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            if not isinstance(error, subprocess.TimeoutExpired):
                raise
            code, note = TIMED_OUT, f"\n[vbranch: stopped after {timeout:g} s (land_verify_timeout)]\n"
        marker.unlink(missing_ok=True)
    with open(log, "rb") as f:
        f.seek(max(0, os.path.getsize(log) - TAIL))
        tail = f.read().decode(errors="replace")
    return code, tail + note


def land_verified(ws: Workspace, name: str, mode: str, at: str, command: str, timeout: float | None = None,
                  locked: bool = False, fold: bool = True) -> LandReport:
    """Land `name` only if `command` passes on the tree the target would get (see the module doc).

    `fold=False`: the plan does not fold the shared tree's unreported changes in (a queue did, once).
    """
    check_mode(mode)
    if not locked:
        with queue_lock(ws):
            return land_verified(ws, name, mode, at, command, timeout, locked=True, fold=fold)
    if timeout is None:
        from vbranch.state.config import load

        timeout = load(ws.state_dir)["land_verify_timeout"]
    tree = ws.state_dir / "verify" / "tree"
    stop_leftovers(tree)
    with tidying(tree) as cleaned:  # the last run's litter removed while the landing is planned
        plan = plan_land(ws, name, mode, at, fold)  # under the state lock, released again
    tree = scratch_checkout(ws, plan.new, cleaned=bool(cleaned))
    code, tail = run_command(command, tree, timeout, ws.state_dir / "verify" / "output")
    ws.store.put_verification(Verification(name, plan.base, plan.head, plan.tree, command, code, tail, at, False))
    if code != 0:
        why = f"exited {code}" if code is not None else "timed out" if tail.endswith("(land_verify_timeout)]\n") else "could not start"
        last = "\n".join(tail.rstrip("\n").splitlines()[-10:])
        raise VerifyFailed(
            f"{name} was not landed: `{command}` {why} on the tree {plan.target} would get "
            f"({(plan.base or 'no commits')[:12]} + {name}); {plan.target} is unchanged\n{last}",
            hint=f"`vbranch land --log {name}` shows the end of its output",
        )
    report = _land(ws, name, mode, at, expect=plan, fold=False)
    ws.store.set_verification_landed(name)
    report.verified = command
    return report


def queue_candidates(ws: Workspace) -> list[str]:
    """Every applied branch with committed work and no contested change, oldest first."""
    base = ws.base
    contested = {o for c in conflicts(ws.store.files()) for o in c.owners}
    branches = [b for b in ws.store.branches() if b.applied and b.id not in contested]
    heads = gitcli.refs(ws.top, "refs/heads/") if branches else {}
    return [b.name for b in branches if heads.get(b.ref) not in (None, base)]


def land_queue(ws: Workspace, names: list[str] | None, mode: str, at: str, command: str, timeout: float | None = None,
               clock: Callable[[], str] | None = None) -> list[QueueResult]:
    """Land each branch in turn, each verified on top of those landed before it; a failing one stays out."""
    results = []
    with queue_lock(ws):
        names = names or queue_candidates(ws)
        if not command and len(names) > 1:
            try:  # unverified: all in one operation, each branch rebased once (see land_together)
                return [QueueResult(r.branch, True, r) for r in land_together(ws, names, mode, at)]
            except VbranchError:
                pass  # one of them cannot land: one at a time, that one held out, as below
        for i, name in enumerate(names):
            when = clock() if clock else at
            # The shared tree's unreported changes are folded in once, by the first landing: a
            # `git status` of the whole tree per branch would cost more than the rest of landing
            # it, and what hooks record while the queue runs is in the store without it.
            try:
                if command:
                    report = land_verified(ws, name, mode, when, command, timeout, locked=True, fold=i == 0)
                else:
                    report = _land(ws, name, mode, when, fold=i == 0)
            except VbranchError as error:
                results.append(QueueResult(name, False, None, error.message))
                continue
            results.append(QueueResult(name, True, report))
    return results

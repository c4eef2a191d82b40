"""Landing branches on the target one at a time, and what happens when git's merge conflicts.

A conflict is recorded (it is a finding) and then resolved the way a person
would — by writing the content both sessions meant (`resolve(paths)` gives it)
— or, with resolve=None, the merge is abandoned and the branch stays unlanded.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .measure import clean_env, git, out

Resolver = Callable[[list[str]], dict[str, str]] | None


def merge_checked_out(repo: Path, branch: str, resolve: Resolver) -> dict:
    """`git merge --no-edit BRANCH` in a checkout of the target (the worktree strategy)."""
    proc = git(repo, "merge", "--no-edit", "-q", branch, check=False)
    if proc.returncode == 0:
        return {"conflicts": []}
    paths = out(repo, "diff", "--name-only", "--diff-filter=U").split()
    if not paths:
        raise RuntimeError(f"git merge {branch} failed without conflicts: {proc.stderr.decode()}")
    if resolve is None:
        git(repo, "merge", "--abort")
        return {"conflicts": paths, "landed": False}
    for path, text in resolve(paths).items():
        (repo / path).write_text(text)
    git(repo, "add", "--", *paths)
    git(repo, "commit", "-q", "--no-edit")
    return {"conflicts": paths, "resolved": True}


def merge_in_odb(repo: Path, target: str, branch: str, resolve: Resolver) -> dict:
    """The same merge (git's ort) without a checkout: the shared directory must not be touched.

    `git merge-tree --write-tree`, then the merge commit and a compare-and-swap of the target ref.
    """
    old = out(repo, "rev-parse", target).strip()
    proc = git(repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", target, branch, check=False)
    lines = proc.stdout.decode().split("\n")
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"git merge-tree {branch} failed: {proc.stderr.decode()}")
    tree, paths = lines[0], sorted({p for p in lines[1:] if p})
    if paths and resolve is None:
        return {"conflicts": paths, "landed": False}
    if paths:
        tree = _replace_in_tree(repo, tree, resolve(paths))
    message = f"Merge branch '{branch.removeprefix('refs/heads/')}'"
    commit = out(repo, "commit-tree", tree, "-p", old, "-p", branch, "-m", message).strip()
    git(repo, "update-ref", target, commit, old)
    return {"conflicts": paths, **({"resolved": True} if paths else {})}


def _replace_in_tree(repo: Path, tree: str, files: dict[str, str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GIT_INDEX_FILE=str(Path(tmp) / "index"))
        git(repo, "read-tree", tree, env=env)
        for path, text in files.items():
            blob = out(repo, "hash-object", "-w", "--stdin", input=text.encode()).strip()
            git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=env)
        return out(repo, "write-tree", env=env).strip()


_LAND_UNKNOWN: set[str] = set()  # vbranch executables without `land`: asked once, not per branch


def land_vbranch_queue(repo: Path, branches: list[str]) -> dict:
    """`vbranch land --queue --no-verify BRANCH...`: the branches landed in that order by one command.

    Returns "landed" (the branches it reports landed), "seconds" and "error" (when it exited non-zero).
    """
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vbranch", "land", "--queue", "--no-verify", *branches], cwd=repo,
                          env=clean_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    landed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("landed ")]
    result = {"method": "vbranch land --queue", "landed": landed, "seconds": seconds}
    if proc.returncode != 0:
        result["error"] = (proc.stderr or proc.stdout).strip()[-500:]
    return result


def land_vbranch(repo: Path, branch: str, resolve: Resolver, target: str = "refs/heads/main") -> dict:
    """`vbranch land BRANCH` when vbranch has it; until then the git merge the worktrees get.

    Returns the merge result with "method" (which of the two landed the branch)
    and "seconds" (the time of that landing alone, not of asking vbranch).
    """
    if sys.executable not in _LAND_UNKNOWN:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vbranch", "land", branch], cwd=repo, env=clean_env(),
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return {"method": "vbranch land", "conflicts": [], "seconds": time.perf_counter() - started}
        if proc.returncode == 2 and "invalid choice: 'land'" in proc.stderr:
            _LAND_UNKNOWN.add(sys.executable)
        else:
            error = (proc.stderr or proc.stdout).strip()[-500:]
    started = time.perf_counter()
    result = merge_in_odb(repo, target, branch, resolve)
    result["seconds"] = time.perf_counter() - started
    if sys.executable in _LAND_UNKNOWN:
        result["method"] = "git merge (vbranch land not available)"
    else:
        result.update(method="git merge (vbranch land failed)", land_error=error)
    return result

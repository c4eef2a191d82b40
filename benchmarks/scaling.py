"""How vbranch's costs grow: commit time and hook latency against repository size, commit time
against the number of changed files. Synthetic repositories from benchmarks.corpus.

Each size gets one repository: `git add -A && git commit` of ten edited files
as a reference, `vbranch init`, a few Edit and Bash tool calls through the
spawned hooks, then `vbranch commit` of ten freshly edited files, repeated.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import corpus
from .measure import Timer, clean_env, git, stats_ms
from .session import VbranchSession

PER_COMMIT = 10


def _vbranch(repo: Path, *args: str) -> float:
    with Timer() as t:
        proc = subprocess.run([sys.executable, "-m", "vbranch", *args], cwd=repo, env=clean_env(), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"vbranch {args[0]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return t.seconds


class Files:
    """Fresh tracked .py files to edit, never the same one twice."""

    def __init__(self, repo: Path, seed: int = 0):
        self.repo, self.left = repo, corpus.pick_files(repo, 1, len(corpus.tracked_files(repo)), seed=seed)[0]

    def take(self, k: int) -> list[str]:
        taken, self.left = self.left[:k], self.left[k:]
        return taken


def commit_once(repo: Path, files: Files, k: int, session: int) -> dict:
    """Edit k fresh files, record them for one session (CLI), time `vbranch commit`."""
    paths = corpus.edit_files(repo, files.take(k), session)
    record = _vbranch(repo, "record", "--session", f"scale{session}", *paths)
    return {"record_s": record, "commit_s": _vbranch(repo, "commit", "--all", "-m", f"{k} files")}


def hook_latency(repo: Path, files: Files, reps: int) -> dict:
    """Edit and Bash tool calls through the spawned hooks, as Claude Code runs them."""
    session = VbranchSession(repo, repo, {"id": "hooks", "ops": []}, time.time())
    session.setup()
    edit, bash = [], []
    for path in files.take(reps):
        first = (repo / path).read_text().split("\n")[0]
        session.run_op(0, {"kind": "edit", "path": path, "old": first, "new": first + "  # scaled"})
        edit.append(session.change_seconds[-1])
        session.run_op(1, {"kind": "bash", "path": "", "command": "true"})
        bash.append(session.change_seconds[-1])
    session.commit()
    return {"edit_ms": stats_ms(edit), "bash_ms": stats_ms(bash), "failures": session.counters.get("hook_failures", 0)}


def by_size(work: Path, sizes: list[int], reps: int, step, changed: list[int], changed_at: int) -> dict:
    rows, by_changed = [], []
    for size in sizes:
        step(f"scaling: {size:,}-file repository")
        repo = work / f"r{size}"
        started = time.perf_counter()
        with Timer() as gen:
            corpus.make_repo(repo, size)
        files = Files(repo)
        corpus.edit_files(repo, files.take(PER_COMMIT), 99)
        with Timer() as ref:
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "reference")
        init = _vbranch(repo, "init")
        hooks = hook_latency(repo, files, reps)
        commits = [commit_once(repo, files, PER_COMMIT, rep) for rep in range(reps)]
        rows.append({"files": size, "generate_s": round(gen.seconds, 2), "git_add_commit_s": ref.seconds,
                     "init_s": init, "hooks": hooks,
                     "commit_s": statistics.median(c["commit_s"] for c in commits),
                     "record_s": statistics.median(c["record_s"] for c in commits),
                     "commit_runs_s": [c["commit_s"] for c in commits]})
        if size == changed_at:
            for k in changed:
                step(f"scaling: {k} changed files on {size:,}")
                by_changed.append({"changed": k, "repo_files": size, **commit_once(repo, files, k, 1000 + k)})
        _vbranch(repo, "teardown")  # stops the repository's watcher before its files go
        shutil.rmtree(repo)
        rows[-1]["total_s"] = round(time.perf_counter() - started, 1)
    return {"per_commit_files": PER_COMMIT, "repeat": reps, "by_size": rows, "by_changed": by_changed}

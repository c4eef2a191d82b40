"""Small measuring tools shared by the comparison: git with lock retries, disk usage, stats, machine."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What git prints when another process holds one of its lock files.
LOCK_SIGNS = ("index.lock", ".lock': File exists", "cannot lock ref", "Unable to create", "could not lock")


class GitFailed(RuntimeError):
    pass


def git(cwd, *args, check=True, input=None, env=None, counters=None, retries=10):
    """Run git; retry when it lost a race for a lock file, counting retries in `counters`."""
    for attempt in range(retries + 1):
        proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env)
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0 and any(sign in err for sign in LOCK_SIGNS) and attempt < retries:
            if counters is not None:
                counters["lock_retries"] = counters.get("lock_retries", 0) + 1
            time.sleep(0.05 * (attempt + 1))
            continue
        if proc.returncode != 0 and check:
            if counters is not None:
                counters["git_failures"] = counters.get("git_failures", 0) + 1
            raise GitFailed("git %s failed (%d): %s" % (" ".join(args[:3]), proc.returncode, err.strip()))
        return proc
    raise AssertionError("unreachable")


def out(cwd, *args, **kw) -> str:
    return git(cwd, *args, **kw).stdout.decode()


def disk_usage(path) -> int:
    """Bytes allocated on disk under `path` (like `du -s -B1`), hard links counted once."""
    seen, total = set(), 0
    path = Path(path)
    if not path.exists():
        return 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


def stats_ms(seconds: list[float]) -> dict:
    """Median, p95, mean and count of durations, in milliseconds."""
    if not seconds:
        return {"median": 0.0, "p95": 0.0, "mean": 0.0, "count": 0}
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {"median": round(statistics.median(ms), 1), "p95": round(p95, 1),
            "mean": round(statistics.fmean(ms), 1), "count": len(ms)}


def clean_env(extra=None) -> dict:
    """Environment for child processes: this checkout importable, no session leaking in."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name in ("VBRANCH_SESSION", "CLAUDE_CODE_SESSION_ID", "CLAUDE_PROJECT_DIR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict:
    proc = subprocess.run(["git", "--version"], capture_output=True, text=True)
    return {"platform": platform.platform(), "kernel": platform.release(), "machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "memory_bytes": memory_bytes(), "python": platform.python_version(),
            "python_executable": sys.executable, "git": proc.stdout.strip(), "load_average": load()}


def load() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the machine skews every timing."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Timer:
    """`with Timer() as t: ...` then t.seconds."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start

"""`vbranch status` and the hooks with the watcher live, next to `git status`, on a large repository.

    python -m benchmarks.bench_watch [--files 100000] [--runs 15] [--calls 30] [--out DIR]

The goal checked: on a repository of 100,000 files with 10 changed, `vbranch status`
with the watcher live answers in half the time of `git status --porcelain` or less
on the same machine (the watcher runs it: cli/served.py), and the Bash hooks' medians
stay under 60 ms.

A generated repository gets `vbranch init` and a background watcher (timed until its
dirty set is trusted); 10 tracked files get a line appended. Then `git status` and
`vbranch status` run alternately, and `vbranch status --json` must list exactly those
10 files as unattributed. For comparison `vbranch status` also runs with the watcher
stopped (same tree). With the watcher started again, the installed hook command
(the native hook client, or `python -S .../hookclient.py hook`) is timed around real edits and appends, as in
bench_hooks.py, with VBRANCH_HOOK_SERVER=only so that the watcher must answer; a few
Bash rounds run with VBRANCH_HOOK_SERVER=off (the full hook) for comparison. Figures go
to the terminal and to benchmarks/results/watch-<date>.json and .md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import corpus
from benchmarks.bench_commit import RESULTS, ROOT, git, machine, vbranch, vbranch_env
from benchmarks.bench_hooks import SESSION, bash_round, edit_round, summarize, timed
from vbranch.agents.settings import hook_command
from vbranch.cli import watch
from vbranch.state.workspace import open_workspace
from vbranch.watch import dirtyset

CHANGED = 10
OFF_STATUS_RUNS = 5
OFF_HOOK_ROUNDS = 5
STATUS_GOAL = 0.5
BASH_GOAL_MS = 60.0
GIT_STATUS = ["git", "status", "--porcelain"]
VBRANCH_STATUS = [sys.executable, "-m", "vbranch", "status"]


def run_env(**extra: str) -> dict:
    env = vbranch_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode compiled
    return {**env, **extra}


def elapsed(cmd: list[str], cwd: Path, env: dict) -> float:
    """Wall time of one command, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout!r} {proc.stderr!r}")
    return took


def trusted(repo: Path) -> bool:
    ws = open_workspace(repo)
    try:
        return dirtyset.trusted_since(ws) is not None
    finally:
        ws.close()


def start_watcher(repo: Path, timeout: float = 180.0, env: dict | None = None) -> float:
    """Start a background watcher; seconds until its dirty set is trusted."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env or run_env())  # the watcher inherits it: this checkout, no session of ours
    start = time.perf_counter()
    try:
        if watch.start_background(repo, wait=timeout) is None:
            raise RuntimeError("a watcher was already live")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    while not trusted(repo):
        if time.perf_counter() - start > timeout:
            log = repo / ".git" / "vbranch" / watch.LOG_NAME
            raise RuntimeError(f"watcher not trusted after {timeout:g} s; watch.log: {log.read_text()[-2000:]!r}")
        time.sleep(0.02)
    return time.perf_counter() - start


def stop_watcher(repo: Path) -> None:
    ws = open_workspace(repo)
    try:
        if not watch.stop_watcher(ws):
            raise RuntimeError("the watcher did not stop within 5 s")
    finally:
        ws.close()


def require_trusted(repo: Path, when: str) -> None:
    if not trusted(repo):
        raise RuntimeError(f"the watcher is no longer live and trusted {when}")


def check_status(repo: Path, changed: list[str]) -> None:
    """`vbranch status --json` lists exactly the changed files, all unattributed."""
    report = json.loads(vbranch(repo, "status", "--json"))
    unattributed = sorted(f["path"] for f in report["unattributed"])
    owned = sorted(f["path"] for b in report["branches"] for f in b["files"])
    if unattributed != sorted(changed) or owned or report["contested"]:
        raise RuntimeError(f"vbranch status is wrong: unattributed {unattributed}, owned {owned}, "
                           f"contested {report['contested']}; expected unattributed {sorted(changed)}")


def status_runs(repo: Path, runs: int) -> dict[str, list[float]]:
    """`git status` and `vbranch status` alternately, each first in turn."""
    env = run_env()
    times: dict[str, list[float]] = {"git status --porcelain": [], "vbranch status (watcher)": []}
    commands = {"git status --porcelain": GIT_STATUS, "vbranch status (watcher)": VBRANCH_STATUS}
    for i in range(runs):
        for name in list(commands)[:: 1 if i % 2 == 0 else -1]:
            times[name].append(elapsed(commands[name], repo, env))
    return times


def hook_rounds(repo: Path, files: list[str], off_files: list[str]) -> dict[str, list[float]]:
    hook = shlex.split(hook_command()) + ["hook"]
    served, full = run_env(VBRANCH_HOOK_SERVER="only"), run_env(VBRANCH_HOOK_SERVER="off")
    names = ("PreToolUse Edit", "PostToolUse Edit", "PreToolUse Bash", "PostToolUse Bash", "python -c pass", "python -S -c pass")
    times: dict[str, list[float]] = {name: [] for name in names}
    times.update({"PreToolUse Bash (full hook)": [], "PostToolUse Bash (full hook)": []})
    timed(hook, {"session_id": SESSION, "cwd": str(repo), "hook_event_name": "SessionStart", "source": "startup"}, repo, served)
    for i, rel in enumerate(files):
        edit_round(hook, repo, rel, i, served, times)
        bash_round(hook, repo, rel, f"b{i}", served, times)
        times["python -c pass"].append(timed([sys.executable, "-c", "pass"], None, repo, served))
        times["python -S -c pass"].append(timed([sys.executable, "-S", "-c", "pass"], None, repo, served))
    for i, rel in enumerate(off_files):
        bash_round(hook, repo, rel, f"ob{i}", full, times, " (full hook)")
    return times


def bench(args: argparse.Namespace, tmp: Path) -> dict:
    start = time.perf_counter()
    repo = corpus.make_repo(tmp / "repo", args.files)
    build_s = time.perf_counter() - start
    vbranch(repo, "init")
    chosen = corpus.pick_files(repo, 1, CHANGED + args.calls + OFF_HOOK_ROUNDS)[0]
    changed, edited, off_files = chosen[:CHANGED], chosen[CHANGED:CHANGED + args.calls], chosen[CHANGED + args.calls:]
    try:
        start_s = start_watcher(repo)
        for rel in changed:
            with open(repo / rel, "a") as f:
                f.write("# changed for the watch benchmark\n")
        time.sleep(1)
        env = run_env()
        elapsed(VBRANCH_STATUS, repo, env)  # seeds the dirty set with one git status
        elapsed(GIT_STATUS, repo, env)
        check_status(repo, changed)
        times = status_runs(repo, args.runs)
        require_trusted(repo, "after the status runs")
        stop_watcher(repo)
        times["vbranch status (no watcher)"] = [elapsed(VBRANCH_STATUS, repo, env) for _ in range(OFF_STATUS_RUNS)]
        check_status(repo, changed)
        restart_s = start_watcher(repo)
        elapsed(VBRANCH_STATUS, repo, env)
        times.update(hook_rounds(repo, edited, off_files))
        require_trusted(repo, "after the hook rounds")
    finally:
        stop_watcher(repo)
    return {"build_s": round(build_s, 2), "watcher_start_s": round(start_s, 3), "watcher_restart_s": round(restart_s, 3),
            "times": times}


def goals(figures: dict, ratio: float) -> dict:
    bash = {name: figures[name]["median_ms"] for name in ("PreToolUse Bash", "PostToolUse Bash")}
    return {"status_ratio": {"goal": f"vbranch status (watcher) / git status <= {STATUS_GOAL}", "value": ratio, "met": ratio <= STATUS_GOAL},
            "bash_medians": {"goal": f"Bash hook medians < {BASH_GOAL_MS:g} ms", "value": bash,
                             "met": all(v < BASH_GOAL_MS for v in bash.values())}}


def markdown(results: dict) -> str:
    m, g = results["machine"], results["goals"]
    lines = [f"# Watcher benchmark, {results['date']}", "",
             f"    {results['command']}", "",
             f"{results['files']:,} files, {CHANGED} changed; the watcher was trusted {results['watcher_start_s']:.2f} s after "
             f"its start ({results['watcher_restart_s']:.2f} s on the restart before the hooks). "
             f"vbranch at {results['checkout']}.", "",
             "| measurement | median ms | p95 ms | n |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {row['median_ms']} | {row['p95_ms']} | {row['n']} |" for name, row in results["figures"].items()]
    bash = ", ".join(f"{name} {value} ms" for name, value in g["bash_medians"]["value"].items())
    lines += ["", "| goal | figure | met |", "|---|---|---|",
              f"| `vbranch status` with the watcher within {STATUS_GOAL}x of `git status` | {g['status_ratio']['value']:.2f}x | {'yes' if g['status_ratio']['met'] else 'NO'} |",
              f"| Bash hook medians under {BASH_GOAL_MS:g} ms | {bash} | {'yes' if g['bash_medians']['met'] else 'NO'} |",
              "", f"Machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}, {m['git']}. "
              f"Load average before {fmt_load(results['load_average_before'])}, after {fmt_load(results['load_average_after'])}.", ""]
    return "\n".join(lines)


def fmt_load(load) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def checkout() -> str:
    head = git(ROOT, "rev-parse", "--short", "HEAD").strip()
    dirty = git(ROOT, "status", "--porcelain", "--", "vbranch")
    return head + (" with uncommitted changes in vbranch/" if dirty.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vbranch-watch-") as tmp:
        run = bench(args, Path(tmp))
    figures = {name: summarize(samples) for name, samples in run.pop("times").items()}
    ratio = round(figures["vbranch status (watcher)"]["median_ms"] / figures["git status --porcelain"]["median_ms"], 2)
    results = {
        "date": datetime.date.today().isoformat(),
        "command": f"python -m benchmarks.bench_watch --files {args.files} --runs {args.runs} --calls {args.calls}",
        "checkout": checkout(),
        "machine": machine(),
        "files": args.files, "changed": CHANGED, "runs": args.runs, "calls": args.calls,
        **run,
        "figures": figures,
        "ratio_vbranch_over_git": ratio,
        "goals": goals(figures, ratio),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(f"{results['files']} files, {CHANGED} changed; watcher trusted after {results['watcher_start_s']} s")
    print(f"{'measurement':30} {'median ms':>10} {'p95 ms':>8}")
    for name, row in figures.items():
        print(f"{name:30} {row['median_ms']:>10} {row['p95_ms']:>8}")
    for goal in results["goals"].values():
        print(f"{goal['goal']}: {goal['value']} -> {'met' if goal['met'] else 'NOT met'}")
    print(f"load average before {fmt_load(load_before)}, after {fmt_load(results['load_average_after'])}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"watch-{results['date']}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(f"written {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

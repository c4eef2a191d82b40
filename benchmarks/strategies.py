"""The two ways of running N sessions on one repository, measured phase by phase.

worktrees: `git worktree add` per session, the work, `git add -A && git commit`
in every worktree at once, then each branch merged into main one at a time,
then `git worktree remove`.
vbranch: `vbranch init` and a background watcher (`vbranch watch`, which
answers the hooks) in the one directory, the same work through the Claude
Code hooks as `vbranch install` writes them (the hook client; Bash commands
under the command tracer), the Stop hook committing each session's branch (all
at once), then the first branch landed alone and the others in one `vbranch land
--queue --no-verify` (one branch at a time where there is no queue: N = 1 and the
overlap variant), then `vbranch teardown`.
Sessions are separate processes (benchmarks/session.py) running each phase
at the same moment; the parent times each phase from the first command sent
to the last reply.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import checks, landing, workload
from .measure import Timer, clean_env, disk_usage, git, out, stats_ms


class Sessions:
    """N session processes, driven through the phases together."""

    def __init__(self, strategy: str, repo: Path, roots: list[Path], plan_file: Path, start: float):
        # stderr to files: a pipe nobody reads until the end could fill up and stall a session
        self.errs = [plan_file.parent / f"{strategy}-session-{i}.err" for i in range(len(roots))]
        self.procs = [
            subprocess.Popen([sys.executable, "-m", "benchmarks.session", strategy, str(repo), str(root),
                              str(plan_file), str(i), repr(start)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err.open("w"),
                             text=True, env=clean_env(), cwd=Path(__file__).resolve().parent.parent)
            for i, (root, err) in enumerate(zip(roots, self.errs))
        ]
        self.last: list[dict] = [{} for _ in roots]

    def phase(self, name: str) -> tuple[float, list[dict]]:
        started = time.perf_counter()
        for proc in self.procs:
            proc.stdin.write(name + "\n")
            proc.stdin.flush()
        replies = []
        for proc, err in zip(self.procs, self.errs):
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=60)
                raise RuntimeError(f"a session process died in {name}: {err.read_text()[-2000:]}")
            replies.append(json.loads(line))
        seconds = time.perf_counter() - started
        failed = [r for r in replies if not r["ok"]]
        if failed:
            raise RuntimeError(f"{len(failed)} session(s) failed in {name}: {failed[0]['error']}")
        self.last = replies
        return seconds, replies

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(timeout=60)


def _counters(replies: list[dict]) -> dict:
    total: dict = {}
    for reply in replies:
        for key, value in reply["counters"].items():
            total[key] = total.get(key, 0) + value
    return total


def _resolver(template: Path, plan: dict, k: int):
    """What a person resolving a conflict while landing branch k writes: sessions 0..k's changes."""
    def resolve(paths: list[str]) -> dict[str, str]:
        merged = workload.expected(template, plan["sessions"][:k + 1])
        return {p: merged[p] for p in paths}
    return resolve


def _intended(template: Path, plan: dict, skip=frozenset()) -> list[dict[str, str]]:
    return [workload.expected(template, [s], skip) for s in plan["sessions"]]


def _base_result(strategy: str, plan: dict) -> dict:
    return {"strategy": strategy, "n": plan["n"], "overlap": plan["overlap"], "merge_conflicts": [],
            "commit_blocked": [], "interventions": 0, "events": [], "lock_retries": 0, "git_failures": 0, "hook_failures": 0,
            "busy_retries": 0, "land_each_s": []}


def run_worktrees(repo: Path, template: Path, plan: dict, plan_file: Path, step, env: dict | None) -> dict:
    base = out(repo, "rev-parse", "main").strip()
    n, start = plan["n"], time.time()
    roots = [repo.parent / "wt" / f"session-s{i}" for i in range(n)]
    result = _base_result("worktrees", plan)
    sessions = Sessions("worktrees", repo, roots, plan_file, start)
    try:
        step("worktrees: git worktree add")
        result["setup_s"], _ = sessions.phase("setup")
        step("worktrees: edits")
        result["edit_s"], replies = sessions.phase("edit")
        command_ms = stats_ms([c for r in replies for c in r["command_seconds"]])
        result["extra_disk_bytes"] = sum(disk_usage(r) for r in roots) + disk_usage(repo / ".git" / "worktrees")
        step("worktrees: commit")
        result["commit_s"], replies = sessions.phase("commit")
    finally:
        sessions.close()
    result.update(_counters(replies))
    result["events"] = [dict(e, session=i) for i, r in enumerate(replies) for e in r["events"]]
    result["change_overhead_ms"] = stats_ms([0.0] * sum(len(s["ops"]) for s in plan["sessions"]))
    result["command_ms"] = command_ms
    branches = [f"session-s{i}" for i in range(n)]
    result["checks"] = _branch_checks(repo, base, branches, _intended(template, plan))

    step("worktrees: land")
    for k, branch in enumerate(branches):
        resolve = None if plan["overlap"] else _resolver(template, plan, k)
        with Timer() as t:
            merged = landing.merge_checked_out(repo, branch, resolve)
        result["land_each_s"].append(t.seconds)
        _note_conflict(result, merged, branch, start)
    result["land_s"] = sum(result["land_each_s"])
    result["landing_method"] = "git merge --no-edit (in the main checkout)"
    if env is not None:
        step("worktrees: per-session environments")
        result["env"] = environments(roots, repo.parent / "envs", env["with_pip"])
    step("worktrees: git worktree remove")
    with Timer() as t:
        for root in roots:
            git(repo, "worktree", "remove", str(root), counters=result)
    result["cleanup_s"] = t.seconds
    _final_checks(result, repo, template, plan, base)
    result["checks"]["workdir_clean"] = out(repo, "status", "--porcelain") == ""
    return result


def run_vbranch(repo: Path, template: Path, plan: dict, plan_file: Path, step) -> dict:
    base = out(repo, "rev-parse", "main").strip()
    n, start = plan["n"], time.time()
    result = _base_result("vbranch", plan)
    step("vbranch: init + watcher + SessionStart")
    try:
        with Timer() as t:
            _vbranch(repo, "init")
            result["watcher_start_s"] = round(start_watcher(repo), 3)
        sessions = Sessions("vbranch", repo, [repo] * n, plan_file, start)
        try:
            seconds, _ = sessions.phase("setup")
            result["setup_s"] = t.seconds + seconds
            step("vbranch: edits through the hooks")
            cpu_before = watcher_cpu_s(repo)
            result["edit_s"], replies = sessions.phase("edit")
            cpu = watcher_cpu_s(repo) - cpu_before if cpu_before is not None else None
            hooks = sum(len(r["hook_seconds"]) for r in replies)
            # The server's side of a hook: its threads share one interpreter, so this much runs one at a time.
            result["watcher_cpu_ms_per_hook"] = round(1000 * cpu / hooks, 1) if cpu is not None and hooks else None
            result["extra_disk_bytes"] = disk_usage(repo / ".git" / "vbranch")
            result["hook_call_ms"] = stats_ms([s for r in replies for s in r["hook_seconds"]])
            result["change_overhead_ms"] = stats_ms([s for r in replies for s in r["change_seconds"]])
            # Sessions writing one file at the same moment take turns (each write holds the file's lease
            # from PreToolUse to PostToolUse): the tool calls on the shared files include that wait.
            shared = {f["path"] for f in plan["shared"]}
            changes = [(p in shared, s) for r in replies for p, s in zip(r["change_paths"], r["change_seconds"], strict=True)]
            result["change_overhead_own_ms"] = stats_ms([s for on_shared, s in changes if not on_shared])
            result["change_overhead_shared_ms"] = stats_ms([s for on_shared, s in changes if on_shared])
            result["command_ms"] = stats_ms([c for r in replies for c in r["command_seconds"]])
            calls = [(name, sec) for r in replies for name, sec in zip(r["hook_names"], r["hook_seconds"])]
            result["hook_ms_by_event"] = {name: stats_ms([sec for k, sec in calls if k == name]) for name in sorted({k for k, _ in calls})}
            step("vbranch: Stop hook commits")
            result["commit_s"], replies = sessions.phase("commit")
        finally:
            sessions.close()
        result["watcher_live_throughout"] = watcher_trusted(repo)
        _vbranch_run(repo, result, template, plan, base, start, replies, step)
    finally:
        stop_watcher(repo)
    return result


def _vbranch_run(repo: Path, result: dict, template: Path, plan: dict, base: str, start: float, replies: list, step) -> None:
    """After the Stop hooks: settle what was held back, check the branches, land, tear down."""
    n = plan["n"]
    result.update(_counters(replies))
    result["events"] = [dict(e, session=i) for i, r in enumerate(replies) for e in r["events"]]
    result["stop_hook_ms"] = stats_ms([r["stop_seconds"] for r in replies])
    result["status_after_commit"] = _ambiguity(repo)
    by_session = _branches_by_session(repo)
    branches = [by_session.get(f"s{i}", f"?s{i}") for i in range(n)]
    blocked = [b for b, r in zip(branches, replies) if r["blocked"]]
    if blocked:
        step("vbranch: resolving contested changes")
        with Timer() as t:
            _resolve_contested(repo, plan, by_session, blocked, result)
        result["resolve_s"] = t.seconds
    denied = {(e["session"], e["op"]) for e in result["events"] if e["what"] == "denied"}
    result["checks"] = _branch_checks(repo, base, branches, _intended(template, plan, denied))

    step("vbranch: land")
    methods, result["land_s"] = set(), 0.0
    # The first branch alone (landing one of N waiting branches, the slowest single landing), then
    # the rest in one queue, as a user lands them all; whatever the queue leaves, one at a time.
    queued = [] if plan["overlap"] or n < 2 else branches[1:]
    by_queue: set[str] = set()
    for k, branch in enumerate(branches):
        if queued and k == 1:
            found = landing.land_vbranch_queue(repo, queued)
            by_queue = set(found["landed"])
            result["land_queue"] = {"branches": len(queued), "landed": len(by_queue), "seconds": found["seconds"],
                                    **({"error": found["error"]} if "error" in found else {})}
            result["land_s"] += found["seconds"]
            methods.add(found["method"])
        if branch in by_queue:
            continue
        resolve = None if plan["overlap"] else _resolver(template, plan, k)
        merged = landing.land_vbranch(repo, branch, resolve)
        result["land_s"] += merged["seconds"]
        result["land_each_s"].append(merged["seconds"])
        methods.add(merged["method"])
        if "land_error" in merged:
            result["events"].append({"what": "vbranch land failed; landed with git merge", "branch": branch,
                                     "error": merged["land_error"], "at": round(time.time() - start, 3)})
        _note_conflict(result, merged, branch, start)
    result["landing_method"] = ", ".join(sorted(methods))
    result["status_after_landing"] = _ambiguity(repo)
    step("vbranch: teardown")
    with Timer() as t:
        _vbranch(repo, "teardown")
    result["cleanup_s"] = t.seconds
    _final_checks(result, repo, template, plan, base, denied)
    # After landing and teardown the shared directory must hold exactly the landed target.
    result["checks"]["workdir_clean"] = out(repo, "status", "--porcelain") == ""
    log = repo / ".git" / "vbranch" / "hook.log"
    result["hook_log_errors"] = log.read_text().count("Traceback") if log.exists() else 0


def start_watcher(repo: Path, timeout: float = 120.0) -> float:
    """The background watcher (it answers the hooks); seconds until its dirty set is trusted."""
    from benchmarks.bench_watch import start_watcher as start

    return start(repo, timeout, env=clean_env())


def watcher_cpu_s(repo: Path) -> float | None:
    """CPU seconds (user + system) the repository's watcher has used so far; None without one."""
    from vbranch.state.workspace import open_workspace
    from vbranch.watch import dirtyset

    ws = open_workspace(repo)
    try:
        pid = dirtyset.watcher_pid(ws)
    finally:
        ws.close()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def watcher_trusted(repo: Path) -> bool:
    from vbranch.state.workspace import open_workspace
    from vbranch.watch import dirtyset

    ws = open_workspace(repo)
    try:
        return dirtyset.trusted_since(ws) is not None
    finally:
        ws.close()


def stop_watcher(repo: Path) -> None:
    from vbranch.cli import watch
    from vbranch.state.workspace import open_workspace

    try:
        ws = open_workspace(repo)
    except Exception:  # noqa: BLE001 - never set up (init failed): no watcher either
        return
    try:
        watch.stop_watcher(ws)
    finally:
        ws.close()


def _ambiguity(repo: Path) -> dict:
    """Contested and unattributed changes as `vbranch status --json` reports them."""
    report = json.loads(_vbranch(repo, "status", "--json"))
    return {"contested": len(report["contested"]), "unattributed": len(report["unattributed"]),
            "contested_paths": sorted({c["path"] for c in report["contested"]})[:20],
            "unattributed_paths": sorted({f["path"] for f in report["unattributed"]})[:20],
            "tracer": report.get("tracer")}


def _vbranch(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "vbranch", *args], cwd=repo, env=clean_env(),
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"vbranch {' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc.stdout


def _branches_by_session(repo: Path) -> dict[str, str]:
    report = json.loads(_vbranch(repo, "status", "--json"))
    return {s["id"]: b["name"] for b in report["branches"] for s in b["sessions"]}


def _resolve_contested(repo: Path, plan: dict, by_session: dict, blocked: list[str], result: dict) -> None:
    """What the user does after a blocked commit: assign each contested file to the session
    that meant to write it (`vbranch assign`), then commit those branches."""
    report = json.loads(_vbranch(repo, "status", "--json"))
    writers: dict[str, set[str]] = {}
    for s in plan["sessions"]:
        for op in s["ops"]:
            writers.setdefault(op["path"], set()).add(s["id"])
    for contest in report["contested"]:
        owners = writers.get(contest["path"], set())
        if len(owners) != 1:
            result["events"].append({"what": "contested change left unresolved", "path": contest["path"]})
            continue
        spec = contest["path"] + (f":{contest['lines'][0]}-{contest['lines'][1]}" if contest.get("lines") else "")
        _vbranch(repo, "assign", spec, by_session[owners.pop()])
        result["interventions"] += 1
    try:
        _vbranch(repo, "commit", *blocked)
    except RuntimeError as error:  # still contested: the branch checks will show what is missing
        result["events"].append({"what": "vbranch commit after assign failed", "error": str(error)[-500:]})
    result["commit_blocked"] = [{"branch": b, "paths": sorted({c["path"] for c in report["contested"] if b in c["branches"]})}
                                for b in blocked]


def _note_conflict(result: dict, merged: dict, branch: str, start: float) -> None:
    if merged["conflicts"]:
        result["merge_conflicts"].append({"branch": branch, "paths": merged["conflicts"],
                                          "at": round(time.time() - start, 3), "landed": merged.get("landed", True)})
        result["interventions"] += 1 if merged.get("resolved") else 0


def _branch_checks(repo: Path, base: str, branches: list[str], intended: list[dict]) -> dict:
    per = [checks.matches(repo, base, b, want) for b, want in zip(branches, intended)]
    return {"branches_ok": all(c["ok"] for c in per), "branches": per}


def _final_checks(result: dict, repo: Path, template: Path, plan: dict, base: str, skip=frozenset()) -> None:
    result["final_tree"] = checks.tree_of(repo, "main")
    if plan["overlap"]:
        return  # the same line meant two ways: there is no single intended result to compare with
    final = checks.matches(repo, base, "main", workload.expected(template, plan["sessions"], skip))
    result["checks"]["final_ok"] = final["ok"]
    result["checks"]["final"] = final


def environments(roots: list[Path], envs: Path, with_pip: bool = True) -> dict:
    """A virtual environment with an editable install of the project, per worktree, all at once.

    What each worktree needs before its session can run anything; the shared
    directory needs one, as any single checkout does.
    """
    envs.mkdir(parents=True, exist_ok=True)

    def make(root: Path) -> dict:
        env = envs / root.name
        with Timer() as t:
            subprocess.run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(env)],
                           check=True, capture_output=True)
            pip = [str(env / "bin" / "pip")] if with_pip else [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python")]
            subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "-e", str(root)], check=True, capture_output=True)
        check = subprocess.run([str(env / "bin" / "python"), "-c", "import benchpkg, sys; print(benchpkg.__file__)"],
                               capture_output=True, text=True, cwd="/")
        return {"seconds": t.seconds, "bytes": disk_usage(env), "editable_ok": check.stdout.strip().startswith(str(root))}

    with Timer() as t, ThreadPoolExecutor(len(roots)) as pool:
        made = list(pool.map(make, roots))
    shutil.rmtree(envs)
    return {"sessions": len(roots), "wall_s": t.seconds, "per_session_s": [m["seconds"] for m in made],
            "per_session_bytes": [m["bytes"] for m in made], "ok": all(m["editable_ok"] for m in made)}

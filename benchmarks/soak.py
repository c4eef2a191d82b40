"""A working day, compressed: sessions making many tool calls at once on a large repository.

    python -m benchmarks.soak [--quick] [--sessions 8] [--calls 1000] [--files 30000] [--think 0.5,2.5] [--out DIR]

Each session is its own process (benchmarks/session.py's VbranchSession: the hook command
`vbranch install` writes, answered by the live watcher's hook server, every Bash command under
the command tracer) making --calls tool calls: Writes of its own files, Edits of its own notes
and, every tenth call, of one line of a shared file (lines dealt round-robin, so sessions' lines
are neighbours), and Bash commands writing generated files. Every --commit-every calls the turn
ends (Stop: vbranch commits the session's branch) and every --land-every calls the session lands
its branch (`vbranch land`), all while the others go on. Back to back by default; with --think
LOW,HIGH each session waits that many seconds (at random, seeded by the session) before each tool
call, as an agent's model turn keeps its calls apart: the Stops and lands still come in the middle
of the others' calls.

Measured: every hook's latency with when it ran (percentiles overall and per tenth of the run,
the last tenth against the first), Stop and land times, the store's size and the watcher's RSS
sampled every --sample seconds. Checked at the end, after the rest is landed: every landing
moved only the lines of the session that landed (each line a session writes carries its marker),
and the target's tree is the working directory's (nothing lost, nothing added). Nothing is
asserted here; `tests/test_benchmark_smoke.py` runs --quick and asserts the checks.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import corpus
from .bench_watch import start_watcher, stop_watcher
from .measure import ROOT, clean_env, load, machine, out, stats_ms
from .workload import _Lines

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"sessions": 8, "calls": 1000, "files": 30000, "commit_every": 20, "land_every": 200, "sample": 2.0}
QUICK = {"sessions": 2, "calls": 40, "files": 300, "commit_every": 10, "land_every": 20, "sample": 0.5}
SHARED_EVERY = 10  # one call in ten edits a line of a shared file
MARKER = re.compile(r"soak-(s\d+)")


def marker(sid: str) -> str:
    return f"soak-{sid}"


# -- the plan: what every session does, decided before anything runs ---------------------------

def shared_lines(repo: Path, sessions: int, per_session: int) -> list[list[tuple[str, str]]]:
    """(path, line text) for each session's shared edits: lines an Edit can name alone, dealt round-robin."""
    dealt: list[list[tuple[str, str]]] = [[] for _ in range(sessions)]
    turn = 0
    for path in corpus.tracked_files(repo):
        lines = _Lines((repo / path).read_text())
        for i in range(len(lines.lines)):
            if turn >= sessions * per_session:
                return dealt
            if lines.ok(i):
                dealt[turn % sessions].append((path, lines.lines[i]))
                turn += 1
    return dealt


def session_ops(sid: str, calls: int, shared: list[tuple[str, str]]) -> list[dict]:
    """One session's tool calls. Every line it writes carries its marker."""
    mine, shared = f"soak/{sid}", list(shared)
    ops = [{"kind": "write", "path": f"{mine}/notes.md", "content": f"# notes of {marker(sid)}\ntail {marker(sid)}\n"}]
    for k in range(1, calls):
        if k % SHARED_EVERY == SHARED_EVERY - 1 and shared:
            path, line = shared.pop(0)
            ops.append({"kind": "edit", "path": path, "old": line, "new": f"{line}  # {marker(sid)} {k}"})
        elif k % 3 == 0:
            body = "".join(f"{marker(sid)} call {k} line {j}\n" for j in range(5))
            ops.append({"kind": "write", "path": f"{mine}/w{(k // 3) % 50}.txt", "content": body})
        elif k % 3 == 1:
            tail = f"tail {marker(sid)}"
            ops.append({"kind": "edit", "path": f"{mine}/notes.md", "old": tail, "new": f"entry {k} {marker(sid)}\n{tail}"})
        else:
            command = (f"mkdir -p {mine}/gen && echo '{marker(sid)} {k}' > {mine}/gen/g{k % 40}.txt"
                       f" && echo '{marker(sid)} {k}' >> {mine}/log.txt")
            ops.append({"kind": "bash", "path": f"{mine}/gen/g{k % 40}.txt", "command": command})
    return ops


# -- one session, in its own process -------------------------------------------------------------

def work(repo: Path, plan: dict, start: float, commit_every: int, land_every: int) -> dict:
    """Run one session's calls; its hooks' timings, Stop and land timings, and what went wrong."""
    from .session import VbranchSession

    session = VbranchSession(repo, repo, plan, start)
    session.setup()
    calls, stops, lands = [], [], []
    low, high = plan.get("think") or (0.0, 0.0)
    pause = random.Random(plan["id"])
    for k, op in enumerate(plan["ops"]):
        if high:
            time.sleep(pause.uniform(low, high))
        first = len(session.hook_seconds)
        at = time.time() - start
        session.run_op(k, op)
        calls.append([round(at, 3), *[round(s * 1000, 2) for s in session.hook_seconds[first:]]])
        if (k + 1) % commit_every == 0 or k + 1 == len(plan["ops"]):
            stops.append([round(time.time() - start, 3), round(session.commit()["stop_seconds"] * 1000, 1)])
            session.fire("UserPromptSubmit", prompt=f"next turn of {plan['id']}")
        if (k + 1) % land_every == 0:
            lands.append(land(repo, plan["id"], start, session))
    return {"id": plan["id"], "calls": calls, "stops": stops, "lands": lands,
            "counters": session.counters, "events": session.events[-50:]}


def branch_of(repo: Path, sid: str) -> str | None:
    report = json.loads(vbranch(repo, "status", "--json").stdout)
    return next((b["name"] for b in report["branches"] for s in b["sessions"] if s["id"] == sid), None)


def land(repo: Path, sid: str, start: float, session) -> dict:
    branch = branch_of(repo, sid)
    began = time.perf_counter()
    proc = vbranch(repo, "land", branch) if branch else None
    took = round((time.perf_counter() - began) * 1000, 1)
    if proc is None or proc.returncode:
        session.note("land failed", detail=(proc.stdout + proc.stderr)[-500:] if proc else "no branch")
    return {"at": round(time.time() - start, 3), "ms": took, "ok": proc is not None and proc.returncode == 0}


def vbranch(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vbranch", *args], cwd=repo, env=clean_env(),
                          capture_output=True, text=True)


# -- the parent: sessions at once, samples, checks -------------------------------------------------

def sample(repo: Path) -> dict:
    state = repo / ".git" / "vbranch"
    size = sum(p.stat().st_size for p in state.glob("state.db*"))
    rss = None
    try:
        status = json.loads(vbranch(repo, "watch", "--status", "--json").stdout)
    except ValueError:
        status = {}
    pid = status.get("pid") or watcher_process(repo)
    cpu = None
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        with open(f"/proc/{pid}/stat") as f:  # utime and stime, in clock ticks
            fields = f.read().rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (TypeError, OSError, StopIteration, ValueError, IndexError):
        pass
    return {"store_bytes": size, "watcher_rss_bytes": rss, "dirty_paths": status.get("dirty"),
            "watcher_pid": pid, "watcher_cpu_seconds": cpu, "machine_busy_seconds": machine_busy()}


def machine_busy() -> float | None:
    """CPU seconds every CPU spent not idle since boot (/proc/stat): the run's share is a difference."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def cpu_use(samples: list[dict], wall: float, calls: int) -> dict | None:
    """The watcher's CPU and the whole machine's over the run: what two CPUs are shared by."""
    same = [s for s in samples if s.get("watcher_cpu_seconds") is not None and s["watcher_pid"] == samples[0].get("watcher_pid")]
    busy = [s["machine_busy_seconds"] for s in samples if s.get("machine_busy_seconds") is not None]
    if len(same) < 2 or len(busy) < 2 or not calls:
        return None
    watcher = same[-1]["watcher_cpu_seconds"] - same[0]["watcher_cpu_seconds"]
    machine = busy[-1] - busy[0]
    return {"watcher_seconds": round(watcher, 1), "machine_seconds": round(machine, 1), "wall_seconds": round(wall, 1),
            "cpus": os.cpu_count(), "watcher_ms_per_call": round(1000 * watcher / calls, 1),
            "machine_ms_per_call": round(1000 * machine / calls, 1)}


def watcher_process(repo: Path) -> int | None:
    """The `vbranch watch` process working in `repo`, when `vbranch watch --status` did not say."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"vbranch" in argv and b"watch" in argv and os.readlink(entry / "cwd") == str(repo):
                return int(entry.name)
        except OSError:
            continue
    return None


def run_sessions(repo: Path, plans: list[dict], cfg: dict, work_dir: Path, progress) -> tuple[list[dict], list[dict]]:
    start = time.time()
    procs = []
    for i, plan in enumerate(plans):
        plan_file = work_dir / f"plan-{plan['id']}.json"
        plan_file.write_text(json.dumps(plan))
        args = [sys.executable, "-m", "benchmarks.soak", "--worker", str(repo), str(plan_file), repr(start),
                str(cfg["commit_every"]), str(cfg["land_every"])]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    samples = []
    while any(p.poll() is None for p in procs):
        samples.append({"at": round(time.time() - start, 1), **sample(repo)})
        progress(f"{samples[-1]['at']:.0f} s: store {samples[-1]['store_bytes'] >> 10} KiB, "
                 f"watcher {(samples[-1]['watcher_rss_bytes'] or 0) >> 20} MiB, dirty set {samples[-1]['dirty_paths']}")
        time.sleep(cfg["sample"])
    results = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a session process failed ({p.returncode}): {stderr[-3000:]}")
        results.append(json.loads(stdout))
    samples.append({"at": round(time.time() - start, 1), **sample(repo)})
    return results, samples


def land_the_rest(repo: Path) -> list[str]:
    """Commit and land every branch still holding work; the problems met."""
    problems = []
    proc = vbranch(repo, "commit", "--all")
    if proc.returncode:
        problems.append(f"commit --all: {(proc.stdout + proc.stderr)[-500:]}")
    report = json.loads(vbranch(repo, "status", "--json").stdout)
    for b in report["branches"]:
        proc = vbranch(repo, "land", b["name"])
        if proc.returncode and "nothing to land" not in (proc.stdout + proc.stderr):
            problems.append(f"land {b['name']}: {(proc.stdout + proc.stderr)[-500:]}")
    return problems


def landing_steps(repo: Path, target: str) -> list[tuple[str, str]]:
    """Each move of the target, oldest first, from its reflog."""
    moves = out(repo, "reflog", "show", "--format=%H", f"refs/heads/{target}").split()
    moves.reverse()
    return list(zip(moves, moves[1:]))


def step_markers(repo: Path, old: str, new: str) -> set[str]:
    """The sessions whose marked lines one landing added or removed."""
    diff = out(repo, "diff", "-U0", "--no-color", old, new)
    return {m for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))
            for m in MARKER.findall(line)}


def worktree_tree(repo: Path, scratch: Path) -> str:
    """The tree of the working directory as it is (every file git would add), in a scratch index."""
    env = {**os.environ, "GIT_INDEX_FILE": str(scratch / "index")}
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True, capture_output=True)
    return subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def checks(repo: Path, target: str, scratch: Path) -> dict:
    steps = landing_steps(repo, target)
    mixed = []
    for old, new in steps:
        found = step_markers(repo, old, new)
        if len(found) > 1:
            mixed.append({"from": old[:12], "to": new[:12], "sessions": sorted(found)})
    report = json.loads(vbranch(repo, "status", "--json").stdout)
    watcher = json.loads(vbranch(repo, "watch", "--status", "--json").stdout or "{}")
    return {
        "landings": len(steps),
        "landings_with_other_sessions_lines": mixed,
        "target_is_the_working_directory": worktree_tree(repo, scratch) == out(repo, "rev-parse", f"{target}^{{tree}}").strip(),
        "contested": len(report["contested"]),
        "unattributed": len(report["unattributed"]),
        # everything landed, and status's fold found every path as committed: what the set still holds
        "dirty_after_all_landed": watcher.get("dirty") if watcher.get("live") else None,
    }


def tenths(rows: list[list], calls: list[list]) -> list[dict]:
    """Percentiles of the rows' times (each row: when, then milliseconds) per tenth of the time the calls span."""
    buckets: list[list[float]] = [[] for _ in range(10)]
    first, last = min(c[0] for c in calls), max(c[0] for c in calls)
    for at, *took in rows:
        buckets[max(0, min(9, int(10 * (at - first) / max(last - first, 1e-9))))].extend(ms / 1000 for ms in took)
    return [stats_ms(b) for b in buckets]


def summarize(results: list[dict], samples: list[dict], wall: float) -> dict:
    calls = [c for r in results for c in r["calls"]]
    hooks = [h / 1000 for c in calls for h in c[1:]]
    by_tenth = tenths(calls, calls)
    stops = [s for r in results for s in r["stops"]]
    first, last = by_tenth[0]["p95"], by_tenth[-1]["p95"]
    rss = [s["watcher_rss_bytes"] for s in samples if s["watcher_rss_bytes"]]
    dirty = [s["dirty_paths"] for s in samples if s.get("dirty_paths") is not None]
    counters: dict = {}
    for r in results:
        for key, value in r["counters"].items():
            counters[key] = counters.get(key, 0) + value
    return {
        "wall_seconds": round(wall, 1),
        "tool_calls": len(calls),
        "hook_ms": stats_ms(hooks),
        "hook_ms_by_tenth": by_tenth,
        "p95_last_over_first": round(last / first, 2) if first else None,
        "stop_ms": stats_ms([s[1] / 1000 for s in stops]),
        "stop_ms_by_tenth": tenths(stops, calls) if stops else None,
        "cpu": cpu_use(samples, wall, len(calls)),
        "land_ms": stats_ms([x["ms"] / 1000 for r in results for x in r["lands"]]),
        "lands_failed": sum(not x["ok"] for r in results for x in r["lands"]),
        "store_bytes": {"first": samples[0]["store_bytes"], "last": samples[-1]["store_bytes"],
                        "max": max(s["store_bytes"] for s in samples)},
        "watcher_rss_bytes": {"first": rss[0], "last": rss[-1], "max": max(rss)} if rss else None,
        "dirty_paths": {"first": dirty[0], "last": dirty[-1], "max": max(dirty)} if dirty else None,
        "counters": counters,
        "events": [e for r in results for e in r["events"]][-40:],
    }


def markdown(r: dict) -> str:
    s, c, m = r["summary"], r["checks"], r["machine"]
    rss = s["watcher_rss_bytes"]
    lines = [
        f"# Soak, {r['date']}", "",
        f"    python -m benchmarks.soak {r['argv']}", "",
        f"{r['config']['sessions']} sessions × {r['config']['calls']} tool calls on {r['config']['files']} files, "
        f"a Stop every {r['config']['commit_every']} calls, a land every {r['config']['land_every']}"
        + (", each session waiting {}-{} s before each call".format(*r["config"]["think"]) if r["config"].get("think") else ", back to back")
        + "; "
        f"vbranch at {r['revision']}. {s['tool_calls']} calls in {s['wall_seconds']} s.", "",
        "| | median | p95 | p99-ish (max of tenths' p95) | count |", "|---|---:|---:|---:|---:|",
        f"| hook (ms) | {s['hook_ms']['median']} | {s['hook_ms']['p95']} | {max(t['p95'] for t in s['hook_ms_by_tenth'])} | {s['hook_ms']['count']} |",
        f"| Stop, the turn's commit (ms) | {s['stop_ms']['median']} | {s['stop_ms']['p95']} | | {s['stop_ms']['count']} |",
        f"| land (ms) | {s['land_ms']['median']} | {s['land_ms']['p95']} | | {s['land_ms']['count']} |", "",
        "Hook p95 per tenth of the run (ms): " + ", ".join(str(t["p95"]) for t in s["hook_ms_by_tenth"])
        + f"; last tenth / first: {s['p95_last_over_first']}x (goal ≤ 1.10).", "",
        *([f"Stop median per tenth (ms): {', '.join(str(t['median']) if t['count'] else '-' for t in s['stop_ms_by_tenth'])}.", ""]
          if s.get("stop_ms_by_tenth") else []),
        *([f"CPU: the watcher {s['cpu']['watcher_seconds']} s ({s['cpu']['watcher_ms_per_call']} ms a tool call), the whole "
           f"machine {s['cpu']['machine_seconds']} s ({s['cpu']['machine_ms_per_call']} ms a tool call) of "
           f"{s['cpu']['cpus']} × {s['cpu']['wall_seconds']} s.", ""] if s.get("cpu") else []),
        f"Store: {s['store_bytes']['first'] >> 10} KiB at the start, {s['store_bytes']['last'] >> 10} KiB at the end, "
        f"{s['store_bytes']['max'] >> 10} KiB at most. Watcher RSS: "
        + (f"{rss['first'] >> 20} MiB first, {rss['last'] >> 20} MiB last, {rss['max'] >> 20} MiB at most (goal ≤ 200 MiB)."
           if rss else "not sampled.")
        + (f" Watcher's dirty set (paths that may differ): {s['dirty_paths']['first']} first, {s['dirty_paths']['last']} last, "
           f"{s['dirty_paths']['max']} at most." if s.get("dirty_paths") else ""), "",
        f"Checks: {c['landings']} landings, {len(c['landings_with_other_sessions_lines'])} carried another session's lines; "
        f"target tree = working directory: {c['target_is_the_working_directory']}; contested {c['contested']}, "
        f"unattributed {c['unattributed']}; watcher's dirty set once all landed {c.get('dirty_after_all_landed')}; "
        f"failed lands {s['lands_failed']}; counters {s['counters']}.", "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, {m['git']}. Load before "
        f"{r['load_before']}, after {r['load_after']}.",
    ]
    return "\n".join(lines) + "\n"


def run(cfg: dict, work_dir: Path, progress) -> dict:
    repo = corpus.make_repo(work_dir / "repo", cfg["files"])
    subprocess.run([sys.executable, "-m", "vbranch", "init"], cwd=repo, env=clean_env(), check=True, capture_output=True)
    start_watcher(repo)
    try:
        ids = [f"s{i}" for i in range(cfg["sessions"])]
        dealt = shared_lines(repo, cfg["sessions"], cfg["calls"] // SHARED_EVERY + 1)
        plans = [{"id": sid, "ops": session_ops(sid, cfg["calls"], dealt[i]), "think": cfg.get("think")} for i, sid in enumerate(ids)]
        began = time.time()
        results, samples = run_sessions(repo, plans, cfg, work_dir, progress)
        wall = time.time() - began
        problems = land_the_rest(repo)
        found = checks(repo, "main", work_dir)
    finally:
        stop_watcher(repo)
    return {"summary": summarize(results, samples, wall), "checks": {**found, "problems": problems}, "samples": samples}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        repo, plan_file, start, commit_every, land_every = argv[1:]
        result = work(Path(repo), json.loads(Path(plan_file).read_text()), float(start), int(commit_every), int(land_every))
        sys.stdout.write(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny: the same code paths, for the smoke test")
    for key in ("sessions", "calls", "files", "commit_every", "land_every"):
        parser.add_argument("--" + key.replace("_", "-"), type=int)
    parser.add_argument("--think", type=lambda text: [float(x) for x in text.split(",")], metavar="LOW,HIGH",
                        help="seconds each session waits before each tool call, at random in [LOW, HIGH] (default: none)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({k: v for k, v in vars(args).items() if k in cfg and v is not None})
    if args.think:
        cfg["think"] = args.think
    random.seed(0)
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="vbranch-soak-") as tmp:
        result = run(cfg, Path(os.environ.get("SOAK_KEEP") or tmp), lambda text: print(text, file=sys.stderr, flush=True))
    today = datetime.date.today().isoformat()
    result.update(date=today, argv=" ".join(argv), config=cfg, machine=machine(), load_before=load_before,
                  load_after=load(), revision=out(ROOT, "rev-parse", "--short=12", "HEAD").strip())
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"soak-{today}" + ("-quick" if args.quick else "")
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

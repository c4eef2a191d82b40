"""The command tracer's cost: a command under `vbranch/tracer.py` against the same command run bare.

    python -m benchmarks.bench_tracer [--quick] [--reps 5] [--files 5000] [--no-python-loop] [--out DIR]

Claude Code runs every Bash command as `$CLAUDE_CODE_SHELL_PREFIX '<command>'`, and
`vbranch install` sets that prefix to the tracer (`vbranch.tracer_command()`),
so every command pays what the tracer costs. Here each workload runs as

    bare:   bash -c '<command>'
    traced: python -S vbranch/tracer.py '<command>'   (CLAUDE_CODE_SESSION_ID set)
    python: the same with VBRANCH_TRACER_NATIVE=off   (the supervisor's Python loop, not supervise.c)

in a repository where `vbranch init` ran, alternately (bare first on even repetitions,
last on odd ones), same run, same machine, same environment otherwise. Each traced run
must really be traced (its trace log says so, and which loop answered: the results name
it), and every run must succeed.
After a traced run its trace logs are counted (files the tracer logged) and removed,
so later runs start alike. Workloads:

- git-status-loop: the syscall-heavy one of the issue: N × (`git status --porcelain`,
  write a new file, append to a log) in a generated repository of --files files.
- many-writes: one Python process creating and then rewriting files; every write-open
  stops in the kernel until the supervisor has logged it, so this is the tracer's
  worst case per syscall.
- pytest: a subset of vbranch's own test suite (a clone of this checkout's HEAD).
- true: the fixed cost per command.

Medians, the traced/bare ratio of medians, and the extra milliseconds go to the
terminal and to benchmarks/results/tracer-<date>.json and .md. Nothing is asserted:
the issue's goal (traced within 10% of bare for the syscall-heavy workload) is
reported as met or not.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import corpus
from benchmarks.measure import ROOT, clean_env, load, machine
from vbranch.agents.claude_code import tracer_command

RESULTS = Path(__file__).resolve().parent / "results"
NATIVE_SWITCH = "VBRANCH_TRACER_NATIVE"  # tracer.NATIVE_SWITCH (not imported: the tracer is run, not loaded)
SESSION = "bench-tracer"
GOAL = 1.10  # traced within 10% of bare wall time (issue 10), for the syscall-heavy workload
PYTEST_FILES = ("tests/test_ownership.py", "tests/test_config.py", "tests/test_symlink_guard.py")  # tracked, quick, pure and git-heavy
QUICK_PYTEST_FILES = ("tests/test_ownership.py",)

FULL = {"files": 2000, "loop": 200, "writes": 2000, "reps": 5, "pytest_reps": 3, "true_reps": 30, "pytest": PYTEST_FILES}
QUICK = {"files": 300, "loop": 20, "writes": 200, "reps": 2, "pytest_reps": 1, "true_reps": 5, "pytest": QUICK_PYTEST_FILES}


def many_writes_command(count: int) -> str:
    program = ('import os, sys; n = int(sys.argv[1]); os.makedirs("bench-out/many", exist_ok=True)\n'
               'for r in range(2):\n'
               '    for i in range(n):\n'
               '        with open(f"bench-out/many/f{i}.txt", "w") as f: f.write(f"{r} {i}\\n")')
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(program)} {count}"


def loop_command(count: int) -> str:
    return ("rm -rf bench-out && mkdir -p bench-out && "
            f"for i in $(seq {count}); do git status --porcelain >/dev/null; "
            "echo \"line $i\" > bench-out/f$i.txt; echo $i >> bench-out/log.txt; done")


def pytest_command(files: tuple[str, ...]) -> str:
    return f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider {' '.join(files)}"


def prepare_repo(path: Path, files: int) -> Path:
    repo = corpus.make_repo(path, files)
    init(repo)
    return repo


def prepare_project(path: Path) -> Path:
    """A clone of this checkout's HEAD with `vbranch init`: its own tests run there."""
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(path)], check=True, capture_output=True)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.invalid"), ("commit.gpgsign", "false")):
        subprocess.run(["git", "config", key, value], cwd=path, check=True)
    init(path)
    return path


def init(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vbranch", "init"], cwd=repo, env=clean_env(), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"vbranch init failed: {proc.stdout}{proc.stderr}")


def trace_dir(repo: Path) -> Path:
    return repo / ".git" / "vbranch" / "traces"


def run_once(how: str, command: str, cwd: Path, env: dict) -> float:
    argv = ["bash", "-c", command] if how == "bare" else shlex.split(tracer_command()) + [command]
    env = {k: v for k, v in env.items() if k != NATIVE_SWITCH}
    if how == "python":
        env[NATIVE_SWITCH] = "off"
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    took = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{how} run of {command[:80]!r} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return took


def collect_traces(repo: Path) -> dict:
    """What the traced run's logs say (were they traced, how many writes), then remove them.

    Waits briefly for the supervisor's end line: it may outlive the command by a moment.
    """
    folder = trace_dir(repo)
    deadline = time.monotonic() + 10
    while True:
        logs = sorted(folder.glob("*.log")) if folder.exists() else []
        texts = [p.read_text(errors="replace") for p in logs]
        if all(t.rstrip("\n").split("\n")[-1].startswith("E\t") for t in texts) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    heads = [t.split("\n", 1)[0].split("\t") for t in texts]
    found = {"logs": len(logs), "traced": bool(heads) and all(len(h) > 6 and h[6] == "1" for h in heads),
             "why_not": sorted({h[7] for h in heads if len(h) > 7 and h[7]}),
             "write_events": sum(t.count("\nW\t") for t in texts),
             "loops": sorted({h[8].split(":")[0] if len(h) > 8 else "python" for h in heads})}
    shutil.rmtree(folder, ignore_errors=True)
    return found


def measure(name: str, command: str, cwd: Path, reps: int, env: dict, progress, hows=("bare", "traced", "python")) -> dict:
    """Warm-up (one of each, not counted), then `reps` alternating rounds (bare, traced, python)."""
    times: dict[str, list[float]] = {how: [] for how in hows}
    events, loops = [], {}
    for how in hows:
        run_once(how, command, cwd, env)
        if how != "bare":
            warm = collect_traces(cwd)
            if not warm["traced"]:
                raise RuntimeError(f"{name}: the command ran untraced: {warm['why_not'] or 'no trace log'}")
    for i in range(reps):
        for how in hows if i % 2 == 0 else hows[::-1]:
            progress(f"{name}: {how} {i + 1}/{reps}")
            times[how].append(run_once(how, command, cwd, env))
            if how != "bare":
                seen = collect_traces(cwd)
                if not seen["traced"]:
                    raise RuntimeError(f"{name}: the command ran untraced: {seen['why_not'] or 'no trace log'}")
                loops.setdefault(how, set()).update(seen["loops"])
                if how == "traced":
                    events.append(seen["write_events"])
    out = summarize(command, reps, times["bare"], times["traced"], events[-1] if events else None)
    out["loop"] = ", ".join(sorted(loops.get("traced", ())))
    if "python" in times:
        python = summarize(command, reps, times["bare"], times["python"], None)
        out.update({"python_s": python["traced_s"], "python_median_s": python["traced_median_s"], "python_ratio": python["ratio"],
                    "python_pair_ratio_median": python["pair_ratio_median"], "python_extra_ms": python["extra_ms"]})
    return out


def summarize(command: str, reps: int, bare_s: list[float], traced_s: list[float], events: int | None) -> dict:
    """Medians, their ratio, and the median of each alternating pair's ratio (less swayed by load drifting over the run)."""
    bare, traced = statistics.median(bare_s), statistics.median(traced_s)
    pairs = statistics.median(t / b for b, t in zip(bare_s, traced_s))
    return {"command": command, "reps": reps, "bare_s": [round(t, 4) for t in bare_s], "traced_s": [round(t, 4) for t in traced_s],
            "bare_median_s": round(bare, 4), "traced_median_s": round(traced, 4), "ratio": round(traced / bare, 3),
            "pair_ratio_median": round(pairs, 3), "extra_ms": round((traced - bare) * 1000, 1), "traced_write_events": events}


def first_command(path: Path, env: dict) -> float:
    """The first traced command in a freshly set-up repository also builds the seccomp filter (once per repository)."""
    repo = corpus.make_repo(path, 10)
    init(repo)
    took = run_once("traced", "true", repo, env)
    collect_traces(repo)
    return took


def checkout() -> str:
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "vbranch"], cwd=ROOT, capture_output=True, text=True).stdout
    return head + (" + uncommitted changes in vbranch/" if dirty.strip() else "")


def fmt_load(values) -> str:
    return " / ".join(f"{x:.2f}" for x in values) if values else "unknown"


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"# Command tracer cost, {r['date']}", "", f"    {r['command']}", "",
             f"Each workload: one warm-up run of each, then {r['config']['reps']} alternating rounds (pytest: "
             f"{r['config']['pytest_reps']}, true: {r['config']['true_reps']}); bare = `bash -c '<command>'`, traced = "
             "`python -S vbranch/tracer.py '<command>'` with CLAUDE_CODE_SESSION_ID set, in a repository where `vbranch init` "
             "ran; its supervisor's loop is the one the logs named (`native`: supervise.c); python = the same with "
             f"VBRANCH_TRACER_NATIVE=off, the supervisor's Python loop. vbranch at {r['checkout']}.", "",
             "| workload | bare median | traced median | traced / bare (medians) | median of pair ratios | extra per run | "
             "loop | python loop median | python / bare | python: median of pair ratios | "
             "paths logged per traced run (inside the repository) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for name, w in r["workloads"].items():
        python = (f"{w['python_median_s'] * 1000:.0f} ms | {w['python_ratio']:.2f}x | {w['python_pair_ratio_median']:.2f}x"
                  if "python_median_s" in w else "- | - | -")
        lines.append(f"| {name} | {w['bare_median_s'] * 1000:.0f} ms | {w['traced_median_s'] * 1000:.0f} ms | {w['ratio']:.2f}x | "
                     f"{w['pair_ratio_median']:.2f}x | {w['extra_ms']:.0f} ms | {w.get('loop', '?')} | {python} | {w['traced_write_events']} |")
    g = r["goal"]
    lines += ["", f"Goal (issue 10): {g['goal']}: {g['value']:.2f}x, {'met' if g['met'] else 'NOT met'}.", "",
              f"The first traced command in a freshly initialised repository (it builds the seccomp filter once): "
              f"{r['first_command_ms']:.0f} ms.", "", "Workloads:", ""]
    lines += [f"- {name}: `{w['command'][:300]}`" for name, w in r["workloads"].items()]
    lines += ["", "Every run, in seconds (bare and traced of one repetition ran back to back):", ""]
    lines += [f"- {name}: bare {w['bare_s']}; traced {w['traced_s']}" + (f"; python {w['python_s']}" if "python_s" in w else "")
              for name, w in r["workloads"].items() if name != "true"]
    lines += ["", f"Machine: {m['platform']} (kernel {m['kernel']}), {m['cpus']} CPUs, Python {m['python']}, {m['git']}. "
              f"Load average (1/5/15 min) before {fmt_load(r['load_average_before'])}, after {fmt_load(r['load_average_after'])}: "
              "other work on the machine slows bare and traced runs alike, which is why they alternate.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads, one or two repetitions: a smoke test")
    parser.add_argument("--reps", type=int, help="alternating pairs per workload (pytest and true have their own counts)")
    parser.add_argument("--files", type=int, help="files in the git-status-loop repository")
    parser.add_argument("--no-pytest", action="store_true", help="skip the pytest workload")
    parser.add_argument("--no-python-loop", action="store_true", help="measure only the default loop, not also VBRANCH_TRACER_NATIVE=off")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["reps"] = args.reps
    if args.files:
        cfg["files"] = args.files
    env = clean_env({"CLAUDE_CODE_SESSION_ID": SESSION})
    env.pop("VBRANCH_TRACED", None)
    hows = ("bare", "traced") if args.no_python_loop else ("bare", "traced", "python")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load()

    def progress(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    workloads: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vbranch-tracer-") as tmp:
        tmp = Path(tmp)
        progress(f"repository of {cfg['files']} files")
        repo = prepare_repo(tmp / "repo", cfg["files"])
        first_ms = first_command(tmp / "fresh", env) * 1000
        workloads[f"git-status-loop ({cfg['loop']}x)"] = measure("git-status-loop", loop_command(cfg["loop"]), repo, cfg["reps"], env, progress, hows)
        workloads[f"many-writes ({2 * cfg['writes']} write-opens)"] = measure("many-writes", many_writes_command(cfg["writes"]), repo,
                                                                               cfg["reps"], env, progress, hows)
        if not args.no_pytest:
            progress("clone of this checkout for its tests")
            project = prepare_project(tmp / "project")
            penv = dict(env, PYTHONPATH=str(project))
            workloads[f"pytest ({len(cfg['pytest'])} test files)"] = measure("pytest", pytest_command(cfg["pytest"]), project,
                                                                           cfg["pytest_reps"], penv, progress, hows)
        workloads["true"] = measure("true", "true", repo, cfg["true_reps"], env, progress, hows)
    loop = next(w for k, w in workloads.items() if k.startswith("git-status-loop"))
    result = {"date": started.date().isoformat(), "started": started.isoformat(timespec="seconds"),
              "mode": "quick" if args.quick else "full",
              "command": "python -m benchmarks.bench_tracer " + " ".join(argv if argv is not None else sys.argv[1:]),
              "checkout": checkout(), "machine": machine(), "config": {k: v for k, v in cfg.items()},
              "tracer_command": tracer_command(), "first_command_ms": round(first_ms, 1), "workloads": workloads,
              "goal": {"goal": f"git-status-loop traced / bare <= {GOAL:.2f}", "value": loop["ratio"], "met": loop["ratio"] <= GOAL},
              "load_average_before": load_before, "load_average_after": load()}
    print(f"{'workload':40} {'bare ms':>9} {'traced ms':>10} {'ratio':>6} {'pairs':>6} {'extra ms':>9} {'logged':>7}  loop"
          f"{'':8} {'python ms':>10} {'ratio':>6}")
    for name, w in workloads.items():
        print(f"{name:40} {w['bare_median_s'] * 1000:>9.0f} {w['traced_median_s'] * 1000:>10.0f} {w['ratio']:>6.2f} "
              f"{w['pair_ratio_median']:>6.2f} {w['extra_ms']:>9.0f} {w['traced_write_events']!s:>7}  {w['loop']:12}"
              + (f" {w['python_median_s'] * 1000:>10.0f} {w['python_ratio']:>6.2f}" if "python_median_s" in w else ""))
    print(f"{result['goal']['goal']}: {loop['ratio']:.2f} -> {'met' if result['goal']['met'] else 'NOT met'}")
    print(f"first traced command in a fresh repository: {first_ms:.0f} ms; load average before {fmt_load(load_before)}, "
          f"after {fmt_load(result['load_average_after'])}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"tracer-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(f"written {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time `vbranch commit --all` against plain `git add -A && git commit`.

    python -m benchmarks.bench_commit [--files 30000] [--branches 8]
                                      [--per-branch 10] [--repeat 5] [--rounds 6]

Two identical generated repositories get the same combined change: each of
B sessions edits P files of its own. In one, the sessions record their files
with `vbranch record` and `vbranch commit --all` builds B branches; in the
other, `git add -A && git commit` commits everything at once. Only those
commit commands are timed. Before every repetition both repositories are put
back to the same state (base commit, no vbranch state) and the change is
re-applied, so repetitions are comparable. Medians and the vbranch/git ratio
are printed and written to benchmarks/results/commit-<date>.json.

With --rounds R (> 1) the repositories are not reset between commits: in each
of R rounds every session edits P more files of its own, records them and the
two sides commit, as a working day goes. Each round is timed once per side,
so the round-by-round ratio shows whether commit cost follows the change
(flat) or everything the branches own (growing). --repeat does not apply.
With rounds, the vbranch repository has a live watcher, as it has once any
session's hook has run (`vbranch commit` is then run by the watcher,
cli/served.py); --no-watcher times the command in a process of its own.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import corpus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


PYCACHE = {"dir": None}  # where this run's bytecode goes (set by warm_bytecode)


def vbranch_env():
    # The CLI must import this checkout, and must not pick up a session
    # from the environment of whoever runs the benchmark.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("VBRANCH_SESSION", None)
    env.pop("CLAUDE_CODE_SESSION_ID", None)
    if PYCACHE["dir"] is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE["dir"])
    return env


def warm_bytecode(tmp):
    """Compile vbranch once into a private cache, as an installed package ships it: with
    PYTHONDONTWRITEBYTECODE set (as in some sandboxes) every command would otherwise compile
    every module it imports (~0.1 s a process), which users do not pay."""
    PYCACHE["dir"] = tmp / "pycache"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "vbranch")], env=vbranch_env(),
                   check=True, capture_output=True)


def vbranch(repo, *args):
    proc = subprocess.run([sys.executable, "-m", "vbranch", *args], cwd=repo, env=vbranch_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("vbranch %s failed (%d): %s%s" % (" ".join(args[:2]), proc.returncode,
                                                           proc.stdout, proc.stderr))
    return proc.stdout


def vbranch_available():
    proc = subprocess.run([sys.executable, "-m", "vbranch", "--help"], cwd=ROOT, env=vbranch_env(),
                          capture_output=True)
    return proc.returncode == 0


LAST_CPU = {"seconds": None}  # CPU time (user + system) of the last `timed` commands


def timed(commands, cwd, env=None):
    """Wall time of running `commands` one after another (each must succeed); their CPU time
    (user + system, children included) in LAST_CPU, which other processes' load disturbs less."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU["seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def snapshot(repo):
    """What a reset must restore: HEAD, refs, .git entries, hooks, config."""
    dot = repo / ".git"
    return {"head": (dot / "HEAD").read_bytes(),
            "refs": set(git(repo, "for-each-ref", "--format=%(refname)").split()),
            "entries": set(os.listdir(dot)),
            "hooks": set(os.listdir(dot / "hooks")),
            "config": (dot / "config").read_bytes()}


def restore(repo, snap, base):
    """Put `repo` back to `snap` with main at `base` and a clean tree.

    Generic on purpose: drops whatever vbranch (or git) added under .git
    (state dir, workspace ref, session branches, guard hook) without
    knowing its layout. New objects are left alone; they are harmless.
    """
    dot = repo / ".git"
    (dot / "HEAD").write_bytes(snap["head"])
    (dot / "config").write_bytes(snap["config"])
    for ref in set(git(repo, "for-each-ref", "--format=%(refname)").split()) - snap["refs"]:
        git(repo, "update-ref", "-d", ref)
    git(repo, "update-ref", "refs/heads/main", base)
    for name in set(os.listdir(dot)) - snap["entries"]:
        if (dot / name).is_dir():
            shutil.rmtree(dot / name)
        else:
            (dot / name).unlink()
    for name in set(os.listdir(dot / "hooks")) - snap["hooks"]:
        (dot / "hooks" / name).unlink()
    git(repo, "reset", "-q", "--hard", base)  # rewrites only files that differ


def settle(repo):
    """Wait until the clock is past the index's mtime second, then let git
    rewrite the index, so no entry is "racily clean" (which would make the
    next command re-hash those files) and the inode cache is warm."""
    while int(time.time()) <= int((repo / ".git" / "index").stat().st_mtime):
        time.sleep(0.05)
    git(repo, "status", "--porcelain", "-uno")


def apply_change(repo, groups):
    for i, paths in enumerate(groups):
        corpus.edit_files(repo, paths, i)


def check_git(repo, base, expected):
    changed = git(repo, "diff", "--name-only", base, "HEAD").split()
    return {"files_committed": len(changed), "ok": len(changed) == expected}


def check_vbranch(repo, base, groups):
    """Each session's files, and only those, on one new branch."""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads").split()
    per_branch = sorted(tuple(sorted(git(repo, "diff", "--name-only", base, ref).split()))
                        for ref in refs if ref != "refs/heads/main" and not ref.startswith("refs/heads/vbranch/"))
    return {"branches": len(per_branch), "ok": per_branch == sorted(tuple(sorted(g)) for g in groups)}


def keep_failure(checks, side, check):
    """Store this repetition's check unless an earlier one already failed."""
    if checks.get(side, {"ok": True})["ok"]:
        checks[side] = check


def machine():
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "git": git(ROOT, "--version").strip()}


def summary(runs):
    return {"runs": [round(r, 4) for r in runs], "median": round(statistics.median(runs), 4),
            "min": round(min(runs), 4), "max": round(max(runs), 4)} if runs else None


def prepare_vbranch(repo, groups):
    """vbranch init, then each session records its own files."""
    vbranch(repo, "init")
    for i, paths in enumerate(groups):
        vbranch(repo, "record", "--session", "s%d" % i, *paths)


def time_git(repo):
    return timed([["git", "add", "-A"], ["git", "commit", "-q", "-m", "x"]], repo)


def time_vbranch(repo):
    try:
        return timed([[sys.executable, "-m", "vbranch", "commit", "--all"]], repo, vbranch_env())
    except subprocess.CalledProcessError as exc:
        raise RuntimeError("vbranch commit --all failed (%d): %s" % (exc.returncode, exc.stderr.decode()))


def bench(args, tmp):
    """Run the repetitions; returns the result dict (without machine info)."""
    if args.bytecode:
        warm_bytecode(tmp)
    error = None if vbranch_available() else "vbranch CLI not importable; vbranch side skipped"
    repos, gen = {}, {}
    for side in ("git", "vbranch"):  # identical: same seed
        start = time.perf_counter()
        repos[side] = corpus.make_repo(tmp / side, args.files, seed=args.seed)
        gen[side + "_repo"] = round(time.perf_counter() - start, 2)
    base = git(repos["git"], "rev-parse", "HEAD").strip()
    groups = corpus.pick_files(repos["git"], args.branches, args.per_branch, seed=args.seed)
    snaps = {side: snapshot(repo) for side, repo in repos.items()}
    runs, checks = {"git": [], "vbranch": []}, {}
    for rep in range(args.repeat):
        # Same starting state every time: base commit, no vbranch state, same change.
        for side, repo in repos.items():
            restore(repo, snaps[side], base)
            apply_change(repo, groups)
        if error is None:
            try:
                prepare_vbranch(repos["vbranch"], groups)
            except RuntimeError as exc:
                error = str(exc)
        for repo in repos.values():
            settle(repo)
        # Alternate which side runs first so neither always gets a warmer cache.
        for side in ("git", "vbranch") if rep % 2 == 0 else ("vbranch", "git"):
            if side == "git":
                runs["git"].append(time_git(repos["git"]))
                keep_failure(checks, "git", check_git(repos["git"], base, args.branches * args.per_branch))
            elif error is None:
                try:
                    runs["vbranch"].append(time_vbranch(repos["vbranch"]))
                except RuntimeError as exc:
                    error = str(exc)
                    continue
                keep_failure(checks, "vbranch", check_vbranch(repos["vbranch"], base, groups))
        print("  repetition %d/%d: %s" % (rep + 1, args.repeat, ", ".join(
            "%s %.3fs" % (side, r[-1]) for side, r in runs.items() if len(r) > rep)), file=sys.stderr)
    git_sum, vb_sum = summary(runs["git"]), summary(runs["vbranch"])
    return {"params": {"files": args.files, "branches": args.branches, "per_branch": args.per_branch,
                       "repeat": args.repeat, "seed": args.seed},
            "generate_seconds": gen,
            "git": git_sum, "vbranch": vb_sum,
            "ratio_vbranch_over_git": round(vb_sum["median"] / git_sum["median"], 2) if vb_sum else None,
            "checks": checks,
            "vbranch_error": error}


def bench_rounds(args, tmp):
    """R rounds on one pair of repositories, no reset: each round P more files per session."""
    if args.bytecode:
        warm_bytecode(tmp)
    error = None if vbranch_available() else "vbranch CLI not importable; vbranch side skipped"
    repos, gen = {}, {}
    for side in ("git", "vbranch"):
        start = time.perf_counter()
        repos[side] = corpus.make_repo(tmp / side, args.files, seed=args.seed)
        gen[side + "_repo"] = round(time.perf_counter() - start, 2)
    base = git(repos["git"], "rev-parse", "HEAD").strip()
    chosen = corpus.pick_files(repos["git"], args.branches, args.per_branch * args.rounds, seed=args.seed)
    if error is None:
        vbranch(repos["vbranch"], "init")
        if args.watcher:
            vbranch(repos["vbranch"], "watch", "--background")
    try:
        rounds, checks, error = run_rounds(args, repos, chosen, error)
    finally:
        if error is None and args.watcher:
            vbranch(repos["vbranch"], "watch", "--stop")
    done = [[p for paths in chosen for p in paths[:args.per_branch * args.rounds]]]
    keep_failure(checks, "git", check_git(repos["git"], base, len(done[0])))
    if error is None:
        keep_failure(checks, "vbranch", check_vbranch(repos["vbranch"], base, chosen))
    return {"params": {"files": args.files, "branches": args.branches, "per_branch": args.per_branch,
                       "rounds": args.rounds, "seed": args.seed, "bytecode": args.bytecode, "watcher": args.watcher},
            "generate_seconds": gen, "rounds": rounds, "checks": checks, "vbranch_error": error}


def run_rounds(args, repos, chosen, error):
    rounds, checks = [], {}
    for r in range(args.rounds):
        groups = [paths[r * args.per_branch:(r + 1) * args.per_branch] for paths in chosen]
        for repo in repos.values():
            apply_change(repo, groups)
        if error is None:
            for i, paths in enumerate(groups):
                vbranch(repos["vbranch"], "record", "--session", "s%d" % i, *paths)
        for repo in repos.values():
            settle(repo)
        row = {"round": r + 1, "owned_files": args.branches * args.per_branch * (r + 1)}
        for side in ("git", "vbranch") if r % 2 == 0 else ("vbranch", "git"):
            if side == "git":
                row["git"] = round(time_git(repos["git"]), 4)
                row["git_cpu"] = round(LAST_CPU["seconds"], 4)
            elif error is None:
                try:
                    row["vbranch"] = round(time_vbranch(repos["vbranch"]), 4)
                    row["vbranch_cpu"] = round(LAST_CPU["seconds"], 4)
                except RuntimeError as exc:
                    error = str(exc)
        if "vbranch" in row:
            row["ratio"] = round(row["vbranch"] / row["git"], 2)
            row["cpu_ratio"] = round(row["vbranch_cpu"] / row["git_cpu"], 2)
        rounds.append(row)
        print("  round %d/%d: %s" % (r + 1, args.rounds, row), file=sys.stderr)
    return rounds, checks, error


def print_rounds(result):
    p = result["params"]
    print("commit benchmark, %d rounds: %d files, %d branches x %d more files per round (seed %d)"
          % (p["rounds"], p["files"], p["branches"], p["per_branch"], p["seed"]))
    print("  %5s %7s %9s %9s %7s %9s %9s %7s" % ("round", "owned", "git", "vbranch", "ratio",
                                                 "git cpu", "vb cpu", "ratio"))
    for row in result["rounds"]:
        print("  %5d %7d %8.3fs %8s %7s %8.3fs %8s %7s" % (
            row["round"], row["owned_files"], row["git"],
            "%.3fs" % row["vbranch"] if "vbranch" in row else "n/a",
            "%.2fx" % row["ratio"] if "ratio" in row else "n/a", row["git_cpu"],
            "%.3fs" % row["vbranch_cpu"] if "vbranch_cpu" in row else "n/a",
            "%.2fx" % row["cpu_ratio"] if "cpu_ratio" in row else "n/a"))
    if result["vbranch_error"]:
        print("  vbranch: %s" % result["vbranch_error"])
    for side, check in result["checks"].items():
        if not check["ok"]:
            print("  WARNING: %s result check failed: %s" % (side, check))


def print_table(result):
    p = result["params"]
    print("commit benchmark: %d files, %d branches x %d files, %d repetitions (seed %d)"
          % (p["files"], p["branches"], p["per_branch"], p["repeat"], p["seed"]))
    print("  %-28s %9s %9s %9s" % ("", "median", "min", "max"))
    for label, key in (("git add -A && git commit", "git"), ("vbranch commit --all", "vbranch")):
        s = result[key]
        print("  %-28s %8.3fs %8.3fs %8.3fs" % (label, s["median"], s["min"], s["max"]) if s
              else "  %-28s %9s" % (label, "n/a"))
    if result["ratio_vbranch_over_git"] is not None:
        print("  ratio vbranch/git: %.2fx" % result["ratio_vbranch_over_git"])
    if result["vbranch_error"]:
        print("  vbranch: %s" % result["vbranch_error"])
    for side, check in result["checks"].items():
        if not check["ok"]:
            print("  WARNING: %s result check failed: %s" % (side, check))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--per-branch", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1,
                        help="commit R times without resetting, P more files per session each round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                        help="do not compile vbranch first (each command then compiles what it imports "
                             "if PYTHONDONTWRITEBYTECODE is set, as earlier runs did)")
    parser.add_argument("--no-watcher", dest="watcher", action="store_false",
                        help="with --rounds: no watcher, so `vbranch commit` runs in a process of its own")
    parser.add_argument("--out", type=Path, help="result file (default: benchmarks/results/commit-<date>.json)")
    args = parser.parse_args(argv)
    now = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vbranch-bench-") as tmp:
        result = (bench_rounds if args.rounds > 1 else bench)(args, Path(tmp))
    result = {"date": now.date().isoformat(), "started": now.isoformat(timespec="seconds"),
              "machine": machine(), "load_average_start": load_start,
              "load_average": os.getloadavg(), **result}
    out = args.out or RESULTS / ("commit-%s.json" % result["date"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    (print_rounds if args.rounds > 1 else print_table)(result)
    print("  written to %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Landing a queue of 8 branches with a verify command on a 30,000-file repository.

    python -m benchmarks.bench_queue [--files 30000] [--branches 8] [--out DIR]

Eight sessions each change 10 files of their own and commit; then `land_queue` lands them one at
a time, each verified with a command that takes a known time (`sleep 0.2`, so that what is
measured beyond it is vbranch's own work: computing the landing, switching the kept scratch
checkout, moving the refs). Reports the time per branch beyond the verify command (goal: 1 s or
less) and the disk the scratch checkout takes. The first landing also makes the scratch checkout (a
full checkout of the repository, once per repository: it is kept until `vbranch teardown`), so it is
reported apart as well: the mean over all branches, the first landing, the mean of the others, and
beside the first a plain `git worktree add` of the same repository in the same run (its baseline:
disk speed here varies several-fold from run to run).
Results go to benchmarks/results/queue-<date>.md/json, or queue-<date>-b, -c… when those exist.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import corpus

VERIFY = "sleep 0.2"
VERIFY_SECONDS = 0.2


def run(n_files: int, n_branches: int) -> dict:
    from vbranch.ops import lifecycle
    from vbranch.ops.committing import commit
    from vbranch.ops.verify import land_queue
    from vbranch.record import recording
    from vbranch.state.workspace import open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        repo = corpus.make_repo(Path(tmp) / "repo", n_files)
        stamp = iter(range(10**9))

        def at() -> str:
            return f"2026-12-01T00:00:{next(stamp):06d}"

        lifecycle.init(repo, None, at()).close()
        ws = open_workspace(repo)
        try:
            for i, paths in enumerate(corpus.pick_files(repo, n_branches, 10)):
                corpus.edit_files(repo, paths, i)
                recording.record(ws, f"s{i}", [str(repo / p) for p in paths], at())
            commit(ws, None, None, at())
            starts: list[float] = []  # land_queue asks the clock once per branch, before landing it

            def clock() -> str:
                starts.append(time.perf_counter())
                return at()

            started = time.perf_counter()
            results = land_queue(ws, None, "ff", at(), VERIFY, 120, clock=clock)
            ended = time.perf_counter()
            total = ended - started
        finally:
            ws.close()
        landed = [r for r in results if r.landed]
        worktree_s = time_worktree_add(repo, Path(tmp) / "baseline")
        scratch = repo / ".git" / "vbranch" / "verify"
        disk = int(subprocess.run(["du", "-sk", str(scratch)], capture_output=True, text=True).stdout.split()[0]) * 1024
    beyond = (total - VERIFY_SECONDS * len(results)) / max(1, len(results))
    each = [b - a - VERIFY_SECONDS for a, b in zip(starts, [*starts[1:], ended])]
    rest = each[1:]
    return {
        "files": n_files, "branches": n_branches, "landed": len(landed), "total_s": round(total, 3),
        "per_branch_beyond_verify_s": round(beyond, 3),
        "first_landing_beyond_verify_s": round(each[0], 3) if each else None,
        "other_landings_beyond_verify_mean_s": round(sum(rest) / len(rest), 3) if rest else None,
        "other_landings_beyond_verify_max_s": round(max(rest), 3) if rest else None,
        "each_beyond_verify_s": [round(x, 3) for x in each],
        "scratch_checkout_bytes": disk,
        "git_worktree_add_s": round(worktree_s, 3),
    }


def time_worktree_add(repo: Path, where: Path) -> float:
    """The baseline for the first landing, in the same run on the same disk: `git worktree add` of
    the same repository, which is what making the scratch checkout is (and what one worktree per
    session costs for every session)."""
    started = time.perf_counter()
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(where), "HEAD"], check=True)
    return time.perf_counter() - started


def io_pressure() -> float | None:
    """The share of the last minute some task waited for I/O (%), where the kernel reports it."""
    try:
        return float(Path("/proc/pressure/io").read_text().split()[2].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def free_name(out: Path, date: str) -> str:
    """queue-<date>, or the first of queue-<date>-b, -c… not taken: earlier results are kept."""
    for suffix in ["", *(f"-{c}" for c in "bcdefghijklmnopqrstuvwxyz")]:
        name = f"queue-{date}{suffix}"
        if not (out / f"{name}.md").exists() and not (out / f"{name}.json").exists():
            return name
    raise SystemExit(f"too many results for {date} in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    load_before, pressure_before = [round(x, 2) for x in os.getloadavg()], io_pressure()
    result = run(args.files, args.branches)
    result.update({
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "kernel": platform.release(), "load_average_before": load_before,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "io_pressure_some_avg60_before": pressure_before, "io_pressure_some_avg60": io_pressure(),
    })

    def goal(seconds) -> str:
        return "met" if seconds is not None and seconds <= 1.0 else "NOT met"

    lines = [
        f"# Landing queue, {result['date']}", "",
        f"    python -m benchmarks.bench_queue --files {args.files} --branches {args.branches}", "",
        f"{result['machine']}, kernel {result['kernel']}, load average {result['load_average_before']} before and "
        f"{result['load_average']} after; I/O pressure (some, avg60) {result['io_pressure_some_avg60_before']} % "
        f"before and {result['io_pressure_some_avg60']} % after.", "",
        f"- {result['branches']} branches of 10 files each on a {result['files']}-file repository, verify command "
        f"`{VERIFY}`: {result['landed']} landed in {result['total_s']} s.",
        f"- Per branch beyond the verify command, all {len(result['each_beyond_verify_s'])} landings: "
        f"{result['per_branch_beyond_verify_s']} s (goal 1 s or less: {goal(result['per_branch_beyond_verify_s'])}).",
        f"- The first landing, which makes the scratch checkout (once per repository): {result['first_landing_beyond_verify_s']} s; "
        f"`git worktree add` of the same repository, right after on the same disk: {result['git_worktree_add_s']} s.",
        f"- The other landings (scratch checkout reused): mean {result['other_landings_beyond_verify_mean_s']} s, "
        f"max {result['other_landings_beyond_verify_max_s']} s (goal: {goal(result['other_landings_beyond_verify_mean_s'])}).",
        f"- Each landing beyond the verify command: {', '.join(f'{x} s' for x in result['each_beyond_verify_s'])}.",
        f"- Scratch checkout (`.git/vbranch/verify`): {result['scratch_checkout_bytes'] / 1e6:.0f} MB.",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = free_name(out, result["date"])
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

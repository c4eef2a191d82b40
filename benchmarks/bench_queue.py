"""Landing a queue of 8 branches with a verify command on a 30,000-file repository.

    python -m benchmarks.bench_queue [--files 30000] [--branches 8] [--out DIR]

Eight sessions each change 10 files of their own and commit; then `land_queue` lands them one at
a time, each verified with a command that takes a known time (`sleep 0.2`, so that what is
measured beyond it is vbranch's own work: computing the landing, switching the kept scratch
checkout, moving the refs). Reports the time per branch beyond the verify command (goal: 1 s or
less) and the disk the scratch checkout takes. Results go to benchmarks/results/queue-<date>.md/json.
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
            started = time.perf_counter()
            results = land_queue(ws, None, "ff", at(), VERIFY, 120, clock=at)
            total = time.perf_counter() - started
        finally:
            ws.close()
        landed = [r for r in results if r.landed]
        scratch = repo / ".git" / "vbranch" / "verify"
        disk = int(subprocess.run(["du", "-sk", str(scratch)], capture_output=True, text=True).stdout.split()[0]) * 1024
    beyond = (total - VERIFY_SECONDS * len(results)) / max(1, len(results))
    return {
        "files": n_files, "branches": n_branches, "landed": len(landed), "total_s": round(total, 3),
        "per_branch_beyond_verify_s": round(beyond, 3), "scratch_checkout_bytes": disk,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    result = run(args.files, args.branches)
    result.update({
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "kernel": platform.release(), "load_average": [round(x, 2) for x in os.getloadavg()],
    })
    status = "met" if result["per_branch_beyond_verify_s"] <= 1.0 else "NOT met"
    lines = [
        f"# Landing queue, {result['date']}", "",
        f"    python -m benchmarks.bench_queue --files {args.files} --branches {args.branches}", "",
        f"{result['machine']}, kernel {result['kernel']}, load average {result['load_average']}.", "",
        f"- {result['branches']} branches of 10 files each on a {result['files']}-file repository, verify command "
        f"`{VERIFY}`: {result['landed']} landed in {result['total_s']} s.",
        f"- Per branch beyond the verify command: {result['per_branch_beyond_verify_s']} s (goal 1 s or less: {status}).",
        f"- Scratch checkout (`.git/vbranch/verify`): {result['scratch_checkout_bytes'] / 1e6:.0f} MB.",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"queue-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"queue-{result['date']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

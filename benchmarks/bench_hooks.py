"""Per-hook latency of `vbranch hook` on a large repository, next to a bare Python start.

    python -m benchmarks.bench_hooks [--files 30000] [--calls 40]

Claude Code waits for PreToolUse and PostToolUse around every tool call, so
their wall time is what a session feels. Each call here is a real process
(`python -m vbranch hook`, as the installed hooks run it) fed a payload shaped
like the CLI's, around a real edit of a tracked file (Edit) or a real command
that appends to one (Bash). Medians and 95th percentiles go to the terminal and
to benchmarks/results/hooks-<date>.json with the machine they ran on.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import corpus
from benchmarks.bench_commit import RESULTS, machine, vbranch, vbranch_env

SESSION = "bench-session"


def timed(cmd: list[str], payload: dict | None, cwd: Path, env: dict) -> float:
    data = json.dumps(payload).encode() if payload is not None else None
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=data, cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or b"systemMessage" in proc.stdout or b"deny" in proc.stdout:
        raise RuntimeError(f"hook failed: {proc.stdout!r} {proc.stderr!r}")
    return elapsed


def hook_payload(repo: Path, event: str, tool: str, tool_input: dict, call: str) -> dict:
    return {"session_id": SESSION, "cwd": str(repo), "hook_event_name": event, "tool_name": tool,
            "tool_input": tool_input, "tool_use_id": call, "transcript_path": "", "permission_mode": "default"}


def measure(repo: Path, calls: int) -> dict[str, list[float]]:
    env = vbranch_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode compiled
    hook = [sys.executable, "-m", "vbranch", "hook"]
    files = corpus.pick_files(repo, 1, calls)[0]
    times: dict[str, list[float]] = {k: [] for k in ("PreToolUse Edit", "PostToolUse Edit", "PreToolUse Bash", "PostToolUse Bash", "python -c pass")}
    timed(hook, {"session_id": SESSION, "cwd": str(repo), "hook_event_name": "SessionStart", "source": "startup"}, repo, env)
    for i, rel in enumerate(files):
        edit_round(hook, repo, rel, i, env, times)
        bash_round(hook, repo, rel, f"b{i}", env, times)
        times["python -c pass"].append(timed([sys.executable, "-c", "pass"], None, repo, env))
    return times


def edit_round(hook: list[str], repo: Path, rel: str, i: int, env: dict, times: dict) -> None:
    """PreToolUse Edit, the edit, PostToolUse Edit around a real edit."""
    path = repo / rel
    text = path.read_text()
    old = text.splitlines(keepends=True)[2]
    tool_input = {"file_path": str(path), "old_string": old, "new_string": old.rstrip("\n") + "  # edited\n", "replace_all": False}
    times["PreToolUse Edit"].append(timed(hook, hook_payload(repo, "PreToolUse", "Edit", tool_input, f"e{i}"), repo, env))
    path.write_text(text.replace(old, tool_input["new_string"], 1))
    post = {**hook_payload(repo, "PostToolUse", "Edit", tool_input, f"e{i}"), "tool_response": {"filePath": str(path), "originalFile": text}}
    times["PostToolUse Edit"].append(timed(hook, post, repo, env))


def bash_round(hook: list[str], repo: Path, rel: str, call: str, env: dict, times: dict, suffix: str = "") -> None:
    """PreToolUse Bash, the command's append, PostToolUse Bash."""
    command = {"command": f"echo '# appended {call}' >> {rel}", "description": "append"}
    times["PreToolUse Bash" + suffix].append(timed(hook, hook_payload(repo, "PreToolUse", "Bash", command, call), repo, env))
    with open(repo / rel, "a") as f:
        f.write(f"# appended {call}\n")
    times["PostToolUse Bash" + suffix].append(timed(hook, hook_payload(repo, "PostToolUse", "Bash", command, call), repo, env))


def summarize(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(1000 * statistics.median(ordered), 1), "p95_ms": round(1000 * p95, 1), "n": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vbranch-hooks-") as tmp:
        repo = corpus.make_repo(Path(tmp) / "repo", args.files)
        vbranch(repo, "init")
        times = measure(repo, args.calls)
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "files": args.files,
        "hooks": {name: summarize(samples) for name, samples in times.items()},
        "load_average": os.getloadavg(),
    }
    print(f"{'hook':22} {'median ms':>10} {'p95 ms':>8}")
    for name, row in results["hooks"].items():
        print(f"{name:22} {row['median_ms']:>10} {row['p95_ms']:>8}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"hooks-{results['date']}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

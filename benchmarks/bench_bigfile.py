"""A record of an edit of an 80,000-line file, against `git diff --no-index` of the same files.

    python -m benchmarks.bench_bigfile [--lines 80000] [--repeat 3] [--with-old] [--out FILE]

A repository holds one package-lock.json-like file of N lines (many near-duplicate
lines, one unique hash per package). Three changes are timed, each from the base:
scattered (2% of the lines edited, as a tool rewriting the file), regenerated
(every hash new) and bumped (30% of the versions changed). For each:

- `diff`: vbranch.core.ownership.diff_opcodes on the two line lists, in process;
- `record`: `python -m vbranch record` of the edited file (a whole process, with
  the state lock held while it diffs and stores: what a hook does);
- `git diff`: `git diff --no-index` of the same two files, the baseline.

Medians, and vbranch/git ratios, are printed and written to
benchmarks/results/bigfile-<date>.md with the date and the machine. `--with-old`
also times the difflib differ vbranch used before (about 50 s per change).
"""

import argparse
import datetime
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

from vbranch.core.ownership import diff_opcodes, split_lines  # noqa: E402
from vbranch.ops import lifecycle  # noqa: E402


def lockfile(n: int, seed: int, bump: float = 0.0, rehash: bool = False) -> bytes:
    vers, hashes = random.Random(seed), random.Random(seed + 1 if rehash else seed)
    out = [b"{\n", b'  "name": "app",\n', b'  "lockfileVersion": 3,\n', b'  "packages": {\n']
    k = 0
    while len(out) < n - 2:
        major = 1 + k % 7 + (vers.random() < bump)
        ver = b"%d.%d.%d" % (major, k % 13, k % 5)
        out += [
            b'    "node_modules/pkg-%d": {\n' % k,
            b'      "version": "%s",\n' % ver,
            b'      "resolved": "https://registry.example/pkg-%d/-/pkg-%d-%s.tgz",\n' % (k, k, ver),
            b'      "integrity": "sha512-%032x",\n' % hashes.getrandbits(128),
            b'      "dev": true,\n',
            b'      "license": "MIT"\n',
            b"    },\n",
        ]
        k += 1
    return b"".join(out[: n - 2] + [b"  }\n", b"}\n"])


def scattered(base: bytes, seed: int) -> bytes:
    rnd = random.Random(seed)
    lines = split_lines(base)
    for n in rnd.sample(range(len(lines)), len(lines) // 50):
        lines[n] = lines[n].replace(b'"', b"'")
    return b"".join(lines)


def old_diff_opcodes(a, b):
    """vbranch's differ until issue 11: common prefix and suffix trimmed, then difflib."""
    import difflib

    start, limit = 0, min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    matcher = difflib.SequenceMatcher(None, a[start:end_a], b[start:end_b], autojunk=False)
    return [op for op in matcher.get_opcodes() if op[0] != "equal"]


def git(repo, *args, check=True):
    return subprocess.run(["git", "-C", str(repo), *args], check=check, capture_output=True).stdout


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def changed(ops):
    return sum(i2 - i1 + j2 - j1 for _tag, i1, i2, j1, j2 in ops)


def run(lines: int, repeat: int, with_old: bool) -> list[dict]:
    base = lockfile(lines, seed=1)
    cases = {
        "scattered": scattered(base, seed=2),
        "regenerated": lockfile(lines, seed=1, rehash=True),
        "bumped": lockfile(lines, seed=1, bump=0.3),
    }
    env = dict(os.environ, VBRANCH_WATCHER="off", PYTHONPATH=str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, new in cases.items():
            repo = Path(tmp) / name
            repo.mkdir()
            git(repo, "init", "-q", "-b", "main")
            git(repo, "config", "user.name", "Bench")
            git(repo, "config", "user.email", "bench@example.invalid")
            (repo / "package-lock.json").write_bytes(base)
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "base")
            (Path(tmp) / f"{name}.new").write_bytes(new)
            lifecycle.init(repo, None, "2026-01-01T00:00:00").close()
            a, b = split_lines(base), split_lines(new)
            ops = diff_opcodes(a, b)
            row = {"case": name, "lines": len(a), "changed": changed(ops)}
            row["diff"] = timed(lambda: diff_opcodes(a, b), repeat)
            row["git diff"] = timed(
                lambda: git(repo, "diff", "--no-index", "--", "package-lock.json", f"../{name}.new", check=False), repeat
            )

            def record():
                # Back to the base, then the edit; only the record is timed.
                (repo / "package-lock.json").write_bytes(base)
                subprocess.run([sys.executable, "-m", "vbranch", "record", "--session", "s", "package-lock.json"],
                               cwd=repo, env=env, check=True, capture_output=True)
                (repo / "package-lock.json").write_bytes(new)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "vbranch", "record", "--session", "s", "package-lock.json"],
                               cwd=repo, env=env, check=True, capture_output=True)
                return time.perf_counter() - start

            row["record"] = statistics.median(record() for _ in range(repeat))
            if with_old:
                row["old diff"] = timed(lambda: old_diff_opcodes(a, b), 1)
                row["old changed"] = changed(old_diff_opcodes(a, b)) if row["old diff"] < 5 else None
            rows.append(row)
            print(f"{name}: " + ", ".join(f"{k} {v:.3f}s" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                                          if k != "case"), flush=True)
    return rows


def report(rows: list[dict], args, now) -> str:
    cols = ["diff", "record", "git diff"] + (["old diff"] if args.with_old else [])
    out = [f"# bigfile benchmark, {now.date().isoformat()}", "",
           f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
           f"Python {platform.python_version()}, {git(ROOT, '--version').decode().strip()}. "
           f"Load average at the start: {os.getloadavg()[0]:.1f}. Median of {args.repeat}.", "",
           "| change | lines | changed lines | " + " | ".join(f"{c} (s)" for c in cols)
           + " | diff / git diff | record / git diff |",
           "|" + " --- |" * (len(cols) + 5)]
    for r in rows:
        out.append(f"| {r['case']} | {r['lines']} | {r['changed']} | " + " | ".join(f"{r[c]:.3f}" for c in cols)
                   + f" | {r['diff'] / r['git diff']:.1f} | {r['record'] / r['git diff']:.1f} |")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=80_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-old", action="store_true", help="also time the old difflib differ (slow)")
    parser.add_argument("--out", type=Path, help="result file (default: benchmarks/results/bigfile-<date>.md)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc)
    text = report(run(args.lines, args.repeat, args.with_old), args, now)
    print(text)
    if not args.no_write:
        out = args.out or RESULTS / f"bigfile-{now.date().isoformat()}.md"
        out.write_text(text)
        print(f"written to {out}")


if __name__ == "__main__":
    main()

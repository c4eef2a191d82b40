"""One shared directory with vbranch against one git worktree per session, same work, same run.

    python -m benchmarks.compare [--quick] [--sessions 1,2,4,8,16] [--out benchmarks/results]

For each number of sessions N, both strategies get a fresh copy of a corpus
built from this interpreter's standard library and the same plan of changes
(benchmarks/workload.py); sessions are separate processes working at once
(benchmarks/session.py, strategies.py), each firing its next tool call the moment
the last one returns: the worst case. Then vbranch alone at the largest N, paced:
each session waits 0.5-2.5 s before each tool call, as an agent's model turn keeps
its calls apart (faster than most agents: the hooks are measured under more load
than a working day brings). Then a same-line overlap between two sessions, the
per-worktree environment cost, and how vbranch's commit and hooks scale with
repository size (scaling.py). Writes compare-<date>.json,
compare-<date>.md and PNG charts to --out, and prints a table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import report, scaling, stdcorpus, strategies, workload
from .measure import Timer, load, machine, out

RESULTS = Path(__file__).resolve().parent / "results"

FULL = {"sessions": [1, 2, 4, 8, 16], "corpus_limit": None, "params": workload.Params(),
        "sizes": [1000, 10000, 30000, 100000], "changed": [1, 10, 100, 1000], "changed_at": 10000, "repeat": 3,
        "env_at": [2], "env_with_pip": True, "think": (0.5, 2.5)}
# Tiny and fast, for CI: the same code paths, numbers that mean little.
QUICK = {"sessions": [1, 2], "corpus_limit": 120,
         "params": workload.Params(new_files=1, own_edits=1, spread_shared=0, adjacent_shared=1),
         "sizes": [500], "changed": [1, 10], "changed_at": 500, "repeat": 1, "env_at": [1], "env_with_pip": False,
         "think": (0.01, 0.05)}
# Two sessions, one line: only the shared edit matters here (plus one edit of each session's own).
OVERLAP_PARAMS = workload.Params(new_files=0, own_edits=1, spread_shared=1, adjacent_shared=0, bash=False)


BOTH = ("worktrees", "vbranch")


def run_pair(work: Path, template: Path, plan: dict, step, env: dict | None, order: tuple[str, ...] = BOTH) -> dict:
    """The strategies, in this order, on fresh copies of the corpus, with the same plan."""
    work.mkdir(parents=True)
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan))
    runs = {}
    for strategy in order:
        repo = stdcorpus.copy(template, work / strategy / "repo")
        try:
            if strategy == "worktrees":
                runs[strategy] = strategies.run_worktrees(repo, template, plan, plan_file, step, env)
            else:
                runs[strategy] = strategies.run_vbranch(repo, template, plan, plan_file, step)
        except Exception as error:  # one broken run must not cost the rest of a long benchmark
            runs[strategy] = {"strategy": strategy, "n": plan["n"], "overlap": plan["overlap"],
                              "error": "".join(traceback.format_exception(error))[-3000:]}
    return runs


def run_paced(work: Path, template: Path, plan: dict, step) -> dict:
    """vbranch alone (the worktrees have no hooks to pace), each session waiting before its tool calls."""
    return {**run_pair(work, template, plan, step, None, ("vbranch",))["vbranch"], "think_s": plan["think"]}


def overlap_summary(pair: dict) -> dict:
    vb, wt = pair["vbranch"], pair["worktrees"]
    if "error" in vb or "error" in wt:
        return {"vbranch_denials": None, "vbranch_found": "run failed", "worktrees_found": "run failed"}
    denials = [e for e in vb["events"] if e["what"] == "denied"]
    vb_found = (f"found at edit time: session s{denials[0]['session']}'s Edit of {denials[0]['path']} was denied by the PreToolUse "
                f"guard {denials[0]['at']:.2f} s into the run, before anything was committed" if denials
                else "NOT found at edit time (no PreToolUse denial)")
    vb_found += "; landing conflicts: %d" % len(vb["merge_conflicts"])
    c = wt["merge_conflicts"]
    wt_found = (f"found at merge time: landing {c[0]['branch']} conflicted in {', '.join(c[0]['paths'])} {c[0]['at']:.2f} s into the "
                "run, after both sessions had finished and committed; the branch was not landed" if c
                else "not found: both branches merged without a conflict")
    return {"vbranch_denials": len(denials), "vbranch_found": vb_found, "worktrees_found": wt_found,
            "worktrees_merge_conflicts": len(c)}


def revision() -> str:
    """The vbranch code measured: this checkout's commit, and whether vbranch/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    head = out(root, "rev-parse", "--short=12", "HEAD").strip()
    dirty = out(root, "status", "--porcelain", "--", "vbranch").strip()
    return head + (" + uncommitted changes in vbranch/" if dirty else "")


def describe(params: workload.Params) -> str:
    return (f"Each session: {params.new_files} new file(s) (Write), {params.own_edits} one-line edit(s) of corpus files no other "
            f"session touches (Edit), one line in each of {params.spread_shared + params.adjacent_shared} shared file(s) (Edit; in "
            f"{params.spread_shared} the sessions' lines are {workload.SPREAD_GAP} apart, in {params.adjacent_shared} they are adjacent), "
            f"and {'one' if params.bash else 'no'} shell command writing a file (Bash: `python -c ...`). worktrees: the session works in its "
            "own `git worktree add` checkout and commits with `git add -A && git commit`; branches land with `git merge --no-edit` in the "
            "main checkout; shell commands run as `bash -c COMMAND`. vbranch: `vbranch init` and a background watcher, then every "
            "tool call goes through PreToolUse and PostToolUse, each the installed hook command (the native hook client, or `python -S .../hookclient.py hook` "
            "without a C compiler; answered by the watcher's hook server) with a payload shaped like Claude Code's; shell commands run under the installed "
            "shell prefix, the command tracer (`python -S .../trace_command.py COMMAND` with CLAUDE_CODE_SESSION_ID set), as Claude Code "
            "runs them; the Stop hook commits the session's branch; the first branch lands alone (`vbranch land BRANCH`, "
            "the slowest single landing: every other branch waits), the rest in one `vbranch land --queue --no-verify`.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N in (1, 2), tiny corpus, few changes: a smoke test")
    parser.add_argument("--sessions", help="comma-separated session counts (default 1,2,4,8,16)")
    parser.add_argument("--sizes", help="comma-separated repository sizes for the scaling part")
    parser.add_argument("--no-scaling", action="store_true", help="skip the repository-size scaling part")
    parser.add_argument("--no-paced", action="store_true", help="skip the paced run (sessions waiting between tool calls)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON, Markdown and PNGs")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.sessions:
        cfg["sessions"] = sorted({int(x) for x in args.sessions.split(",")})
    if args.sizes:
        cfg["sizes"] = [int(x) for x in args.sizes.split(",")]
    if args.no_scaling:
        cfg["sizes"] = []
    if args.no_paced:
        cfg["think"] = None
    console = Console(stderr=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    result = {"date": started.date().isoformat(), "started": started.isoformat(timespec="seconds"),
              "mode": "quick" if args.quick else "full", "command": "python -m benchmarks.compare " + " ".join(argv or sys.argv[1:]),
              "machine": machine(), "vbranch_revision": revision(), "runs": [], "final_trees_identical": {}, "env": [], "stage_s": {}}
    stages = 1 + 2 * len(cfg["sessions"]) + bool(cfg["think"]) + 2 + bool(cfg["sizes"])
    with tempfile.TemporaryDirectory(prefix="vbranch-compare-") as tmp, Progress(
            TextColumn("{task.description:<52}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("corpus from the standard library", total=stages)

        def step(text: str) -> None:
            progress.update(task, description=text)

        def advance(k: int = 1) -> None:
            progress.advance(task, k)

        tmp = Path(tmp)
        result["corpus"] = stdcorpus.build(tmp / "corpus", cfg["corpus_limit"])
        template = tmp / "corpus"
        advance()
        for i, n in enumerate(cfg["sessions"]):
            plan = workload.build(template, n, cfg["params"])
            # Environments are costly (ensurepip alone takes seconds): measured at a few N, they scale per session.
            env = {"with_pip": cfg["env_with_pip"]} if n in cfg["env_at"] else None

            def counted(text: str, n=n) -> None:
                step(f"N={n} {text}")

            with Timer() as t:
                pair = run_pair(tmp / f"n{n}", template, plan, counted, env, BOTH if i % 2 == 0 else BOTH[::-1])
            result["stage_s"][f"n{n}"] = round(t.seconds, 1)
            advance(2)
            result["runs"] += [pair["worktrees"], pair["vbranch"]]
            result["final_trees_identical"][str(n)] = pair["worktrees"].get("final_tree", 1) == pair["vbranch"].get("final_tree", 2)
            if "env" in pair["worktrees"]:
                result["env"].append(pair["worktrees"].pop("env"))
        if cfg["think"]:
            n = cfg["sessions"][-1]
            with Timer() as t:
                result["paced"] = run_paced(tmp / "paced", template, workload.paced(workload.build(template, n, cfg["params"]), cfg["think"]),
                                            lambda text: step(f"paced N={n} {text}"))
            result["stage_s"]["paced"] = round(t.seconds, 1)
            advance()
        plan = workload.build(template, 2, OVERLAP_PARAMS, overlap=True)
        with Timer() as t:
            pair = run_pair(tmp / "overlap", template, plan, lambda text: step(f"overlap {text}"), None)
        result["stage_s"]["overlap"] = round(t.seconds, 1)
        result["overlap"] = {**pair, "summary": overlap_summary(pair)}
        advance(2)
        if cfg["sizes"]:
            with Timer() as t:
                result["scaling"] = scaling.by_size(tmp / "scaling", cfg["sizes"], cfg["repeat"], step, cfg["changed"], cfg["changed_at"])
            result["stage_s"]["scaling"] = round(t.seconds, 1)
            advance()
        step("done")
    result["total_s"] = round(time.perf_counter() - t0, 1)
    result["load_average_after"] = load()
    result["workload_text"] = describe(cfg["params"])
    result["env_text"] = (
        "For each worktree, at the same time: `python -m venv` " + ("(with pip)" if cfg["env_with_pip"] else "--without-pip (quick mode)")
        + " and an editable install of the corpus's tiny package (`pip install -e WORKTREE --no-deps --no-build-isolation --no-index`; "
        "an in-tree PEP 660 backend, so nothing is downloaded). A real project's dependencies come on top.")
    result["correctness"] = report.correctness(result)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{result['date']}"
    pngs = report.charts(result, args.out, stem)
    if not pngs:
        console.print("[yellow]matplotlib is missing, so no charts were drawn: pip install matplotlib")
    report.write_json(result, args.out / f"{stem}.json")
    (args.out / f"{stem}.md").write_text(report.markdown(result, pngs))
    report.terminal(result, Console(width=None if sys.stdout.isatty() else 160))
    console.print(f"total {result['total_s']:.0f} s; written to {args.out / stem}.json, .md" + (", and charts" if pngs else ""))
    return 0 if all(result["correctness"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

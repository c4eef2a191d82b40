"""Showing the comparison: a rich table in the terminal, the JSON, a Markdown report with PNG charts."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Every figure each strategy's run must carry (the smoke test checks them).
FIGURES = ("setup_s", "edit_s", "commit_s", "land_s", "cleanup_s", "extra_disk_bytes", "change_overhead_ms",
           "lock_retries", "git_failures", "hook_failures", "merge_conflicts", "commit_blocked", "interventions",
           "landing_method", "checks", "final_tree", "command_ms", "land_each_s")
# And the vbranch runs: what `vbranch status --json` said after the Stop commits and after landing.
VBRANCH_FIGURES = ("hook_call_ms", "hook_ms_by_event", "status_after_commit", "status_after_landing", "watcher_start_s",
                   "watcher_cpu_ms_per_hook")


def mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def s(x: float) -> str:
    return f"{x:.2f} s"


def completed(result: dict) -> list[dict]:
    return [r for r in result["runs"] if "error" not in r]


def rows(result: dict) -> list[tuple]:
    """One row per (N, strategy) run: the figures shown in the terminal and the report."""
    out = []
    for r in completed(result):
        oh = r["change_overhead_ms"]
        out.append((str(r["n"]), r["strategy"], s(r["setup_s"]), s(r["edit_s"]), f"{oh['median']:.0f} / {oh['p95']:.0f} ms",
                    s(r["commit_s"]), s(r["land_s"]), s(r["cleanup_s"]), mb(r["extra_disk_bytes"]),
                    str(len(r["merge_conflicts"])), str(len(r["commit_blocked"])), str(r["interventions"]),
                    str(r["lock_retries"] + r["git_failures"] + r["hook_failures"]),
                    "yes" if all(_run_checks(r).values()) else "NO"))
    return out


HEADERS = ("N", "strategy", "set-up", "edit phase", "per change median / p95", "commit", "landing", "cleanup",
           "extra disk", "merge conflicts", "commits held back", "manual steps", "lock retries + failures", "correct")


def _run_checks(r: dict) -> dict[str, bool]:
    if "error" in r:
        return {"completed": False}
    c = r["checks"]
    found = {k: bool(c[k]) for k in ("branches_ok", "final_ok", "workdir_clean") if k in c}
    if r["strategy"] == "vbranch":  # the hook fails open, so an internal error could hide behind a right result
        found["no_hook_errors"] = r["hook_failures"] == 0 and not r.get("hook_log_errors")
        found["commands_traced"] = not r.get("untraced_commands")
        found["watcher_live"] = bool(r.get("watcher_live_throughout"))
    return found


def correctness(result: dict) -> dict[str, bool]:
    """Every correctness check of the run, flattened: name -> passed."""
    out = {}
    for r in result["runs"]:
        for k, v in _run_checks(r).items():
            out[f"n{r['n']}.{r['strategy']}.{k}"] = v
    if result.get("paced"):
        for k, v in _run_checks(result["paced"]).items():
            out[f"paced.n{result['paced']['n']}.{k}"] = v
    for n, same in result["final_trees_identical"].items():
        out[f"n{n}.final_trees_identical"] = same
    for e in result["env"]:
        out[f"n{e['sessions']}.env_editable_install"] = e["ok"]
    ov = result.get("overlap")
    if ov:
        for strategy in ("worktrees", "vbranch"):
            out[f"overlap.{strategy}.branches_ok"] = "error" not in ov[strategy] and ov[strategy]["checks"]["branches_ok"]
        out["overlap.vbranch.guard_denied_one_edit"] = ov["summary"]["vbranch_denials"] == 1
    return out


USER_HEADERS = ("N", "per tool call (Pre + Post) median / p95", "one hook call median / p95", "shell command: bare (worktrees) / traced (vbranch)",
                "commits held back", "contested after commit", "unattributed after commit", "landing one branch (median / max); in a queue, per branch")


def user_rows(result: dict) -> list[tuple]:
    """vbranch as users run it, per N: hook overhead, the tracer's command time, ambiguity, landing."""
    out = []
    for n in _both(result):
        wt, vb = _run(result, "worktrees", n), _run(result, "vbranch", n)
        oh, hk = vb["change_overhead_ms"], vb["hook_call_ms"]
        amb = vb.get("status_after_commit") or {}
        out.append((str(n), f"{oh['median']:.0f} / {oh['p95']:.0f} ms", f"{hk['median']:.0f} / {hk['p95']:.0f} ms",
                    f"{wt['command_ms']['median']:.0f} / {vb['command_ms']['median']:.0f} ms",
                    f"{len(vb['commit_blocked'])} of {n}", str(amb.get("contested", "?")), str(amb.get("unattributed", "?")),
                    _landing_cell(vb)))
    return out


def _own_and_shared(vb: dict) -> str:
    own, shared = vb.get("change_overhead_own_ms"), vb.get("change_overhead_shared_ms")
    if not own or not shared or not shared["count"]:
        return ""
    return (f"; per tool call on a file no other session writes median {own['median']:.0f} ms, p95 {own['p95']:.0f} ms, "
            f"on the shared files median {shared['median']:.0f} ms, p95 {shared['p95']:.0f} ms (sessions writing one file "
            "at once take turns: each write holds the file's lease from PreToolUse to PostToolUse)")


def _landing_cell(vb: dict) -> str:
    each, queue = vb["land_each_s"], vb.get("land_queue")
    alone = f"{_median(each):.2f} / {max(each):.2f} s" if each else "-"
    return f"{alone}; {queue['seconds'] / queue['branches']:.2f} s" if queue else alone


def _landing_words(vb: dict) -> str:
    """How vbranch landed the branches: one at a time, or the first alone and the rest in one queue."""
    each, queue = vb["land_each_s"] or [0.0], vb.get("land_queue")
    if queue:
        return (f"the first branch alone {each[0]:.2f} s, then the other {queue['branches']} in one "
                f"`vbranch land --queue --no-verify` {queue['seconds']:.2f} s, {queue['seconds'] / queue['branches']:.2f} s per branch"
                + (f"; the queue failed: {queue['error']}" if queue.get("error") else ""))
    return (f"{vb['landing_method']}; per branch median {_median(each):.2f} s, first {each[0]:.2f} s, last {each[-1]:.2f} s")


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    k = len(xs) // 2
    return xs[k] if len(xs) % 2 else (xs[k - 1] + xs[k]) / 2


def terminal(result: dict, console: Console) -> None:
    table = Table(title=f"vbranch vs git worktrees — {result['date']} ({result['mode']} mode)")
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "strategy" else "right", overflow="fold")
    for row in rows(result):
        table.add_row(*row)
    console.print(table)
    users = Table(title="vbranch as users run it: the installed hook client with the watcher live, Bash under the tracer")
    for h in USER_HEADERS:
        users.add_column(h, justify="right", overflow="fold")
    for row in user_rows(result):
        users.add_row(*row)
    console.print(users)
    for line in headline(result):
        console.print(f"• {line}")
    failed = [k for k, v in correctness(result).items() if not v]
    console.print("[bold red]FAILED checks: " + ", ".join(failed) if failed else "[green]all correctness checks passed")


def _run(result: dict, strategy: str, n: int) -> dict | None:
    return next((r for r in completed(result) if r["strategy"] == strategy and r["n"] == n), None)


def _both(result: dict) -> list[int]:
    """The session counts where both strategies completed."""
    return sorted(n for n in {r["n"] for r in completed(result)} if _run(result, "worktrees", n) and _run(result, "vbranch", n))


def headline(result: dict) -> list[str]:
    if not _both(result):
        return ["no session count completed for both strategies"]
    n = _both(result)[-1]
    wt, vb = _run(result, "worktrees", n), _run(result, "vbranch", n)
    env = result["env"][-1] if result["env"] else None
    amb = vb.get("status_after_commit") or {}
    lines = [
        f"N={n}: set-up {s(wt['setup_s'])} (worktrees) vs {s(vb['setup_s'])} (vbranch, watcher included); extra disk {mb(wt['extra_disk_bytes'])} vs {mb(vb['extra_disk_bytes'])}",
        f"N={n}: per-tool-call hook overhead (vbranch, PreToolUse + PostToolUse through the installed hook client, watcher live) "
        f"median {vb['change_overhead_ms']['median']:.0f} ms, p95 {vb['change_overhead_ms']['p95']:.0f} ms; "
        f"one hook call median {vb['hook_call_ms']['median']:.0f} ms, p95 {vb['hook_call_ms']['p95']:.0f} ms; "
        f"the watcher's CPU per hook {vb.get('watcher_cpu_ms_per_hook')} ms (the hook server's threads share one interpreter lock)"
        + _own_and_shared(vb),
        f"N={n}: the shell command took {wt['command_ms']['median']:.0f} ms bare (worktrees) and {vb['command_ms']['median']:.0f} ms "
        f"under the command tracer (vbranch), medians",
        f"N={n}: commit {s(wt['commit_s'])} (worktrees, all at once) vs {s(vb['commit_s'])} (vbranch Stop hooks); "
        f"landing {s(wt['land_s'])} vs {s(vb['land_s'])} ({_landing_words(vb)})",
        f"N={n}: merge conflicts at landing: worktrees {len(wt['merge_conflicts'])}, vbranch {len(vb['merge_conflicts'])}; "
        f"vbranch commits held back by contested changes: {len(vb['commit_blocked'])} of {n}; after the Stop commits "
        f"`vbranch status` showed {amb.get('contested', '?')} contested and {amb.get('unattributed', '?')} unattributed",
    ]
    if env:
        per_s = sum(env["per_session_s"]) / len(env["per_session_s"])
        per_b = sum(env["per_session_bytes"]) / len(env["per_session_bytes"])
        lines.append(f"per-worktree environment (venv + editable install, {env['sessions']} made at once): {s(per_s)} and {mb(per_b)} per session, "
                     f"so about {mb(n * per_b)} more for {n} worktrees; the shared directory keeps the one environment it already has")
    paced = result.get("paced")
    if paced and "error" not in paced:
        lines.append(paced_line(paced))
    ov = result.get("overlap")
    if ov:
        lines.append(f"same-line overlap: {ov['summary']['vbranch_found']}; worktrees: {ov['summary']['worktrees_found']}")
    sc = result.get("scaling")
    if sc and sc["by_size"]:
        lines.append(f"vbranch commit of {sc['per_commit_files']} files: " + ", ".join(
            f"{s(r['commit_s'])} at {r['files']:,} files (git add -A && commit {s(r['git_add_commit_s'])})" for r in sc["by_size"]))
        big = sc["by_size"][-1]
        lines.append(f"hooks of one tool call at {big['files']:,} files: Edit {big['hooks']['edit_ms']['median']:.0f} ms, "
                     f"Bash {big['hooks']['bash_ms']['median']:.0f} ms (at {sc['by_size'][0]['files']:,}: "
                     f"{sc['by_size'][0]['hooks']['edit_ms']['median']:.0f} and {sc['by_size'][0]['hooks']['bash_ms']['median']:.0f} ms)")
    return lines


def paced_line(vb: dict) -> str:
    low, high = vb["think_s"]
    return (f"N={vb['n']} paced (vbranch alone; each session waits {low:g}-{high:g} s before each tool call, as an agent's model turn "
            f"keeps its calls apart): per tool call median {vb['change_overhead_ms']['median']:.0f} ms, p95 "
            f"{vb['change_overhead_ms']['p95']:.0f} ms; one hook call median {vb['hook_call_ms']['median']:.0f} ms, p95 "
            f"{vb['hook_call_ms']['p95']:.0f} ms; the watcher's CPU per hook {vb.get('watcher_cpu_ms_per_hook')} ms" + _own_and_shared(vb))


def write_json(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, indent=1) + "\n")


def charts(result: dict, out: Path, stem: str) -> list[str]:
    """PNG charts next to the report; [] when matplotlib is missing (it is not a vbranch dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / f"{stem}-{name}.png", dpi=110)
        plt.close(fig)
        made.append(f"{stem}-{name}.png")

    ns = _both(result)
    if not ns:
        return []
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, key, title in zip(axes, ("setup_s", "edit_s", "commit_s", "land_s"),
                              ("set-up", "edit phase (all sessions)", "commit (all sessions at once)", "landing (one at a time)")):
        for strategy in ("worktrees", "vbranch"):
            ax.plot(ns, [_run(result, strategy, n)[key] for n in ns], marker="o", label=strategy)
        ax.set(title=title, xlabel="sessions", ylabel="seconds", xscale="log", xticks=ns, xticklabels=[str(n) for n in ns])
    axes[0].legend()
    save(fig, "phases")

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.plot(ns, [_run(result, "worktrees", n)["extra_disk_bytes"] / 2**20 for n in ns], marker="o", label="worktrees (checkouts)")
    envs = {e["sessions"]: sum(e["per_session_bytes"]) / 2**20 for e in result["env"]}
    if envs:
        a.plot(sorted(envs), [envs[n] + _run(result, "worktrees", n)["extra_disk_bytes"] / 2**20 for n in sorted(envs)],
               marker="o", linestyle="--", label="worktrees + per-session venvs")
    a.plot(ns, [_run(result, "vbranch", n)["extra_disk_bytes"] / 2**20 for n in ns], marker="o", label="vbranch (.git/vbranch)")
    a.set(title="extra disk", xlabel="sessions", ylabel="MB")
    a.legend()
    vb = [_run(result, "vbranch", n) for n in ns]
    b.plot(ns, [r["change_overhead_ms"]["median"] for r in vb], marker="o", label="vbranch median")
    b.plot(ns, [r["change_overhead_ms"]["p95"] for r in vb], marker="o", label="vbranch p95")
    b.plot(ns, [0 for _ in ns], marker="o", label="worktrees (no hooks)")
    b.set(title="per-change overhead (PreToolUse + PostToolUse)", xlabel="sessions", ylabel="ms")
    b.legend()
    save(fig, "disk-overhead")

    sc = result.get("scaling")
    if sc and sc["by_size"]:
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
        sizes = [r["files"] for r in sc["by_size"]]
        a.plot(sizes, [r["commit_s"] for r in sc["by_size"]], marker="o", label=f"vbranch commit ({sc['per_commit_files']} files)")
        a.plot(sizes, [r["git_add_commit_s"] for r in sc["by_size"]], marker="o", label="git add -A && git commit")
        a.plot(sizes, [r["hooks"]["edit_ms"]["median"] / 1000 for r in sc["by_size"]], marker="o", label="Edit hooks (pre+post)")
        a.plot(sizes, [r["hooks"]["bash_ms"]["median"] / 1000 for r in sc["by_size"]], marker="o", label="Bash hooks (pre+post)")
        a.set(title="against repository size", xlabel="files in repository", ylabel="seconds", xscale="log")
        a.legend(fontsize=8)
        if sc["by_changed"]:
            ks = [r["changed"] for r in sc["by_changed"]]
            b.plot(ks, [r["commit_s"] for r in sc["by_changed"]], marker="o", label="vbranch commit")
            b.plot(ks, [r["record_s"] for r in sc["by_changed"]], marker="o", label="vbranch record")
            b.set(title=f"against changed files ({sc['by_changed'][0]['repo_files']:,}-file repository)",
                  xlabel="changed files", ylabel="seconds", xscale="log")
            b.legend(fontsize=8)
        save(fig, "scaling")
    return made


def markdown(result: dict, pngs: list[str]) -> str:
    m = result["machine"]
    lines = [f"# vbranch vs one git worktree per session — {result['date']}", "",
             f"`{result['command']}` ({result['mode']} mode), run {result['started']} in {result['total_s']:.0f} s.", "",
             f"Machine: {m['platform']}, {m['cpus']} CPUs, {(m['memory_bytes'] or 0) / 2**30:.1f} GiB memory, "
             f"Python {m['python']}, {m['git']}. Load average (1/5/15 min) at the start {m['load_average']}, at the end "
             f"{result.get('load_average_after')}: other work on the machine slows both strategies alike.", "",
             f"vbranch measured: {result['vbranch_revision']}.", "",
             f"Corpus: {result['corpus']['files']:,} files ({result['corpus']['bytes'] / 2**20:.1f} MB of standard library "
             f"from `{result['corpus']['stdlib']}`), one commit.", "",
             "## Headline", ""] + [f"- {line}" for line in headline(result)] + ["", "## Per run", "",
             "Times are wall-clock for all sessions together; each session is its own process and all run each phase at once.", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(result)]
    lines += ["", "## vbranch as users run it", "",
              "Every hook is the command `vbranch install` writes (the hook client: the native one, or `python -S .../hookclient.py hook` without a C compiler), "
              "answered by the watcher's hook server (VBRANCH_HOOK_SERVER=only: a call the server did not answer counts as a "
              "hook failure); every Bash command runs under the installed shell prefix, the command tracer "
              "(`python -S .../trace_command.py '<command>'`, CLAUDE_CODE_SESSION_ID set). Each session's one command is the first "
              "traced command in a freshly initialised repository, so its time includes building the tracer's seccomp filter "
              "(once per repository; `python -m benchmarks.bench_tracer` measures the steady state). Contested and unattributed: "
              "`vbranch status --json` right after all Stop hooks committed.", "",
              "| " + " | ".join(USER_HEADERS) + " |", "|" + "---|" * len(USER_HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in user_rows(result)]
    lines += ["", "## What each session did", "", result["workload_text"], "", "## Findings", ""]
    lines += [f"- {f}" for f in findings(result)] or ["- none"]
    lines += ["", "## Correctness", ""]
    checks = correctness(result)
    failed = [k for k, v in checks.items() if not v]
    lines.append(f"{len(checks) - len(failed)} of {len(checks)} checks passed" + (f"; FAILED: {', '.join(failed)}" if failed else "") + ".")
    lines += ["", "Per branch: the diff base..branch holds exactly the session's intended files and contents. Final: the target after "
              "landing holds exactly every session's change, and both strategies' final trees are identical (tree ids). Where git's "
              "merge conflicted, the conflict is counted and resolved with the content both sessions meant, as a person would.", ""]
    if result.get("overlap"):
        ov = result["overlap"]["summary"]
        lines += ["## Two sessions editing the same line", "", f"- vbranch: {ov['vbranch_found']}", f"- worktrees: {ov['worktrees_found']}", ""]
    if result["env"]:
        lines += ["## Per-worktree environment cost", "", result["env_text"], "",
                  "| sessions | wall | per session (mean) | disk per session | disk in all |", "|---|---|---|---|---|"]
        for e in result["env"]:
            k = len(e["per_session_s"])
            lines.append(f"| {e['sessions']} | {s(e['wall_s'])} | {s(sum(e['per_session_s']) / k)} | "
                         f"{mb(sum(e['per_session_bytes']) / k)} | {mb(sum(e['per_session_bytes']))} |")
        lines.append("")
    sc = result.get("scaling")
    if sc:
        lines += ["## Scaling", "", f"Synthetic repositories (benchmarks/corpus.py). Commit: `vbranch commit --all` of "
                  f"{sc['per_commit_files']} freshly edited files recorded for one session, median of {sc['repeat']}. Hooks: one Edit and "
                  "one Bash tool call (PreToolUse + PostToolUse, each a spawned `python -m vbranch hook`).", "",
                  "| files | vbranch init | vbranch commit | git add -A && commit | Edit hooks | Bash hooks |", "|---|---|---|---|---|---|"]
        for r in sc["by_size"]:
            lines.append(f"| {r['files']:,} | {s(r['init_s'])} | {s(r['commit_s'])} | {s(r['git_add_commit_s'])} | "
                         f"{r['hooks']['edit_ms']['median']:.0f} ms | {r['hooks']['bash_ms']['median']:.0f} ms |")
        if sc["by_changed"]:
            lines += ["", "| changed files | vbranch record | vbranch commit |", "|---|---|---|"]
            lines += [f"| {r['changed']:,} | {s(r['record_s'])} | {s(r['commit_s'])} |" for r in sc["by_changed"]]
        lines.append("")
    if pngs:
        lines += ["## Charts", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    else:
        lines += ["Charts were not drawn: matplotlib is missing (`pip install matplotlib`).", ""]
    return "\n".join(lines)


def findings(result: dict) -> list[str]:
    """The notable events of the runs, in words, one line per kind per run."""
    out = []
    for r in result["runs"] + [result["overlap"][k] for k in ("worktrees", "vbranch") if result.get("overlap")]:
        tag = f"N={r['n']} {r['strategy']}" + (" (overlap variant)" if r["overlap"] else "")
        if "error" in r:
            out.append(f"{tag}: the run failed: {r['error'].strip().splitlines()[-1]}")
            continue
        if r["merge_conflicts"] and not r["overlap"]:  # the overlap variant's conflict has its own section
            paths = sorted({p for c in r["merge_conflicts"] for p in c["paths"]})
            out.append(f"{tag}: {len(r['merge_conflicts'])} of {r['n']} landings conflicted in git's merge ({', '.join(paths)}); "
                       "resolved by writing both sessions' lines")
        if r["commit_blocked"]:
            paths = sorted({p for b in r["commit_blocked"] for p in b["paths"]})
            out.append(f"{tag}: {len(r['commit_blocked'])} of {r['n']} Stop-hook commits held back contested changes "
                       f"({', '.join(paths[:6])}{' …' if len(paths) > 6 else ''}); resolved with "
                       f"{r['interventions'] - len(r['merge_conflicts'])} `vbranch assign` and `vbranch commit` in {r.get('resolve_s', 0):.1f} s")
        for when in ("status_after_commit", "status_after_landing"):
            amb = r.get(when) or {}
            if amb.get("contested") or amb.get("unattributed"):
                out.append(f"{tag}: `vbranch status` {when.removeprefix('status_').replace('_', ' ')}: {amb['contested']} contested "
                           f"({', '.join(amb['contested_paths'][:6])}), {amb['unattributed']} unattributed "
                           f"({', '.join(amb['unattributed_paths'][:6])})")
        adds = [e for e in r["events"] if e["what"].startswith("git worktree add failed")]
        if adds:
            out.append(f"{tag}: {len(adds)} concurrent `git worktree add` failed and were retried: "
                       + "; ".join(sorted({e.get('stderr', '')[:160] for e in adds})))
        for key in ("lock_retries", "git_failures", "hook_failures", "hook_log_errors"):
            if r.get(key) and not (key == "git_failures" and r[key] == len(adds)):
                out.append(f"{tag}: {key.replace('_', ' ')}: {r[key]}")
        each = r.get("land_each_s") or []
        if r["strategy"] == "vbranch" and r.get("land_queue"):
            out.append(f"{tag}: landing: {_landing_words(r)}")
        elif r["strategy"] == "vbranch" and len(each) > 1:
            out.append(f"{tag}: landing one branch took {each[0]:.2f} s for the first and {each[-1]:.2f} s for the last "
                       f"(slowest {max(each):.2f} s; {r['landing_method']})")
        if r.get("busy_retries"):
            paths = sorted({e["path"] for e in r["events"] if e["what"].endswith("retried") and "path" in e})
            out.append(f"{tag}: {r['busy_retries']} edit(s) denied because another session was writing the same file "
                       f"({', '.join(paths)}) for longer than the lease wait; retried by the session")
        denied = [e for e in r["events"] if e["what"] == "denied"]
        if denied and not r["overlap"]:
            out.append(f"{tag}: {len(denied)} edit(s) denied for good, so not made: "
                       + "; ".join(f"s{e['session']} {e['path']}: {e['reason'][:120]}" for e in denied[:4]))
        for e in r["events"]:
            if e["what"] not in ("commit blocked", "denied") and not e["what"].endswith("retried"):
                out.append(f"{tag}: {e['what']}: {json.dumps({k: v for k, v in e.items() if k != 'what'})[:300]}")
    return out

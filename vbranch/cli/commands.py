"""Command line: argument parsing, then one library call per subcommand, inside one error handler.

Modules are imported inside each command so that `vbranch record` and the
hooks load only what they use.
"""
from __future__ import annotations

import os
import sys

from vbranch.errors import Blocked, UsageError, VbranchError
from vbranch.state.clock import now


def session_from_env(given: str | None) -> str | None:
    """The session named on the command line, or the agent's session of this process."""
    return given or os.environ.get("VBRANCH_SESSION") or os.environ.get("CLAUDE_CODE_SESSION_ID")


def cmd_init(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.lifecycle import init
    from vbranch.state import config
    from vbranch.state.workspace import find_repo

    found = find_repo(args.C)
    for problem in config.problems(found[1] / "vbranch") if found else []:
        ui.line(f"warning: {problem} (init rewrites the file with the values in effect)", style="yellow")
    ws = init(args.C, args.target, now())

    ui.line(f"vbranch set up in {ws.top}: base {(ws.base or '(no commits)')[:12]}, target {ws.target or '-'}")
    ui.line("HEAD now points at the vbranch workspace; `vbranch teardown` returns to your branch.")
    return 0


def cmd_status(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.status import collect, status
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    if args.json:
        ui.write_raw(status(ws, now()).model_dump_json(indent=2) + "\n")
    else:
        ui.show_status(collect(ws, now()))
    return 0


def cmd_record(args) -> int:
    from vbranch.record.recording import record
    from vbranch.state.workspace import open_workspace

    session = session_from_env(args.session)
    if not session:
        raise UsageError("record needs a session", hint="pass --session NAME (or set VBRANCH_SESSION)")
    changed = record(open_workspace(args.C), session, args.paths, now(), branch=args.branch)
    if args.verbose:
        from vbranch.cli import ui

        ui.line(f"recorded {len(changed)} changed path(s) for {session}")
    return 0


def cmd_run(args) -> int:
    from vbranch.record.recording import run
    from vbranch.state.workspace import open_workspace

    session = session_from_env(args.session)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not session or not command:
        raise UsageError("run needs a session and a command", hint="vbranch run --session NAME -- CMD ...")
    code, changed = run(open_workspace(args.C), session, command, now(), branch=args.branch)
    if args.verbose:
        from vbranch.cli import ui

        ui.note(f"vbranch: {len(changed)} path(s) changed by the command, recorded for {session}")
    return code


def cmd_commit(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.committing import commit
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    names = None if args.all else args.branches or _session_branches(ws, session_from_env(args.session))
    report = commit(ws, names, args.message, now())
    for name, oid, paths in report.committed:
        ui.line(f"{name}: committed {oid[:12]} ({len(paths)} file{'s' if len(paths) != 1 else ''})")
    for name in report.unchanged:
        ui.line(f"{name}: nothing to commit")
    for name in getattr(report, "unapplied", []):
        ui.line(f"{name}: unapplied, not committed (`vbranch apply {name}` brings it back)")
    if report.held_back:
        raise Blocked(
            "contested changes held back (each branch committed all but these):\n  " + "\n  ".join(_describe_blocked(ws, report.held_back)),
            hint=_settle_hint(report.held_back),
        )
    return 0


def _settle_hint(held_back) -> str:
    first = next(iter(held_back.values()))[0]
    spec = f"{first.path}:{first.lines[0]}-{first.lines[1]}" if first.lines else first.path
    return (
        f"the session that made a change settles it (`vbranch claim {spec}`; the other one runs `vbranch disown "
        f"{spec}`), or give it to one branch with `vbranch assign {spec} BRANCH`"
    )


def _describe_blocked(ws, blocked) -> list[str]:
    """One line per contested change: path, lines, and every branch with its sessions."""
    from vbranch.state.workspace import owner_label

    sessions = ws.store.sessions()

    def who(owner: int) -> str:
        return owner_label(ws, owner, sessions)

    lines = []
    for name, found in blocked.items():
        for c in found:
            where = f"lines {c.lines[0]}-{c.lines[1]}" if c.lines else "(whole file or removed lines)"
            lines.append(f"{name}: {c.path} {where} changed by {' and '.join(who(o) for o in c.owners)}")
    return lines


def _session_branches(ws, session: str | None) -> list[str] | None:
    """Without names, commit the calling session's branch if there is one; else all."""
    known = ws.store.session(session) if session else None
    return [ws.store.branch_by_id(known.branch_id).name] if known and known.branch_id else None


def cmd_branch(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops import branching
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    if args.action == "new":
        row = branching.new_branch(ws, args.name, now())
        ui.line(f"created {row.name}")
    elif args.action == "list":
        for row in ws.store.branches():
            sessions = [s.id for s in ws.store.sessions() if s.branch_id == row.id]
            ui.line(f"{row.name}\t{'applied' if row.applied else 'unapplied'}\t{', '.join(sessions)}")
    elif args.action == "rename":
        if not args.new:
            raise UsageError("rename needs the old and the new name", hint="vbranch branch rename OLD NEW")
        branching.rename_branch(ws, args.name, args.new, now())
        ui.line(f"renamed {args.name} to {args.new}")
    elif args.action == "delete":
        branching.delete_branch(ws, args.name, now(), force=args.force)
        ui.line(f"deleted {args.name}")
    return 0


def cmd_assign(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.branching import assign
    from vbranch.state.workspace import open_workspace

    paths = assign(open_workspace(args.C), args.target, args.branch, now())
    ui.line(f"assigned {len(paths)} file(s) to {args.branch}")
    return 0


def cmd_settle(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.branching import settle_lines
    from vbranch.state.workspace import open_workspace

    session = session_from_env(args.session)
    if not session:
        raise UsageError("which session?", hint="pass --session S (inside Claude Code, CLAUDE_CODE_SESSION_ID says it)")
    claim = args.command_name == "claim"
    paths = settle_lines(open_workspace(args.C), args.target, session, claim, now())
    what = "claimed for" if claim else "disowned by"
    ui.line(f"{len(paths)} file(s) {what} session {session}" + (f": {', '.join(paths)}" if paths else " (nothing of it was ambiguous there)"))
    return 0


def cmd_rescue(args) -> int:
    from vbranch.cli import ui
    from vbranch.git.worktree import resolve
    from vbranch.ops.rescue import rescue
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    if args.list:
        from vbranch.ops.status import collect

        for r in collect(ws, now())["rescue"]:
            ui.line(f"{r['path']}: {r['branch']}'s changes, taken away at {r['at']}" + (f" by session {r['by']}" if r["by"] else ""))
        return 0
    paths = [resolve(ws.top, p) for p in args.paths] or None
    done, clashing = rescue(ws, paths, now())
    for path in done:
        ui.line(f"put back: {path}")
    if clashing:
        raise Blocked(
            "not put back (they clash with changes made since, or a tool is writing them): " + ", ".join(clashing),
            hint="`vbranch rescue --list` shows what is kept; edit the file by hand, or try again in a moment",
        )
    if not done:
        ui.line("nothing to put back")
    return 0


def cmd_memory_log(args) -> int:
    from vbranch.hooks.harness import cli_log

    return cli_log(args)


def cmd_memory_restore(args) -> int:
    from vbranch.hooks.harness import cli_restore

    return cli_restore(args)


def cmd_log(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.branching import branch_log
    from vbranch.state.workspace import open_workspace

    ui.write_raw(branch_log(open_workspace(args.C), args.branch))
    return 0


def cmd_diff(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.branching import branch_diff
    from vbranch.state.workspace import open_workspace

    ui.write_raw(branch_diff(open_workspace(args.C), args.branch, now()))
    return 0


def cmd_teardown(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.lifecycle import teardown
    from vbranch.state.workspace import open_workspace

    origin = teardown(open_workspace(args.C), now())
    ui.line(f"HEAD is back on {origin}; every working file is as it was, and the branches keep their commits.")
    return 0


def cmd_hook(args) -> int:
    # Exit 2 would block the agent's tool call: whatever goes wrong here, exit 1 (fails open).
    agent = getattr(args, "agent", "claude")
    try:
        if agent != "claude":
            from vbranch.agents import main as agent_main

            return agent_main(agent)
        from vbranch.hooks.handler import run

        return run()
    except BaseException as error:  # noqa: BLE001
        sys.stderr.write(f"vbranch hook: internal error: {error!r}\n")
        from vbranch.agents import fail_open

        sys.stdout.write(fail_open(agent))  # Cursor wants JSON on every path
        return 1


def cmd_install(args) -> int:
    from vbranch import agents
    from vbranch.cli import ui
    from vbranch.state.workspace import find_repo

    found = find_repo(".")
    if found is None:
        raise UsageError("not inside a git repository", hint="run vbranch install in the repository the sessions share")
    agent = agents.get(args.agent)
    path = (agent.uninstall if args.uninstall else agent.install)(found[0], args.scope)
    ui.line(f"{'removed vbranch hooks from' if args.uninstall else 'vbranch hooks installed in'} {path}")
    if args.uninstall:
        return 0
    if args.agent == "claude":
        from vbranch.agents.claude_code import foreign_prefix

        other = foreign_prefix(path)
        if other:
            ui.line(
                f"not installed: the command tracer (CLAUDE_CODE_SHELL_PREFIX is already {other!r} in {path}); "
                "Bash commands will be attributed by time windows"
            )
    if agent.note:
        ui.line(agent.note)
    return 0


def cmd_doctor(args) -> int:
    import json

    from vbranch.cli import doctor, ui

    report = doctor.run(args.C)
    if args.json:
        ui.write_raw(json.dumps(report, indent=2) + "\n")
    else:
        ui.show_doctor(report)
    return report["exit_code"]  # 0 nothing failed (warnings allowed), 1 a problem


def cmd_watch(args) -> int:
    import functools

    from vbranch.cli import served
    from vbranch.cli.watch import cmd_watch as watch

    parser = functools.cache(functools.partial(build_parser, quiet=True))  # built once (~20 ms), for every command served
    return watch(args, serve_command=lambda cwd, request: served.answer(cwd, request, parser, run))


def cmd_demo(args) -> int:
    from vbranch.cli.demo import demo

    return demo(args.dir)


# Landing and recovery: land, update, oplog, undo, restore, push, apply, unapply.


def _warn(lines: list[str]) -> None:
    from vbranch.cli import ui

    for text in lines:
        ui.note(f"vbranch: {text}")


def cmd_land(args) -> int:
    from vbranch.ops.landing import land
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    if args.log:
        return _show_land_log(ws, args.branch)
    if args.verify is not None and args.no_verify:
        raise UsageError("--verify and --no-verify contradict each other")
    command = "" if args.no_verify else args.verify
    if command is None:
        from vbranch.state.config import load

        command = load(ws.state_dir)["land_verify"]
    if args.queue:
        return _land_queue(ws, args, command)
    if not args.branch:
        raise UsageError("name the branch to land", hint="`vbranch land BRANCH`, or `vbranch land --queue` for every ready branch")
    if len(args.branch) > 1:
        if command:  # each needs its own verification on top of the ones before: the queue's work
            raise UsageError("land verifies one branch at a time",
                             hint="`vbranch land --queue BRANCH...` verifies each on top of the ones before")
        from vbranch.ops.landing import land_together

        for report in land_together(ws, args.branch, args.mode, now()):  # all or none, one undo
            _show_landed(report)
        return 0
    if command:
        from vbranch.ops.verify import land_verified

        _show_landed(land_verified(ws, args.branch[0], args.mode, now(), command, args.timeout))
    else:
        _show_landed(land(ws, args.branch[0], args.mode, now()))
    return 0


def _land_queue(ws, args, command: str) -> int:
    from vbranch.cli import ui
    from vbranch.ops.verify import land_queue

    results = land_queue(ws, args.branch or None, args.mode, now(), command, args.timeout, clock=now)
    if not results:
        ui.line("nothing to land: no applied branch has commits and nothing contested")
    for result in results:
        if result.landed:
            _show_landed(result.report)
        else:
            ui.line(f"held out {result.branch}: {result.reason.splitlines()[0]}", style="red")
    held = [r.branch for r in results if not r.landed]
    if held:
        ui.line(f"{len(held)} branch(es) held out; `vbranch land --log BRANCH` shows a failed verification's output")
    return 1 if held else 0


def _show_land_log(ws, branches: list[str]) -> int:
    from vbranch.cli import ui

    if len(branches) != 1:
        raise UsageError("--log takes one branch", hint="vbranch land --log BRANCH")
    found = ws.store.verification(branches[0])
    if found is None:
        raise UsageError(f"{branches[0]} has not been verified", hint=f"`vbranch land {branches[0]} --verify CMD`")
    result = "passed" if found.exit_code == 0 else f"exit {found.exit_code}" if found.exit_code is not None else "timed out or did not start"
    ui.line(f"{found.branch}: `{found.command}` {result} at {found.at} on {(found.target or '(no commits)')[:12]}"
            + (" (landed)" if found.landed else ""))
    ui.write_raw(found.tail if found.tail.endswith("\n") else found.tail + "\n" if found.tail else "(no output)\n")
    return 0


def _show_landed(report) -> None:
    from vbranch.cli import ui

    how = {"ff": "fast-forward", "merge": "merge commit", "squash": "squashed"}[report.mode]
    if report.committed:
        ui.line(f"{report.branch}: committed its changes as {report.committed[:12]}")
    checked = f", `{report.verified}` passed" if report.verified else ""
    ui.line(f"landed {report.branch} on {report.target}: {(report.old or '(none)')[:12]} -> {report.new[:12]} ({how}{checked})")
    for name, head in sorted(report.rebased.items()):
        ui.line(f"  {name} now starts from it ({head[:12]})")
    _warn(report.warnings)


def cmd_update(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.landing import update
    from vbranch.state.workspace import open_workspace

    report = update(open_workspace(args.C), now())
    if report.old == report.new:
        ui.line(f"{report.target} has not moved: up to date")
    else:
        ui.line(f"{report.target}: {(report.old or '(none)')[:12]} -> {(report.new or '')[:12]}; the branches now start from it")
        if report.written:
            ui.line(f"  brought its changes into {len(report.written)} working file(s): {', '.join(report.written[:10])}")
        for name, how in sorted(report.retired.items()):
            ui.line(f"  retired {name}: already on the target (found by {how}); its git branch is kept")
    _warn(report.warnings)
    return 0


def _open_any(args):
    """The workspace, even torn down (undo can bring it back)."""
    from vbranch.errors import NotInitialized
    from vbranch.state.lock import StateLock
    from vbranch.state.store import Store
    from vbranch.state.workspace import Workspace, find_repo

    found = None if "GIT_DIR" in os.environ else find_repo(args.C)
    if found is None:
        from vbranch.git import gitcli

        found = gitcli.discover(args.C)
    top, git_dir = found
    db = git_dir / "vbranch" / "state.db"
    if not db.exists():
        raise NotInitialized(f"vbranch is not set up in {top}", hint="run `vbranch init` first")
    return Workspace(top, git_dir, Store(db), StateLock(git_dir / "vbranch" / "lock"))


def cmd_oplog(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.oplog import describe

    ws = _open_any(args)
    rows = ws.store.op_rows()
    if args.json:
        import json

        data = [{"id": r.id, "at": r.at, "op": r.op, "detail": r.detail, "undone_by": r.undone_by, "restorable": r.restorable} for r in rows]
        ui.write_raw(json.dumps(data, indent=2) + "\n")
        return 0
    for r in rows[-args.limit:] if args.limit else rows:
        mark = f"  (undone by {r.undone_by})" if r.undone_by else ""
        ui.line(f"{r.id:>5}  {r.at}  {describe(r.op, r.detail)}{mark}")
    return 0


def _show_restore(report, what: str) -> None:
    from vbranch.cli import ui

    ui.line(what)
    if report.written:
        ui.line(f"  put back {len(report.written)} file(s) vbranch had written: {', '.join(report.written[:10])}")
    if report.kept:
        ui.line(f"  kept as they are (changed after that operation): {', '.join(report.kept[:10])}")
    _warn(report.warnings)


def cmd_undo(args) -> int:
    from vbranch.ops.undo import undo

    report = undo(_open_any(args), now())
    _show_restore(report, f"undid operation {report.restored}")
    return 0


def cmd_restore(args) -> int:
    from vbranch.ops.undo import restore

    report = restore(_open_any(args), args.op, now())
    _show_restore(report, f"restored the state after operation {report.restored}")
    return 0


def cmd_push(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops.remote import push
    from vbranch.state.workspace import open_workspace

    report = push(open_workspace(args.C), args.branch, args.remote, now())
    ui.line(f"pushed {report.branch} ({report.head[:12]}) to {report.remote}")
    if report.uncommitted:
        ui.line(f"  not in that commit (uncommitted): {', '.join(report.uncommitted[:10])}; `vbranch commit {report.branch}` first")
    return 0


def cmd_apply(args) -> int:
    from vbranch.cli import ui
    from vbranch.ops import branching
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    written = (branching.unapply if args.unapply else branching.apply)(ws, args.branch, now())
    verb = "took out of" if args.unapply else "brought back into"
    ui.line(f"{'unapplied' if args.unapply else 'applied'} {args.branch}: {verb} {len(written)} working file(s)")
    return 0


def _add_landing_parsers(sub) -> None:
    p = sub.add_parser("land", help="integrate a branch into the target; the others follow")
    p.add_argument("branch", metavar="BRANCH", nargs="*", help="the branch; several unverified ones land in order as one "
                   "operation, all or none (with --queue: the branches, in order)")
    p.add_argument("--verify", metavar="CMD", help="land only if this shell command exits 0 on the tree the target "
                   "would get, in vbranch's scratch checkout (default: land_verify in the configuration)")
    p.add_argument("--no-verify", action="store_true", help="land without the configured land_verify command")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="stop the verify command after this long (default: land_verify_timeout)")
    p.add_argument("--queue", action="store_true", help="land the branches one at a time, each verified on top of the ones "
                   "before; a failing branch stays out (default: every applied branch with commits and nothing contested)")
    p.add_argument("--log", action="store_true", help="show BRANCH's last verification: command, exit status, output tail")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--ff-only", dest="mode", action="store_const", const="ff", help="fast-forward the target (the default)")
    mode.add_argument("--merge", dest="mode", action="store_const", const="merge", help="a merge commit on the target")
    mode.add_argument("--squash", dest="mode", action="store_const", const="squash", help="one commit with the branch's change")
    p.set_defaults(func=cmd_land, mode="ff")

    p = sub.add_parser("update", help="bring the target's new commits in; retire branches already on it")
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("oplog", help="the operations vbranch has done, newest last")
    p.add_argument("--json", action="store_true")
    p.add_argument("-n", dest="limit", type=int, default=0, help="only the last N")
    p.set_defaults(func=cmd_oplog)

    p = sub.add_parser("undo", help="revert the last operation (again to go further back)")
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("restore", help="return to the state right after operation OP")
    p.add_argument("op", type=int, metavar="OP")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("push", help="push a branch to a git remote as a normal branch")
    p.add_argument("branch", metavar="BRANCH")
    p.add_argument("--remote", help="remote name, path or URL (default: origin, or the only remote)")
    p.set_defaults(func=cmd_push)

    for name, removing in (("apply", False), ("unapply", True)):
        p = sub.add_parser(name, help="bring a branch back into the workspace" if not removing else
                           "take a branch out of the workspace (its changes are kept)")
        p.add_argument("branch", metavar="BRANCH")
        p.set_defaults(func=cmd_apply, unapply=removing)


# Commands that read or record the working tree: an operation a killed process left
# half done is finished first, so they never see its files half written.
FINISH_FIRST = {"status", "record", "run", "commit", "branch", "assign", "claim", "disown", "rescue", "log", "diff", "teardown"}


def _finish_interrupted(args) -> None:
    if args.command_name not in FINISH_FIRST:
        return
    from vbranch.state.workspace import find_repo

    found = None if "GIT_DIR" in os.environ else find_repo(args.C)
    if found is not None and not (found[1] / "vbranch" / "state.db").exists():
        return
    from vbranch.errors import NotInitialized
    from vbranch.ops.operation import up_to_date
    from vbranch.ops.oplog import has_pending
    from vbranch.state.workspace import open_workspace

    try:
        ws = open_workspace(args.C)
    except NotInitialized:
        return  # the command says so itself
    try:
        if has_pending(ws):
            with up_to_date(ws, now(), fold=False) as finished:
                _warn(finished)
    finally:
        ws.close()


def build_parser(quiet: bool = False):
    """The command line. `quiet`: its refusals and help print nothing (the watcher parses the commands
    its clients send: a client the watcher does not answer runs the command and prints them itself)."""
    import argparse

    class QuietParser(argparse.ArgumentParser):
        def print_usage(self, file=None) -> None:
            pass

        def print_help(self, file=None) -> None:
            pass

        def exit(self, status=0, message=None):
            raise SystemExit(status)

    parser = (QuietParser if quiet else argparse.ArgumentParser)(
        prog="vbranch",
        description="Several coding sessions in one git working directory, each on its own branch.",
    )
    parser.add_argument("-C", default=".", metavar="DIR", help="run as if started in DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="more output; tracebacks on errors")
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="set up vbranch in this repository")
    p.add_argument("--target", help="the branch the work lands on (default: the current branch)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("status", help="branches, sessions, who owns which lines")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("record", help="attribute changed paths to a session")
    p.add_argument("--session", help="the session (default: $VBRANCH_SESSION or $CLAUDE_CODE_SESSION_ID)")
    p.add_argument("--branch", help="the branch for a new session (default: named after the session)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("run", help="run a command and attribute what it changed to a session")
    p.add_argument("--session")
    p.add_argument("--branch")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("commit", help="commit each branch's own changes to it")
    p.add_argument("branches", nargs="*", metavar="BRANCH")
    p.add_argument("--all", action="store_true", help="every applied branch")
    p.add_argument("-m", "--message")
    p.add_argument("--session", help="without BRANCH or --all, commit this session's branch "
                   "(default: $VBRANCH_SESSION or $CLAUDE_CODE_SESSION_ID; none known: every branch)")
    p.set_defaults(func=cmd_commit)

    p = sub.add_parser("branch", help="new, list, rename or delete branches")
    p.add_argument("action", choices=["new", "list", "rename", "delete"])
    p.add_argument("name", nargs="?")
    p.add_argument("new", nargs="?")
    p.add_argument("--force", action="store_true", help="delete even with changes (they become unattributed)")
    p.set_defaults(func=cmd_branch)

    p = sub.add_parser("assign", help="give changes (PATH or PATH:START-END) to a branch")
    p.add_argument("target", metavar="PATH[:START-END]")
    p.add_argument("branch", metavar="BRANCH")
    p.set_defaults(func=cmd_assign)

    for name, what in (("claim", "take contested or unattributed changes you made (PATH or PATH:START-END)"),
                       ("disown", "step back from contested changes you did not make (PATH or PATH:START-END)")):
        p = sub.add_parser(name, help=what)
        p.add_argument("target", metavar="PATH[:START-END]")
        p.add_argument("--session", help="the session (default: $VBRANCH_SESSION or $CLAUDE_CODE_SESSION_ID)")
        p.set_defaults(func=cmd_settle)

    p = sub.add_parser("rescue", help="put back uncommitted work another change took away (kept by vbranch)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--list", action="store_true", help="only list what is kept")
    p.set_defaults(func=cmd_rescue)

    p = sub.add_parser("memory", help="shared Claude Code files outside the repository (auto memory, skills, CLAUDE.md): every version kept")
    memory = p.add_subparsers(dest="memory_command", required=True, metavar="ACTION")
    m = memory.add_parser("log", help="every journaled version, with the session that wrote it")
    m.add_argument("path", nargs="?", metavar="PATH", help="only this file (absolute, or relative to the current directory)")
    m.set_defaults(func=cmd_memory_log)
    m = memory.add_parser("restore", help="write a journaled version back as the file's content (the current one is kept)")
    m.add_argument("path", metavar="PATH")
    m.add_argument("version", type=int, metavar="VERSION")
    m.set_defaults(func=cmd_memory_restore)

    p = sub.add_parser("log", help="a branch's commits")
    p.add_argument("branch", metavar="BRANCH")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("diff", help="a branch's whole change against the base")
    p.add_argument("branch", metavar="BRANCH")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("teardown", help="return to your branch, keeping all work")
    p.set_defaults(func=cmd_teardown)

    _add_landing_parsers(sub)

    from vbranch.agents import REGISTRY

    agents = list(REGISTRY)
    p = sub.add_parser("hook", help="handle one agent hook payload on stdin (used by the installed hooks)")
    p.add_argument("--agent", choices=agents, default="claude", help="whose payload format (default: claude)")
    p.set_defaults(func=cmd_hook)

    for name, removing in (("install", False), ("uninstall", True)):
        p = sub.add_parser(name, help=f"{'remove' if removing else 'add'} vbranch's Claude Code hooks")
        p.add_argument("--scope", choices=["project", "local", "user"], default="local",
                       help="settings file: .claude/settings.json, .claude/settings.local.json (default), ~/.claude/settings.json")
        p.add_argument("--agent", choices=agents, default="claude", help="which agent CLI (default: claude)")
        p.set_defaults(func=cmd_install, uninstall=removing)

    p = sub.add_parser("watch", help="record every change in the working tree (one watcher per repository)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--background", action="store_true", help="start a detached watcher unless one is live, then return")
    what.add_argument("--status", action="store_true",
                      help="the live watcher: pid, since when, trusted or recovering, hook socket, dirty-set size")
    what.add_argument("--stop", action="store_true", help="stop the live watcher (SIGTERM, then wait for it)")
    p.add_argument("--json", action="store_true", help="with --status: machine-readable output")
    p.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="exit after SECONDS with no live session and no change (default: never; 300 with --background)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("doctor", help="check the setup (repository, hooks, tracer, watcher, config, Claude Code); each problem with its fix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="play three sessions in a throwaway repository")
    p.add_argument("--dir", help="build the demo repository here (default: a temporary directory)")
    p.set_defaults(func=cmd_demo)
    return parser


def _change_directory(args) -> None:
    """-C DIR works as in git: paths on the command line are relative to DIR."""
    if args.C != ".":
        try:
            os.chdir(args.C)
        except OSError as error:
            raise UsageError(f"cannot change to {args.C}: {error.strerror}") from None
        args.C = "."


def _hook_agent(argv: list[str]) -> str | None:
    """The agent of a plain `vbranch hook [--agent NAME]`, as the installed hooks run it; else None."""
    if argv == ["hook"]:
        return "claude"
    if len(argv) == 3 and argv[:2] == ["hook", "--agent"]:
        return argv[2]
    return None


def main(argv: list[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else argv
    agent = _hook_agent(args_given)
    if agent is not None:  # the hot path: every hook, so no parser is built (argparse costs a hook ~10 ms)
        from types import SimpleNamespace

        return cmd_hook(SimpleNamespace(agent=agent))
    from vbranch.cli import served

    if served.is_served(args_given):  # answered warm by the live watcher, else run here
        code = served.ask(args_given, session_from_env(None))
        if code is not None:
            return code
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command_name == "branch" and args.action != "list" and not args.name:
        parser.error(f"branch {args.action} needs a NAME")
    return run(args)


def run(args, prepare: bool = True) -> int:
    """One parsed command inside the one error handler. `prepare`: change to -C first and finish an
    interrupted operation (the watcher, running a command for a client, leaves both to the client)."""
    try:
        if prepare:
            _change_directory(args)
            _finish_interrupted(args)
        return args.func(args)
    except VbranchError as error:
        from vbranch.cli import ui

        if args.verbose:
            import traceback

            traceback.print_exc()
        ui.show_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`vbranch log | head`): not an error.
        sys.stderr.close()
        return 0
    except Exception as error:  # a bug: say so plainly, details with --verbose
        if args.verbose:
            raise
        from vbranch.cli import ui

        ui.note(f"error: internal error: {type(error).__name__}: {error}\nhint: run again with --verbose for the traceback, and report it")
        return 70

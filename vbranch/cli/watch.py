"""`vbranch watch`: the watcher's command line, and the place that wires it to the hook handler.

The watcher itself lives in vbranch/watch/, split by job (its __init__ lists them). This
module sits above them, in the command line: `vbranch watch` (also what
`watch.control.start_background` runs, as `python -m vbranch watch`) comes here, and here
the hook server is given `run_hook`, which hands Claude Code's payloads to hooks.handler.main
and other agents' to agents.main. Both, and the watcher's own modules (watchdog), are
imported only when a watcher runs.
"""
from __future__ import annotations

import time
from pathlib import Path

from vbranch.errors import StateError
from vbranch.git import gitcli
from vbranch.watch.control import DEFAULT_IDLE_EXIT, WatcherRunning, start_background, stop_watcher
from vbranch.watch.dirtyset import LOG_NAME, watcher_live, watcher_pid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = [  # the first four live in watch/ (control, dirtyset): the benchmarks and tests find them here too
    "LOG_NAME", "WatcherRunning", "start_background", "stop_watcher",
    "cmd_watch", "run_hook", "run_watcher", "show_status", "status_lines", "stop",
]


def run_hook(
    header: str, payload: bytes, agent_pid: int | None = None, serve_command=None, workspaces=None,
) -> tuple[int, bytes, bytes]:
    """What `vbranch hook [--agent AGENT]` would exit with and print, for this payload: the hook server's handler.
    A request of the agent "cli" is a command to run for a client (cli/served.py), by `serve_command`;
    `workspaces` is the server's WorkspacePool."""
    import io

    agent, project_dir, cwd = (header.split("\0") + ["", "", ""])[:3]
    out, err = io.StringIO(), io.StringIO()
    default_dir = project_dir or cwd or None
    from vbranch.cli import served

    if agent == served.AGENT:
        return serve_command(cwd, payload) if serve_command else (served.NOT_SERVED, b"", b"")
    try:
        if agent == "claude":
            from vbranch.hooks.handler import main

            code = main(io.BytesIO(payload), out, err, default_dir=default_dir, agent_pid=agent_pid, workspaces=workspaces)
        else:
            from vbranch.agents import main

            code = main(agent, io.BytesIO(payload), out, err, default_dir=default_dir, workspaces=workspaces)
    except Exception as error:  # as cmd_hook: fail open, say why
        err.write(f"vbranch hook: internal error: {error!r}\n")
        if agent == "cursor":
            out.write("{}\n")
        code = 1
    return code, out.getvalue().encode(), err.getvalue().encode()


def run_watcher(
    top: Path | str,
    git_dir: Path | str,
    *,
    idle_exit: float | None,
    clock: Callable[[], float] = time.time,
    serve_command=None,
) -> int:
    """Watch the working tree at `top` in the foreground, serving hooks with `run_hook` (and commands
    with `serve_command`, see run_hook), until idle (`idle_exit` s), signalled or torn down.

    Raises WatcherRunning if another watcher holds the lock. Returns 0.
    """
    import functools

    from vbranch.watch import process as watchproc

    from vbranch.state.workspace import WorkspacePool

    workspaces = WorkspacePool()
    handler = functools.partial(run_hook, serve_command=serve_command, workspaces=workspaces)
    try:
        return watchproc.run_watcher(top, git_dir, idle_exit=idle_exit, hook_handler=handler, clock=clock)
    finally:
        workspaces.close()


# --- command line -----------------------------------------------------------------------------


def cmd_watch(args, serve_command=None) -> int:
    """`vbranch watch [--background] [--idle-exit SECONDS] | --status [--json] | --stop`
    (args: C, background, idle_exit; status, stop and json may be absent)."""
    from vbranch.cli import ui
    from vbranch.state.workspace import open_workspace

    ws = open_workspace(args.C)
    top, git_dir = ws.top, ws.git_dir
    try:
        if getattr(args, "status", False):
            return show_status(ws, as_json=getattr(args, "json", False))
        if getattr(args, "stop", False):
            return stop(ws)
        if args.background:
            pid = start_background(top, idle_exit=args.idle_exit if args.idle_exit is not None else DEFAULT_IDLE_EXIT, wait=5.0)
            if pid is None:
                ui.line(f"a watcher is already running for {top} (pid {watcher_pid(ws)})")
            elif watcher_live(ws):
                ui.line(f"watcher started for {top} (pid {pid}); log: {ws.state_dir / LOG_NAME}")
            else:
                raise StateError(
                    f"the watcher (pid {pid}) did not start",
                    hint=f"see {ws.state_dir / LOG_NAME}",
                )
            return 0
    finally:
        ws.close()
    gitcli.read_trees_in_process()  # this process lives on: its hooks read trees through pygit2
    return run_watcher(top, git_dir, idle_exit=args.idle_exit, serve_command=serve_command)


STOP_WAIT = 10.0


def status_lines(info: dict, now: float | None = None) -> list[str]:
    """dirtyset.watcher_status as the lines `vbranch watch --status` prints."""
    now = time.time() if now is None else now
    if info["state"] == "stopped":
        return ["watcher: not running (`vbranch watch --background` starts one; hooks start one at the next tool call)"]
    lines = [f"watcher: {info['state']} (pid {info['pid'] if info['pid'] is not None else '?'})"]
    if info["started"] is not None:
        lines.append(f"  running since {_when(info['started'], now)}")
    if info["state"] == "trusted":
        lines.append(f"  dirty set complete since {_when(info['trusted_since'], now)}; {info['dirty']} path(s) in it that may differ")
    elif info["state"] == "recovering":
        lines.append(f"  dirty set not trusted yet (starting, or rescanning after a lost event); readers ask git meanwhile; "
                     f"{info['dirty']} path(s) in it that may differ")
    else:
        age = info["heartbeat_age"]
        lines.append(f"  no heartbeat for {age:.0f} s: hung? `vbranch watch --stop` (or kill {info['pid']}) and start a new one"
                     if age is not None else "  no heartbeat written")
    lines.append(f"  hook socket: {info['socket']}{'' if info['socket_present'] else ' (absent: hooks run the full hook themselves)'}")
    if info["overflows"]:
        lines.append(f"  recovered from {info['overflows']} inotify queue overflow(s)")
    if info["polled_dirs"]:
        lines.append(f"  {info['polled_dirs']} directories polled (inotify watch limit reached)")
    lines.append(f"  log: {info['log']}")
    return lines


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "?"
    ago = max(0, int(now - at))
    span = f"{ago} s" if ago < 120 else f"{ago // 60} min" if ago < 7200 else f"{ago // 3600} h"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} ({span} ago)"


def show_status(ws, as_json: bool = False) -> int:
    """`vbranch watch --status`: always exit 0 (the state is the answer; `vbranch doctor` judges it)."""
    import json

    from vbranch.cli import ui
    from vbranch.watch.dirtyset import watcher_status

    info = watcher_status(ws)
    if as_json:
        ui.write_raw(json.dumps(info, indent=2) + "\n")
    else:
        for text in status_lines(info):
            ui.line(text)
    return 0


def stop(ws, timeout: float = STOP_WAIT) -> int:
    """`vbranch watch --stop`: SIGTERM to the live watcher, wait until its lock is released."""
    from vbranch.cli import ui

    pid = watcher_pid(ws)
    if pid is None:
        ui.line(f"no watcher is running for {ws.top}")
        return 0
    if not stop_watcher(ws, timeout=timeout):
        raise StateError(
            f"the watcher (pid {pid}) did not stop within {timeout:.0f} s",
            hint=f"it may be hung: `kill -KILL {pid}`; hooks and `vbranch watch --background` start a new one",
        )
    ui.line(f"watcher (pid {pid}) stopped; hooks start a new one at the next tool call (unless config watcher is \"off\")")
    return 0

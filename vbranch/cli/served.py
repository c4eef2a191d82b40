"""`vbranch status`, answered by the live watcher: both halves.

A `vbranch status` process spends most of its time starting Python and importing what
the report needs (rich, pydantic, the store, the operation log: ~150 ms, more than `git
status` takes on a large repository) before a few milliseconds of work. The watcher has
all of that loaded and serves hooks on `.git/vbranch/hook.sock` already (hookclient.py's
protocol), so a plain `vbranch status` or `vbranch status --json` asks it there, as the
agent "status", and prints what comes back. The watcher renders the report for the
client's terminal (width, colours) and answers NOT_SERVED whenever the command itself
should run instead: an interrupted operation to finish first (the CLI says so), a
workspace it cannot open, anything unexpected. Then, or with no watcher, or with
VBRANCH_HOOK_SERVER=off, the command runs here as before; =only fails instead (tests).
"""
from __future__ import annotations

import json
import os
import sys

AGENT = "status"  # the header's agent field: no agent of agents/ has this name
NOT_SERVED = 254  # the exit code that tells the client to run the command itself


# --- the client: `vbranch status [--json]` ------------------------------------------------------


def ask(as_json: bool) -> int | None:
    """The exit code of a status the watcher printed for us; None when it did not answer: run it here."""
    mode = os.environ.get("VBRANCH_HOOK_SERVER", "auto")
    if mode == "off" or "GIT_DIR" in os.environ:
        return None
    from vbranch import hookclient

    cwd = os.getcwd()
    state_dir = hookclient.find_state_dir(cwd)
    request = json.dumps({"json": as_json, "width": _width(), "color_system": _color_system()}).encode()
    header = "\0".join([AGENT, "", cwd]).encode("utf-8", "surrogateescape")
    try:
        reply = None if state_dir is None else hookclient.ask(state_dir, header + b"\n" + request)
    finally:
        os.chdir(cwd)  # ask() connects from the state directory
    if reply is None or reply[0] == NOT_SERVED:
        if mode == "only":
            sys.stderr.write("vbranch status: the watcher did not answer (VBRANCH_HOOK_SERVER=only)\n")
            return 1
        return None
    code, out, err = reply
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    sys.stderr.buffer.write(err)
    return code


def _width() -> int:
    """The width rich would give this process's output: COLUMNS, else the terminal's, else 80."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    for fd in (1, 2, 0):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return 80


def _color_system() -> str | None:
    """The colours rich would use here; None for plain text (a pipe, NO_COLOR, a dumb terminal)."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        return None
    if os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return "truecolor"
    return "256" if "256color" in os.environ.get("TERM", "") else "standard"


# --- the server: the watcher's hook server hands it requests of AGENT (cli/watch.run_hook) --------


def answer(cwd: str, request: bytes) -> tuple[int, bytes, bytes]:
    """(code, stdout, stderr) of `vbranch status [--json]` run in `cwd`, or NOT_SERVED."""
    from vbranch.errors import VbranchError
    from vbranch.ops.oplog import has_pending
    from vbranch.state.clock import now
    from vbranch.state.workspace import open_workspace

    try:
        asked = json.loads(request)
        ws = open_workspace(cwd)
    except (ValueError, VbranchError):
        return NOT_SERVED, b"", b""
    try:
        if has_pending(ws):
            return NOT_SERVED, b"", b""  # the command finishes the operation first, and tells the user
        return 0, _report(ws, now(), asked).encode(), b""
    except (VbranchError, KeyError, TypeError):
        return NOT_SERVED, b"", b""
    finally:
        ws.close()


def _report(ws, at: str, asked: dict) -> str:
    from vbranch.cli import ui
    from vbranch.ops.status import collect, status

    if asked["json"]:
        return status(ws, at).model_dump_json(indent=2) + "\n"
    report = collect(ws, at)
    return ui.rendered(lambda console: ui.show_status(report, console), int(asked["width"]), asked["color_system"])

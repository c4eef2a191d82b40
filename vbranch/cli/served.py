"""`vbranch status`, `commit`, `land` and `log`, run by the live watcher: both halves.

A vbranch process spends most of its time starting Python and importing what a command
needs (rich, pydantic, pygit2, the store, the operation log: ~150-250 ms, more than `git
status` takes on a large repository) before a few milliseconds of work. The watcher has
all of that loaded and serves hooks on `.git/vbranch/hook.sock` already (hookclient.py's
protocol), so these commands (SERVED: no path arguments, no -C; `land` only when it runs
no verify command, which may take minutes and is the client's to interrupt) ask it there, as the
agent "cli", with their arguments (and `commit --session`: the caller's session, from
its environment), and print what comes back.

The watcher runs the command in the client's directory, printing for the client's
terminal (width, colours), and answers NOT_SERVED whenever the command should run in
the client instead: arguments argparse refuses (the client's argparse says why), an
interrupted operation to finish first (the command says so), a workspace it cannot
open. Then, or with no watcher, or with VBRANCH_HOOK_SERVER=off, the command runs in
its own process as before; =only fails instead (for tests). A watcher that dies
mid-command gives no answer: the client then runs the command itself, which first
finishes what the watcher left interrupted.
"""
from __future__ import annotations

import json
import os
import sys

AGENT = "cli"  # the header's agent field: no agent of agents/ has this name
NOT_SERVED = 254  # the exit code that tells the client to run the command itself
SERVED = {"status", "commit", "land", "log"}
# The caller's environment variables that change what git does here (which repository, index,
# configuration, author): a command with one of these set runs in its own process.
GIT_SETTINGS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                "GIT_COMMON_DIR", "GIT_CONFIG", "GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_NAMESPACE")


def is_served(argv: list[str]) -> bool:
    return bool(argv) and argv[0] in SERVED and not {"-h", "--help", "-C"} & set(argv)


# --- the client -------------------------------------------------------------------------------


def ask(argv: list[str], session: str | None) -> int | None:
    """The exit code of a command the watcher ran and printed for us; None when it did not: run it here.
    `session`: the caller's, from its environment (the watcher's environment is not the caller's)."""
    mode = os.environ.get("VBRANCH_HOOK_SERVER", "auto")
    if mode == "off":
        return None
    from vbranch import hookclient

    cwd = os.getcwd()
    git_settings = any(name.startswith(GIT_SETTINGS) for name in os.environ)  # git in the watcher would not see them
    state_dir = None if git_settings else hookclient.find_state_dir(cwd)
    if argv[0] == "commit" and session and "--session" not in argv:
        argv = [*argv, "--session", session]
    request = json.dumps({"argv": argv, "width": _width(), "color_system": _color_system()}).encode()
    header = "\0".join([AGENT, "", cwd]).encode("utf-8", "surrogateescape")
    try:
        reply = None if state_dir is None else hookclient.ask(state_dir, header + b"\n" + request)
    finally:
        os.chdir(cwd)  # ask() connects from the state directory
    if reply is None or reply[0] == NOT_SERVED:
        if mode == "only":
            sys.stderr.write(f"vbranch {argv[0]}: the watcher did not answer (VBRANCH_HOOK_SERVER=only)\n")
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


def answer(cwd: str, request: bytes, parser, run) -> tuple[int, bytes, bytes]:
    """(code, stdout, stderr) of the command run in `cwd`, or NOT_SERVED. `parser()` and `run(args,
    prepare)` are the command line's (commands.build_parser, commands.run), passed in by `vbranch
    watch`: the command line imports this module, so this one does not import it."""
    from vbranch.cli import ui

    try:
        asked = json.loads(request)
        args = _parsed(asked["argv"], cwd, parser)
    except (ValueError, KeyError, TypeError):
        return NOT_SERVED, b"", b""
    if args is None:
        return NOT_SERVED, b"", b""
    with ui.captured(int(asked["width"]), asked["color_system"]) as printed:
        try:
            code = run(args, prepare=False)
        except BaseException as error:  # noqa: BLE001 - --verbose re-raises a bug: the client hears of it all the same
            ui.note(f"error: internal error: {type(error).__name__}: {error}")
            code = 70
        out, err = printed()
    return code, out.encode(), err.encode()


def _parsed(argv: list[str], cwd: str, parser):
    """The command's arguments, to run in `cwd`; None when the client should run it itself."""
    from vbranch.errors import VbranchError
    from vbranch.ops.oplog import has_pending
    from vbranch.state.workspace import open_workspace

    if not is_served(argv):
        return None
    try:
        args = parser().parse_args(argv)
    except SystemExit:  # argparse's refusal: the client prints it
        return None
    args.C = cwd
    if args.command_name == "commit" and not (args.all or args.branches or args.session):
        args.all = True  # the client knew no session (else it sent --session): what its own run would do
    try:
        ws = open_workspace(cwd)
    except VbranchError:
        return None
    try:
        if has_pending(ws):
            return None  # the command finishes the operation first, and tells the user
        return None if args.command_name == "land" and _verifies(ws, args) else args
    finally:
        ws.close()


def _verifies(ws, args) -> bool:
    """The landing (or queue) runs a verify command: the client runs it, and can interrupt it."""
    from vbranch.state.config import load

    return args.verify is not None or (not args.no_verify and bool(load(ws.state_dir)["land_verify"]))

"""`vbranch hook`: one Claude Code hook payload on stdin; attribution, guard and commits.

A hook must never hang or crash the agent: malformed input is an error on
stderr with a non-blocking exit; anything unexpected is logged under the git
directory and shown to the user, and the tool call goes ahead.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vbranch.core import guard
from vbranch.core.ownership import FileState, conflicts
from vbranch.errors import NotInitialized, PathError
from vbranch.git.worktree import resolve, resolve_write_target
from vbranch.hooks import contract as claude
from vbranch.record.recording import (
    close_leftover_windows,
    close_window,
    command_traces,
    expects_trace,
    fold_unseen,
    open_window,
    record_write,
)
from vbranch.record.traces import read_all as read_traces
from vbranch.state import config, leases
from vbranch.state.clock import now
from vbranch.state.workspace import Workspace, ensure_session, open_workspace
from vbranch.watch.dirtyset import META_PID, watch_lock_held

SESSION_CONTEXT = (
    "vbranch: this git working directory is shared with other coding sessions. Each session's changes "
    "go to its own branch, which vbranch commits at the end of every turn; do not run git commit, "
    "git stash, git reset --hard, git checkout/restore of others' files or switch branches. Edits to "
    "lines another live session has changed and not yet landed are refused with the reason. Commands "
    "you may run yourself: `vbranch status` (who changed what), `vbranch claim PATH:LINES` or "
    "`vbranch disown PATH:LINES` (settle a contested change you did or did not make), `vbranch rescue` "
    "(when told your command took away others' work), `vbranch log BRANCH`."
)


def main(
    stdin=None, stdout=None, stderr=None, default_dir: str | None = None, agent_pid: int | None = None, workspaces=None,
) -> int:
    """One payload from `stdin`; `default_dir` is where to look for the repository if it names no cwd.

    `agent_pid` is the agent's process (Claude Code's); a hook run as its own process is its child.
    `workspaces` (a WorkspacePool): where the watcher's hook server takes its open workspaces from.
    """
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        payload = claude.parse(stdin.read())
    except claude.PayloadError as error:
        stderr.write(f"vbranch hook: {error}; the tool call goes ahead unchecked\n")
        return 1
    payload["vbranch_agent_pid"] = agent_pid if agent_pid is not None else os.getppid()
    ws = None
    try:
        ws = _open(payload, default_dir, workspaces)
        if ws is None:
            lost = _state_lost(payload, default_dir)
            if lost:  # HEAD still on the workspace: the guards would be off without a word
                stdout.write(claude.tell_user(lost) + "\n")
            return 0  # vbranch is not set up in this repository: nothing to do
        output = handle(ws, payload)
        if output:
            stdout.write(output + "\n")
        return 0
    except Exception as error:  # never let a bug block the agent
        where = _log_error(ws, payload, error)
        stdout.write(claude.tell_user(f"vbranch hook failed on {payload['hook_event_name']}: {error} (details: {where})") + "\n")
        return 0
    finally:
        if ws is not None and workspaces is not None:
            workspaces.give_back(ws)
        elif ws is not None:
            ws.close()


def _open(payload: dict, default_dir: str | None, workspaces=None) -> Workspace | None:
    """The workspace, or None where vbranch is not set up (then the hooks do nothing).

    Any other failure to open it is an error the user must see: staying
    silent would switch the guard off unnoticed.
    """
    start = _start(payload, default_dir)
    try:
        return workspaces.take(start) if workspaces is not None else open_workspace(start)
    except NotInitialized:
        return None


def _start(payload: dict, default_dir: str | None) -> str:
    """Where to look for the repository: the payload's cwd, else the caller's directory, else Claude Code's project."""
    return payload.get("cwd") or default_dir or os.environ.get("CLAUDE_PROJECT_DIR") or "."


def _failed_verification(ws: Workspace, session: str) -> str | None:
    """The session's branch failed `vbranch land --verify`: it hears so once, at its next hook that can tell it."""
    branch_id = _branch_id(ws, session)
    branch = ws.store.branch_by_id(branch_id) if branch_id else None
    found = ws.store.verification(branch.name) if branch else None
    if found is None or found.exit_code == 0 or found.landed:
        return None
    key = f"told-verification:{session}"
    if ws.store.get_meta(key) == found.at:
        return None
    with ws.lock, ws.store.tx():
        ws.store.set_meta(key, found.at)
    return (
        f"vbranch: your branch {branch.name} was not landed: `{found.command}` failed on the tree the target would get "
        f"(exit {found.exit_code}). `vbranch land --log {branch.name}` shows its output; fix it on your branch and the "
        "next landing verifies again."
    )


def _state_lost(payload: dict, default_dir: str | None) -> str | None:
    """HEAD is on the vbranch workspace but vbranch's state is gone (deleted, emptied, torn): say so."""
    from vbranch.state.workspace import WORKSPACE_REF, find_repo

    found = find_repo(_start(payload, default_dir))
    if found is None:
        return None
    try:
        head = (found[1] / "HEAD").read_text().strip()
    except OSError:
        return None
    if head != f"ref: {WORKSPACE_REF}":
        return None
    return (
        f"vbranch: HEAD is on the vbranch workspace in {found[0]} but vbranch's state ({found[1] / 'vbranch' / 'state.db'}) "
        "is missing or empty: nothing is attributed and no guard is on. The sessions' work is in the working files and "
        "their branches; to start again, point HEAD back at your branch (`git symbolic-ref HEAD refs/heads/main`) "
        "and run `vbranch init`."
    )


def _log_error(ws: Workspace | None, payload: dict, error: Exception) -> str:
    if ws is None:
        return "no log: the repository could not be opened"
    import traceback

    log = ws.state_dir / "hook.log"
    with open(log, "a") as f:
        f.write(f"{now()} {payload.get('hook_event_name')} session {payload.get('session_id')}\n")
        f.write("".join(traceback.format_exception(error)))
    return str(log)


def handle(ws: Workspace, payload: dict) -> str | None:
    handler = HANDLERS.get(payload["hook_event_name"])
    if handler is None:
        return None
    if ws.store.pending_ops():  # a killed vbranch command left an operation half done: finish it first
        from vbranch.ops.oplog import finish_interrupted

        with ws.lock:
            finish_interrupted(ws)
    cfg, problems = config.load_checked(ws.state_dir)
    output = handler(ws, payload, cfg)
    if payload["hook_event_name"] in ("PostToolUse", "UserPromptSubmit"):
        failed = _failed_verification(ws, payload["session_id"])
        if failed:
            output = claude.add_agent_context(output, payload["hook_event_name"], failed)
    if problems:  # an invalid setting keeps its default; the user hears of it at every hook until it is fixed
        output = claude.add_user_message(output, "vbranch: " + "; ".join(problems))
    return output


def on_session_start(ws: Workspace, payload: dict, cfg: dict) -> str:
    with ws.lock, ws.store.tx():
        ensure_session(ws, payload["session_id"], now(), agent=_agent_name(payload))
    if _watcher_wanted(cfg):
        from vbranch.watch.control import start_background

        start_background(ws.top)  # catches the changes no hook reports; does nothing if one is live
    return claude.tell_agent("SessionStart", SESSION_CONTEXT)


def _agent_name(payload: dict) -> str:
    """Which CLI the session runs in: set by its agent's translation (agents/), Claude Code's payloads come as they are."""
    return payload.get("vbranch_agent") or "claude-code"


def _watcher_wanted(cfg: dict) -> bool:
    return cfg.get("watcher", "auto") == "auto" and os.environ.get("VBRANCH_WATCHER") != "off"


def _replace_crashed_watcher(ws: Workspace, cfg: dict) -> None:
    """A watcher that died without saying so (its pid still in the store) is started again, once.

    Died: its watch lock is free (the kernel drops it with the process). One that holds the lock
    with a stale heartbeat is slow (a loaded machine) or hung, not gone: a new one could not start,
    and clearing its pid would only lose it (readers then ask git, as for any watcher not live).
    """
    if not ws.store.get_meta(META_PID) or not _watcher_wanted(cfg) or watch_lock_held(ws):
        return
    with ws.lock, ws.store.tx():
        ws.store.set_meta(META_PID, "")  # should the new one fail too, the next session start tries again
    from vbranch.watch.control import start_background

    start_background(ws.top)


def on_prompt(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    prompt = payload.get("prompt") if isinstance(payload.get("prompt"), str) else ""
    with ws.lock, ws.store.tx():
        ensure_session(ws, payload["session_id"], now(), agent=_agent_name(payload))
        ws.store.start_turn(payload["session_id"], prompt, now())
    return _pending_contests(ws, payload)


def _pending_contests(ws: Workspace, payload: dict) -> str | None:
    """At the start of a turn, a session hears of contested changes it shares (another session may have made them)."""
    mine = _branch_id(ws, payload["session_id"])
    if mine is None:
        return None
    found = [c for c in conflicts([r for r in ws.store.contested_files() if r.changed]) if mine in c.owners]
    if not found:
        return None
    listed = "; ".join(f"{_where([c])} ({_who(ws, c.owners, mine)})" for c in found[:10])
    return claude.tell_agent(
        "UserPromptSubmit",
        f"vbranch: contested changes your branch shares with other sessions, held out of the commits: {listed}. "
        f"{_settle_hint(found)}.",
    )


def on_pre_tool(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    _replace_crashed_watcher(ws, cfg)
    tool = payload.get("tool_name")
    if tool in claude.FILE_TOOLS:
        return _pre_write(ws, payload, cfg)
    if tool == "Bash":
        return _pre_bash(ws, payload, cfg)
    return None


def on_post_tool(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    if payload.get("tool_name") == "Read":  # what a session has seen of a shared harness file (harness.py)
        if payload["hook_event_name"] == "PostToolUse":
            from vbranch.hooks import harness

            harness.record_read(ws, payload)
        return None
    kept = set(ws.store.rescue_keys())  # (not the kept versions themselves: a large file's cost a hook ms to unpack)
    output = _post_tool(ws, payload, cfg)
    taken = [k for k in ws.store.rescue_keys() if k not in kept]
    return _taken_notice(ws, payload, taken, output) if taken else output


def _taken_notice(ws: Workspace, payload: dict, taken: list[tuple[str, int]], output: str | None) -> str:
    """This tool call took away other sessions' uncommitted work (paths and branches): kept, and one command puts it back."""
    mine = _branch_id(ws, payload["session_id"])
    listed = "; ".join(f"{path} ({_who(ws, (branch,), mine)})" for path, branch in taken[:10])
    paths = " ".join(sorted({path for path, _branch in taken})[:10])
    text = (
        f"vbranch: this {payload.get('tool_name')} took away uncommitted work of other sessions sharing this "
        f"directory: {listed}. vbranch kept it: run `vbranch rescue {paths}` now to put it back (your own "
        "changes stay). To undo your own work, edit your own lines back instead of discarding files."
    )
    return claude.add_user_message(claude.add_agent_context(output, payload["hook_event_name"], text), text)


def _post_tool(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    tool = payload.get("tool_name")
    session, tool_use_id = payload["session_id"], payload.get("tool_use_id") or ""
    if tool in claude.FILE_TOOLS:
        if payload["hook_event_name"] == "PostToolUseFailure":
            # The tool wrote nothing: whatever changed meanwhile is someone else's (a snapshot finds it).
            leases.release(ws, session, tool_use_id)
            return None
        try:
            rel = _target(ws, payload)
        except PathError:
            from vbranch.hooks import harness

            harness.record_write(ws, payload)  # a shared harness file outside the repository: journaled
            return None  # refused or outside: nothing of ours was written
        if rel is None:
            return None
        try:
            original, expected = _intent(payload)
            record_write(ws, session, rel, now(), original=original, expected=expected, agent_id=payload.get("agent_id"))
        finally:
            leases.release(ws, session, tool_use_id)
        return _contest_notice(ws, payload, [rel])
    if tool == "Bash":
        all_logs = read_traces(ws.state_dir, done=True)
        logs = command_traces(ws, session, tool_use_id, all_logs)
        changed = close_window(ws, session, tool_use_id, now(), agent_id=payload.get("agent_id"), logs=all_logs)
        notice = _contest_notice(ws, payload, changed)
        refused = sorted({p for t in logs for p in t.refused})
        if refused:
            notice = _refused_notice(payload, refused, notice)
        untraced = next((t.reason or "unknown" for t in logs if not t.traced), None)
        if untraced is None:
            return notice
        # The tracer is installed but could not watch this command: say so, every time.
        return claude.add_user_message(
            notice,
            f"vbranch: this command ran without the command tracer ({untraced}), so vbranch could not see exactly "
            "which files it wrote: its changes may show as contested or unattributed in `vbranch status`.",
        )
    return None


def _refused_notice(payload: dict, refused: list[str], notice: str | None) -> str:
    """The tracer refused writes into git's directory: the agent learns why its command failed."""
    text = (
        f"vbranch: this command's writes into .git ({', '.join(refused[:5])}) were refused: in a directory that "
        "several sessions share, git's configuration, hooks, HEAD, the workspace branch and vbranch's state are "
        "left alone (it stays on the vbranch workspace; your changes are committed to your branch for you). "
        "Ask the user if such a change is really needed."
    )
    return claude.add_agent_context(notice, payload["hook_event_name"], text)


def on_stop(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    # Leases and windows stay: a subagent of this session may still be mid-tool.
    # An agent that reports no end of a failed call (Codex, with no subagents running past a turn)
    # has its windows closed here.
    session = payload["session_id"]
    if payload.get("vbranch_stop_closes_windows"):  # set by the agent's translation (agents/base.py)
        close_leftover_windows(ws, session, now())
    if cfg.get("commit_on") == "turn":
        return _commit_session(ws, session)
    return None


def on_session_end(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    session = payload["session_id"]
    with ws.lock, ws.store.tx():
        if ws.store.session(session) is not None:
            ws.store.end_session(session, now())
    _release_session(ws, session)
    if cfg.get("commit_on") == "session-end":
        return _commit_session(ws, session)
    return None


def on_subagent(ws: Workspace, payload: dict, cfg: dict) -> None:
    # Subagents share the parent's session id: their changes already go to its branch.
    with ws.lock, ws.store.tx():
        ws.store.log_event(now(), payload["session_id"], None, "", payload["hook_event_name"], payload.get("agent_id"))


HANDLERS = {
    "SessionStart": on_session_start,
    "UserPromptSubmit": on_prompt,
    "PreToolUse": on_pre_tool,
    "PostToolUse": on_post_tool,
    "PostToolUseFailure": on_post_tool,
    "Stop": on_stop,
    "SubagentStart": on_subagent,
    "SubagentStop": on_subagent,
    "SessionEnd": on_session_end,
}


def _target(ws: Workspace, payload: dict) -> str | None:
    """The file a file tool writes; through a symlink, where the write lands (refused outside or in .git)."""
    path = claude.tool_path(payload)
    return resolve_write_target(ws.top, path, Path(payload.get("cwd") or ws.top)) if path else None


def _pre_write(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    session, tool_use_id = payload["session_id"], payload.get("tool_use_id") or ""
    internal = _git_internal(ws, payload)
    if internal is not None:  # whatever guard_outside says
        return claude.deny(f"vbranch: {internal}: git's own files and other worktrees are not for agents to write.")
    try:
        rel = _target(ws, payload)
    except PathError as error:
        # Outside the repository nothing belongs to a branch and nothing escapes (memory, plans, /tmp): allowed
        # unless guard_outside asks for the worktree-era rule. Files all sessions share there (Claude Code's
        # memory, skills, CLAUDE.md) get the line guard without branches.
        from vbranch.hooks import harness

        if harness.shared_path(ws, payload) is not None and cfg["guard_lines"] != "off":
            reason = harness.check_write(ws, payload)
            if reason:
                return _decide(cfg["guard_lines"], reason)
        return _decide(cfg["guard_outside"], f"vbranch: {error.message}. Writes must stay inside the repository {ws.top} so they land on this session's branch.")
    if rel is None:
        return None
    busy = leases.acquire(ws, rel, session, tool_use_id, cfg["lease_wait"], cfg["lease_ttl"], pid=payload.get("vbranch_agent_pid"))
    if busy is not None:
        return claude.deny(
            f"vbranch: {rel} is being written right now by {busy} sharing this directory. "
            "Retry this edit in a moment; re-read the file first, since it may have changed."
        )
    fold_unseen(ws, now(), [rel], session, tool_use_id)  # fold in what changed since the store last looked, so the check is current
    if cfg["guard_lines"] == "off":
        return None
    reason = _line_conflict(ws, payload, rel)
    if reason is None:
        return None
    if cfg["guard_lines"] == "deny":
        leases.release(ws, session, tool_use_id)
    return _decide(cfg["guard_lines"], reason)


def _git_internal(ws: Workspace, payload: dict) -> str | None:
    """Where a write outside the working files must never go: a git directory (this repository's, or
    any `.git` on the way) or another worktree of this repository."""
    path = claude.tool_path(payload)
    if not path:
        return None
    full = os.path.realpath(os.path.join(payload.get("cwd") or ws.top, path))
    if any(part.lower() == ".git" for part in Path(full).parts):
        return f"{path} is inside a .git directory"
    common = _common_dir(ws.git_dir)
    for git_dir in {os.path.realpath(ws.git_dir), common}:
        if full == git_dir or full.startswith(git_dir + os.sep):
            return f"{path} is inside git's directory {git_dir}"
    for top in _worktrees(common):
        if top != os.path.realpath(ws.top) and (full == top or full.startswith(top + os.sep)):
            return f"{path} is in another worktree of this repository ({top})"
    return None


def _common_dir(git_dir: Path) -> str:
    try:
        shared = (Path(git_dir) / "commondir").read_text().strip()
    except OSError:
        return os.path.realpath(git_dir)
    return os.path.realpath(os.path.join(git_dir, shared))


def _worktrees(common: str) -> list[str]:
    """Every working tree of the repository: the main one and the linked ones (from git's own records)."""
    tops = [os.path.dirname(common)] if os.path.basename(common) == ".git" else []
    try:
        names = os.listdir(os.path.join(common, "worktrees"))
    except OSError:
        return tops
    for name in names:
        try:
            dotgit = Path(common, "worktrees", name, "gitdir").read_text().strip()
        except OSError:
            continue
        tops.append(os.path.realpath(os.path.dirname(dotgit)))
    return tops


def _line_conflict(ws: Workspace, payload: dict, rel: str) -> str | None:
    rec = ws.store.file(rel)
    if rec is None or not rec.changed:
        return None
    tool, tool_input = payload.get("tool_name"), payload.get("tool_input") or {}
    proposed = claude.proposed_content(tool, tool_input, rec.known.data if rec.known.exists else None)
    if proposed is None and tool != "NotebookEdit":
        return None  # the tool will refuse this edit itself (its old_string is not in the file)
    state = None if proposed is None else FileState(True, rec.known.mode if rec.known.exists else 0o100644, proposed)
    mine = _branch_id(ws, payload["session_id"])
    live = _live_branches(ws)
    touched = guard.touched_lines(rec, state, mine, live - {mine})
    if not touched:
        return None
    parts = []
    for t in touched:
        where = f"lines {t.lines[0]}-{t.lines[1]}" if t.lines else "the whole file"
        parts.append(f"{where} ({_who(ws, t.owners, mine)})")
    first = touched[0]
    spec = f"{rel}:{first.lines[0]}-{first.lines[1]}" if first.lines else rel
    reason = (
        f"vbranch: this {tool} would change {rel} {', '.join(parts)}: uncommitted work of another session "
        "sharing this working directory, not yet landed. Leave those lines as they are and make your change "
        f"around them, or ask the user to move them to your branch (`vbranch assign {spec} BRANCH`)."
    )
    from vbranch.core import endings

    why = endings.rewritten(rec.known.data) if proposed is not None and tool in ("Edit", "MultiEdit") else None
    if why:  # Claude Code rewrites the whole file: does the same edit, other bytes kept, touch less?
        exact = endings.onto(endings.view(proposed), [rec.known.data])
        if guard.touched_lines(rec, FileState(True, rec.known.mode, exact), mine, live - {mine}) != touched:
            reason += (
                f" This tool would rewrite lines beyond your edit: {why}. Change your own lines with a command "
                "that keeps the file's other bytes as they are (a short script, or sed) instead."
            )
    return reason


def _pre_bash(ws: Workspace, payload: dict, cfg: dict) -> str | None:
    command = (payload.get("tool_input") or {}).get("command") or ""
    if cfg["guard_git"] != "off":
        reason = _git_conflict(ws, payload, command)
        if reason:
            decision = _decide(cfg["guard_git"], reason)
            if cfg["guard_git"] == "deny":
                return decision
            _open_command_window(ws, payload)
            return decision
    _open_command_window(ws, payload)
    return None


def _open_command_window(ws: Workspace, payload: dict) -> None:
    session, tool_use_id = payload["session_id"], payload.get("tool_use_id") or ""
    named = _named_paths(ws, payload)
    if named is None and expects_trace(ws, session):
        named = []  # the tracer's log will say what the command wrote: no signatures to take
    open_window(ws, session, tool_use_id, paths=named)


def _named_paths(ws: Workspace, payload: dict) -> list[str] | None:
    """The only files the command can change, when it names them (Codex's apply_patch), else None."""
    paths = (payload.get("tool_input") or {}).get("paths")
    if not isinstance(paths, list):
        return None
    cwd = Path(payload.get("cwd") or ws.top)
    named = []
    for path in paths:
        try:
            named.append(resolve(ws.top, path, cwd))
        except (PathError, TypeError):
            continue  # outside the repository: not ours to attribute
    return named


def _git_conflict(ws: Workspace, payload: dict, command: str) -> str | None:
    cwd = Path(payload.get("cwd") or ws.top)
    risks = guard.git_risks(command, is_path=lambda arg: (cwd / arg).exists(), aliases=lambda: _git_aliases(ws), top=str(ws.top))
    for risk in risks:
        branch = _branch_name(ws, payload["session_id"])
        if risk.kind == "commit":
            return (
                f"vbranch: `{risk.command}` would commit on the vbranch workspace that several sessions share, "
                f"mixing their work. No commit is needed: your changes are committed to your own branch "
                f"({branch}) at the end of your turn. To commit now, run `vbranch commit -m \"message\"`: it finds "
                "your session from CLAUDE_CODE_SESSION_ID."
            )
        if risk.kind == "switch":
            return (
                f"vbranch: `{risk.command}` would switch branches under every session sharing this directory. "
                f"Stay on the workspace: your changes go to your branch ({branch}) automatically."
            )
        if risk.kind == "discard":
            return (
                f"vbranch: `{risk.command}` would discard or hide uncommitted work of other sessions that share "
                "this working directory. To undo your own changes, edit those files back instead."
            )
        others = _others_changes_under(ws, payload, [(cwd / (risk.cwd or "") / p) for p in risk.paths])
        if others:
            return (
                f"vbranch: `{risk.command}` would discard uncommitted work of other sessions in {', '.join(others[:5])}. "
                "Revert only your own lines, by editing them."
            )
    return None


def _git_aliases(ws: Workspace) -> dict[str, str]:
    """The repository's git aliases, so that `git st` is read as what it runs."""
    from vbranch.git import gitcli

    out = gitcli.git(ws.top, "config", "-z", "--get-regexp", r"^alias\.", check=False)  # exit 1: no alias at all
    return guard.aliases_from_config(out.decode("utf-8", "replace"))


def _others_changes_under(ws: Workspace, payload: dict, specs: list[Path]) -> list[str]:
    mine = _branch_id(ws, payload["session_id"])
    live = _live_branches(ws) - {mine}
    prefixes = []
    for spec in specs:
        try:
            prefixes.append(resolve(ws.top, spec))
        except PathError as error:
            if "is the repository itself" in error.message:
                prefixes.append("")
    found = []
    for rec in ws.store.files():
        covered = any(p == "" or rec.path == p or rec.path.startswith(p + "/") for p in prefixes)
        if covered and rec.changed and guard.touched_lines(rec, None, mine, live):
            found.append(rec.path)
    return found


def _contest_notice(ws: Workspace, payload: dict, paths: list[str]) -> str | None:
    """Tell the agent when its change hit another session's lines (they are now contested)."""
    mine = _branch_id(ws, payload["session_id"])
    if mine is None or not paths:
        return None
    records = [r for p in paths if (r := ws.store.file(p)) is not None and r.contested and mine in r.changers]
    found = [c for c in conflicts(records) if mine in c.owners]  # (the walk over every line only where one can be)
    if not found:
        return None
    listed = "; ".join(
        f"{c.path} {('lines %d-%d' % c.lines) if c.lines else '(whole file or removed lines)'} ({_who(ws, c.owners, mine)})"
        for c in found
    )
    return claude.tell_agent(
        payload["hook_event_name"],
        f"vbranch: these changes may be yours or another session's: {listed}. They are contested: both "
        f"branches commit everything else, these lines wait until settled. {_settle_hint(found)}. "
        "If you did not mean to change them, put them back as they were.",
    )


def _commit_session(ws: Workspace, session: str) -> str | None:
    row = ws.store.session(session)
    if row is None or row.branch_id is None:
        return None
    from vbranch.ops.committing import commit

    branch = ws.store.branch_by_id(row.branch_id)
    files = ws.store.paths_changed_since(session, row.turn_started_at or "")
    report = commit(ws, [branch.name], _turn_message(row.prompt, files), now())
    held = report.held_back.get(branch.name)
    if held:
        return claude.tell_user(
            f"vbranch: {branch.name} was committed without its contested changes in {_where(held)}: "
            f"{_settle_hint(held)} (`vbranch status` shows who else changed them)."
        )
    return None


def _where(found: list) -> str:
    return ", ".join(f"{c.path} {('lines %d-%d' % c.lines) if c.lines else '(whole file or removed lines)'}" for c in found)


def _settle_hint(found: list) -> str:
    spec = _spec(found[0])
    return (
        f"the session that made a change settles it: `vbranch claim {spec}` if it is yours, "
        f"`vbranch disown {spec}` if it is not"
    )


def _spec(c) -> str:
    return f"{c.path}:{c.lines[0]}-{c.lines[1]}" if c.lines else c.path


def _turn_message(prompt: str, files: list[str]) -> str | None:
    title = " ".join(prompt.split())
    if not title:
        return None
    title = title if len(title) <= 72 else title[:71] + "…"
    listed = "\n".join(f"- {p}" for p in files if p)
    return f"{title}\n\n{listed}" if listed else title


def _release_session(ws: Workspace, session: str) -> None:
    with ws.lock, ws.store.tx():
        ws.store.release_leases(session)
        ws.store.drop_windows(session)
    leases.wake_waiters()


def _decide(policy: str, reason: str) -> str | None:
    if policy == "deny":
        return claude.deny(reason)
    if policy == "warn":
        return claude.tell_user(reason)
    return None


def _branch_id(ws: Workspace, session: str) -> int | None:
    row = ws.store.session(session)
    return row.branch_id if row else None


def _branch_name(ws: Workspace, session: str) -> str:
    branch_id = _branch_id(ws, session)
    branch = ws.store.branch_by_id(branch_id) if branch_id else None
    return branch.name if branch else "created at your first change"


def _live_branches(ws: Workspace) -> set[int]:
    return {s.branch_id for s in ws.store.sessions() if s.ended_at is None and s.branch_id is not None}


def _who(ws: Workspace, owners: tuple[int, ...], mine: int | None) -> str:
    sessions = ws.store.sessions()
    out = []
    for owner in owners:
        if owner == mine:
            continue
        branch = ws.store.branch_by_id(owner)
        ids = [s.id for s in sessions if s.branch_id == owner]
        out.append(f"session {', '.join(ids) or '?'} on branch {branch.name if branch else owner}")
    return "; ".join(out) or "unattributed"


def _intent(payload: dict) -> tuple[bytes | None, bytes | None]:
    """What the tool read and what it meant to write, from its input and response.

    Both are the tool's view (Claude Code reports the file decoded, every CRLF
    made LF), as UTF-8: record_write compares them with the file as views.
    """
    from vbranch.core.endings import encode

    tool, tool_input = payload.get("tool_name"), payload.get("tool_input") or {}
    response = payload.get("tool_response")
    original = response.get("originalFile") if isinstance(response, dict) else None
    original_bytes = encode(original, None) if isinstance(original, str) else None
    if tool == "Write":
        return original_bytes, claude.proposed_content(tool, tool_input, None)
    if original_bytes is None:
        return None, None
    return original_bytes, claude.proposed_content(tool, tool_input, original_bytes)


def run() -> int:
    started = time.monotonic()
    code = main()
    if os.environ.get("VBRANCH_HOOK_TIMING"):
        sys.stderr.write(f"vbranch hook: {1000 * (time.monotonic() - started):.1f} ms\n")
    return code

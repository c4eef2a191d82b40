"""What vbranch knows of one agent CLI: the `Agent` base class every agent module fills in.

vbranch's hook handler (`hooks/handler.py`) works on one event format, Claude Code's hook contract:
hook_event_name (SessionStart, UserPromptSubmit, PreToolUse, PostToolUse, PostToolUseFailure,
Stop, SubagentStart/Stop, SessionEnd), session_id, cwd, tool_name (Write, Edit, MultiEdit,
NotebookEdit, Bash, Read), tool_input (file_path or command), tool_use_id, tool_response; its
answer is Claude Code's output JSON (`hooks.contract.deny`, `tell_agent`, `tell_user`). An agent maps
its CLI onto that:

- its settings file (`settings_path`, per scope: project, local, user) and how its hooks sit in it
  (`template` under hooks/, `flat` for one list of hooks per event instead of groups);
- `install` / `uninstall`: our hooks merged into that file and taken out (settings.py does the work;
  `merge` / `unmerge` are what an agent changes beyond the hooks);
- `translate`: its payload as one of our hook events, or None (nothing for vbranch to do);
- `render`: our answer in its own output format;
- `fail_output`: what its stdout must hold when the hook cannot answer (the hook fails open).

Importing an agent module runs on every hook: no settings-file mechanics at import time.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

from vbranch.agents import SCOPES
from vbranch.errors import UsageError


class Agent:
    name = ""  # as `vbranch hook --agent NAME` and `vbranch install --agent NAME` spell it
    template = ""  # its hooks, under hooks/ (shipped as vbranch/_hooks), with {vbranch} for the command
    project_file = ""  # its settings file, relative to the repository (project, local) or the home directory (user)
    flat = False  # one flat list of hooks per event (Cursor), not groups with their own "hooks" lists
    note = ""  # what the user may need to do after installing
    fail_output: str | None = None  # stdout when the hook cannot answer (bad input, internal error)
    stop_closes_windows = False  # it reports nothing after a failed tool call: its Stop closes the session's windows

    # --- installing ---------------------------------------------------------------------------

    def settings_path(self, top: Path, scope: str = "project", home: Path | None = None) -> Path:
        if scope in ("project", "local"):
            return Path(top) / self.project_file
        if scope != "user":
            raise UsageError(f"unknown scope {scope!r} for {self.name}", hint=f"use one of: {', '.join(SCOPES)}")
        return Path(home if home is not None else Path.home()) / self.project_file

    def our_hooks(self, command: str | None = None) -> dict:
        """Our hooks for its settings file: the template, with the command that starts vbranch."""
        from vbranch.agents.settings import fill

        return fill(self.template, command)

    def merge(self, settings: dict) -> dict:
        """The settings with our hooks (and whatever else the agent needs from us)."""
        from vbranch.agents.settings import merge_hooks

        return merge_hooks(settings, self.our_hooks(), self.flat)

    def unmerge(self, settings: dict) -> dict:
        """The settings without anything `merge` put in."""
        from vbranch.agents.settings import remove_hooks

        return remove_hooks(settings, self.flat)

    def install(self, top: Path, scope: str = "project", home: Path | None = None) -> Path:
        """Merge vbranch's hooks into the settings file of `scope`; returns its path (backup of what was there)."""
        from vbranch.agents import settings

        return settings.install(self.settings_path(top, scope, home), Path(top), scope, self.merge)

    def uninstall(self, top: Path, scope: str = "project", home: Path | None = None) -> Path:
        """Take vbranch's hooks out of the settings file of `scope`; returns its path."""
        from vbranch.agents import settings

        return settings.uninstall(self.settings_path(top, scope, home), self.unmerge)

    # --- a hook event ---------------------------------------------------------------------------

    def translate(self, payload: dict) -> dict | None:
        """Its payload as one of our hook events (Claude Code's shape), or None when vbranch has nothing to do."""
        raise NotImplementedError

    def normalize(self, payload: object) -> dict | None:
        """`translate`, for a payload that names a session; the result carries `vbranch_agent` (this agent's
        name) and, for an agent that reports nothing after a failed call, `vbranch_stop_closes_windows`:
        the handler sits below the agents and learns what it needs of one from the payload."""
        if not isinstance(payload, dict):
            return None
        out = self.translate(payload)
        if out is None or not isinstance(out.get("session_id"), str) or not out["session_id"]:
            return None
        out["vbranch_agent"] = self.name
        if self.stop_closes_windows:
            out["vbranch_stop_closes_windows"] = True
        return out

    def render(self, payload: dict, answer: str | None) -> str | None:
        """Our answer (Claude Code's output JSON, or None) in its own format; None: print nothing."""
        return answer or None

    def fail_open(self, stdout) -> None:
        """What it must read when the hook cannot answer: the tool call goes ahead."""
        if self.fail_output is not None:
            stdout.write(self.fail_output + "\n")

    def main(
        self, stdin=None, stdout=None, stderr=None, default_dir: str | None = None, agent_pid: int | None = None,
        workspaces=None,
    ) -> int:
        """`vbranch hook --agent NAME`: its payload on stdin, through vbranch's hook handler, its answer on stdout.

        `agent_pid` is the agent's process, when the caller knows it (else the hook's parent), and
        `workspaces` the watcher's open ones, as for `hooks.handler.main`.
        """
        from vbranch.hooks import handler as hook

        stdin = stdin or sys.stdin.buffer
        stdout = stdout or sys.stdout
        stderr = stderr or sys.stderr
        raw = stdin.read()
        try:
            payload = json.loads(raw)
        except ValueError as error:
            stderr.write(f"vbranch hook: {self.name} hook input is not JSON ({error}); the tool call goes ahead unchecked\n")
            self.fail_open(stdout)
            return 1
        payload = payload if isinstance(payload, dict) else {}
        normalized = self.normalize(payload)
        code, answer = 0, None
        if normalized is not None:
            buffer = io.StringIO()
            code = hook.main(io.BytesIO(json.dumps(normalized).encode()), buffer, stderr, default_dir, agent_pid, workspaces)
            answer = buffer.getvalue().strip() or None
        text = self.render(payload, answer)
        if text:
            stdout.write(text + "\n")
        return code


# --- helpers for translating payloads ---------------------------------------------------------


def absolute(path: str, cwd: str) -> str:
    return path if os.path.isabs(path) else os.path.join(cwd or ".", path)


def synthetic_id(agent: str, *parts: object) -> str:
    """A stable tool call id for agents that send none: the same for a call's before and after."""
    from vbranch.git.worktree import sha1  # the builtin module: hashlib would load OpenSSL

    digest = sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"vbranch-{agent}-{digest}"


def text_field(payload: dict, key: str) -> str:
    """A string field of a payload, "" when it is missing or not a string."""
    value = payload.get(key)
    return value if isinstance(value, str) else ""

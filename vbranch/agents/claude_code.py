"""Claude Code: its hook contract (our hook events are its payloads and answers) and its settings files.

Facts from the real CLI (see ../shared/claude-code/README.md): `file_path` is
absolute but not symlink-resolved; Edit and Write responses carry
`originalFile`; a deny is exit 0 with `permissionDecision: "deny"`; we never
answer "allow", since that would skip the user's own permission prompt.

Settings: `.claude/settings.json` (project), `.claude/settings.local.json` (local),
`~/.claude/settings.json` (user). Beside the hooks, install sets the shell prefix
(`env.CLAUDE_CODE_SHELL_PREFIX`: the command tracer) and what a shared directory needs
(`worktree.bgIsolation: "none"`). The payload and answer half is pure: no git, no store.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from vbranch.agents import SCOPES
from vbranch.agents.base import Agent
from vbranch.core import endings
from vbranch.errors import UsageError, VbranchError

FILE_TOOLS = {"Write", "Edit", "MultiEdit", "NotebookEdit"}


class PayloadError(ValueError):
    """The hook input is not a payload we can read."""


def parse(raw: bytes) -> dict:
    try:
        payload = json.loads(raw)
    except ValueError as error:
        raise PayloadError(f"hook input is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise PayloadError("hook input is not a JSON object")
    for key in ("hook_event_name", "session_id"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise PayloadError(f"hook input has no {key!r}")
    return payload


def tool_path(payload: dict) -> str | None:
    """The file a file tool writes (NotebookEdit names it notebook_path)."""
    data = payload.get("tool_input") or {}
    path = data.get("file_path") or data.get("notebook_path")
    return path if isinstance(path, str) and path else None


def proposed_content(tool: str, tool_input: dict, current: bytes | None) -> bytes | None:
    """The bytes the file will hold after the tool runs, or None when that cannot be known.

    Mirrors the tools (see endings.py): Write writes its content as given, in
    the file's encoding; Edit replaces old_string (the first occurrence, or all
    with replace_all) in the file's LF view, MultiEdit applies its edits in
    order, and both write the whole result back in the file's encoding and
    line-ending style. An edit whose old_string is missing returns None (the
    tool will refuse it itself).
    """
    if tool == "Write":
        content = tool_input.get("content")
        return endings.write_like_tool(content, current, convert=False) if isinstance(content, str) else None
    if tool == "Edit":
        return _apply_edits(current, [tool_input])
    if tool == "MultiEdit":
        edits = tool_input.get("edits")
        return _apply_edits(current, edits) if isinstance(edits, list) else None
    return None  # NotebookEdit: the notebook's JSON layout is the tool's own


def _apply_edits(current: bytes | None, edits: list) -> bytes | None:
    if current is None:
        return None
    text = endings.view(current)  # old_string and new_string are LF text, like the view
    for edit in edits:
        old, new = edit.get("old_string"), edit.get("new_string")
        if not isinstance(old, str) or not isinstance(new, str):
            return None
        if old == "":
            if text:
                return None
            text = new  # an empty old_string creates the file's content
            continue
        if old not in text:
            return None
        if new == "" and not old.endswith("\n") and old + "\n" in text:
            old += "\n"  # as the tool does: deleting a line's text deletes its line
        text = text.replace(old, new) if edit.get("replace_all") else text.replace(old, new, 1)
    return endings.write_like_tool(text, current)


# --- answers ----------------------------------------------------------------------------------


def deny(reason: str) -> str:
    return json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }
    )


def tell_agent(event: str, text: str) -> str:
    """Context added to what the model reads after a tool call or prompt."""
    return json.dumps({"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}})


def tell_user(text: str) -> str:
    return json.dumps({"systemMessage": text})


def add_agent_context(output: str | None, event: str, text: str) -> str:
    """A hook's output with `text` also given to the model (after any context it already has)."""
    data = json.loads(output) if output else {}
    specific = data.setdefault("hookSpecificOutput", {"hookEventName": event})
    previous = specific.get("additionalContext")
    specific["additionalContext"] = f"{previous}\n{text}" if previous else text
    return json.dumps(data)


def add_user_message(output: str | None, text: str) -> str:
    """A hook's output with `text` also shown to the user (after any message it already has)."""
    data = json.loads(output) if output else {}
    data["systemMessage"] = f"{data['systemMessage']}\n{text}" if data.get("systemMessage") else text
    return json.dumps(data)


def read_answer(answer: str | None) -> dict:
    """What an answer says, for agents that want it in their own words:
    {"denied": bool, "reason": str, "context": text or None, "message": text or None}."""
    parsed: object = {}
    if answer:
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    specific = parsed.get("hookSpecificOutput") if isinstance(parsed.get("hookSpecificOutput"), dict) else {}
    return {
        "denied": specific.get("permissionDecision") == "deny",
        "reason": specific.get("permissionDecisionReason") or "",
        "context": specific.get("additionalContext"),
        "message": parsed.get("systemMessage"),
    }


# --- settings: the shell prefix and what a shared directory needs ---------------------------------

TEMPLATE = "claude-settings.json"
# Claude Code runs every Bash command as `$CLAUDE_CODE_SHELL_PREFIX '<command>'`: ours is the tracer.
PREFIX = "CLAUDE_CODE_SHELL_PREFIX"
_OUR_PREFIX = re.compile(r"""tracer\.py['"]?$""")
# Settings a shared directory needs, beyond hooks and env: Claude Code (2.1.169 and later) pushes
# background sessions into worktrees unless told not to. Which ones install set (so that uninstall
# takes out exactly those) is remembered in the env block, the one place a marker is valid.
SHARED_DIR_SETTINGS = {("worktree", "bgIsolation"): "none"}
MARK = "VBRANCH_INSTALL_SET"


def is_our_prefix(value: object) -> bool:
    return bool(_OUR_PREFIX.search(str(value)))


def tracer_command() -> str:
    """The shell prefix that runs a command under the tracer (tracer.py), without site like the hook client."""
    from vbranch import tracer
    from vbranch.agents.settings import without_site

    return without_site(tracer.__file__)


def merge_prefix(settings: dict, prefix: str) -> tuple[dict, str | None]:
    """settings with our shell prefix in its `env`; someone else's prefix is kept and returned instead."""
    import copy  # not at the top: this module is on every hook's path, these run only at install

    out = copy.deepcopy(settings)
    env = out.get("env")
    if env is not None and not isinstance(env, dict):
        raise VbranchError('"env" in the settings is not an object', hint='fix or remove the "env" key by hand')
    current = (env or {}).get(PREFIX)
    if current and not is_our_prefix(current):
        return out, str(current)
    out["env"] = {**(env or {}), PREFIX: prefix}
    return out, None


def remove_prefix(settings: dict) -> dict:
    import copy

    out = copy.deepcopy(settings)
    env = out.get("env")
    if isinstance(env, dict) and is_our_prefix(env.get(PREFIX, "")):
        del env[PREFIX]
        if not env:
            del out["env"]
    return out


def merge_shared_dir_settings(settings: dict) -> dict:
    """settings with what a shared directory needs; a value the user chose is kept, never overwritten."""
    import copy

    out = copy.deepcopy(settings)
    env = out.get("env") if isinstance(out.get("env"), dict) else {}
    ours = [k for k in str(env.get(MARK, "")).split(",") if k]
    for (section, key), value in SHARED_DIR_SETTINGS.items():
        block = out.setdefault(section, {})
        if not isinstance(block, dict):
            raise VbranchError(f'"{section}" in the settings is not an object', hint=f'fix or remove the "{section}" key by hand')
        if key not in block:
            block[key] = value
            ours.append(f"{section}.{key}")
    if ours:
        out["env"] = {**env, MARK: ",".join(dict.fromkeys(ours))}
    return out


def remove_shared_dir_settings(settings: dict) -> dict:
    """settings without the values install set (and still as it set them)."""
    import copy

    out = copy.deepcopy(settings)
    env = out.get("env")
    if not isinstance(env, dict) or MARK not in env:
        return out
    for name in str(env.pop(MARK)).split(","):
        section, _, key = name.partition(".")
        block = out.get(section)
        if isinstance(block, dict) and block.get(key) == SHARED_DIR_SETTINGS.get((section, key)):
            del block[key]
            if not block:
                del out[section]
    if not env:
        del out["env"]
    return out


def foreign_prefix(path: Path) -> str | None:
    """A shell prefix in the settings file that is not vbranch's tracer."""
    from vbranch.agents.settings import load

    try:
        env = load(path)[0].get("env")
    except VbranchError:
        return None
    current = env.get(PREFIX) if isinstance(env, dict) else None
    return str(current) if current and not is_our_prefix(current) else None


class ClaudeCode(Agent):
    name = "claude"
    template = TEMPLATE
    project_file = ".claude/settings.json"

    def settings_path(self, top: Path, scope: str = "project", home: Path | None = None) -> Path:
        if scope not in SCOPES:
            raise UsageError(f"unknown settings scope {scope!r}", hint=f"use one of: {', '.join(SCOPES)}")
        if scope == "local":
            return Path(top) / ".claude" / "settings.local.json"
        return super().settings_path(top, scope, home)

    def merge(self, settings: dict) -> dict:
        """Our hooks, the tracer as shell prefix and what a shared directory needs.

        Another shell prefix already there is kept (`foreign_prefix` tells): then the
        command tracer is not installed and commands are attributed by time windows.
        """
        merged, _other = merge_prefix(super().merge(settings), tracer_command())
        return merge_shared_dir_settings(merged)

    def unmerge(self, settings: dict) -> dict:
        return remove_shared_dir_settings(remove_prefix(super().unmerge(settings)))

    def normalize(self, payload: object) -> dict | None:
        return payload if isinstance(payload, dict) else None  # our hook events are its own payloads

    def main(self, stdin=None, stdout=None, stderr=None, default_dir: str | None = None, agent_pid: int | None = None) -> int:
        from vbranch.hooks import handler as hook

        return hook.main(stdin, stdout, stderr, default_dir, agent_pid)


AGENT = ClaudeCode()


def settings_path(top: Path, scope: str = "project", home: Path | None = None) -> Path:
    return AGENT.settings_path(top, scope, home)


def our_hooks(command: str | None = None) -> dict:
    """The shipped template with the placeholder filled in."""
    return AGENT.our_hooks(command)


def install(top: Path, scope: str = "project", home: Path | None = None) -> Path:
    """Merge vbranch's hooks and shell prefix into the settings file of `scope`; returns its path."""
    return AGENT.install(top, scope, home)


def uninstall(top: Path, scope: str = "project", home: Path | None = None) -> Path:
    """Take vbranch's hooks (and what install set beside them) out of the settings file of `scope`."""
    return AGENT.uninstall(top, scope, home)

"""Codex CLI: Claude Code's hook shape, with apply_patch for file edits.

Settings: `.codex/hooks.json`, or `$CODEX_HOME/hooks.json` (default ~/.codex).
- Same file shape as Claude Code: {"hooks": {Event: [{"matcher": regex,
  "hooks": [{"type": "command", "command", "timeout" (seconds)}]}]}}; events
  SessionStart, UserPromptSubmit, PreToolUse, PostToolUse, Stop (also
  PermissionRequest, Pre/PostCompact, Subagent*), no SessionEnd, and no
  PostToolUse for a failed call. Codex runs a new or changed hook only after
  the user trusts it in `/hooks`. (openai/codex codex-rs/hooks: events/*.rs,
  schema/generated/*.command.input.schema.json, engine/discovery.rs; the Codex
  hooks docs page, whose 2026 revision makes `[features] hooks` default on.)
- Payload: session_id, turn_id, transcript_path, cwd, hook_event_name, model,
  permission_mode, tool_name, tool_input, tool_use_id (+ tool_response after).
  Shell tools arrive as tool_name "Bash", tool_input {"command": ...}.
- File edits arrive as tool_name "apply_patch" (matcher aliases Write and Edit)
  with the raw patch text in tool_input.command, for both the JSON and the
  freeform variant of the tool (openai/codex PR #18391 "emit hooks for
  apply_patch edits", fixing issue #16732; core/src/tools/handlers/apply_patch.rs
  `pre_tool_use_payload`). The patch format: "*** Begin Patch", then per file
  "*** Add File: p", "*** Delete File: p" or "*** Update File: p" (optionally
  followed by "*** Move to: q"), "*** End Patch"; paths relative to cwd
  (codex-rs apply_patch tool instructions / grammar).
- Output: Claude Code's format.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from vbranch.agents.base import Agent, absolute

_PATCH_FILE = re.compile(r"^\*\*\* (Add File|Delete File|Update File|Move to): (.+?)\s*$", re.MULTILINE)


def patch_paths(patch: str) -> list[str]:
    """The files a Codex apply_patch touches, in order, without repeats (a move: both names)."""
    seen: list[str] = []
    for _, path in _PATCH_FILE.findall(patch or ""):
        if path not in seen:
            seen.append(path)
    return seen


class Codex(Agent):
    name = "codex"
    template = "codex-hooks.json"
    project_file = ".codex/hooks.json"
    note = "Codex runs a new or changed hook only after you trust it: open /hooks in Codex and trust the vbranch hooks."
    stop_closes_windows = True

    def settings_path(self, top: Path, scope: str = "project", home: Path | None = None) -> Path:
        if scope == "user" and home is None and os.environ.get("CODEX_HOME"):
            return Path(os.environ["CODEX_HOME"]) / "hooks.json"
        return super().settings_path(top, scope, home)

    def translate(self, p: dict) -> dict | None:
        event = p.get("hook_event_name")
        if event in ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStart", "SubagentStop"):
            return dict(p)  # already Claude's shape
        if event not in ("PreToolUse", "PostToolUse"):
            return None
        tool, tool_input = p.get("tool_name"), p.get("tool_input")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        out = dict(p)
        if tool == "Bash":
            return out if isinstance(tool_input.get("command"), str) else None
        if tool != "apply_patch":
            return None  # MCP and other tools write nothing vbranch attributes
        patch = tool_input.get("command") or tool_input.get("input") or ""
        if not isinstance(patch, str):
            return None
        paths = patch_paths(patch)
        cwd = p.get("cwd") or ""
        # One patch may touch several files: a Bash-like window (opened before, closed after)
        # covers them all. The command shown to vbranch's guards names the files, never the
        # patch text, whose context lines could look like git commands.
        out["tool_name"] = "Bash"
        out["tool_input"] = {
            "command": " ".join(["apply_patch", *map(shlex.quote, paths)]),
            "description": "Codex apply_patch",
            "paths": [absolute(path, cwd) for path in paths],
            "patch": patch,
        }
        return out


AGENT = Codex()

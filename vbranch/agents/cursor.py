"""Cursor: its flat hook lists, its events in Claude Code's terms, JSON on every path.

Settings: `.cursor/hooks.json`, or ~/.cursor/hooks.json.
- {"version": 1, "hooks": {event: [{"command": ...}]}}: a flat list per event,
  no groups. Agent events beforeSubmitPrompt, beforeShellExecution,
  afterShellExecution, beforeMCPExecution, afterMCPExecution, beforeReadFile,
  afterFileEdit, stop (Cursor 1.7); later versions add sessionStart, sessionEnd
  and more; an event a version does not know is ignored. (cursor.com/docs/agent/hooks
  as summarised by the cursor-hooks npm package README, the hookshot
  docs/reference-cursor.md and cupcake's Cursor harness reference.)
- Payload: hook_event_name, conversation_id, generation_id, workspace_roots;
  shell events command and cwd; afterFileEdit file_path and edits
  [{old_string, new_string}] (after the edit: Cursor has no hook before a file
  edit, so there is no lease or line guard for Cursor's edits); beforeSubmitPrompt
  prompt; stop status.
- Output: beforeShellExecution {"permission": "allow"|"deny"|"ask",
  "user_message", "agent_message"}; Cursor wants JSON on every path, so
  nothing to say is `{}` (never "allow": that would skip the user's own
  approval). (Cursor forum report 173694 quotes `{"permission":"ask",
  "user_message":..,"agent_message":..}`; rtk's Cursor hook notes the `{}`.)
"""
from __future__ import annotations

import json

from vbranch.agents.base import Agent, absolute, synthetic_id, text_field
from vbranch.hooks.contract import read_answer

EVENTS = {
    "sessionStart": "SessionStart",
    "sessionEnd": "SessionEnd",
    "beforeSubmitPrompt": "UserPromptSubmit",
    "beforeShellExecution": "PreToolUse",
    "afterShellExecution": "PostToolUse",
    "afterFileEdit": "PostToolUse",
    "stop": "Stop",
}


class Cursor(Agent):
    name = "cursor"
    template = "cursor-hooks.json"
    project_file = ".cursor/hooks.json"
    flat = True
    note = "Restart Cursor (or reload the window) so that it reads the hooks."
    fail_output = "{}"  # JSON on every path: nothing to say (or a hook that failed) is {}, never "allow"

    def translate(self, p: dict) -> dict | None:
        native = p.get("hook_event_name")
        event = EVENTS.get(native)
        if event is None:
            return None
        roots = p.get("workspace_roots")
        root = roots[0] if isinstance(roots, list) and roots and isinstance(roots[0], str) else ""
        cwd = p.get("cwd") if isinstance(p.get("cwd"), str) and p.get("cwd") else root
        base = {"session_id": p.get("conversation_id") or p.get("session_id"), "cwd": cwd, "hook_event_name": event}
        if event in ("SessionStart", "SessionEnd", "Stop"):
            return base
        if event == "UserPromptSubmit":
            return {**base, "prompt": text_field(p, "prompt")}
        if native == "afterFileEdit":
            return self._file_edit(p, base, root or cwd)
        command = p.get("command")
        if not isinstance(command, str):
            return None
        out = {**base, "tool_name": "Bash", "tool_input": {"command": command},
               "tool_use_id": synthetic_id(self.name, base["session_id"], p.get("generation_id"), command, cwd)}
        if event == "PostToolUse":
            out["tool_response"] = {k: p[k] for k in ("output", "stdout", "stderr", "exit_code", "duration") if k in p}
        return out

    def _file_edit(self, p: dict, base: dict, root: str) -> dict | None:
        """An edit already made (Cursor has no hook before one): an Edit's PostToolUse."""
        path = p.get("file_path")
        if not isinstance(path, str) or not path:
            return None
        edits = p.get("edits") if isinstance(p.get("edits"), list) else []
        return {**base, "tool_name": "Edit",
                "tool_input": {"file_path": absolute(path, root), "edits": edits},
                "tool_use_id": synthetic_id(self.name, base["session_id"], p.get("generation_id"), path, edits),
                "tool_response": {}}

    def render(self, payload: dict, answer: str | None) -> str | None:
        said, native = read_answer(answer), payload.get("hook_event_name")
        out: dict = {}
        if native == "beforeShellExecution" and said["denied"]:
            out = {"permission": "deny", "user_message": said["reason"], "agent_message": said["reason"]}
        elif native == "beforeSubmitPrompt":
            out = {"continue": True}
        elif native == "sessionStart" and said["context"]:
            out = {"additional_context": said["context"]}
        if said["message"] and "user_message" not in out and native != "beforeSubmitPrompt":
            out["user_message"] = said["message"]
        return json.dumps(out) if out else self.fail_output


AGENT = Cursor()

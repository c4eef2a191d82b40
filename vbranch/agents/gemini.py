"""Gemini CLI: its events and tools in Claude Code's terms.

Settings: `.gemini/settings.json`, or ~/.gemini/settings.json.
- {"hooks": {Event: [{"matcher": regex, "hooks": [{"name", "type": "command",
  "command", "timeout" (MILLISECONDS, default 60000)}]}]}}; events SessionStart,
  SessionEnd, BeforeAgent, AfterAgent, BeforeTool, AfterTool, BeforeModel, ...
  Some versions also want the hooks system switched on (`/settings` >
  "Enable Hooks System", `tools.enableHooks`). (google-gemini/gemini-cli
  docs/hooks/index.md and docs/hooks/reference.md; packages/core/src/hooks/types.ts)
- Payload: session_id, transcript_path, cwd, hook_event_name, timestamp;
  BeforeTool/AfterTool add tool_name and tool_input (the model's arguments),
  AfterTool tool_response {llmContent, returnDisplay, error?}; BeforeAgent
  prompt. No tool call id: Before and After are paired here by a hash of the
  session, tool and arguments.
- Tools (docs/tools/file-system.md, docs/tools/shell.md): write_file {file_path,
  content}; replace {file_path, old_string, new_string, expected_replacements};
  run_shell_command {command, description, directory (relative to the project)}.
- Output: {"decision": "deny", "reason"} blocks a tool; systemMessage;
  hookSpecificOutput.additionalContext (SessionStart, BeforeAgent, AfterTool).
  Exit 2 blocks, other non-zero codes are warnings.
"""
from __future__ import annotations

import json

from vbranch.agents.base import Agent, absolute, synthetic_id, text_field
from vbranch.hooks.contract import read_answer

EVENTS = {
    "SessionStart": "SessionStart",
    "SessionEnd": "SessionEnd",
    "BeforeAgent": "UserPromptSubmit",
    "AfterAgent": "Stop",
    "BeforeTool": "PreToolUse",
    "AfterTool": "PostToolUse",
}
CONTEXT_EVENTS = ("SessionStart", "BeforeAgent", "AfterTool")  # where it reads additionalContext


def _tool(tool: object, args: dict, cwd: str) -> tuple[str, dict, str | None] | None:
    """Our tool name, its input and the command's cwd (None: the event's) for a Gemini tool call."""
    if tool == "write_file" and isinstance(args.get("file_path"), str):
        return "Write", {"file_path": absolute(args["file_path"], cwd), "content": args.get("content", "")}, None
    if tool == "replace" and isinstance(args.get("file_path"), str):
        count = args.get("expected_replacements")
        return "Edit", {
            "file_path": absolute(args["file_path"], cwd),
            "old_string": args.get("old_string", ""),
            "new_string": args.get("new_string", ""),
            "replace_all": isinstance(count, int) and count > 1,
        }, None
    if tool == "run_shell_command" and isinstance(args.get("command"), str):
        directory = args.get("directory")
        where = absolute(directory, cwd) if isinstance(directory, str) and directory else None
        return "Bash", {"command": args["command"], "description": args.get("description", "")}, where
    return None


class Gemini(Agent):
    name = "gemini"
    template = "gemini-settings.json"
    project_file = ".gemini/settings.json"
    note = "If Gemini CLI does not run the hooks, enable the hooks system (/settings > Enable Hooks System) and restart it."

    def translate(self, p: dict) -> dict | None:
        event = EVENTS.get(p.get("hook_event_name"))
        if event is None:
            return None
        base = {k: p[k] for k in ("session_id", "transcript_path", "cwd") if k in p}
        base["hook_event_name"] = event
        if event == "SessionStart":
            return {**base, "source": p.get("source")}
        if event == "SessionEnd":
            return {**base, "reason": p.get("reason")}
        if event == "UserPromptSubmit":
            return {**base, "prompt": text_field(p, "prompt")}
        if event == "Stop":
            return {**base, "stop_hook_active": bool(p.get("stop_hook_active"))}
        tool, args = p.get("tool_name"), p.get("tool_input")
        args = args if isinstance(args, dict) else {}
        found = _tool(tool, args, p.get("cwd") or "")
        if found is None:
            return None
        name, tool_input, where = found
        if where is not None:
            base["cwd"] = where
        out = {**base, "tool_name": name, "tool_input": tool_input,
               "tool_use_id": synthetic_id(self.name, p.get("session_id"), tool, args)}
        if event == "PostToolUse":
            response = p.get("tool_response")
            out["tool_response"] = response if isinstance(response, dict) else {"output": response}
            if isinstance(response, dict) and response.get("error"):
                out["hook_event_name"] = "PostToolUseFailure"
                out["error"] = str(response["error"])
        return out

    def render(self, payload: dict, answer: str | None) -> str | None:
        said, native = read_answer(answer), payload.get("hook_event_name")
        out: dict = {}
        if said["denied"]:
            out.update(decision="deny", reason=said["reason"])
        if said["message"]:
            out["systemMessage"] = said["message"]
        if said["context"] and native in CONTEXT_EVENTS:
            out["hookSpecificOutput"] = {"hookEventName": native, "additionalContext": said["context"]}
        return json.dumps(out) if out else None


AGENT = Gemini()

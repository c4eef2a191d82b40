"""Other agent CLIs: their hook files installed, their payloads made Claude-Code-shaped.

`vbranch hook --agent codex|gemini|cursor` reads the agent's own payload,
`normalize` turns it into the Claude Code payload `vbranch hook` handles
(hook_event_name PreToolUse/PostToolUse/..., session_id, cwd, tool_name
Write/Edit/Bash, tool_input with file_path or command, tool_use_id), the same
handler runs, and `render` turns its answer back into the agent's format.

What each agent sends, and where it was read (all three move fast; these are
the formats as documented or as in the source at the time of writing):

Codex CLI (`.codex/hooks.json`, or `$CODEX_HOME/hooks.json`, default ~/.codex)
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

Gemini CLI (`.gemini/settings.json`, or ~/.gemini/settings.json)
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

Cursor (`.cursor/hooks.json`, or ~/.cursor/hooks.json)
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

import copy
import hashlib
import io
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from . import install as claude_install
from .errors import UsageError, VbranchError
from .install import BACKUP_SUFFIX, PLACEHOLDER, _load, _save, hook_command, is_ours, merge_hooks, remove_hooks
from .resources import hook_file

AGENTS = ("codex", "gemini", "cursor")
# project: the repository's file (shared, meant to be committed); local: the same file, kept out of
# git through .git/info/exclude (this machine's alone); user: the one in the home directory.
SCOPES = ("project", "local", "user")

TEMPLATES = {"codex": "codex-hooks.json", "gemini": "gemini-settings.json", "cursor": "cursor-hooks.json"}
PROJECT_FILES = {"codex": ".codex/hooks.json", "gemini": ".gemini/settings.json", "cursor": ".cursor/hooks.json"}

# What the user may need to do after installing.
NOTES = {
    "codex": "Codex runs a new or changed hook only after you trust it: open /hooks in Codex and trust the vbranch hooks.",
    "gemini": "If Gemini CLI does not run the hooks, enable the hooks system (/settings > Enable Hooks System) and restart it.",
    "cursor": "Restart Cursor (or reload the window) so that it reads the hooks.",
}


def _check_agent(agent: str) -> None:
    if agent not in AGENTS:
        raise UsageError(f"unknown agent {agent!r}", hint=f"use one of: {', '.join(AGENTS)} (or claude)")


# --- installing -------------------------------------------------------------------------------


def settings_path(top: Path, agent: str, scope: str = "project", home: Path | None = None) -> Path:
    _check_agent(agent)
    if scope in ("project", "local"):
        return Path(top) / PROJECT_FILES[agent]
    if scope != "user":
        raise UsageError(f"unknown scope {scope!r} for {agent}", hint=f"use one of: {', '.join(SCOPES)}")
    if home is None:
        if agent == "codex" and os.environ.get("CODEX_HOME"):
            return Path(os.environ["CODEX_HOME"]) / "hooks.json"
        home = Path.home()
    return Path(home) / PROJECT_FILES[agent]


def our_hooks(agent: str, command: str | None = None) -> dict:
    """The agent's template with the placeholder filled in (after parsing: no JSON escaping issues)."""
    _check_agent(agent)
    template = json.loads(hook_file(TEMPLATES[agent]))
    command = command or hook_command()

    def fill(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "command" and isinstance(value, str):
                    node[key] = value.replace(PLACEHOLDER, command)
                else:
                    fill(value)
        elif isinstance(node, list):
            for item in node:
                fill(item)

    fill(template)
    return template


def merge_flat(settings: dict, ours: dict) -> dict:
    """Cursor's shape (a flat list of hooks per event): `ours` in place of earlier vbranch entries.

    A replaced entry keeps its place among the user's; events we no longer use
    lose our entries; everything else is untouched.
    """
    out = copy.deepcopy(settings)
    hooks = out.get("hooks")
    if hooks is None:
        hooks = out["hooks"] = {}
    if not isinstance(hooks, dict):
        raise VbranchError('"hooks" in the settings is not an object', hint='fix or remove the "hooks" key by hand')
    for event in list(hooks):
        entries = hooks[event]
        if not isinstance(entries, list):
            if event in ours["hooks"]:
                raise VbranchError(f'"hooks.{event}" in the settings is not a list', hint="fix it by hand, then install again")
            continue
        kept = [e for e in entries if not is_ours(e)]
        first = next((i for i, e in enumerate(entries) if is_ours(e)), None)
        if first is not None:
            first = sum(1 for e in entries[:first] if not is_ours(e))
        else:
            first = len(kept)
        merged = kept[:first] + copy.deepcopy(ours["hooks"].get(event, [])) + kept[first:]
        if merged or not entries:
            hooks[event] = merged
        else:
            del hooks[event]
    for event, entries in ours["hooks"].items():
        if event not in hooks:
            hooks[event] = copy.deepcopy(entries)
    for key, value in ours.items():
        if key != "hooks":
            out.setdefault(key, value)  # "version": 1
    return out


def remove_flat(settings: dict) -> dict:
    """Cursor's shape without vbranch's entries; event lists and a hooks object we empty are dropped."""
    out = copy.deepcopy(settings)
    hooks = out.get("hooks")
    if not isinstance(hooks, dict):
        return out
    for event in list(hooks):
        entries = hooks[event]
        if not isinstance(entries, list) or not any(is_ours(e) for e in entries):
            continue
        kept = [e for e in entries if not is_ours(e)]
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks:
        del out["hooks"]
    return out


def install_agent(top: Path, agent: str, scope: str = "project", home: Path | None = None) -> Path:
    """Merge vbranch's hooks into the agent's hook file; returns its path (backup of what was there)."""
    path = settings_path(top, agent, scope, home)
    current, raw = _load(path)
    try:
        ours = our_hooks(agent)
        merged = merge_flat(current, ours) if agent == "cursor" else merge_hooks(current, ours)
    except VbranchError as exc:
        raise VbranchError(f"{path}: {exc.message}", hint=exc.hint) from None
    if raw is None or merged != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(path, merged, raw)
    if scope != "user":
        _keep_out_of_git(top, [f"*{BACKUP_SUFFIX}"] + ([PROJECT_FILES[agent]] if scope == "local" else []))
    return path


def _keep_out_of_git(top: Path, patterns: list[str]) -> None:
    """Our backups (and a local-scope file) are no session's change: .git/info/exclude, as install.py does."""
    exclude = getattr(claude_install, "_exclude", None)
    if exclude is None:
        return
    try:
        exclude(Path(top), patterns)
    except VbranchError:
        pass  # not a git repository: no working tree to keep them out of


def uninstall_agent(top: Path, agent: str, scope: str = "project", home: Path | None = None) -> Path:
    """Take vbranch's hooks out of the agent's hook file; returns its path."""
    path = settings_path(top, agent, scope, home)
    current, raw = _load(path)
    cleaned = remove_flat(current) if agent == "cursor" else remove_hooks(current)
    if raw is not None and cleaned != current:
        _save(path, cleaned, raw)
    return path


# --- payloads in ------------------------------------------------------------------------------

_PATCH_FILE = re.compile(r"^\*\*\* (Add File|Delete File|Update File|Move to): (.+?)\s*$", re.MULTILINE)


def patch_paths(patch: str) -> list[str]:
    """The files a Codex apply_patch touches, in order, without repeats (a move: both names)."""
    seen: list[str] = []
    for _, path in _PATCH_FILE.findall(patch or ""):
        if path not in seen:
            seen.append(path)
    return seen


def _synthetic_id(agent: str, *parts: Any) -> str:
    """A stable tool call id for agents that send none: the same for a call's before and after."""
    digest = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"vbranch-{agent}-{digest}"


def _absolute(path: str, cwd: str) -> str:
    return path if os.path.isabs(path) else os.path.join(cwd or ".", path)


def normalize(agent: str, payload: dict) -> dict | None:
    """The Claude-Code-shaped payload for this agent's `payload`, or None when vbranch has nothing to do.

    The result carries `vbranch_agent` (which CLI it came from) and, for Codex's
    apply_patch, `tool_input.paths`: the absolute paths the patch touches.
    """
    _check_agent(agent)
    if not isinstance(payload, dict):
        return None
    out = {"codex": _codex, "gemini": _gemini, "cursor": _cursor}[agent](payload)
    if out is None or not isinstance(out.get("session_id"), str) or not out["session_id"]:
        return None
    out["vbranch_agent"] = agent
    return out


def _codex(p: dict) -> dict | None:
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
        "paths": [_absolute(path, cwd) for path in paths],
        "patch": patch,
    }
    return out


GEMINI_EVENTS = {
    "SessionStart": "SessionStart",
    "SessionEnd": "SessionEnd",
    "BeforeAgent": "UserPromptSubmit",
    "AfterAgent": "Stop",
    "BeforeTool": "PreToolUse",
    "AfterTool": "PostToolUse",
}


def _gemini(p: dict) -> dict | None:
    event = GEMINI_EVENTS.get(p.get("hook_event_name"))
    if event is None:
        return None
    base = {k: p[k] for k in ("session_id", "transcript_path", "cwd") if k in p}
    base["hook_event_name"] = event
    if event in ("SessionStart", "SessionEnd"):
        extra = {"source": p.get("source")} if event == "SessionStart" else {"reason": p.get("reason")}
        return {**base, **extra}
    if event == "UserPromptSubmit":
        return {**base, "prompt": p.get("prompt") if isinstance(p.get("prompt"), str) else ""}
    if event == "Stop":
        return {**base, "stop_hook_active": bool(p.get("stop_hook_active"))}
    tool, args = p.get("tool_name"), p.get("tool_input")
    args = args if isinstance(args, dict) else {}
    cwd = p.get("cwd") or ""
    if tool == "write_file" and isinstance(args.get("file_path"), str):
        name, tool_input = "Write", {"file_path": _absolute(args["file_path"], cwd), "content": args.get("content", "")}
    elif tool == "replace" and isinstance(args.get("file_path"), str):
        count = args.get("expected_replacements")
        name, tool_input = "Edit", {
            "file_path": _absolute(args["file_path"], cwd),
            "old_string": args.get("old_string", ""),
            "new_string": args.get("new_string", ""),
            "replace_all": isinstance(count, int) and count > 1,
        }
    elif tool == "run_shell_command" and isinstance(args.get("command"), str):
        name, tool_input = "Bash", {"command": args["command"], "description": args.get("description", "")}
        if isinstance(args.get("directory"), str) and args["directory"]:
            base["cwd"] = _absolute(args["directory"], cwd)
    else:
        return None
    out = {**base, "tool_name": name, "tool_input": tool_input,
           "tool_use_id": _synthetic_id("gemini", p.get("session_id"), tool, args)}
    if event == "PostToolUse":
        response = p.get("tool_response")
        out["tool_response"] = response if isinstance(response, dict) else {"output": response}
        if isinstance(response, dict) and response.get("error"):
            out["hook_event_name"] = "PostToolUseFailure"
            out["error"] = str(response["error"])
    return out


CURSOR_EVENTS = {
    "sessionStart": "SessionStart",
    "sessionEnd": "SessionEnd",
    "beforeSubmitPrompt": "UserPromptSubmit",
    "beforeShellExecution": "PreToolUse",
    "afterShellExecution": "PostToolUse",
    "afterFileEdit": "PostToolUse",
    "stop": "Stop",
}


def _cursor(p: dict) -> dict | None:
    native = p.get("hook_event_name")
    event = CURSOR_EVENTS.get(native)
    if event is None:
        return None
    roots = p.get("workspace_roots")
    root = roots[0] if isinstance(roots, list) and roots and isinstance(roots[0], str) else ""
    cwd = p.get("cwd") if isinstance(p.get("cwd"), str) and p.get("cwd") else root
    base = {"session_id": p.get("conversation_id") or p.get("session_id"), "cwd": cwd, "hook_event_name": event}
    if event in ("SessionStart", "SessionEnd", "Stop"):
        return base
    if event == "UserPromptSubmit":
        return {**base, "prompt": p.get("prompt") if isinstance(p.get("prompt"), str) else ""}
    if native == "afterFileEdit":
        path = p.get("file_path")
        if not isinstance(path, str) or not path:
            return None
        edits = p.get("edits") if isinstance(p.get("edits"), list) else []
        return {**base, "tool_name": "Edit",
                "tool_input": {"file_path": _absolute(path, root or cwd), "edits": edits},
                "tool_use_id": _synthetic_id("cursor", base["session_id"], p.get("generation_id"), path, edits),
                "tool_response": {}}
    command = p.get("command")
    if not isinstance(command, str):
        return None
    out = {**base, "tool_name": "Bash", "tool_input": {"command": command},
           "tool_use_id": _synthetic_id("cursor", base["session_id"], p.get("generation_id"), command, cwd)}
    if event == "PostToolUse":
        out["tool_response"] = {k: p[k] for k in ("output", "stdout", "stderr", "exit_code", "duration") if k in p}
    return out


# --- answers out ------------------------------------------------------------------------------


def render(agent: str, payload: dict, answer: str | None) -> str | None:
    """vbranch's Claude-shaped answer (JSON text or None) in the agent's own format, or None."""
    _check_agent(agent)
    parsed: dict = {}
    if answer:
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    specific = parsed.get("hookSpecificOutput") if isinstance(parsed.get("hookSpecificOutput"), dict) else {}
    denied = specific.get("permissionDecision") == "deny"
    reason = specific.get("permissionDecisionReason") or ""
    context = specific.get("additionalContext")
    message = parsed.get("systemMessage")
    native = payload.get("hook_event_name")
    if agent == "codex":
        return answer or None  # Codex reads Claude's output format
    if agent == "gemini":
        out: dict = {}
        if denied:
            out.update(decision="deny", reason=reason)
        if message:
            out["systemMessage"] = message
        if context and native in ("SessionStart", "BeforeAgent", "AfterTool"):
            out["hookSpecificOutput"] = {"hookEventName": native, "additionalContext": context}
        return json.dumps(out) if out else None
    # cursor: JSON on every path
    out = {}
    if native == "beforeShellExecution" and denied:
        out = {"permission": "deny", "user_message": reason, "agent_message": reason}
    elif native == "beforeSubmitPrompt":
        out = {"continue": True}
    elif native == "sessionStart" and context:
        out = {"additional_context": context}
    if message and "user_message" not in out and native != "beforeSubmitPrompt":
        out["user_message"] = message
    return json.dumps(out)


def main(agent: str, stdin=None, stdout=None, stderr=None, default_dir: str | None = None) -> int:
    """`vbranch hook --agent AGENT`: the agent's payload on stdin, through vbranch's hook handler."""
    from . import hook

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    raw = stdin.read()
    try:
        payload = json.loads(raw)
    except ValueError as error:
        stderr.write(f"vbranch hook: {agent} hook input is not JSON ({error}); the tool call goes ahead unchecked\n")
        if agent == "cursor":
            stdout.write("{}\n")
        return 1
    payload = payload if isinstance(payload, dict) else {}
    normalized = normalize(agent, payload)
    code, answer = 0, None
    if normalized is not None:
        buffer = io.StringIO()
        code = hook.main(io.BytesIO(json.dumps(normalized).encode()), buffer, stderr, default_dir)
        answer = buffer.getvalue().strip() or None
    text = render(agent, payload, answer)
    if text:
        stdout.write(text + "\n")
    return code


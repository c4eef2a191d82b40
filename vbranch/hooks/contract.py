"""Claude Code's hook contract, which is our hook event format: payloads in, answers out. Pure.

Facts from the real CLI (see ../shared/claude-code/README.md): `file_path` is
absolute but not symlink-resolved; Edit and Write responses carry
`originalFile`; a deny is exit 0 with `permissionDecision: "deny"`; we never
answer "allow", since that would skip the user's own permission prompt.
Other agents' payloads are translated into this shape (vbranch/agents/) before the
handler (handler.py) sees them, and its answers back into theirs (`read_answer`).
"""
from __future__ import annotations

import json

from vbranch.core import endings

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

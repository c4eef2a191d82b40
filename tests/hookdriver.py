"""Fire captured Claude Code hook payloads at `vbranch hook`, as the CLI would."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from vbranch import hookclient
from vbranch.hooks import handler as hook

PAYLOADS = Path(__file__).parent / "payloads"
CAPTURED_ROOT = "/home/dev/project"


def payload(name: str, repo: Path, **fields) -> dict:
    """A captured payload with its paths moved into `repo` and `fields` replaced."""
    text = (PAYLOADS / f"{name}.json").read_text().replace(CAPTURED_ROOT, str(repo))
    data = json.loads(text)
    data.update(fields)
    return data


def fire(data: dict | bytes) -> tuple[int, dict | None]:
    """Run the hook in this process (or through the watcher's hook server, when
    VBRANCH_TEST_HOOKS_VIA=server); returns its exit code and parsed output."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    if os.environ.get("VBRANCH_TEST_HOOKS_VIA") == "server":
        code, text = via_server(raw, data["cwd"] if isinstance(data, dict) else os.getcwd())
    else:
        out = io.StringIO()
        code = hook.main(stdin=io.BytesIO(raw), stdout=out)
        text = out.getvalue().strip()
    return code, json.loads(text) if text else None


def via_server(raw: bytes, cwd: str) -> tuple[int, str]:
    """The installed hook command (the client), required to be answered by the server."""
    env = {**os.environ, "VBRANCH_HOOK_SERVER": "only"}
    proc = subprocess.run([sys.executable, "-S", hookclient.__file__, "hook"], input=raw, cwd=cwd, env=env, capture_output=True)
    if proc.returncode and b"no hook server answered" in proc.stderr:
        raise AssertionError(proc.stderr.decode())
    return proc.returncode, proc.stdout.decode().strip()


class Session:
    """One Claude Code session's hooks, with the tools' effects done by the test."""

    def __init__(self, repo: Path, session_id: str, agent_id: str | None = None):
        self.repo = repo
        self.id = session_id
        self.agent_id = agent_id

    def _base(self, name: str, **fields) -> dict:
        data = payload(name, self.repo, session_id=self.id, **fields)
        if self.agent_id:
            data["agent_id"] = self.agent_id
            data["agent_type"] = "general-purpose"
        return data

    def start(self, source: str = "startup"):
        return fire(self._base("SessionStart", source=source))

    def prompt(self, text: str):
        return fire(self._base("UserPromptSubmit", prompt=text))

    def pre(self, tool: str, tool_input: dict, tool_use_id: str):
        return fire(self._base(f"PreToolUse_{'Bash' if tool == 'Bash' else 'Write'}", tool_name=tool, tool_input=tool_input, tool_use_id=tool_use_id))

    def post(self, tool: str, tool_input: dict, tool_use_id: str, response: dict | None = None, failed: bool = False):
        name = "PostToolUse_Bash" if tool == "Bash" else "PostToolUse_Write"
        data = self._base(name, tool_name=tool, tool_input=tool_input, tool_use_id=tool_use_id, tool_response=response or {})
        if failed:
            data["hook_event_name"] = "PostToolUseFailure"
            data.pop("tool_response")
            data["error"] = "Exit code 1"
        return fire(data)

    def write(self, path: str, content: str):
        """A Write tool call: PreToolUse, the write (unless denied), PostToolUse."""
        full = self.repo / path
        tool_input = {"file_path": str(full), "content": content}
        call = f"toolu_{uuid.uuid4().hex[:12]}"
        code, out = self.pre("Write", tool_input, call)
        if _denied(out):
            return out
        original = full.read_text() if full.exists() else None
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content)
        return self.post("Write", tool_input, call, {"type": "update" if original else "create", "filePath": str(full), "content": content, "originalFile": original})[1]

    def edit(self, path: str, old: str, new: str):
        """An Edit tool call: PreToolUse, the replacement (unless denied), PostToolUse."""
        full = self.repo / path
        tool_input = {"file_path": str(full), "old_string": old, "new_string": new, "replace_all": False}
        call = f"toolu_{uuid.uuid4().hex[:12]}"
        code, out = self.pre("Edit", tool_input, call)
        if _denied(out):
            return out
        original = full.read_text()
        full.write_text(original.replace(old, new, 1))
        return self.post("Edit", tool_input, call, {"filePath": str(full), "oldString": old, "newString": new, "originalFile": original})[1]

    def bash(self, command: str, action=None):
        """A Bash tool call: PreToolUse, `action()` (the command's effect), PostToolUse."""
        tool_input = {"command": command, "description": "test"}
        call = f"toolu_{uuid.uuid4().hex[:12]}"
        code, out = self.pre("Bash", tool_input, call)
        if _denied(out):
            return out
        if action:
            action()
        return self.post("Bash", tool_input, call, {"stdout": "", "stderr": "", "interrupted": False})[1]

    def stop(self):
        return fire(self._base("Stop"))

    def end(self):
        return fire(self._base("SessionEnd"))


def _denied(out: dict | None) -> bool:
    return bool(out) and out.get("hookSpecificOutput", {}).get("permissionDecision") == "deny"


def denied_reason(out: dict | None) -> str | None:
    return out["hookSpecificOutput"]["permissionDecisionReason"] if _denied(out) else None

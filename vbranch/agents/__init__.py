"""The agent CLIs vbranch hooks into, one module each, and the registry that names them.

Each module (`claude_code.py`, `codex.py`, `gemini.py`, `cursor.py`) defines an `Agent`
(base.py: settings file and scopes, install/uninstall, payload translation to our hook
events, answers in the agent's own format, how it fails open) and ends with `AGENT = ...`.
Adding an agent is one module and one line in REGISTRY (plus its template under hooks/).
Modules load on first use, so a hook loads only its own agent's.

`vbranch hook --agent codex|gemini|cursor` reads the agent's own payload, `normalize`
turns it into one of our hook events (Claude Code's payload shape: hook_event_name
PreToolUse/PostToolUse/..., session_id, cwd, tool_name Write/Edit/Bash, tool_input with
file_path or command, tool_use_id), `hooks.handler.main` handles it, and `render` turns its answer
back into the agent's format. Claude Code's own payloads go to `hooks.handler.main` as they are.
"""
from __future__ import annotations

from vbranch.errors import UsageError

REGISTRY = {  # `--agent` name -> module
    "claude": "claude_code",
    "codex": "codex",
    "gemini": "gemini",
    "cursor": "cursor",
}
AGENTS = tuple(name for name in REGISTRY if name != "claude")  # those whose payloads are translated
# project: the repository's file (shared, meant to be committed); local: a file kept out of git
# through .git/info/exclude (this machine's alone); user: the one in the home directory.
SCOPES = ("project", "local", "user")


def get(agent: str):
    """The registered agent named `agent` (its module loaded on first use); UsageError for another name."""
    module = REGISTRY.get(agent)
    if module is None:
        raise UsageError(f"unknown agent {agent!r}", hint=f"use one of: {', '.join(AGENTS)} (or claude)")
    return __import__(f"{__name__}.{module}", fromlist=["AGENT"]).AGENT  # not importlib: one module less per hook


def __getattr__(name: str):
    if name == "NOTES":  # what the user may need to do after installing, per agent
        return {agent: get(agent).note for agent in REGISTRY if get(agent).note}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(
    agent: str, stdin=None, stdout=None, stderr=None, default_dir: str | None = None, agent_pid: int | None = None,
    workspaces=None,
) -> int:
    """`vbranch hook --agent AGENT`: the agent's payload on stdin, through vbranch's hook handler (any registered agent)."""
    return get(agent).main(stdin, stdout, stderr, default_dir, agent_pid, workspaces)


def fail_open(agent: str) -> str:
    """What the agent must read on stdout when its hook failed (Cursor: JSON on every path)."""
    output = get(agent).fail_output if agent in REGISTRY else None
    return "" if output is None else output + "\n"


def normalize(agent: str, payload: dict) -> dict | None:
    """One of our hook events for this agent's `payload`, or None when vbranch has nothing to do.

    The result carries `vbranch_agent` (which CLI it came from) and, for Codex's
    apply_patch, `tool_input.paths`: the absolute paths the patch touches.
    """
    return get(agent).normalize(payload)


def render(agent: str, payload: dict, answer: str | None) -> str | None:
    """vbranch's answer (Claude Code's JSON text, or None) in the agent's own format, or None."""
    return get(agent).render(payload, answer)


def settings_path(top, agent: str, scope: str = "project", home=None):
    return get(agent).settings_path(top, scope, home)


def install_agent(top, agent: str, scope: str = "project", home=None):
    """Merge vbranch's hooks into the agent's settings file; returns its path (backup of what was there)."""
    return get(agent).install(top, scope, home)


def uninstall_agent(top, agent: str, scope: str = "project", home=None):
    """Take vbranch's hooks out of the agent's settings file; returns its path."""
    return get(agent).uninstall(top, scope, home)

"""Claude Code as an agent: its settings files, and its hooks going to the handler as they are.

Its payloads and answers are our hook event format (vbranch/hooks/contract.py).
Settings: `.claude/settings.json` (project), `.claude/settings.local.json` (local),
`~/.claude/settings.json` (user). Beside the hooks, install sets the shell prefix
(`env.CLAUDE_CODE_SHELL_PREFIX`: the command tracer) and what a shared directory needs
(`worktree.bgIsolation: "none"`).
"""
from __future__ import annotations

import re
from pathlib import Path

from vbranch.agents import SCOPES
from vbranch.agents.base import Agent
from vbranch.errors import UsageError, VbranchError

# --- settings: the shell prefix and what a shared directory needs ---------------------------------

TEMPLATE = "claude-settings.json"
# Claude Code runs every Bash command as `$CLAUDE_CODE_SHELL_PREFIX '<command>'`: ours is the tracer.
PREFIX = "CLAUDE_CODE_SHELL_PREFIX"
_OUR_PREFIX = re.compile(r"""(?:tracer|trace_command)\.py['"]?$""")  # trace_command.py; tracer.py in installs before it
# Settings a shared directory needs, beyond hooks and env: Claude Code (2.1.169 and later) pushes
# background sessions into worktrees unless told not to. Which ones install set (so that uninstall
# takes out exactly those) is remembered in the env block, the one place a marker is valid.
SHARED_DIR_SETTINGS = {("worktree", "bgIsolation"): "none"}
MARK = "VBRANCH_INSTALL_SET"


def is_our_prefix(value: object) -> bool:
    return bool(_OUR_PREFIX.search(str(value)))


def tracer_command() -> str:
    """The shell prefix that runs a command under the tracer (through trace_command.py, which imports
    tracer.py: a module's compiled form is cached, a script's is not), without site like the hook client."""
    from vbranch import tracer
    from vbranch.agents.settings import without_site

    return without_site(str(Path(tracer.__file__).with_name("trace_command.py")))


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

    def main(
        self, stdin=None, stdout=None, stderr=None, default_dir: str | None = None, agent_pid: int | None = None,
        workspaces=None,
    ) -> int:
        from vbranch.hooks import handler as hook

        return hook.main(stdin, stdout, stderr, default_dir, agent_pid, workspaces)


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

"""`vbranch install` for Claude Code: kept for the callers of its old names.

The agents live in vbranch/agents/ (claude_code.py for Claude Code, settings.py for the
settings-file mechanics every agent shares).
"""
from __future__ import annotations

from .agents.claude_code import PREFIX, foreign_prefix, install, our_hooks, settings_path, tracer_command, uninstall
from .agents.settings import BACKUP_SUFFIX, PLACEHOLDER, hook_command, is_ours, merge_hooks, remove_hooks

__all__ = ["BACKUP_SUFFIX", "PLACEHOLDER", "PREFIX", "foreign_prefix", "hook_command", "install", "is_ours", "merge_hooks",
           "our_hooks", "remove_hooks", "settings_path", "tracer_command", "uninstall"]

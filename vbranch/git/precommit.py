"""The git pre-commit guard (hooks/git-pre-commit): installed by init, removed by teardown.

A person's plain `git commit` in the shared directory would take every session's work; the
guard refuses it. A pre-commit hook already there is kept beside ours and chained.
"""
from __future__ import annotations

import os
from pathlib import Path

from vbranch.git import gitcli
from vbranch.resources import hook_file

GUARD_MARKER = b"vbranch: managed git pre-commit guard"
CHAINED = "pre-commit.before-vbranch"


def hooks_dir(top: Path) -> Path:
    out = gitcli.git(top, "rev-parse", "--git-path", "hooks").decode().strip()
    return (top / out) if not os.path.isabs(out) else Path(out)


def install_guard(top: Path) -> None:
    hooks = hooks_dir(top)
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-commit"
    if hook.exists() and GUARD_MARKER not in hook.read_bytes():
        hook.rename(hooks / CHAINED)
    tmp = hooks / "pre-commit.vbranch-tmp"
    tmp.write_bytes(hook_file("git-pre-commit"))
    tmp.chmod(0o755)
    tmp.replace(hook)


def remove_guard(top: Path) -> None:
    hooks = hooks_dir(top)
    hook = hooks / "pre-commit"
    if hook.exists() and GUARD_MARKER in hook.read_bytes():
        hook.unlink()
    if (hooks / CHAINED).exists():
        (hooks / CHAINED).rename(hook)

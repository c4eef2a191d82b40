"""Merging vbranch's hooks into Claude Code settings files, and taking them out.

merge_hooks/remove_hooks are pure (dict in, new dict out); install/uninstall
add the file handling: refuse what is not a JSON object, write atomically,
keep a backup of what was there.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from .errors import UsageError, VbranchError
from .resources import hook_file

TEMPLATE = "claude-settings.json"
PLACEHOLDER = "{vbranch}"
BACKUP_SUFFIX = ".vbranch-backup"
SCOPES = ("project", "local", "user")

# Our entries are recognised by their command, whatever interpreter path an
# earlier install wrote: `vbranch hook`, `/x/bin/vbranch hook`, `'/x/python' -m vbranch hook`,
# `/x/python -S /y/vbranch/hookclient.py hook`.
_OURS = re.compile(r"""(?:^|[\s/'"])(?:vbranch|hookclient\.py)['"]?\s+hook(?:\s|$)""")
# Claude Code runs every Bash command as `$CLAUDE_CODE_SHELL_PREFIX '<command>'`: ours is the tracer.
PREFIX = "CLAUDE_CODE_SHELL_PREFIX"
_OUR_PREFIX = re.compile(r"""tracer\.py['"]?$""")


def settings_path(top: Path, scope: str = "project", home: Path | None = None) -> Path:
    if scope == "project":
        return Path(top) / ".claude" / "settings.json"
    if scope == "local":
        return Path(top) / ".claude" / "settings.local.json"
    if scope == "user":
        return Path(home if home is not None else Path.home()) / ".claude" / "settings.json"
    raise UsageError(f"unknown settings scope {scope!r}", hint=f"use one of: {', '.join(SCOPES)}")


def hook_command() -> str:
    """How a hook starts vbranch: this interpreter by absolute path, so no PATH is needed.

    It runs the small client (hookclient.py) without site, which hands the payload to
    the watcher's hook server and starts the full `-m vbranch` only if none answers.
    """
    from . import hookclient

    return _without_site(hookclient.__file__)


def tracer_command() -> str:
    """The shell prefix that runs a command under the tracer (tracer.py), without site like the hook client."""
    from . import tracer

    return _without_site(tracer.__file__)


def _without_site(script: str) -> str:
    if not sys.executable:
        raise VbranchError("cannot tell which Python runs vbranch", hint="run vbranch with a regular Python interpreter")
    # Not resolved: a venv's python is a symlink, and resolving it would lose the venv.
    python = shlex.quote(os.path.abspath(sys.executable))
    return f"{python} -S {shlex.quote(os.path.abspath(script))}"


def merge_prefix(settings: dict, prefix: str) -> tuple[dict, str | None]:
    """settings with our shell prefix in its `env`; someone else's prefix is kept and returned instead."""
    out = copy.deepcopy(settings)
    env = out.get("env")
    if env is not None and not isinstance(env, dict):
        raise VbranchError('"env" in the settings is not an object', hint='fix or remove the "env" key by hand')
    current = (env or {}).get(PREFIX)
    if current and not _OUR_PREFIX.search(str(current)):
        return out, str(current)
    out["env"] = {**(env or {}), PREFIX: prefix}
    return out, None


# Settings a shared directory needs, beyond hooks and env: Claude Code (2.1.169 and later) pushes
# background sessions into worktrees unless told not to. Which ones install set (so that uninstall
# takes out exactly those) is remembered in the env block, the one place a marker is valid.
SHARED_DIR_SETTINGS = {("worktree", "bgIsolation"): "none"}
MARK = "VBRANCH_INSTALL_SET"


def merge_shared_dir_settings(settings: dict) -> dict:
    """settings with what a shared directory needs; a value the user chose is kept, never overwritten."""
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


def remove_prefix(settings: dict) -> dict:
    out = copy.deepcopy(settings)
    env = out.get("env")
    if isinstance(env, dict) and _OUR_PREFIX.search(str(env.get(PREFIX, ""))):
        del env[PREFIX]
        if not env:
            del out["env"]
    return out


def our_hooks(command: str | None = None) -> dict:
    """The shipped template with the placeholder filled in (after parsing, so no JSON escaping issues)."""
    template = json.loads(hook_file(TEMPLATE))
    command = command or hook_command()
    for groups in template["hooks"].values():
        for group in groups:
            for hook in group["hooks"]:
                hook["command"] = hook["command"].replace(PLACEHOLDER, command)
    return template


def is_ours(hook: Any) -> bool:
    return isinstance(hook, dict) and isinstance(hook.get("command"), str) and bool(_OURS.search(hook["command"]))


def _strip(groups: list) -> tuple[list, int | None]:
    """Groups without our hooks, and the index where our first group sat (to put the new one back there)."""
    kept, first = [], None
    for group in groups:
        inner = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(inner, list) or not any(is_ours(h) for h in inner):
            kept.append(group)
            continue
        if first is None:
            first = len(kept)
        rest = [h for h in inner if not is_ours(h)]
        if rest:  # someone else's hook shares the group: keep it, drop only ours
            kept.append({**group, "hooks": rest})
    return kept, first


def _hooks_of(settings: dict) -> dict | None:
    hooks = settings.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        raise VbranchError('"hooks" in the settings is not an object', hint='fix or remove the "hooks" key by hand')
    return hooks


def remove_hooks(settings: dict) -> dict:
    """settings without vbranch's hook entries; event lists and a hooks object we empty are dropped."""
    out = copy.deepcopy(settings)
    hooks = out.get("hooks")
    if not isinstance(hooks, dict) or not hooks:
        return out  # nothing of ours can be in there
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue  # not ours to judge
        kept, first = _strip(groups)
        if first is None:
            continue
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks:
        del out["hooks"]
    return out


def merge_hooks(settings: dict, ours: dict) -> dict:
    """settings with `ours` in place of any earlier vbranch entries; everything else untouched.

    A replaced entry keeps its position among the other groups of its event, so
    reinstalling never reorders; a new one goes last. Events we no longer use lose our entries.
    """
    out = copy.deepcopy(settings)
    hooks = _hooks_of(out)
    if hooks is None:
        hooks = out["hooks"] = {}
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            if event in ours["hooks"]:
                raise VbranchError(f'"hooks.{event}" in the settings is not a list', hint="fix it by hand, then install again")
            continue
        kept, first = _strip(groups)
        new = copy.deepcopy(ours["hooks"].get(event, []))
        if first is None:
            first = len(kept)
        merged = kept[:first] + new + kept[first:]
        if merged or not groups:
            hooks[event] = merged
        else:
            del hooks[event]  # only our stale entries were here
    for event, groups in ours["hooks"].items():
        if event not in hooks:
            hooks[event] = copy.deepcopy(groups)
    return out


def _load(path: Path) -> tuple[dict, bytes | None]:
    if not path.exists():
        return {}, None
    raw = path.read_bytes()
    hint = f"fix {path} by hand (or move it away) and run the command again; vbranch will not overwrite it"
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise VbranchError(f"{path} is not valid JSON ({exc})", hint=hint) from None
    if not isinstance(data, dict):
        raise VbranchError(f"{path} does not hold a JSON object", hint=hint)
    return data, raw


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, then os.replace: readers see the old or the new file, never half."""
    target = path.resolve() if path.is_symlink() else path  # write through a symlinked settings file, keep the link
    tmp = target.with_name(f".{target.name}.vbranch-tmp-{os.getpid()}")
    mode = target.stat().st_mode & 0o7777 if target.exists() else None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # umask applies to new files
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save(path: Path, settings: dict, before: bytes | None) -> None:
    if before is not None:
        _write_atomic(path.with_name(path.name + BACKUP_SUFFIX), before)
    _write_atomic(path, (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode())


def install(top: Path, scope: str = "project", home: Path | None = None) -> Path:
    """Merge vbranch's hooks and shell prefix into the settings file of `scope`; returns its path.

    Another shell prefix already there is kept (`foreign_prefix` tells): then the
    command tracer is not installed and commands are attributed by time windows.
    """
    path = settings_path(top, scope, home)
    current, raw = _load(path)
    try:
        merged, _other = merge_prefix(merge_hooks(current, our_hooks()), tracer_command())
        merged = merge_shared_dir_settings(merged)
    except VbranchError as exc:  # a badly shaped "hooks": say which file
        raise VbranchError(f"{path}: {exc.message}", hint=exc.hint) from None
    if raw is None or merged != current:  # unchanged: leave the file (and its formatting) alone
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(path, merged, raw)
    if scope != "user":
        # Our backups, and a settings file that is this machine's alone, are no session's
        # change: keep them out of the shared directory's uncommitted work.
        _exclude(top, [f"*{BACKUP_SUFFIX}"] + ([str(path.relative_to(top))] if scope == "local" else []))
    return path


def foreign_prefix(path: Path) -> str | None:
    """A shell prefix in the settings file that is not vbranch's tracer."""
    try:
        env = _load(path)[0].get("env")
    except VbranchError:
        return None
    current = env.get(PREFIX) if isinstance(env, dict) else None
    return str(current) if current and not _OUR_PREFIX.search(str(current)) else None


def _exclude(top: Path, patterns: list[str]) -> None:
    """Add patterns to the repository's .git/info/exclude (never to a tracked .gitignore)."""
    from .workspace import find_repo

    found = find_repo(top)
    if found is None:
        return  # not a git repository: nothing to keep apart
    exclude = found[1] / "info" / "exclude"
    present = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [p for p in patterns if p not in present]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(present + ["# added by vbranch install", *missing]) + "\n"
        exclude.write_text(text)


def uninstall(top: Path, scope: str = "project", home: Path | None = None) -> Path:
    """Take vbranch's hooks out of the settings file of `scope`; returns its path."""
    path = settings_path(top, scope, home)
    current, raw = _load(path)
    cleaned = remove_shared_dir_settings(remove_prefix(remove_hooks(current)))
    if raw is not None and cleaned != current:
        _save(path, cleaned, raw)
    return path

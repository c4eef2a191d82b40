"""An agent's settings file: vbranch's hooks merged in and taken out again. Shared by every agent.

merge_hooks/remove_hooks are pure (dict in, new dict out); `install`/`uninstall` add the file
handling: refuse what is not a JSON object, write atomically, keep a backup of what was there,
keep backups (and a local-scope file) out of the shared work through .git/info/exclude.

Two shapes of hook lists exist: groups per event, each with its own "hooks" list (Claude Code,
Codex, Gemini CLI: {"hooks": {Event: [{"matcher", "hooks": [{"command", ...}]}]}}), and one flat
list of hooks per event (Cursor: {"hooks": {event: [{"command"}]}}); `flat` says which.
Imported only by install and uninstall, never on a hook's path.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shlex
import sys
from pathlib import Path

from vbranch.errors import VbranchError

PLACEHOLDER = "{vbranch}"  # in the templates under hooks/: the command that starts vbranch
BACKUP_SUFFIX = ".vbranch-backup"

# Our entries are recognised by their command, whatever interpreter path an
# earlier install wrote: `vbranch hook`, `/x/bin/vbranch hook`, `'/x/python' -m vbranch hook`,
# `/x/python -S /y/vbranch/hookclient.py hook`, `/bin/sh -c '...' /z/hookclient-<hash> hook`.
_OURS = re.compile(r"""(?:^|[\s/'"])(?:vbranch|hookclient\.py|hookclient-[0-9a-f]+)['"]?\s+hook(?:\s|$)""")

# The native client's command: a shell that starts it when it is there, else the Python client,
# with the words the template appends ("hook --agent codex") passed to either as "$@". The
# Python client's interpreter and script reach the native one as its first two arguments: it
# hands over to them whenever the watcher does not answer.
SHELL = "/bin/sh"
_NATIVE_SCRIPT = '[ -x "$0" ] && exec "$0" {python} {script} "$@"; exec {python} -S {script} "$@"'


def is_ours(hook: object) -> bool:
    return isinstance(hook, dict) and isinstance(hook.get("command"), str) and bool(_OURS.search(hook["command"]))


def hook_command() -> str:
    """How a hook starts vbranch: by absolute paths, so no PATH is needed.

    The native hook client (hookclient.c, built now if missing: native.hook_client) where a C
    compiler could build it, run through /bin/sh so that the command still works once the binary
    is gone; else the small Python client (hookclient.py) without site. Either hands the payload
    to the watcher's hook server and starts the full `-m vbranch` only if none answers.
    """
    from vbranch import native

    binary, _why = native.hook_client()
    return python_hook_command() if binary is None else native_hook_command(binary)


def python_hook_command() -> str:
    """The Python client's command: `python -S .../hookclient.py`."""
    from vbranch import hookclient

    return without_site(hookclient.__file__)


def native_hook_command(binary: str) -> str:
    """`/bin/sh -c SCRIPT BINARY`: BINARY with the Python client's interpreter and script, or that client."""
    python, _, script = shlex.split(python_hook_command())
    inner = _NATIVE_SCRIPT.format(python=shlex.quote(python), script=shlex.quote(script))
    return f"{SHELL} -c {shlex.quote(inner)} {shlex.quote(binary)}"


def split_native(command: str) -> tuple[str, str] | None:
    """For a native client's command (as native_hook_command writes it, plus the words appended after
    it): the binary, and the Python client's command it falls back to with the same words. Else None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) < 4 or words[:2] != [SHELL, "-c"]:
        return None
    tail = words[2].partition("; exec ")[2]  # the Python client's words, as the shell reads them
    try:
        python, _, script, _ = shlex.split(tail)
    except ValueError:
        return None
    if words[2] != _NATIVE_SCRIPT.format(python=shlex.quote(python), script=shlex.quote(script)):
        return None
    return words[3], shlex.join([python, "-S", script, *words[4:]])


def without_site(script: str) -> str:
    """`python -S script` with this interpreter, both by absolute path."""
    if not sys.executable:
        raise VbranchError("cannot tell which Python runs vbranch", hint="run vbranch with a regular Python interpreter")
    # Not resolved: a venv's python is a symlink, and resolving it would lose the venv.
    python = shlex.quote(os.path.abspath(sys.executable))
    return f"{python} -S {shlex.quote(os.path.abspath(script))}"


def fill(template: str, command: str | None = None) -> dict:
    """A shipped template (hooks/) with the placeholder filled in (after parsing: no JSON escaping issues)."""
    from vbranch.resources import hook_file

    data = json.loads(hook_file(template))
    command = command or hook_command()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "command" and isinstance(value, str):
                    node[key] = value.replace(PLACEHOLDER, command)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return data


def _inner(entry: object, flat: bool) -> list | None:
    """The hooks of one entry of an event's list: the entry itself (flat), or its group's "hooks"."""
    if flat:
        return [entry]
    inner = entry.get("hooks") if isinstance(entry, dict) else None
    return inner if isinstance(inner, list) else None


def ours_by_event(settings: dict, flat: bool = False) -> dict[str, list[dict]]:
    """vbranch's hooks in the settings, per event."""
    hooks = settings.get("hooks")
    out: dict[str, list[dict]] = {}
    for event, entries in hooks.items() if isinstance(hooks, dict) else ():
        for entry in entries if isinstance(entries, list) else []:
            found = [h for h in _inner(entry, flat) or [] if is_ours(h)]
            if found:
                out.setdefault(event, []).extend(found)
    return out


def _strip(entries: list, flat: bool) -> tuple[list, int | None]:
    """An event's entries without our hooks, and the index where our first one sat (to put the new one back there)."""
    kept, first = [], None
    for entry in entries:
        inner = _inner(entry, flat)
        if inner is None or not any(is_ours(h) for h in inner):
            kept.append(entry)
            continue
        if first is None:
            first = len(kept)
        rest = [h for h in inner if not is_ours(h)]
        if rest:  # someone else's hook shares the group: keep it, drop only ours
            kept.append({**entry, "hooks": rest})
    return kept, first


def merge_hooks(settings: dict, ours: dict, flat: bool = False) -> dict:
    """settings with `ours` in place of any earlier vbranch entries; everything else untouched.

    A replaced entry keeps its position among the other entries of its event, so
    reinstalling never reorders; a new one goes last. Events we no longer use lose our
    entries. Keys of `ours` beside "hooks" (Cursor's "version") are set unless present.
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
            continue  # not ours to judge
        kept, first = _strip(entries, flat)
        if first is None:
            first = len(kept)
        merged = kept[:first] + copy.deepcopy(ours["hooks"].get(event, [])) + kept[first:]
        if merged or not entries:
            hooks[event] = merged
        else:
            del hooks[event]  # only our stale entries were here
    for event, entries in ours["hooks"].items():
        if event not in hooks:
            hooks[event] = copy.deepcopy(entries)
    for key, value in ours.items():
        if key != "hooks":
            out.setdefault(key, value)
    return out


def remove_hooks(settings: dict, flat: bool = False) -> dict:
    """settings without vbranch's hook entries; event lists and a hooks object we empty are dropped."""
    out = copy.deepcopy(settings)
    hooks = out.get("hooks")
    if not isinstance(hooks, dict) or (not hooks and not flat):  # Cursor's file has always lost an empty "hooks"
        return out  # nothing of ours can be in there
    for event in list(hooks):
        entries = hooks[event]
        if not isinstance(entries, list):
            continue  # not ours to judge
        kept, first = _strip(entries, flat)
        if first is None:
            continue
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks:
        del out["hooks"]
    return out


# --- the file ---------------------------------------------------------------------------------


def load(path: Path) -> tuple[dict, bytes | None]:
    """The file's JSON object and its bytes ({} and None when there is no file); VbranchError if it is no object."""
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


def write_atomic(path: Path, data: bytes) -> None:
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


def save(path: Path, settings: dict, before: bytes | None) -> None:
    """Write `settings`, after a backup of what the file held (`before`)."""
    if before is not None:
        write_atomic(path.with_name(path.name + BACKUP_SUFFIX), before)
    write_atomic(path, (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode())


def exclude(top: Path, patterns: list[str]) -> None:
    """Add patterns to the repository's .git/info/exclude (never to a tracked .gitignore)."""
    from vbranch.state.workspace import find_repo

    found = find_repo(top)
    if found is None:
        return  # not a git repository: nothing to keep apart
    path = found[1] / "info" / "exclude"
    present = path.read_text().splitlines() if path.exists() else []
    missing = [p for p in patterns if p not in present]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(present + ["# added by vbranch install", *missing]) + "\n")


def install(path: Path, top: Path, scope: str, merge) -> Path:
    """`merge` (settings -> settings with ours) applied to the file at `path`; returns `path`."""
    current, raw = load(path)
    try:
        merged = merge(current)
    except VbranchError as exc:  # a badly shaped "hooks": say which file
        raise VbranchError(f"{path}: {exc.message}", hint=exc.hint) from None
    if raw is None or merged != current:  # unchanged: leave the file (and its formatting) alone
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path, merged, raw)
    if scope != "user":
        # Our backups, and a settings file that is this machine's alone, are no session's
        # change: keep them out of the shared directory's uncommitted work.
        exclude(top, [f"*{BACKUP_SUFFIX}"] + ([str(path.relative_to(top))] if scope == "local" else []))
    return path


def uninstall(path: Path, remove) -> Path:
    """`remove` (settings -> settings without ours) applied to the file at `path`, if there is one; returns `path`."""
    current, raw = load(path)
    cleaned = remove(current)
    if raw is not None and cleaned != current:
        save(path, cleaned, raw)
    return path

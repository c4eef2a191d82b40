"""Reading the configuration on the hot path without importing pydantic.

`vbranch init` writes the whole validated `Config` (models.py) to
`.git/vbranch/config.json`. Hooks read it here, in plain Python: every known
key gets a valid value, the default wherever the file has none or an invalid
one, so a partial file or a typo never switches a guard off. What was wrong
(an unknown key, an invalid value, unreadable JSON) comes back as problems for
the hook to show. The allowed values and defaults are defined once, here;
models.Config is built from them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

FILENAME = "config.json"

POLICIES = ("deny", "warn", "off")
# The keys whose value is one of a few strings, and what those are.
CHOICES: dict[str, tuple[str, ...]] = {
    "guard_lines": POLICIES,
    "guard_outside": POLICIES,
    "guard_git": POLICIES,
    "commit_on": ("turn", "session-end", "never"),
    "watcher": ("auto", "off"),
}
DEFAULTS: dict = {
    "guard_lines": "deny",
    "guard_outside": "off",  # outside the repository nothing belongs to a branch (memory, plans, /tmp)
    "guard_git": "deny",
    "commit_on": "turn",
    "lease_wait": 20.0,  # below the hooks' 30 s timeout: a refusal says why, a timeout would fail open
    "lease_ttl": 60.0,
    "lane": "unattributed",
    "watcher": "auto",
    "land_verify": "",  # a shell command `vbranch land` runs on the tree the target would get; "" = none
    "land_verify_timeout": 600.0,
}


def load(state_dir: Path) -> dict:
    """Every key with a valid value: the file's where valid, else the default."""
    return load_checked(state_dir)[0]


def problems(state_dir: Path) -> list[str]:
    """What is wrong with config.json, one sentence each; empty when nothing is."""
    return load_checked(state_dir)[1]


def load_checked(state_dir: Path) -> tuple[dict, list[str]]:
    """(the configuration in effect, the problems found reading it)."""
    path = Path(state_dir) / FILENAME
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return defaults(), []
    except OSError as error:
        return defaults(), [f"{path} cannot be read ({error.strerror or type(error).__name__}); every setting is at its default"]
    except ValueError as error:  # not JSON, or not text
        return defaults(), [f"{path} is not valid JSON ({str(error).partition(chr(10))[0]}); every setting is at its default"]
    return merge(raw, str(path))


def merge(raw: object, where: str = FILENAME) -> tuple[dict, list[str]]:
    """The defaults overlaid with every valid value of `raw`, and what was not valid."""
    config = defaults()
    if not isinstance(raw, dict):
        return config, [f"{where} is not a JSON object; every setting is at its default"]
    found = []
    for key, value in raw.items():
        if key not in DEFAULTS:
            found.append(f"{where}: unknown setting {key!r} is ignored (known: {', '.join(DEFAULTS)})")
            continue
        wrong = check(key, value)
        if wrong is None:
            config[key] = float(value) if isinstance(DEFAULTS[key], float) else value
        else:
            found.append(f"{where}: {key} is {json.dumps(value)}, {wrong}; using the default {json.dumps(DEFAULTS[key])}")
    return config, found


def check(key: str, value: object) -> str | None:
    """Why `value` is not valid for `key` (a phrase), or None if it is."""
    if key in CHOICES:
        if isinstance(value, str) and value in CHOICES[key]:
            return None
        return "not one of " + ", ".join(json.dumps(c) for c in CHOICES[key])
    if key == "lease_wait" or key == "lease_ttl":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "not a number of seconds"
        if key == "lease_wait" and value < 0:
            return "below 0"
        if key == "lease_ttl" and value <= 0:
            return "not above 0"
        return None
    if key == "land_verify":
        if not isinstance(value, str) or "\0" in value:
            return 'not a shell command (a string; "" for none)'
        return None
    if key == "land_verify_timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "not a number of seconds"
        return None if value > 0 else "not above 0"
    if key == "lane":
        if not isinstance(value, str) or not value.strip():
            return 'not a name ("unattributed" or a branch name)'
        if value.startswith("-") or any(ord(c) < 32 or c == "\x7f" for c in value):
            return "not a usable branch name"
        return None
    return None if key in DEFAULTS else "not a known setting"


def defaults() -> dict:
    return dict(DEFAULTS)

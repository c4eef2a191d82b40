"""Files vbranch ships next to its code (git and Claude Code hook templates).

An installed wheel carries them as vbranch/_hooks (pyproject force-include);
an editable or source checkout has them in the repository's hooks/ directory.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def hook_file(name: str) -> bytes:
    packaged = resources.files("vbranch") / "_hooks" / name
    if packaged.is_file():
        return packaged.read_bytes()
    return (Path(__file__).resolve().parent.parent / "hooks" / name).read_bytes()

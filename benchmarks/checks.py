"""Correctness: does a commit hold exactly the intended change against the base?"""
from __future__ import annotations

import subprocess
from pathlib import Path

from .measure import out


def contents(repo: Path, rev: str, paths: list[str]) -> dict[str, str | None]:
    """Each path's text at `rev` (None when absent), read with one `git cat-file --batch`."""
    if not paths:
        return {}
    request = "".join(f"{rev}:{p}\n" for p in paths).encode()
    data = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=request, capture_output=True, check=True).stdout
    found, pos = {}, 0
    for path in paths:
        end = data.index(b"\n", pos)
        header = data[pos:end].decode()
        pos = end + 1
        if header.endswith(" missing"):
            found[path] = None
            continue
        size = int(header.split()[2])
        found[path] = data[pos:pos + size].decode(errors="replace")
        pos += size + 1
    return found


def matches(repo: Path, base: str, rev: str, intended: dict[str, str]) -> dict:
    """Compare the change base..rev with `intended` (path -> content); ok when equal."""
    changed = set(out(repo, "diff", "--name-only", "-z", "--no-renames", base, rev).split("\0")) - {""}
    extra, missing = sorted(changed - set(intended)), sorted(set(intended) - changed)
    got = contents(repo, rev, sorted(set(intended) & changed))
    wrong = sorted(p for p, text in got.items() if text != intended[p])
    return {"ok": not (extra or missing or wrong), "files": len(changed),
            **({"extra": extra[:10], "missing": missing[:10], "wrong": wrong[:10]} if extra or missing or wrong else {})}


def tree_of(repo: Path, rev: str) -> str:
    return out(repo, "rev-parse", f"{rev}^{{tree}}").strip()

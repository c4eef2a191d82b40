"""Public record shapes, validated with pydantic: the status report and the configuration.

The hot recording path works on plain tuples and classes (store.py, ownership.py)
because importing pydantic costs more than a hook may take; these models are
what leaves vbranch (`status --json`) and what a user edits (config).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

LineRange = tuple[int, int]


class FileLines(BaseModel):
    path: str
    lines: list[LineRange] = Field(default_factory=list, description="current lines, 1-based inclusive")
    deleted: list[LineRange] = Field(default_factory=list, description="base lines removed, 1-based inclusive")
    whole: bool = Field(False, description="the whole file is owned: added, deleted, binary, mode or symlink")
    change: str = Field("modified", description="added, deleted, modified, mode, binary, symlink")


class SessionInfo(BaseModel):
    id: str
    agent: str = ""
    ended: bool = False


class BranchStatus(BaseModel):
    name: str
    ref: str
    head: str | None
    applied: bool = True
    sessions: list[SessionInfo] = Field(default_factory=list)
    files: list[FileLines] = Field(default_factory=list)


class Contest(BaseModel):
    path: str
    lines: LineRange | None = Field(None, description="current lines; None for a whole file or removed lines")
    removed: int = Field(0, description="lines of one branch another removed")
    branches: list[str]
    sessions: list[str]
    unattributed: bool = False


class StatusReport(BaseModel):
    base: str | None
    target: str
    branches: list[BranchStatus]
    unattributed: list[FileLines]
    contested: list[Contest]


Policy = Literal["deny", "warn", "off"]


class Config(BaseModel):
    """`.git/vbranch/config.json`: how the hooks behave. Written whole by `vbranch init`."""

    guard_lines: Policy = Field("deny", description="an edit of another live session's uncommitted lines")
    guard_outside: Policy = Field("deny", description="a write outside the repository or into .git")
    guard_git: Policy = Field("deny", description="a git command that would discard or rewrite shared work")
    commit_on: Literal["turn", "session-end", "never"] = Field("turn", description="when a session's branch is committed")
    lease_wait: float = Field(10.0, ge=0, description="seconds a write waits for another session's write to the same file")
    lease_ttl: float = Field(60.0, gt=0, description="seconds after which an unreleased write lease expires")
    lane: str = Field("unattributed", description='where changes outside every tool window go: "unattributed" or a branch name, e.g. "human"')
    watcher: Literal["auto", "off"] = Field("auto", description="start the file watcher when a session starts")

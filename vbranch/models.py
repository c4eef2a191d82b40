"""Public record shapes, validated with pydantic: the status report and the configuration.

The hot recording path works on plain dataclasses (store.py, ownership.py)
because importing pydantic costs more than a hook may take; these models are
what leaves vbranch (`status --json`) and what a user edits (config).
"""
from __future__ import annotations

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

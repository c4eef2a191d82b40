"""Public record shapes, validated with pydantic: the status report and the configuration.

The hot recording path works on plain tuples and classes (store.py, ownership.py)
because importing pydantic costs more than a hook may take; these models are
what leaves vbranch (`status --json`) and what a user edits (config).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vbranch.state.config import CHOICES, DEFAULTS, FILENAME, check

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


class Landing(BaseModel):
    state: Literal["waiting", "verified", "failed", "nothing"] = Field(description="where the branch is on its way to the target")
    target: str | None = Field(None, description="the target commit it was verified against")
    command: str | None = None
    exit_code: int | None = Field(None, description="the verify command's exit status; None if it timed out or did not start")
    tail: str | None = Field(None, description="the end of the verify command's output")
    at: str | None = None


class BranchStatus(BaseModel):
    name: str
    ref: str
    head: str | None
    applied: bool = True
    sessions: list[SessionInfo] = Field(default_factory=list)
    files: list[FileLines] = Field(default_factory=list)
    landing: Landing | None = None


class Contest(BaseModel):
    path: str
    lines: LineRange | None = Field(None, description="current lines; None for a whole file or removed lines")
    removed: int = Field(0, description="lines of one branch another removed")
    branches: list[str]
    sessions: list[str]
    unattributed: bool = False


class Rescuable(BaseModel):
    path: str
    branch: str = Field(description="the branch whose uncommitted changes another change took away")
    at: str
    by: str | None = Field(None, description="the session whose change it was, if one reported it")


class TracerMode(BaseModel):
    mode: Literal["process", "window"] = Field(description="how Bash commands' changes are attributed")
    why: str


class StatusReport(BaseModel):
    base: str | None
    target: str
    branches: list[BranchStatus]
    unattributed: list[FileLines]
    contested: list[Contest]
    rescue: list[Rescuable] = Field(default_factory=list, description="kept work `vbranch rescue` puts back")
    tracer: TracerMode | None = None


# The allowed values and defaults are config.py's (the hooks validate with those, without pydantic).
Policy = Literal[CHOICES["guard_lines"]]  # type: ignore[valid-type]


class Config(BaseModel):
    """`.git/vbranch/config.json`: how the hooks behave. Written whole by `vbranch init`."""

    model_config = ConfigDict(strict=True)

    guard_lines: Policy = Field(DEFAULTS["guard_lines"], description="an edit of another live session's uncommitted lines")
    guard_outside: Policy = Field(DEFAULTS["guard_outside"], description="a write outside the repository or into .git")
    guard_git: Policy = Field(DEFAULTS["guard_git"], description="a git command that would discard or rewrite shared work")
    commit_on: Literal[CHOICES["commit_on"]] = Field(DEFAULTS["commit_on"], description="when a session's branch is committed")  # type: ignore[valid-type]
    lease_wait: float = Field(DEFAULTS["lease_wait"], description="seconds a write waits for another session's write to the same file")
    lease_ttl: float = Field(DEFAULTS["lease_ttl"], description="seconds after which an unreleased write lease expires")
    lane: str = Field(DEFAULTS["lane"], description='where changes outside every tool window go: "unattributed" or a branch name, e.g. "human"')
    watcher: Literal[CHOICES["watcher"]] = Field(DEFAULTS["watcher"], description="start the file watcher when a session starts")  # type: ignore[valid-type]
    land_verify: str = Field(DEFAULTS["land_verify"], description='shell command `vbranch land` runs on the tree the target would get; "" for none')
    land_verify_timeout: float = Field(DEFAULTS["land_verify_timeout"], description="seconds the verify command may run")

    @field_validator("*")
    @classmethod
    def _as_the_hooks_check(cls, value, info):
        wrong = check(info.field_name, value)
        if wrong is not None:
            raise ValueError(wrong)
        return value


def write_config(state_dir: Path, values: dict) -> dict:
    """Validate and write the configuration (config.FILENAME); returns what was written."""
    config = Config(**values).model_dump()
    tmp = state_dir / (FILENAME + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(state_dir / FILENAME)
    return config

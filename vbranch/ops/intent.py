"""What an operation will do outside the store, as typed records, and their one JSON form.

An operation's *intent* is stored with its store change (oplog.perform) and carried
out afterwards (oplog.carry_out), by the same process or, after a crash, by the next
command: the ref transaction (`RefUpdate`s), HEAD, the working files to write
(`FileWrite`s), the index (`IndexSync` or `IndexReset`) and the git guard (`Guard`).

`Intent.to_json`/`Intent.from_json` and `FileWrite.to_json`/`FileWrite.from_json` are
the only code that reads or writes these records' stored form. The form is the one
vbranch has always stored, so rows written by earlier versions read as they are:

    {"refs": [[ref, new, old], ...], "head": ref or commit,
     "writes": [[path, old sig, new sig, new blob, new mode, old blob, old mode], ...],
     "index": ["sync", old commit, new commit] or ["reset"],
     "guard": "install" | "remove"}

with empty fields left out. Operations that write files also keep their writes in
their log detail (`detail["writes"]`, the same lists), for undo to rewind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from vbranch.state.workspace import WORKSPACE_REF


class Kind(StrEnum):
    """The operations of the log; the values are the names stored in the oplog table."""

    INIT = "init"
    COMMIT = "commit"
    ASSIGN = "assign"
    CLAIM = "claim"
    DISOWN = "disown"
    LAND = "land"
    UPDATE = "update"
    BRANCH_NEW = "branch-new"
    BRANCH_RENAME = "branch-rename"
    BRANCH_DELETE = "branch-delete"
    APPLY = "apply"
    UNAPPLY = "unapply"
    RESCUE = "rescue"
    TEARDOWN = "teardown"
    UNDO = "undo"
    RESTORE = "restore"

    @property
    def logs_writes(self) -> bool:
        """Whether the log detail keeps the files it wrote (the kinds that write working files)."""
        return self in _WRITERS


_WRITERS = {Kind.UPDATE, Kind.APPLY, Kind.UNAPPLY, Kind.RESCUE, Kind.UNDO, Kind.RESTORE}


class Guard(StrEnum):
    """The git pre-commit guard: installed (init, undoing a teardown) or removed (teardown)."""

    INSTALL = "install"
    REMOVE = "remove"


@dataclass(frozen=True)
class RefUpdate:
    """One ref of the update-ref transaction: to `new` (None: deleted), only from `old` (None: absent)."""

    ref: str
    new: str | None
    old: str | None


@dataclass(frozen=True)
class FileWrite:
    """One working file, from `old_sig` to `new_sig` (signatures as worktree.signature gives them).

    Both contents are kept as blobs (None: the file is absent): carrying out writes
    `new_blob`, an undo writes `old_blob` back.
    """

    path: str
    old_sig: str | None
    new_sig: str | None
    new_blob: str | None
    new_mode: int
    old_blob: str | None
    old_mode: int

    def to_json(self) -> list:
        return [self.path, self.old_sig, self.new_sig, self.new_blob, self.new_mode, self.old_blob, self.old_mode]

    @classmethod
    def from_json(cls, data: list) -> FileWrite:
        return cls(*data)


@dataclass(frozen=True)
class IndexSync:
    """The index follows the change from one commit's tree to another's, along the paths that differ."""

    old: str | None
    new: str | None


@dataclass(frozen=True)
class IndexReset:
    """The index back to HEAD's tree (`git reset -q`): teardown."""


@dataclass
class Intent:
    refs: list[RefUpdate] = field(default_factory=list)
    head: str | None = None  # a ref (symbolic HEAD) or a commit (detached)
    writes: list[FileWrite] = field(default_factory=list)
    index: IndexSync | IndexReset | None = None
    guard: Guard | None = None

    def point_workspace(self, new: str, old: str | None) -> None:
        """The workspace ref to `new` (a move only if it differs from `old`), the index along."""
        if new != old:
            self.refs.append(RefUpdate(WORKSPACE_REF, new, old))
        self.index = IndexSync(old, new)

    @property
    def empty(self) -> bool:
        return not (self.refs or self.head or self.writes or self.index or self.guard)

    def to_json(self) -> dict:
        data: dict = {}
        if self.refs:
            data["refs"] = [[u.ref, u.new, u.old] for u in self.refs]
        if self.head:
            data["head"] = self.head
        if self.writes:
            data["writes"] = writes_to_json(self.writes)
        if isinstance(self.index, IndexSync):
            data["index"] = ["sync", self.index.old, self.index.new]
        elif isinstance(self.index, IndexReset):
            data["index"] = ["reset"]
        if self.guard:
            data["guard"] = self.guard.value
        return data

    @classmethod
    def from_json(cls, data: dict) -> Intent:
        index = data.get("index")
        return cls(
            refs=[RefUpdate(*u) for u in data.get("refs", [])],
            head=data.get("head"),
            writes=writes_from_json(data.get("writes", [])),
            index=None if not index else IndexSync(index[1], index[2]) if index[0] == "sync" else IndexReset(),
            guard=Guard(data["guard"]) if data.get("guard") else None,
        )


def writes_from_json(data: list) -> list[FileWrite]:
    return [FileWrite.from_json(w) for w in data]


def writes_to_json(writes: list[FileWrite]) -> list[list]:
    return [w.to_json() for w in writes]

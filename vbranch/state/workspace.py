"""The state of one repository's vbranch workspace: where it lives, what it knows.

State lives in `<git dir>/vbranch/`, never in the working tree: `state.db`
(store.py) and `lock` (lock.py). This module opens it and owns the small
decisions every command shares: which branch a session writes to, and how a
new branch is named.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from vbranch.errors import NotInitialized, UsageError
from vbranch.git import gitcli
from vbranch.state.lock import StateLock
from vbranch.state.store import BranchRow, Store, store_file_id

WORKSPACE_REF = "refs/heads/vbranch/workspace"


class Workspace:
    def __init__(self, top: Path, git_dir: Path, store: Store, lock: StateLock):
        self.top, self.git_dir, self.store, self.lock = top, git_dir, store, lock

    @property
    def state_dir(self) -> Path:
        return self.git_dir / "vbranch"

    @property
    def base(self) -> str | None:
        """The target commit the branches start from; None in a repository with no commits."""
        return self.store.get_meta("base") or None

    @property
    def target(self) -> str:
        return self.store.get_meta("target", "")

    @property
    def active(self) -> bool:
        return self.store.get_meta("active") == "1"

    def close(self) -> None:
        self.store.close()


def open_state(start: Path | str) -> Workspace:
    """The workspace state of the repository at `start`, created empty if missing."""
    top, git_dir = gitcli.discover(start)
    state_dir = git_dir / "vbranch"
    state_dir.mkdir(exist_ok=True)
    return Workspace(top, git_dir, Store(state_dir / "state.db"), StateLock(state_dir / "lock"))


def find_repo(start: Path | str) -> tuple[Path, Path] | None:
    """The working tree's top and git directory above `start`, found without running git."""
    here = Path(os.path.abspath(start))
    for folder in (here, *here.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return folder, dotgit
        if dotgit.is_file():  # a linked worktree or submodule: "gitdir: <path>"
            text = dotgit.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                return folder, (folder / text[len("gitdir:"):].strip()).resolve()
    return None


def open_workspace(start: Path | str, any_thread: bool = False) -> Workspace:
    """An initialized workspace, or NotInitialized with what to do (`any_thread`: see WorkspacePool)."""
    return _open_at(*_locate(start), any_thread)


def _open_at(top: Path, git_dir: Path, any_thread: bool) -> Workspace:
    db = git_dir / "vbranch" / "state.db"
    if not db.exists():
        raise NotInitialized(f"vbranch is not set up in {top}", hint="run `vbranch init` first")
    ws = Workspace(top, git_dir, Store(db, any_thread), StateLock(git_dir / "vbranch" / "lock"))
    _check_active(ws)
    return ws


def _locate(start: Path | str) -> tuple[Path, Path]:
    found = None if "GIT_DIR" in os.environ else find_repo(start)
    return found or gitcli.discover(start)


def _check_active(ws: Workspace) -> None:
    if not ws.active:
        ws.close()
        raise NotInitialized(f"vbranch was torn down in {ws.top}", hint="run `vbranch init` to start again")


class WorkspacePool:
    """Open workspaces kept for reuse by one long-lived process: the watcher's hook server.

    Opening one (a SQLite connection set up for WAL) costs a hook ~0.6 ms of the watcher's one
    interpreter, about a fifth of its work. A workspace is used by one request at a time, as one it opened
    itself would be: `take` hands out a free one (or opens one), `give_back` keeps it if it is clean
    (no transaction open, the state lock not held). One whose database file was deleted or re-created
    (`vbranch init` after a tear-down) is closed, never used: its connection would write to the old file.
    A few are kept, each with a small page cache (Store's `any_thread`): each connection has its own,
    and a hook opened with an empty one before.
    """

    def __init__(self, keep: int = 8):
        self.keep = keep
        self.free: list[Workspace] = []
        self.guard = threading.Lock()

    def take(self, start: Path | str) -> Workspace:
        top, git_dir = _locate(start)
        with self.guard:
            found = next((i for i, ws in enumerate(self.free) if ws.git_dir == git_dir and ws.top == top), None)
            ws = None if found is None else self.free.pop(found)
        if ws is not None and ws.store.file_id == store_file_id(ws.store.path):
            _check_active(ws)
            return ws
        if ws is not None:
            ws.close()
        return _open_at(top, git_dir, any_thread=True)

    def give_back(self, ws: Workspace) -> None:
        if not (ws.store.db.in_transaction or ws.lock.depth):
            with self.guard:
                if len(self.free) < self.keep:
                    self.free.append(ws)
                    return
        ws.close()

    def close(self) -> None:
        with self.guard:
            free, self.free = self.free, []
        for ws in free:
            ws.close()


def branch_name_from(text: str) -> str:
    """A valid, readable git branch name made from free text (idempotent).

    Within `git check-ref-format --branch`: components of [A-Za-z0-9._-], none
    empty, none starting with '.' or '-', none ending with '.' or '.lock', no
    '..'; not 'HEAD'; at most 60 characters.
    """
    name = re.sub(r"[^A-Za-z0-9._/-]+", "-", text.strip())[:60]
    parts = [_clean_component(part) for part in name.split("/")]
    name = "/".join(part for part in parts if part)
    return "HEAD-branch" if name == "HEAD" else name or "session"


def _clean_component(part: str) -> str:
    part = re.sub(r"\.\.+", ".", part)
    while True:
        cleaned = part.strip("-.")
        while cleaned.endswith(".lock"):
            cleaned = cleaned[: -len(".lock")].rstrip("-.")
        if cleaned == part:
            return part
        part = cleaned


def session_branch_name(session_id: str) -> str:
    # A UUID is long and unreadable: its first block is enough to tell sessions apart.
    short = session_id.split("-")[0] if re.fullmatch(r"[0-9a-f-]{36}", session_id) else session_id
    return branch_name_from(f"session-{short}")


NAME_TRIES = 8  # `name`, `name-2`, … before a name that is surely free


def create_branch(ws: Workspace, wanted: str, at: str, exact: bool = False) -> BranchRow:
    """A new branch named `wanted`, or `wanted-2`, … if that is taken (unless exact).

    The git ref is created at once (at the base), so the name is ours: a
    branch that git already has is never taken over. A name that clashes
    with an existing ref as a directory (`team` against `team/alice`, either
    way round) is taken too. After NAME_TRIES taken names the branch gets
    `wanted` flattened (no '/') with a random suffix, so this always ends.
    """
    name = branch_name_from(wanted)
    if exact and name != wanted:
        raise UsageError(f"{wanted!r} is not a valid branch name", hint=f"try {name!r}")
    candidates = [name] if exact else [name] + [f"{name}-{n}" for n in range(2, NAME_TRIES + 1)]
    flat = name.replace("/", "-")
    candidates += [] if exact else [f"{flat}-{os.urandom(3).hex()}" for _ in range(3)]
    names = {row.name for row in ws.store.branches()}
    for candidate in candidates:
        free = not _name_clash(candidate, names)
        if free and ws.base:
            free = gitcli.create_ref(ws.top, f"refs/heads/{candidate}", ws.base)
        elif free:
            free = not gitcli.ref_exists(ws.top, f"refs/heads/{candidate}")
        if free:
            return ws.store.add_branch(candidate, at)
    if exact:
        exists = name in names or gitcli.ref_exists(ws.top, f"refs/heads/{name}")
        raise UsageError(
            f"a branch named {name!r} already exists"
            if exists
            else f"{name!r} clashes with an existing branch (git cannot have both `a` and `a/b`)",
            hint="choose another name, or use that vbranch branch with --branch",
        )
    raise UsageError(
        f"could not create a git branch for {wanted!r}: tried {', '.join(candidates)}",
        hint="check that `git update-ref` works in this repository (permissions, locked refs)",
    )


def _name_clash(name: str, names: set[str]) -> bool:
    """True when `name` or a directory or file form of it is a vbranch branch already."""
    if name in names:
        return True
    parts = name.split("/")
    if any("/".join(parts[:k]) in names for k in range(1, len(parts))):
        return True
    return any(other.startswith(name + "/") for other in names)


STOP_WORDS = {"a", "an", "the", "to", "of", "and", "in", "on", "for", "please", "can", "you", "with", "that", "this", "it", "is"}


def prompt_branch_name(prompt: str) -> str | None:
    """A short readable branch name from a session's first prompt: its first few real words."""
    words = [w for w in re.findall(r"[a-z0-9]+", prompt.lower()) if w not in STOP_WORDS]
    name = "-".join(words[:5])[:40].strip("-")
    return branch_name_from(name) if name else None


def branch_for_session(
    ws: Workspace, session_id: str, at: str, branch: str | None = None, agent: str = ""
) -> BranchRow:
    """The branch a session writes to, creating session and branch at its first change.

    Named `branch` if given, else from the session's first prompt, else after the session.
    """
    known = ws.store.session(session_id)
    if known is not None and known.branch_id is not None:
        return ws.store.branch_by_id(known.branch_id)
    if branch is not None:
        row = ws.store.branch_by_name(branch) or create_branch(ws, branch, at, exact=True)
    else:
        wanted = prompt_branch_name(known.first_prompt) if known else None
        row = create_branch(ws, wanted or session_branch_name(session_id), at)
    if known is None:
        ws.store.add_session(session_id, row.id, agent, at)
    else:
        ws.store.set_session_branch(session_id, row.id)
    return row


def ensure_session(ws: Workspace, session_id: str, at: str, agent: str = "") -> None:
    """Register a session (no branch until its first change); a resumed one is live again."""
    if ws.store.session(session_id) is None:
        ws.store.add_session(session_id, None, agent, at)
    else:
        ws.store.end_session(session_id, None)


def require_branch(ws: Workspace, name: str) -> BranchRow:
    row = ws.store.branch_by_name(name)
    if row is None:
        known = ", ".join(b.name for b in ws.store.branches()) or "none yet"
        raise UsageError(f"no vbranch branch named {name!r}", hint=f"known branches: {known}")
    return row


def owner_label(ws: Workspace, owner: int, sessions=None) -> str:
    """An owner as people read it: `branch (session a, b)`, the branch alone, or `unattributed`."""
    branch = ws.store.branch_by_id(owner)
    if branch is None:
        return "unattributed"
    ids = [s.id for s in (ws.store.sessions() if sessions is None else sessions) if s.branch_id == owner]
    return f"{branch.name} (session {', '.join(ids)})" if ids else branch.name

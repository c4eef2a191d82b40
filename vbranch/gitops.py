"""Everything vbranch does with pygit2: blobs, trees, commits and the index.

The only module that imports pygit2. Objects are written straight into the
object database; no working file is ever read or written here.
"""
from __future__ import annotations

import time
from pathlib import Path

import pygit2

from .errors import GitError
from .ownership import ABSENT, FileState

TREE_MODE = pygit2.enums.FileMode.TREE


def open_repo(top: Path) -> pygit2.Repository:
    return pygit2.Repository(str(top))


def tree_of(repo: pygit2.Repository, commit: str | None) -> pygit2.Tree:
    """The commit's tree; the empty tree for None (a repository with no commits)."""
    if commit is None:
        return repo[repo.TreeBuilder().write()]
    return repo[commit].peel(pygit2.Tree)


def head_of(repo: pygit2.Repository, ref: str) -> str | None:
    try:
        return str(repo.lookup_reference(ref).target)
    except KeyError:
        return None


def state_at(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> FileState:
    try:
        entry = tree[path]
    except KeyError:
        return ABSENT
    if entry.filemode == TREE_MODE:
        return ABSENT
    return FileState(True, int(entry.filemode), repo[entry.id].data)


def edit_tree(repo: pygit2.Repository, tree: pygit2.Tree | None, changes: dict[str, FileState]) -> pygit2.Oid:
    """A new tree: `tree` with each path set to its state (ABSENT removes it).

    Only the directories on the changed paths are rewritten; the rest of the
    tree is shared, so this costs O(changes × depth), not O(repository).
    """
    direct: dict[str, FileState] = {}
    nested: dict[str, dict[str, FileState]] = {}
    for path, state in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(head, {})[rest] = state
        else:
            direct[head] = state
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, state in direct.items():
        if state.exists:
            builder.insert(name, repo.create_blob(state.data), state.mode)
        elif builder.get(name) is not None:
            builder.remove(name)
    for name, sub in nested.items():
        entry = builder.get(name)
        subtree = entry if isinstance(entry, pygit2.Tree) else None
        oid = edit_tree(repo, subtree, sub)
        if len(repo[oid]) == 0:
            if entry is not None:
                builder.remove(name)
        else:
            builder.insert(name, oid, TREE_MODE)
    return builder.write()


def changed_paths(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> list[str]:
    """Paths whose entry differs between two trees (no rename detection)."""
    if old.id == new.id:
        return []
    diff = repo.diff(old, new)
    paths = []
    for delta in diff.deltas:
        paths.append(delta.new_file.path if delta.status != pygit2.enums.DeltaStatus.DELETED else delta.old_file.path)
    return paths


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature("vbranch", "vbranch@localhost")


def make_commit(repo: pygit2.Repository, tree: pygit2.Oid, parents: list[str], message: str) -> str:
    sig = signature(repo)
    return str(repo.create_commit(None, sig, sig, message, tree, parents))


def sync_index(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree, retries: int = 50) -> None:
    """Make the index match `new` where it differed from `old`, keeping stat data elsewhere.

    Rewriting only the changed entries keeps `git status` fast on a large
    repository. git may hold index.lock for a moment: wait and retry.
    """
    paths = changed_paths(repo, old, new)
    if not paths:
        return
    for attempt in range(retries):
        try:
            index = repo.index
            index.read(force=True)
            for path in paths:
                state = state_at(repo, new, path)
                if state.exists:
                    index.add(pygit2.IndexEntry(path, new[path].id, state.mode))
                elif path in index:
                    index.remove(path)
            index.write()
            return
        except pygit2.GitError as error:
            if "lock" not in str(error).lower() or attempt == retries - 1:
                raise GitError(f"could not update the index: {error}", hint="is another git command running?") from error
            time.sleep(0.02)


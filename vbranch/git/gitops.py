"""Everything vbranch does with pygit2: blobs, trees, commits and the index.

The only module that imports pygit2. Objects are written straight into the
object database; no working file is ever read or written here.
"""
from __future__ import annotations

from pathlib import Path

import pygit2

from vbranch.core.ownership import ABSENT, FileState
from vbranch.git import gitcli
from vbranch.git.gitcli import ZERO_OID

TREE_MODE = pygit2.enums.FileMode.TREE


class Blob(tuple):
    """A blob already in the object database, by id and mode: `edit_tree` inserts it as is
    (no read, no rewrite). `exists` is True, as for a FileState that exists."""

    __slots__ = ()
    exists = True

    def __new__(cls, oid: str, mode: int):
        return super().__new__(cls, (oid, mode))


def entry_blob(tree: pygit2.Tree, path: str) -> Blob | FileState:
    """The tree's file at `path` as a Blob; ABSENT where it has none."""
    key = entry_key(tree, path)
    return ABSENT if key is None else Blob(*key)


def open_repo(top: Path) -> pygit2.Repository:
    return pygit2.Repository(str(top))


def tree_of(repo: pygit2.Repository, commit: str | None) -> pygit2.Tree:
    """The commit's tree; the empty tree for None (a repository with no commits)."""
    if commit is None:
        return _empty_tree(repo)
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
        if isinstance(state, Blob):
            builder.insert(name, pygit2.Oid(hex=state[0]), state[1])
        elif state.exists:
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


def entry_key(tree: pygit2.Tree, path: str) -> tuple[str, int] | None:
    """A path's blob id and mode in a tree; None where the tree has no file there."""
    try:
        entry = tree[path]
    except KeyError:
        return None
    mode = int(entry.filemode)
    return None if mode == TREE_MODE else (str(entry.id), mode)


def differs_at(repo: pygit2.Repository, tree: pygit2.Tree, path: str, state: FileState | Blob) -> bool:
    """True when the tree's entry at `path` is not `state` (hashed, not written)."""
    key = entry_key(tree, path)
    if isinstance(state, Blob):
        return key != tuple(state)
    if not state.exists:
        return key is not None
    return key != (str(pygit2.hash(state.data)), state.mode)


def differing(old: pygit2.Tree, new: pygit2.Tree, paths) -> list[str]:
    """Those of `paths` whose entry differs between two trees.

    Every path a branch has ever changed has an ownership record, so looking
    up those paths costs O(records) instead of walking a large repository.
    """
    if old.id == new.id:
        return []
    return [p for p in paths if entry_key(old, p) != entry_key(new, p)]


def _empty_tree(repo: pygit2.Repository) -> pygit2.Tree:
    return repo[repo.TreeBuilder().write()]


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature("vbranch", "vbranch@localhost")


def make_commit(repo: pygit2.Repository, tree: pygit2.Oid, parents: list[str], message: str) -> str:
    sig = signature(repo)
    return str(repo.create_commit(None, sig, sig, message, tree, parents))


def sync_index(top: Path, old: pygit2.Tree, new: pygit2.Tree, paths) -> None:
    """Make the index match `new` where it differed from `old`, keeping stat data elsewhere.

    Only the changed entries are rewritten (git's own update-index), so `git
    status` stays fast on a large repository.
    """
    lines = []
    for path in differing(old, new, paths):
        key = entry_key(new, path)
        if key is None:
            lines.append(f"0 {ZERO_OID}\t{path}")
        else:
            lines.append(f"{key[1]:o} {key[0]}\t{path}")
    if lines:
        gitcli.update_index(top, lines)


# (old tree id, new tree id) -> changed paths, for pairs whose difference the caller
# already knew (a branch tree built along those paths): trees are content-addressed,
# so an entry is never stale. Bounded: it only saves a diff within one command.
_KNOWN_CHANGES: dict[tuple[str, str], list[str]] = {}


def remember_changes(old: pygit2.Oid, new: pygit2.Oid, paths: list[str]) -> None:
    if len(_KNOWN_CHANGES) > 256:
        _KNOWN_CHANGES.clear()
    _KNOWN_CHANGES[(str(old), str(new))] = sorted(paths)


def changed_paths(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> list[str]:
    """Every file path whose entry differs between two trees (git skips equal subtrees)."""
    if old.id == new.id:
        return []
    known = _KNOWN_CHANGES.get((str(old.id), str(new.id)))
    if known is not None:
        return list(known)
    paths = set()
    for delta in old.diff_to_tree(new).deltas:
        paths.add(delta.old_file.path)
        paths.add(delta.new_file.path)
    return sorted(paths)


def is_ancestor(repo: pygit2.Repository, ancestor: str | None, commit: str) -> bool:
    """True when `ancestor` is `commit` or in its history (None: the empty start of history)."""
    if ancestor is None or ancestor == commit:
        return True
    return repo.descendant_of(commit, ancestor)


def first_parent_chain(repo: pygit2.Repository, head: str, stop: str | None) -> list[str] | None:
    """The commits after `stop` up to `head` along first parents, oldest first; None if `stop` is not on that path."""
    chain = []
    oid = head
    while oid != stop:
        commit = repo[oid]
        chain.append(oid)
        if not commit.parent_ids:
            return None if stop is not None else list(reversed(chain))
        oid = str(commit.parent_ids[0])
    return list(reversed(chain))


def parent_of(repo: pygit2.Repository, oid: str) -> str | None:
    parents = repo[oid].parent_ids
    return str(parents[0]) if parents else None


def replay_commit(repo: pygit2.Repository, original: str, tree: pygit2.Oid, parent: str) -> str:
    """`original`'s author and message on a new tree and parent (the committer is us, now)."""
    old = repo[original]
    return str(repo.create_commit(None, old.author, signature(repo), old.message, tree, [parent]))


def message_of(repo: pygit2.Repository, oid: str) -> str:
    return repo[oid].message


def write_blob(repo: pygit2.Repository, data: bytes) -> str:
    return str(repo.create_blob(data))

"""Everything vbranch does with pygit2: blobs, trees, commits and the index.

The only module that imports pygit2. Objects are written straight into the
object database; no working file is ever read or written here.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib
from contextlib import contextmanager
from hashlib import sha1
from pathlib import Path

import pygit2

from vbranch.core.ownership import ABSENT, FileState
from vbranch.git import delta, gitcli
from vbranch.git.gitcli import ZERO_OID

TREE_MODE = pygit2.enums.FileMode.TREE

# Parsed trees stay in libgit2's object cache whatever their size: a commit looks up
# the same directories along hundreds of paths (measured: a path lookup 36 -> 8 µs).
pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.TREE, 1 << 20)


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


def blob_state(repo: pygit2.Repository, key: tuple[str, int] | None) -> FileState:
    """The file a blob id and mode (entry_key's) stand for; ABSENT for None."""
    return ABSENT if key is None else FileState(True, key[1], blob_data(repo, pygit2.Oid(hex=key[0])))


def state_at(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> FileState:
    try:
        entry = tree[path]
    except KeyError:
        return ABSENT
    if entry.filemode == TREE_MODE:
        return ABSENT
    return FileState(True, int(entry.filemode), blob_data(repo, entry.id))


# A landing merges each shared file once per branch it rebases, reading the same few blobs again
# and again (a 600 KB file 15 times per landing with 16 branches: half its time). Blobs never
# change, so large ones are kept here, up to BLOB_CACHE bytes, the oldest dropped first; the
# watcher's threads share it, hence the lock. 32 MB: a landing of one of 16 branches sharing three
# files (600, 120 and 30 KB) writes ~12 MB of blobs that the next landing reads back; at 16 MB the
# watcher missed 179 times in 16 landings, the oldest dropped just before being read; at 32 MB only
# the first landing's 36 reads missed.
BLOB_CACHE = 32 << 20
BLOB_CACHED_FROM = 64 << 10  # smaller blobs are read faster than they would be looked up and kept
_blobs: dict[pygit2.Oid, bytes] = {}
_blobs_size = [0]
_blobs_lock = threading.Lock()


def blob_data(repo: pygit2.Repository, oid: pygit2.Oid) -> bytes:
    with _blobs_lock:
        data = _blobs.get(oid)
    if data is not None:
        return data
    data = repo[oid].data
    _keep_blob(oid, data)
    return data


def _keep_blob(oid: pygit2.Oid, data: bytes) -> None:
    if BLOB_CACHED_FROM <= len(data) <= BLOB_CACHE // 4:
        with _blobs_lock:
            if oid not in _blobs:
                _blobs[oid] = data
                _blobs_size[0] += len(data)
            while _blobs_size[0] > BLOB_CACHE:
                _blobs_size[0] -= len(_blobs.pop(next(iter(_blobs))))


def stored(repo: pygit2.Repository, state: FileState) -> Blob:
    """A file state as a blob in the object database (written unless it is there): compared by id
    and put in a tree as it is, it is hashed once."""
    return Blob(str(_create_blob(repo, state.data)), state.mode)


def _create_blob(repo: pygit2.Repository, data: bytes) -> pygit2.Oid:
    """The blob written, and kept in the cache when large: a landing reads the blobs it wrote
    for each rebased branch again when it merges them into the workspace commit.

    Hashed and compressed here rather than by libgit2 (repo.create_blob: 4 ms for 600 KB, also
    when the blob exists): hashlib's SHA-1 and git's loose compression level, and nothing
    written when the object database has it already (a branch rebuilt as it was).
    """
    oid = pygit2.Oid(hex=blob_id(data))
    if not repo.odb.exists(oid):
        pending = getattr(repo, "_vbranch_pending", None)
        if pending is not None:  # as libgit2 would write it through the batch's backend: its pack, or loose
            pending.write_cb(oid, data, BLOB_TYPE)
        else:
            _write_loose(_common_dir(Path(repo.path)), str(oid), BLOB_TYPE, data)
    _keep_blob(oid, data)
    return oid


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
            builder.insert(name, _create_blob(repo, state.data), state.mode)
        elif builder.get(name) is not None:
            builder.remove(name)
    for name, sub in nested.items():
        entry = builder.get(name)
        subtree = entry if isinstance(entry, pygit2.Tree) else None
        oid = edit_tree(repo, subtree, sub)
        if len(repo[oid]) == 0:  # a directory left empty goes; a file there (set above, or kept) stays
            if subtree is not None:
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
    return key != (blob_id(state.data), state.mode)


def blob_id(data: bytes) -> str:
    """The id git gives a blob of `data` (pygit2.hash's, ~4x faster: libgit2 hashes with
    collision detection, which only a crafted SHA-1 collision tells apart)."""
    digest = sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


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


def remember_edit(repo: pygit2.Repository, start: pygit2.Tree, new: pygit2.Oid, changes) -> None:
    """Remember what `edit_tree(repo, start, changes)` = `new` changed, unless it turned a file into
    a directory or back (then paths outside `changes` changed too, and a diff finds them)."""
    seen: set[str] = set()
    for path in changes:
        if _kind(start, path) == "tree":
            return
        parent = path.rpartition("/")[0]
        while parent and parent not in seen:
            seen.add(parent)
            if _kind(start, parent) == "blob":
                return
            parent = parent.rpartition("/")[0]
    remember_changes(start.id, new, differing(start, repo[new], changes))


def _kind(tree: pygit2.Tree, path: str) -> str | None:
    try:
        return "tree" if tree[path].filemode == TREE_MODE else "blob"
    except KeyError:
        return None


def remember_changes(old: pygit2.Oid, new: pygit2.Oid, paths: list[str]) -> None:
    if len(_KNOWN_CHANGES) > 256:
        _KNOWN_CHANGES.clear()
    _KNOWN_CHANGES[(str(old), str(new))] = sorted(paths)


def changed_paths(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> list[str]:
    """Every file path whose entry differs between two trees: known from the edit that made one from
    the other (remember_edit), else libgit2's diff, which walks every entry (~6.7 ms at 30,000 files)."""
    if old.id == new.id:
        return []
    known = _KNOWN_CHANGES.get((str(old.id), str(new.id)))
    if known is not None:
        return list(known)
    paths = set()
    for change in old.diff_to_tree(new).deltas:
        paths.add(change.old_file.path)
        paths.add(change.new_file.path)
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


class _Pending(pygit2.OdbBackend):
    """Objects written during a `batch`, held in memory (and readable) until the batch writes them out."""

    def __init__(self, git_dir: Path):
        super().__init__()
        self.objects: dict[bytes, tuple[int, bytes]] = {}
        self.git_dir = git_dir
        self.closed = False

    def write_cb(self, oid, data, kind):
        if self.closed:  # after the batch: a loose object, as libgit2 would have written it
            _write_loose(self.git_dir, str(oid), int(kind), bytes(data))
        else:
            self.objects[oid.raw] = (int(kind), bytes(data))

    def read_cb(self, oid):
        return self.objects[oid.raw]

    def read_header_cb(self, oid):
        kind, data = self.objects[oid.raw]
        return kind, len(data)

    def read_prefix_cb(self, oid):
        # libgit2 asks this at every object read during a batch, with the whole id (a prefix comes
        # padded with zeros): looked up, not scanned (a scan cost ~200 µs a read with 1,000 objects).
        hexid = str(oid)
        found = self.objects.get(bytes.fromhex(hexid)) if len(hexid) == 40 else None
        if found is not None:
            return (*found, pygit2.Oid(hex=hexid))
        prefix = hexid.rstrip("0")
        if len(prefix) == 40:  # a whole id, not one of these
            raise KeyError(hexid)
        hit = [raw for raw in self.objects if raw.hex().startswith(prefix)]
        if len(hit) != 1:
            raise KeyError(hexid)
        return (*self.objects[hit[0]], pygit2.Oid(raw=hit[0]))

    def exists_cb(self, oid):
        return oid.raw in self.objects

    def exists_prefix_cb(self, oid):
        return self.read_prefix_cb(oid)[2]

    def refresh_cb(self):
        pass

    def __iter__(self):
        return (pygit2.Oid(raw=raw) for raw in list(self.objects))


@contextmanager
def batch(repo: pygit2.Repository):
    """Every object `repo` writes in the block goes into ONE new pack (plus its index) when the
    block ends, instead of one loose file each: a commit of 8 branches writes hundreds of trees,
    and on a slow filesystem each file costs about a millisecond. Readable at once within the
    block (`repo` finds them in memory); on disk, for every other reader, once the block is left
    normally. A block left by an exception writes nothing (the objects were unreachable anyway).
    """
    pending = getattr(repo, "_vbranch_pending", None)
    if pending is None:  # one per repository object (a backend cannot be taken out again)
        pending = repo._vbranch_pending = _Pending(_common_dir(Path(repo.path)))
        repo.odb.add_backend(pending, 1 << 20)  # above the loose and pack backends: written here first
    elif not pending.closed:  # within a batch already: that one writes the pack
        yield
        return
    pending.objects, pending.closed = {}, False
    try:
        yield
    finally:
        pending.closed = True
    write_pack(pending.git_dir, pending.objects)


def _common_dir(git_dir: Path) -> Path:
    """Where the objects are: a linked worktree's git directory names the main one in `commondir`."""
    try:
        return git_dir / (git_dir / "commondir").read_text().strip()
    except FileNotFoundError:
        return git_dir


def write_pack(git_dir: Path, objects: dict[bytes, tuple[int, bytes]]) -> None:
    """Write `objects` (raw id -> (type, data)) as a version-2 pack and index in git_dir/objects/pack.

    A large blob like one written before it in the same pack (a shared file, rebased for each
    branch) is stored as a delta against that one (delta.py): a few hundred bytes, not the file
    compressed again.

    The pack, then its index, each complete under a temporary name and renamed: git and libgit2
    see the objects once the index exists (what `git index-pack` does). A kill before that leaves
    at most an unindexed pack or a temporary file, which git ignores.
    """
    if not objects:
        return
    if not _worth_a_pack(objects):  # a few objects: loose files cost less than another pack to look in
        for raw, (kind, data) in objects.items():
            _write_loose(git_dir, raw.hex(), kind, data)
        return
    # In the order written, not by id: a delta's base (an earlier blob) comes before it.
    body = [b"PACK", struct.pack(">II", 2, len(objects))]
    offsets, crcs, pos = {}, {}, 12
    bases: list[tuple[bytes, bytes]] = []  # (id, data) of the last large blobs stored whole
    for raw, (kind, data) in objects.items():
        entry = None
        if kind == BLOB_TYPE and len(data) >= DELTA_FROM:
            entry = _delta_entry(bases, offsets, pos, data)
            if entry is None:
                bases = [*bases[1 - DELTA_BASES:], (raw, data)]
        if entry is None:
            entry = _entry_header(kind, len(data)) + zlib.compress(data, 0 if kind == TREE_TYPE else 1)
        offsets[raw], crcs[raw] = pos, zlib.crc32(entry)
        body.append(entry)
        pos += len(entry)
    if pos >= 1 << 31:  # beyond 4-byte offsets: loose objects, one by one
        for raw, (kind, data) in objects.items():
            _write_loose(git_dir, raw.hex(), kind, data)
        return
    order = sorted(objects)
    pack = b"".join(body)
    checksum = sha1(pack).digest()
    pack += checksum
    fanout, counts = [], [0] * 256
    for raw in order:
        counts[raw[0]] += 1
    total = 0
    for n in counts:
        total += n
        fanout.append(total)
    idx = b"".join([
        b"\377tOc", struct.pack(">I", 2), struct.pack(">256I", *fanout), *order,
        struct.pack(">%dI" % len(order), *(crcs[r] for r in order)),
        struct.pack(">%dI" % len(order), *(offsets[r] for r in order)), checksum,
    ])
    idx += sha1(idx).digest()
    folder = git_dir / "objects" / "pack"
    folder.mkdir(parents=True, exist_ok=True)
    name = "pack-" + checksum.hex()
    for suffix, data in ((".pack", pack), (".idx", idx)):
        tmp = folder / f"tmp_{name}{suffix}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, folder / (name + suffix))
    if sum(1 for _ in folder.glob("pack-*.pack")) > ROLL_UP_PACKS:
        _roll_up(git_dir)


def _worth_a_pack(objects: dict[bytes, tuple[int, bytes]]) -> bool:
    """Many objects, or two large blobs (which a pack can store as one and a delta)."""
    if len(objects) >= PACK_AT_LEAST:
        return True
    return sum(1 for kind, data in objects.values() if kind == BLOB_TYPE and len(data) >= DELTA_FROM) >= 2


def _delta_entry(bases: list[tuple[bytes, bytes]], offsets: dict[bytes, int], pos: int, data: bytes) -> bytes | None:
    """A pack entry holding `data` as a delta against the most similar of `bases` (written at
    `offsets`, before `pos`); None when none is similar enough to be worth it."""
    alike = [(raw, base) for raw, base in reversed(bases) if len(data) // 2 <= len(base) <= 2 * len(data)
             and delta.alike(base, data)]
    if not alike:
        return None
    raw, base = alike[0]
    found = delta.encode(base, data, limit=len(data) // 4)
    if found is None:
        return None
    return _entry_header(OFS_DELTA_TYPE, len(found)) + _back_offset(pos - offsets[raw]) + zlib.compress(found, 1)


def _entry_header(kind: int, size: int) -> bytes:
    """A pack entry's type and (uncompressed) size: 3 + 4 bits in the first byte, then 7 a byte."""
    header = bytearray([(kind << 4) | (size & 0x0F)])
    size >>= 4
    while size:
        header[-1] |= 0x80
        header.append(size & 0x7F)
        size >>= 7
    return bytes(header)


def _back_offset(distance: int) -> bytes:
    """How far back an OFS_DELTA's base starts, in git's encoding (7 bits a byte, most significant
    first, each continuation byte standing for one more than its bits)."""
    out = [distance & 0x7F]
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))


# A batch of fewer objects than this is written loose; more, as one pack. Once there are more
# than ROLL_UP_PACKS packs, git merges the small ones (`repack --geometric`, in the background,
# as `gc --auto` runs): every reader looks in every pack, so their number must stay small.
PACK_AT_LEAST = 32
ROLL_UP_PACKS = 32
# Blobs this large are stored as a delta against a similar one in the same pack when there is one
# (a landing writes one copy of a shared file per branch it rebases); DELTA_BASES recent whole
# blobs are tried. Smaller blobs cost less to compress than to compare.
DELTA_FROM = 16 << 10
DELTA_BASES = 8
OFS_DELTA_TYPE = 6


def _roll_up(git_dir: Path) -> None:
    """One roll-up at a time (its lock file goes when it ends; one left by a kill, after 10 minutes)."""
    import subprocess
    import time

    lock = git_dir / "vbranch-rollup.lock"
    try:
        if time.time() - lock.stat().st_mtime > 600:
            lock.unlink()
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return
    subprocess.Popen(
        ["sh", "-c", 'git --git-dir "$1" repack --geometric=2 -d -q; rm -f "$2"', "sh", str(git_dir), str(lock)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
# Trees go into a pack stored, not compressed: they are mostly object ids, which deflate shrinks by
# a fifth, and a commit of 8 branches writes ~500 of them, where zlib's set-up per call made
# compressing them (~60 µs each, 13 µs stored) a tenth of the commit. (`git repack -F` compresses them.)
TREE_TYPE = 2
BLOB_TYPE = 3
LOOSE_COMPRESSION = 1  # git's core.looseCompression default (best speed), as libgit2 writes them


def _write_loose(git_dir: Path, oid: str, kind: int, data: bytes) -> None:
    path = git_dir / "objects" / oid[:2] / oid[2:]
    if path.exists():
        return
    path.parent.mkdir(exist_ok=True)
    tmp = path.parent / f"tmp_obj_{oid[2:]}.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(zlib.compress(_TYPE_NAMES[kind] + b" %d\0" % len(data) + data, LOOSE_COMPRESSION))
    os.chmod(tmp, 0o444)
    os.replace(tmp, path)

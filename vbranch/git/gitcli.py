"""git through its command line, for the paths that must start fast.

Recording (and the hooks) read a handful of things from git; importing pygit2
costs more than these few subprocesses. Everything here is read-only except
`update_refs`, which is git's own atomic compare-and-swap of refs.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from vbranch.core.ownership import ABSENT, FileState
from vbranch.errors import GitError, NotInitialized, UsageError

ZERO_OID = "0" * 40


def git(
    top: Path | str, *args: str, input: bytes | None = None, check: bool = True, literal: bool = True
) -> bytes:
    # --literal-pathspecs: paths are names, never patterns (a file may be called `*`).
    cmd = ["git", *(["--literal-pathspecs"] if literal else []), "--no-optional-locks", "-C", str(top), *args]
    proc = subprocess.run(cmd, input=input, capture_output=True)
    if check and proc.returncode != 0:
        raise GitError(
            f"`git {' '.join(args[:3])}` failed: {proc.stderr.decode(errors='replace').strip()}",
        )
    return proc.stdout


def discover(start: Path | str) -> tuple[Path, Path]:
    """The working tree's top and the git directory containing `start`."""
    proc = subprocess.run(
        ["git", "-C", str(start), "rev-parse", "--show-toplevel", "--absolute-git-dir"],
        capture_output=True,
    )
    if proc.returncode != 0:
        raise NotInitialized(
            f"{start} is not inside a git working tree",
            hint="run vbranch inside a git repository (`git init` makes one)",
        )
    top, git_dir = proc.stdout.decode().splitlines()
    return Path(top), Path(git_dir)


def rev_parse(top: Path, rev: str) -> str | None:
    if _pygit2 is not None:
        try:
            return str(_pygit2.Repository(str(top)).revparse_single(rev + "^{commit}").id)
        except KeyError:
            return None
        except (_pygit2.GitError, ValueError):
            pass  # an odd spec: git says what it means
    out = git(top, "rev-parse", "--verify", "-q", rev + "^{commit}", check=False).strip()
    return out.decode() or None


def symbolic_head(top: Path) -> str | None:
    if _pygit2 is not None:
        try:
            head = _pygit2.Repository(str(top)).lookup_reference("HEAD")
        except (_pygit2.GitError, KeyError, ValueError):
            head = None
        if head is not None:
            return head.target if head.type == _pygit2.enums.ReferenceType.SYMBOLIC else None
    out = git(top, "symbolic-ref", "-q", "HEAD", check=False).strip()
    return out.decode() or None


_STATUS = ("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules")
# (top, thread) -> the `git status` of the whole tree started by prefetch_dirty_paths, not yet read.
_PREFETCHED: dict[tuple[str, int], subprocess.Popen] = {}


def prefetch_dirty_paths(top: Path) -> None:
    """Start the `git status` the next `dirty_paths(top)` of this thread reads, so that it runs while
    this process does other work (a commit imports pygit2 meanwhile). End with `drop_prefetch`."""
    import threading

    key = (str(top), threading.get_ident())
    if key not in _PREFETCHED:
        cmd = ["git", "--literal-pathspecs", "--no-optional-locks", "-C", str(top), *_STATUS, "--"]
        _PREFETCHED[key] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def drop_prefetch(top: Path) -> None:
    """Forget a prefetched status nobody read (it would be stale by the next call)."""
    import threading

    proc = _PREFETCHED.pop((str(top), threading.get_ident()), None)
    if proc is not None:
        proc.kill()
        proc.communicate()


def dirty_paths(top: Path, pathspecs: list[str] | None = None) -> set[str]:
    """Paths that differ from the index (the workspace commit), untracked ones included."""
    proc = None
    if not pathspecs and _PREFETCHED:
        import threading

        proc = _PREFETCHED.pop((str(top), threading.get_ident()), None)
    if proc is not None:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise GitError(f"`git status` failed: {err.decode(errors='replace').strip()}")
    else:
        out = git(top, *_STATUS, "--", *(pathspecs or []))
    paths = set()
    for entry in out.split(b"\0"):
        if entry:
            paths.add(entry[3:].decode("utf-8", "surrogateescape"))
    return paths


def ignored(top: Path, paths: list[str]) -> set[str]:
    """The paths git ignores (tracked files never count as ignored)."""
    if not paths:
        return set()
    data = b"\0".join(p.encode("utf-8", "surrogateescape") for p in paths) + b"\0"
    # check-ignore reads names, not pathspecs, and refuses --literal-pathspecs.
    out = git(top, "check-ignore", "-z", "--stdin", input=data, check=False, literal=False)
    return {p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p}


# pygit2, once a long-lived process asked for it (read_trees_in_process): None in hook processes.
_pygit2 = None


def read_trees_in_process() -> None:
    """From now on read trees, blobs and refs through pygit2, not git processes: for the watcher, which
    pays pygit2's import once, while each git process costs its hooks ~5 ms (a fork of a large
    process, then git's start). A hook's own process keeps git: pygit2's import costs it more."""
    global _pygit2
    import pygit2

    _pygit2 = pygit2


def tree_states(top: Path, rev: str | None, paths: list[str]) -> dict[str, FileState]:
    """The state of each path in commit `rev` (ABSENT where it has none)."""
    states = {p: ABSENT for p in paths}
    if rev is None or not paths:
        return states
    listed = _listed_in_process(top, rev, paths, blobs=True)
    if listed is not None:
        states.update({path: FileState(True, mode, data) for path, mode, _oid, data in listed})
        return states
    listing = git(top, "ls-tree", "-z", "--full-tree", rev, "--", *paths)
    wanted = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        mode, kind, oid = meta.split()
        if kind == b"blob":
            wanted.append((name.decode("utf-8", "surrogateescape"), int(mode, 8), oid))
    if wanted:
        blobs = _cat_blobs(top, [oid for _, _, oid in wanted])
        for (path, mode, _), data in zip(wanted, blobs):
            states[path] = FileState(True, mode, data)
    return states


def tree_signatures(top: Path, rev: str, paths: list[str]) -> dict[str, str | None]:
    """Each path's "mode:blob-id" in commit `rev`, None where it has none (no blob is read)."""
    signatures: dict[str, str | None] = {p: None for p in paths}
    if not paths:
        return signatures
    listed = _listed_in_process(top, rev, paths, blobs=False)
    if listed is not None:
        signatures.update({path: f"{mode:o}:{oid}" for path, mode, oid, _data in listed})
        return signatures
    listing = git(top, "ls-tree", "-z", "--full-tree", rev, "--", *paths, check=False)
    for entry in listing.split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        if name:
            mode, kind, oid = meta.split()
            if kind == b"blob":
                signatures[name.decode("utf-8", "surrogateescape")] = f"{int(mode, 8):o}:{oid.decode()}"
    return signatures


def _listed_in_process(top: Path, rev: str, paths: list[str], blobs: bool) -> list[tuple] | None:
    """(path, mode, blob id, data or None) of each path that is a file in `rev`, read through pygit2;
    None when this process does not read trees itself, or pygit2 cannot answer (git then does,
    with its own error if any)."""
    pygit2 = _pygit2
    if pygit2 is None:
        return None
    try:
        repo = pygit2.Repository(str(top))
        tree = repo.revparse_single(rev).peel(pygit2.Tree)
    except (pygit2.GitError, KeyError, ValueError):
        return None
    listed = []
    for path in paths:
        try:
            entry = tree[path]
        except KeyError:
            continue
        if entry.type_str == "blob":
            listed.append((path, entry.filemode, str(entry.id), repo[entry.id].data if blobs else None))
    return listed


def _refs_in_process(top: Path, prefixes: tuple[str, ...]) -> dict[str, str] | None:
    """`refs` through pygit2, matched as for-each-ref matches a pattern: the whole name, or from its
    start up to a slash. None when pygit2 cannot answer (git then does)."""
    roots = [p if p.endswith("/") else p + "/" for p in prefixes]
    try:
        repo = _pygit2.Repository(str(top))
        found = {}
        for name in repo.listall_references():
            if name in prefixes or name.startswith(tuple(roots)):
                try:
                    found[name] = str(repo.lookup_reference(name).resolve().target)
                except (_pygit2.GitError, KeyError):
                    continue  # a broken symbolic ref: for-each-ref skips it too
        return found
    except (_pygit2.GitError, ValueError):
        return None


def _cat_blobs(top: Path, oids: list[bytes]) -> list[bytes]:
    out = git(top, "cat-file", "--batch", input=b"\n".join(oids) + b"\n")
    blobs = []
    pos = 0
    for _ in oids:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        start = header_end + 1
        blobs.append(out[start:start + size])
        pos = start + size + 1
    return blobs


def create_ref(top: Path, ref: str, oid: str) -> bool:
    """Create `ref` at `oid` unless it exists; False when it already does."""
    proc = subprocess.run(
        ["git", "-C", str(top), "update-ref", "--no-deref", ref, oid, ZERO_OID],
        capture_output=True,
    )
    return proc.returncode == 0


def ref_exists(top: Path, ref: str) -> bool:
    return bool(git(top, "rev-parse", "--verify", "-q", ref, check=False).strip())


def update_refs(top: Path, updates: list[tuple[str, str | None, str | None]], message: str) -> None:
    """Move refs in one atomic transaction: each (ref, new, expected old); None means absent.

    git refuses the whole transaction if any ref moved since it was read.
    """
    # An explicit transaction: should vbranch die while git reads these lines, git
    # sees no `commit` and aborts instead of applying what it got so far.
    lines = ["start"]
    for ref, new, old in updates:
        if new is None:
            lines.append(f"delete {ref} {old or ''}")
        else:
            lines.append(f"update {ref} {new} {old or ZERO_OID}")
    lines.append("commit")
    proc = subprocess.run(
        ["git", "-C", str(top), "update-ref", "--no-deref", "-m", message, "--stdin"],
        input=("\n".join(lines) + "\n").encode(),
        capture_output=True,
    )
    if proc.returncode != 0:
        raise GitError(
            "a branch ref moved while vbranch was updating it: " + proc.stderr.decode(errors="replace").strip(),
            hint="another program changed the branch; run the command again",
        )


def update_index(top: Path, entries: list[str], retries: int = 100) -> None:
    """Set index entries ("mode oid\tpath"; mode 0 removes), waiting out a busy index.lock."""
    data = ("\n".join(entries) + "\n").encode("utf-8", "surrogateescape")
    for attempt in range(retries):
        proc = subprocess.run(["git", "-C", str(top), "update-index", "--index-info"], input=data, capture_output=True)
        if proc.returncode == 0:
            return
        if b"index.lock" not in proc.stderr or attempt == retries - 1:
            raise GitError(
                "could not update the index: " + proc.stderr.decode(errors="replace").strip(),
                hint="is another git command running? `vbranch status` retries",
            )
        time.sleep(0.02)


def refs(top: Path, *prefixes: str) -> dict[str, str]:
    """Every ref under the prefixes (e.g. refs/heads), with its object id."""
    if _pygit2 is not None:
        found = _refs_in_process(top, prefixes)
        if found is not None:
            return found
    out = git(top, "for-each-ref", "--format=%(refname) %(objectname)", *prefixes)
    return dict(line.split(" ", 1) for line in out.decode("utf-8", "surrogateescape").splitlines())


def is_ancestor(top: Path, ancestor: str, commit: str) -> bool:
    proc = subprocess.run(["git", "-C", str(top), "merge-base", "--is-ancestor", ancestor, commit], capture_output=True)
    return proc.returncode == 0


def blob(top: Path, oid: str) -> bytes:
    return git(top, "cat-file", "blob", oid)


def set_head(top: Path, target: str) -> None:
    """Point HEAD at a ref (symbolically) or detach it at a commit."""
    if target.startswith("refs/"):
        git(top, "symbolic-ref", "HEAD", target)
    else:
        git(top, "update-ref", "--no-deref", "HEAD", target)


def remotes(top: Path) -> list[str]:
    return git(top, "remote").decode().split()


def push(top: Path, remote: str, refspec: str, lease: str | None) -> str:
    """`git push` one refspec; with a lease (ref:expected) it refuses to overwrite others' work."""
    args = ["push", "--porcelain"]
    if lease is not None:
        args.append(f"--force-with-lease={lease}")
    # After `--`, a remote such as `--upload-pack=CMD` is a name, never an option.
    proc = subprocess.run(["git", "-C", str(top), *args, "--", remote_arg(remote), refspec], capture_output=True)
    if proc.returncode != 0:
        raise GitError(
            f"`git push {remote}` failed: " + proc.stderr.decode(errors="replace").strip(),
            hint="the remote may have commits this branch lacks; `git fetch` and look, or land the branch first",
        )
    return proc.stdout.decode(errors="replace")


def remote_head(top: Path, remote: str, ref: str) -> str | None:
    """The commit `ref` names on the remote now (None if it has no such ref)."""
    out = git(top, "ls-remote", "--refs", "--", remote_arg(remote), ref).decode().split()
    if out and not all(c in "0123456789abcdef" for c in out[0]):
        raise GitError(f"`git ls-remote {remote}` answered {out[0][:40]!r}, not a commit id")
    return out[0] if out else None


def remote_arg(remote: str) -> str:
    """`remote` (a remote's name, a path or a URL) if it cannot be taken for an option."""
    if not remote or remote.startswith("-") or "\0" in remote:
        raise UsageError(f"{remote!r} is not a remote", hint="give a remote's name, a path or a URL (none starts with '-'; for a path, ./-name)")
    return remote


def reflog(top: Path, ref: str) -> set[str]:
    """Every commit `ref` has pointed at, as far as its reflog remembers."""
    return set(git(top, "log", "-g", "--format=%H", ref, "--", check=False).decode().split())

"""Reading the working tree: path resolution, file states, stat signatures."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from vbranch.errors import PathError

try:  # the builtin module: hashlib would load OpenSSL, which the hook path cannot afford
    from _sha1 import sha1
except ImportError:  # pragma: no cover
    from hashlib import sha1
from vbranch.core.ownership import ABSENT, EXECUTABLE, REGULAR, SYMLINK, FileState


def resolve(top: Path, path: str | os.PathLike, cwd: Path | None = None) -> str:
    """The repository-relative path of `path`, or PathError if it is not ours.

    Parent directories are resolved through symlinks; the last component is
    not, since a symlink is itself a file git records.
    """
    raw = Path(path)
    if not raw.is_absolute():
        raw = (cwd or Path.cwd()) / raw
    parent = Path(os.path.realpath(raw.parent))
    full = parent / raw.name if raw.name not in ("", ".", "..") else Path(os.path.realpath(raw))
    real_top = Path(os.path.realpath(top))
    try:
        rel = full.relative_to(real_top)
    except ValueError:
        raise PathError(
            f"{path} is outside the repository {top}",
            hint="vbranch records only files inside the working tree",
        ) from None
    parts = rel.parts
    if parts and parts[0] == ".git":
        raise PathError(f"{path} is inside .git", hint="git's own files are never recorded")
    if not parts:
        raise PathError(f"{path} is the repository itself, not a file in it")
    return "/".join(parts)


def resolve_write_target(top: Path, path: str | os.PathLike, cwd: Path | None = None) -> str:
    """Where a file tool's write to `path` lands, repository-relative, or PathError.

    As `resolve`, and when the last component is a symlink, the file a write
    through it changes (the whole chain followed, a dangling link's would-be
    target too) must be inside the repository and not in `.git`: a symlink in
    the tree must not carry a write outside or into git's own files. Returns
    the path written to: the link's final target, else what `resolve` returns.
    """
    rel = resolve(top, path, cwd)
    full = os.path.join(os.path.realpath(top), rel)
    if not os.path.islink(full):
        return rel
    landing = os.path.realpath(full)
    real_top = os.path.realpath(top)
    inside = os.path.relpath(landing, real_top).replace(os.sep, "/")
    if inside == ".." or inside.startswith("../") or os.path.isabs(inside):
        raise PathError(
            f"{path} is a symlink to {landing}, outside the repository {top}",
            hint="a write through it would change a file vbranch cannot record; write inside the working tree",
        )
    if landing == real_top:
        raise PathError(f"{path} is a symlink to the repository itself, not a file in it")
    if any(part.lower() == ".git" for part in inside.split("/")):  # .git of a nested repository too; .GIT on macOS
        raise PathError(f"{path} is a symlink into .git ({inside})", hint="git's own files are never written through a link")
    return inside


def read_state(top: Path, rel: str) -> FileState | None:
    """The file as git would store it; None for a directory."""
    full = os.path.join(top, rel)
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    if stat.S_ISLNK(st.st_mode):
        return FileState(True, SYMLINK, os.fsencode(os.readlink(full)))
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return ABSENT  # sockets, fifos: git does not store them
    mode = EXECUTABLE if st.st_mode & stat.S_IXUSR else REGULAR
    with open(full, "rb") as f:
        return FileState(True, mode, f.read())


def stat_key(top: Path, rel: str) -> tuple | None:
    """A cheap signature of the file: equal signatures mean unchanged content."""
    try:
        st = os.lstat(os.path.join(top, rel))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


def signature(state: FileState | None) -> str | None:
    """"mode:blob-id" as git would store the file, so it compares with tree entries; None if absent."""
    if state is None or not state.exists:
        return None
    blob = sha1(b"blob %d\0" % len(state.data) + state.data).hexdigest()
    return f"{state.mode:o}:{blob}"


def files_under(top: Path, rel: str) -> list[str]:
    """Every file (not directory) below a directory of the working tree."""
    out = []
    root = os.path.join(top, rel)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git" or dirpath != str(top)]
        for name in filenames:
            out.append(os.path.relpath(os.path.join(dirpath, name), top).replace(os.sep, "/"))
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                out.append(os.path.relpath(os.path.join(dirpath, name), top).replace(os.sep, "/"))
                dirnames.remove(name)
    return out

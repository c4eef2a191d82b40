"""One walk of the working tree, for everything that lists it: adding the watches, the initial
scan, polling the directories that could not be watched, and the rescan after an overflow."""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator

GIT_NAMES = (".git", b".git")  # a repository's (or a nested one's) git directory or gitfile: never walked


def walk(roots: list, descend: Callable[[list], list]) -> Iterator[tuple]:
    """Breadth first from `roots` (full paths, str or bytes): `(directory, files, subdirectories)` per directory.

    `files` are the directory's `os.DirEntry`s that are not directories (symlinks are not
    followed), `subdirectories` its directories' full paths; both are None when it cannot be
    listed (gone, or no longer a directory). `.git` entries are left out. `descend` is called
    once per level with every subdirectory found on it and returns those to walk into: one
    batch per level, so one `git check-ignore` round trip per level, not per directory.
    """
    level = list(roots)
    while level:
        found: list = []
        for directory in level:
            try:
                with os.scandir(directory) as entries:
                    listed = [entry for entry in entries if entry.name not in GIT_NAMES]
            except OSError:
                yield directory, None, None
                continue
            files, subdirs = [], []
            for entry in listed:
                try:
                    (subdirs if entry.is_dir(follow_symlinks=False) else files).append(entry)
                except OSError:
                    continue
            subdirs = [entry.path for entry in subdirs]
            found += subdirs
            yield directory, files, subdirs
        level = descend(found) if found else []

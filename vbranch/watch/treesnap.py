"""What the watcher knows about the tree: a stat signature per file, indexed by directory."""
from __future__ import annotations

import os

RACY_NS = 2_000_000_000  # a stat this close to the change it describes may miss a later one

Sig = tuple  # (mode, size, mtime_ns, ctime_ns, inode); None for a racy entry


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def sig_of(st: os.stat_result, now_ns: int) -> Sig | None:
    if now_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None  # racy: a change within the timestamps' granularity could hide behind it
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Snapshot:
    """path -> stat signature of every file the watcher knows, with a directory index."""

    def __init__(self) -> None:
        self.files: dict[str, Sig | None] = {}
        self.children: dict[str, set[str]] = {}  # dir -> child paths (files and dirs)

    def __len__(self) -> int:
        return len(self.files)

    def set(self, rel: str, sig: Sig | None) -> None:
        self.files[rel] = sig
        child, parent = rel, _parent(rel)
        while True:
            kids = self.children.setdefault(parent, set())
            if child in kids:
                break
            kids.add(child)
            if parent == "":
                break
            child, parent = parent, _parent(parent)

    def pop(self, rel: str) -> bool:
        """Forget a file; whether it was known."""
        if rel not in self.files:
            return False
        del self.files[rel]
        kids = self.children.get(_parent(rel))
        if kids is not None:
            kids.discard(rel)
        return True

    def pop_subtree(self, rel: str) -> list[str]:
        """Forget everything under directory `rel` (and `rel` itself if it was a file); the files."""
        gone = [rel] if self.pop(rel) else []
        todo = [rel]
        while todo:
            d = todo.pop()
            for kid in self.children.pop(d, ()):
                if kid in self.files:
                    del self.files[kid]
                    gone.append(kid)
                else:
                    todo.append(kid)
        kids = self.children.get(_parent(rel))
        if kids is not None and rel:
            kids.discard(rel)
        return gone

    def files_in(self, rel: str) -> list[str]:
        return [k for k in self.children.get(rel, ()) if k in self.files]

    def dirs_in(self, rel: str) -> list[str]:
        return [k for k in self.children.get(rel, ()) if k not in self.files]

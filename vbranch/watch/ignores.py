"""What git ignores, asked of one long-lived `git check-ignore` process (for the watcher)."""
from __future__ import annotations

import os
import select
import subprocess
import threading
from pathlib import Path
from typing import Iterable

CHECK_IGNORE_TIMEOUT = 30.0


class IgnoreOracle:
    """`git check-ignore` answers, from one long-lived `--stdin -z --verbose --non-matching` process.

    Sound caching: a directory git ignores has every path under it ignored (git
    cannot re-include a file whose parent directory is excluded), and
    check-ignore reports a directory holding tracked files as not ignored. All
    answers are dropped when an ignore source changes (`invalidate`, `changed`).
    Whatever cannot be answered counts as not ignored: reporting too much is
    safe, too little is not.
    """

    def __init__(self, top: Path, git_dir: Path):
        self.top = Path(top)
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.buf = b""
        self.dirs: dict[str, bool] = {}
        self.paths: dict[str, bool] = {}
        self.tracked: set[str] | None = None  # directories with tracked files, from the index
        self.sources = [Path(git_dir) / "index", Path(git_dir) / "info" / "exclude", self._global_excludes()]
        self.sig = self._sources_sig()

    def _global_excludes(self) -> Path:
        proc = subprocess.run(
            ["git", "-C", str(self.top), "config", "--path", "core.excludesFile"], capture_output=True
        )
        configured = proc.stdout.decode(errors="surrogateescape").strip()
        if configured:
            return Path(configured).expanduser()
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        return Path(base) / "git" / "ignore"

    def _sources_sig(self) -> tuple:
        out = []
        for path in self.sources:
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def changed(self) -> bool:
        """Whether the index or an excludes file changed (the answers that may have changed are dropped)."""
        sig = self._sources_sig()
        if sig == self.sig:
            return False
        index_only = sig[1:] == self.sig[1:]
        self.sig = sig
        if index_only:
            self._index_changed()
        else:
            self.invalidate()
        return True

    def _index_changed(self) -> None:
        """The index changed, the rules did not: a file's answer may have (a tracked file is never
        ignored), an ignored directory's only if it now holds a tracked file. Every commit changes
        the index: listing just those directories' entries spares listing the whole index's
        directories (~10 ms of Python at 30,000 files) and asking check-ignore about each again."""
        with self.lock:
            self._stop()
            self.paths.clear()
            self.tracked = None
            ignored = [rel for rel, yes in self.dirs.items() if yes]
            holding = _holding_tracked(self.top, ignored)
            self.dirs.clear()  # in place, as invalidate does: a question under way may hold this dict
            self.dirs.update((rel, True) for rel in ignored if rel not in holding)

    def invalidate(self) -> None:
        with self.lock:
            self._stop()
            self.dirs.clear()
            self.paths.clear()
            self.tracked = None

    def close(self) -> None:
        with self.lock:
            self._stop()

    def ignored(self, rels: Iterable[str]) -> set[str]:
        """Which of these paths git ignores."""
        return self._answer(list(rels), self.paths)

    def ignored_dirs(self, rels: Iterable[str]) -> set[str]:
        """Which of these directories git ignores (with everything under them).

        A directory holding tracked files never is, and needs no question: check-ignore
        takes milliseconds per directory on a large index, minutes for a whole tree.
        """
        rels = list(rels)
        tracked = self._tracked_dirs() if any(rel not in self.dirs for rel in rels) else set()
        return self._answer([rel for rel in rels if rel not in tracked], self.dirs)

    def _tracked_dirs(self) -> set[str]:
        with self.lock:
            if self.tracked is None:
                listing = subprocess.run(["git", "-C", str(self.top), "ls-files", "-z"], capture_output=True).stdout
                # Each file's directory first, as bytes: then only the few distinct ones are decoded and
                # walked up (every commit changes the index: this ran for each, ~22 ms at 30,000 files).
                self.tracked = set()
                for raw in {entry.rpartition(b"/")[0] for entry in listing.split(b"\0")}:
                    parent = os.fsdecode(raw)
                    while parent and parent not in self.tracked:
                        self.tracked.add(parent)
                        parent = parent.rpartition("/")[0]
            return self.tracked

    def _answer(self, rels: list[str], cache: dict[str, bool]) -> set[str]:
        out, ask = set(), []
        for rel in rels:
            known = True if self._under_ignored_dir(rel) else cache.get(rel)
            if known is None:
                ask.append(rel)
            elif known:
                out.add(rel)
        if ask:
            answers = self._query_safe(sorted(set(ask)))
            if len(cache) > 200_000:
                cache.clear()
            cache.update(answers)
            out.update(r for r in ask if answers.get(r))
        return out

    def _under_ignored_dir(self, rel: str) -> bool:
        if "/" not in rel or True not in self.dirs.values():
            return False
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self.dirs.get("/".join(parts[:i])):
                return True
        return False

    def _query_safe(self, rels: list[str]) -> dict[str, bool]:
        # A path git refuses (inside a submodule, beyond a symlink) kills check-ignore:
        # halve the batch until the culprit is alone, and call it not ignored.
        answers = self._query(rels)
        if answers is not None:
            return answers
        if len(rels) == 1:
            return {rels[0]: False}
        mid = len(rels) // 2
        return {**self._query_safe(rels[:mid]), **self._query_safe(rels[mid:])}

    def _query(self, rels: list[str]) -> dict[str, bool] | None:
        with self.lock:
            try:
                proc = self._ensure()
                data = b"".join(os.fsencode(r) + b"\0" for r in rels)
                writer = threading.Thread(target=_write_all, args=(proc.stdin, data), daemon=True)
                writer.start()
                fields = self._read_fields(proc, 4 * len(rels))
                writer.join()
            except (OSError, EOFError, TimeoutError, ValueError):
                self._stop()
                return None
        out = {}
        for i, rel in enumerate(rels):
            _source, _line, pattern, path = fields[4 * i: 4 * i + 4]
            if path != os.fsencode(rel):
                with self.lock:
                    self._stop()
                return None
            # A "!pattern" match re-includes: not ignored.
            out[rel] = bool(pattern) and not pattern.startswith(b"!")
        return out

    def _ensure(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self._stop()
            self.proc = subprocess.Popen(
                ["git", "--no-optional-locks", "-C", str(self.top), "check-ignore", "--stdin", "-z", "--verbose", "--non-matching"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "GIT_FLUSH": "1"},
                bufsize=0,
            )
            self.buf = b""
        return self.proc

    def _read_fields(self, proc: subprocess.Popen, count: int) -> list[bytes]:
        fields: list[bytes] = []
        fd = proc.stdout.fileno()
        while len(fields) < count:
            ready, _, _ = select.select([fd], [], [], CHECK_IGNORE_TIMEOUT)
            if not ready:
                raise TimeoutError("git check-ignore did not answer")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("git check-ignore exited")
            parts = (self.buf + chunk).split(b"\0")
            self.buf = parts.pop()
            fields.extend(parts)
        if len(fields) != count:
            raise ValueError("git check-ignore answered more than it was asked")
        return fields

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        self.buf = b""
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write_all(stream, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            n = stream.write(view)
            view = view[n:]
    except (OSError, ValueError):
        pass  # the reader notices: git exited


def _holding_tracked(top: Path, dirs: list[str]) -> set[str]:
    """Which of these directories hold a file in the index (`git ls-files` of just them; all of a
    batch git cannot answer: they are then asked again, as after any other change)."""
    wanted, out = set(dirs), set()
    for i in range(0, len(dirs), 500):  # within any command line's limit
        batch = dirs[i:i + 500]
        proc = subprocess.run(["git", "-C", str(top), "--literal-pathspecs", "ls-files", "-z", "--", *batch], capture_output=True)
        if proc.returncode != 0:
            out.update(batch)
            continue
        for entry in proc.stdout.split(b"\0"):
            parent = os.fsdecode(entry).rpartition("/")[0]
            while parent:
                if parent in wanted:
                    out.add(parent)
                parent = parent.rpartition("/")[0]
    return out

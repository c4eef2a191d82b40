"""Monitoring: every change in the working tree, whoever made it, as repository-relative file paths.

Hooks see what agents do through their tools; everything else (an editor, a
build, a person in a terminal, a command an agent started in the background)
is seen only here. The watcher process (process.py) runs one Monitor: an
inotify watch (watchdog, through inotify.py) on every directory of the working
tree, its events turned into file paths and handed to the dirty set with the
time they were seen, every ~50 ms (the process's loop).

What is recorded
- File paths only (regular files and symlinks), repository-relative. A created
  directory is reported through the files in it (watchdog lists them); a
  directory deleted or moved away is expanded from what the watcher knew was
  in it (its stat snapshot), so every file that vanished with it is listed. No
  directory path and no "dir/" marker is ever written.
- Both ends of a move.
- Not `.git/` (nor a git directory elsewhere in the tree, nor nested
  repositories), and not what git ignores (`git check-ignore`, batched through
  one long-lived `check-ignore --stdin -z` process). Ignored directories are
  not even watched, so a busy `node_modules/` or `.venv/` costs no watches and
  no events; their decision is cached per directory and forgotten when any
  .gitignore, `.git/info/exclude`, the global excludes file or the index
  changes (a newly un-ignored directory is then watched and its files
  reported).

When the dirty set can be trusted
`dirtyset.trusted_since(ws)` is the time from which every change is in the
dirty set (stamped no earlier than it happened), or None. It is the moment all
watches were in place, published once the initial stat snapshot is taken. Two
kernel limits can break that, and both are detected, never silent:
- inotify's event queue overflows (`fs.inotify.max_queued_events`): the kernel
  drops events and queues IN_Q_OVERFLOW. watchdog (>= 7.1) calls
  `on_queue_overflow` on every watch group, discards its pending moves and
  rebuilds the watches, but gives the event handler nothing. We subclass the
  watch group to hear it: the dirty set is marked untrusted at once, and after
  watchdog has rebuilt the watches the whole tree is rescanned against the
  snapshot (mode, size, mtime, ctime, inode; entries stat'ed within 2 s of
  their change are "racy" and always count as changed) and every difference is
  marked dirty. Then it is trusted again, from the same start time: every lost
  change left the file different from the snapshot.
- The per-user watch limit (`fs.inotify.max_user_watches`; adding a watch
  fails with ENOSPC). watchdog re-raises the failure only for the top
  directory and swallows it for the others; our watch group catches it for
  every directory. Directories that could not be watched are polled instead
  (against the snapshot, every second or more if a pass is slow), so their
  changes still arrive, later.
Both print one clear message on stderr. Changes seen less than ~50 ms ago (or
less than a poll interval ago, in a polled directory) may not be flushed yet:
read the dirty set outside your own write transaction.

The initial scan, polling and the overflow rescan list the tree with one walker
(treewalk.walk), the same one the watch group adds its watches with.
"""
from __future__ import annotations

import errno
import os
import stat as stat_module
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from vbranch.errors import VbranchError
from vbranch.watch.dirtyset import INEXACT
from vbranch.watch.ignores import IgnoreOracle
from vbranch.watch.inotify import UNAVAILABLE, TreeWatch
from vbranch.watch.treesnap import Snapshot, sig_of
from vbranch.watch.treewalk import walk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class DirtySet(Protocol):
        """Where the monitor's findings go (process.DirtySetWriter)."""

        def record(self, paths: list[str], when: float) -> bool: ...  # False: not written yet (kept)
        def set_trusted(self, since: float | None) -> None: ...
        def set_overflows(self, count: int) -> None: ...
        def set_polled(self, count: int) -> None: ...

LIMIT_ERRNOS = (errno.ENOSPC, errno.ENOMEM, errno.EMFILE)  # a watch (or inotify instance) the kernel will not give


class TreePaths:
    """Paths in the working tree: full ones (as inotify and the walker give them) and repository-relative ones."""

    def __init__(self, top: Path, git_dir: Path):
        self.top = os.fspath(top)
        self.prefix = self.top + os.sep
        self.git = os.fspath(git_dir)
        self.git_inside = self.git.startswith(self.prefix)  # a git dir not called .git, inside the tree

    def rel(self, full: str) -> str | None:
        """Repository-relative path, or None for the top itself, outside, or inside a git dir."""
        if not full.startswith(self.prefix):
            return None
        if self.git_inside and (full == self.git or full.startswith(self.git + os.sep)):
            return None
        rel = full[len(self.prefix):]
        if ".git" in rel and ".git" in rel.split("/"):
            return None
        return rel

    def full(self, rel: str) -> str:
        return os.path.join(self.top, rel) if rel else self.top

    def under_top(self, full: str) -> str:
        """The repository-relative path of a path the walker found ("" for the top itself)."""
        return full[len(self.prefix):]


class Poller:
    """The directories that could not be watched (the watch limit), compared with the snapshot instead.

    A pass lists them, and their subdirectories that are new or not watched (which join
    them), and compares every file with the snapshot. Passes are a second apart, or ten
    times as long as the last one took. Used from the watcher's loop only.
    """

    def __init__(self, paths: TreePaths, *, not_skipped: Callable[[list[str]], list[str]],
                 is_watched: Callable[[str], bool]):
        self.paths = paths
        self.not_skipped = not_skipped
        self.is_watched = is_watched
        self.dirs: set[str] = set()  # repository-relative; "" is the whole tree
        self.interval = 1.0
        self.next = 0.0

    def due(self, now: float) -> bool:
        return bool(self.dirs) and now >= self.next

    def postpone(self, now: float) -> None:
        self.next = now + self.interval

    def passed(self, now: float, took: float) -> None:
        """A pass ended at `now` after `took` seconds: the next one is due an interval later."""
        self.interval = max(1.0, 10 * took)
        self.next = now + self.interval

    def changes(self, snapshot: Snapshot) -> set[str]:
        """One pass: the files that differ from `snapshot`, which is brought up to date."""
        changed: set[str] = set()
        now_ns = time.time_ns()
        under_top = self.paths.under_top
        for full, files, subdirs in walk([self.paths.full(d) for d in sorted(self.dirs)], self._newly_polled):
            d = under_top(full)
            if files is None:
                self.dirs.discard(d)
                changed.update(snapshot.pop_subtree(d))
                continue
            seen_files = set()
            for entry in files:
                rel = under_top(entry.path)
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                seen_files.add(rel)
                old = snapshot.files.get(rel)
                new = sig_of(st, now_ns)
                if old is None or new is None or old != new:
                    changed.add(rel)
                snapshot.set(rel, new)
            for rel in snapshot.files_in(d):
                if rel not in seen_files:
                    snapshot.pop(rel)
                    changed.add(rel)
            present = {under_top(s) for s in subdirs}
            for rel in snapshot.dirs_in(d):
                if rel not in present and rel not in self.dirs:
                    changed.update(snapshot.pop_subtree(rel))
        return changed

    def _newly_polled(self, subdirs: list[str]) -> list[str]:
        """New or unwatched subdirectories of polled ones are polled too (unless skipped)."""
        candidates = [s for s in subdirs if self.paths.under_top(s) not in self.dirs and not self.is_watched(s)]
        fresh = self.not_skipped(candidates)
        self.dirs.update(self.paths.under_top(s) for s in fresh)
        return fresh


class Monitor:
    """One working tree's changes, into a dirty set: `start`, then `catch_up`, `flush`, `poll_if_due`
    and `check_ignores` from the process's loop, `stop` at the end.

    Also the sink of the watch group (inotify.Sink): its reports arrive from watchdog's threads.
    """

    def __init__(self, top: Path, git_dir: Path, sync_dir: Path, *, wake: threading.Event,
                 clock: Callable[[], float], log: Callable[[str], None]):
        if UNAVAILABLE:
            raise VbranchError(UNAVAILABLE, hint="pip install 'watchdog>=7.1' (on Linux)")
        self.top = Path(top)
        self.git_dir = Path(git_dir)
        self.paths = TreePaths(self.top, self.git_dir)
        self.sync_dir = Path(sync_dir)
        self.sync_prefix = os.fspath(self.sync_dir) + os.sep
        self.wake = wake  # set by the event handler when a barrier token arrives
        self.clock = clock
        self.log = log
        self.dirty: DirtySet | None = None
        self.tokens: list[str] = []  # barrier tokens seen since the process last took them
        self.sync_polled = False  # the sync directory could not be watched: every token is answered inexact
        self.events: deque = deque()
        self.mutex = threading.Lock()  # what the inotify thread reports to us
        self.overflow_started = 0
        self.overflow_done = 0
        self.overflow_handled = 0
        self.failed_new: list[tuple[str, int]] = []
        self.skipped: set[str] = set()  # ignored directories we do not watch
        self.poller = Poller(self.paths, not_skipped=self._not_skipped, is_watched=self._is_watched)
        self.said: set[str] = set()
        self.snapshot = Snapshot()
        self.trusted_from: float | None = None
        self.oracle: IgnoreOracle | None = None
        self.watch = TreeWatch(self, self.paths.top, self.events, self.sync_prefix, self.wake)

    # reports from watchdog's threads

    def overflow_begins(self) -> None:
        with self.mutex:
            self.overflow_started += 1

    def overflow_ends(self) -> None:
        with self.mutex:
            self.overflow_done += 1

    def watch_failed(self, path: bytes, error: OSError) -> None:
        # A directory gone before its watch was added (ENOENT, ENOTDIR) needs nothing: its
        # deletion or move is an event of the parent, and a moved one is watched where it went.
        if error.errno not in LIMIT_ERRNOS:
            return
        full = os.fsdecode(path)
        rel = "" if full == self.paths.top else self.paths.rel(full)
        if rel is not None:
            with self.mutex:
                self.failed_new.append((rel, error.errno or 0))

    def skip_dirs(self, paths: list[bytes]) -> set[bytes]:
        """The directories not to watch: .git, nested repositories, the git dir, ignored ones."""
        if not paths:
            return set()
        out, ask = set(), {}
        for path in paths:
            full = os.fsdecode(path)
            rel = self.paths.rel(full)
            if rel is None or os.path.basename(full) == ".git" or os.path.lexists(os.path.join(full, ".git")):
                out.add(path)
            else:
                ask[rel] = path
        for rel in self.oracle.ignored_dirs(ask):
            out.add(ask[rel])
            with self.mutex:
                self.skipped.add(rel)
        return out

    def sync_unwatched(self, error: OSError) -> None:
        self.sync_polled = True
        self.log(f"the sync directory cannot be watched ({error}); commands will ask git instead")

    # start and stop

    def start(self, dirty: DirtySet) -> None:
        """Watch the tree, take the initial snapshot and, unless an overflow is pending, publish the trust."""
        self.dirty = dirty
        self.oracle = IgnoreOracle(self.top, self.git_dir)
        self._start_watching()
        watched_from = self.clock()
        self._take_failures(poll=False)  # the scan below is their baseline
        self.snapshot = self._scan([""])
        self.trusted_from = watched_from
        self.catch_up()  # an overflow already: rescan first
        if self.vouch() is not None:  # no overflow left to recover from
            dirty.set_trusted(watched_from)
        self.log(f"watching {self.top} ({len(self.snapshot)} files) since {time.strftime('%H:%M:%S')}")

    def stop(self) -> None:
        self.watch.stop()
        if self.oracle is not None:
            self.oracle.close()

    def _start_watching(self) -> None:
        try:
            self.watch.start()
        except OSError as error:
            if error.errno not in LIMIT_ERRNOS:
                raise
            # Not even the top can be watched: poll the whole tree.
            with self.mutex:
                self.failed_new.append(("", error.errno))

    # the barrier's side: tokens and whether the dirty set can vouch for them

    def take_tokens(self) -> list[str]:
        """The barrier tokens seen since the last call (looked for, when the sync directory is not watched)."""
        tokens, self.tokens = self.tokens, []
        if self.sync_polled:  # no events from there: look
            tokens += [e.path for e in os.scandir(self.sync_dir) if not e.name.endswith(INEXACT)]
        return tokens

    def vouch(self) -> bool | None:
        """Whether the dirty set holds every change made before the events read so far: True; False
        when that cannot be said (directories only polled, the sync directory unwatched); None while
        an overflow is recovered from (the lost changes come with the rescan): ask again later."""
        with self.mutex:
            if self.overflow_started > self.overflow_handled:
                return None
            return not self.poller.dirs and not self.failed_new and not self.sync_polled

    # events -> dirty paths

    def flush(self) -> bool:
        """The events queued since the last call, into the dirty set; whether any path was marked."""
        raw = []
        while self.events:
            raw.append(self.events.popleft())
        self.tokens += [src for kind, src, _, _ in raw if kind == "created" and src.startswith(self.sync_prefix)]
        raw = [event for event in raw if not event[1].startswith(self.sync_prefix)]
        if not raw:
            return False
        paths: set[str] = set()
        touched: set[str] = set()  # a file gets several events (create, modify, close): one path
        for kind, src, dest, is_dir in raw:
            if not is_dir:
                touched.add(src)
                if dest:
                    touched.add(dest)
                continue
            src_rel = self.paths.rel(src)
            dest_rel = self.paths.rel(dest) if dest else None
            if kind == "deleted" and src_rel is not None:
                paths.update(self.snapshot.pop_subtree(src_rel))
            elif kind == "moved":
                gone = self.snapshot.pop_subtree(src_rel) if src_rel is not None else []
                paths.update(gone)
                if dest_rel is not None:
                    paths.update(dest_rel + p[len(src_rel):] for p in gone)
            # created: watchdog reports the files in it
        for full in touched:
            rel = self.paths.rel(full)
            if rel is not None:
                paths.add(rel)
        ignores_changed = any(p == ".gitignore" or p.endswith("/.gitignore") for p in paths)
        return self._mark(paths, refresh=True, ignores_changed=ignores_changed)

    def _mark(self, paths: set[str], *, refresh: bool, ignores_changed: bool = False) -> bool:
        """Record paths as dirty (after dropping ignored ones); with refresh, restat them for the snapshot.

        Stamped with the time of marking, after every change marked was made: a fold that read a
        file after time T may forget its mark if stamped at or before T (recording._forget_unchanged)."""
        if refresh:
            now_ns = time.time_ns()
            for rel in list(paths):
                try:
                    st = os.lstat(self.paths.full(rel))
                except OSError:
                    self.snapshot.pop(rel)
                    continue
                if stat_module.S_ISDIR(st.st_mode):
                    self.snapshot.pop(rel)
                    paths.discard(rel)  # a directory: its files speak for it
                else:
                    self.snapshot.set(rel, sig_of(st, now_ns))
        if ignores_changed:
            self.oracle.invalidate()
            self._reconsider_skipped()
        keep = sorted(set(paths) - self.oracle.ignored(paths)) if paths else []
        return self.dirty.record(keep, self.clock()) and bool(keep)

    # recovery: overflow, watch limit

    def catch_up(self) -> None:
        """After an overflow, once watchdog has rebuilt its watches: rescan; then poll what could not be watched."""
        with self.mutex:
            started, done = self.overflow_started, self.overflow_done
        if started > self.overflow_handled:
            self.dirty.set_trusted(None)  # events were lost: untrusted until the rescan
            self._say(
                "overflow",
                "the kernel's inotify queue overflowed and file events were lost "
                f"(fs.inotify.max_queued_events = {_proc_value('max_queued_events')}); rescanning the working tree "
                "so that no change is missed. Raise the limit to avoid rescans: "
                "sudo sysctl fs.inotify.max_queued_events=1048576",
            )
            if done < started:
                return  # watchdog is still rebuilding its watches: rescan after that
            self._rescan()
            self.overflow_handled = started
            with self.mutex:
                again = self.overflow_started > started
            self.dirty.set_overflows(self.overflow_handled)
            if not again:
                self.dirty.set_trusted(self.trusted_from)
        self._take_failures()

    def _rescan(self) -> None:
        self.flush()  # what arrived before the rescan, with its own expansion
        fresh = self._scan([""])
        old = self.snapshot.files
        changed = {
            rel for rel in old.keys() | fresh.files.keys()
            if old.get(rel) is None or fresh.files.get(rel) is None or old[rel] != fresh.files[rel]
        }
        self.snapshot = fresh
        self._mark(changed, refresh=False)
        self.log(f"rescan after overflow: {len(changed)} changed paths")

    def _take_failures(self, poll: bool = True) -> None:
        """Directories that could not be watched join the polled ones (and are compared with the snapshot now)."""
        with self.mutex:
            failed, self.failed_new = self.failed_new, []
        polled = self.poller.dirs
        new = [rel for rel, _ in failed if rel not in polled]
        if not new:
            return
        polled.update(new)
        codes = {code for _, code in failed}
        if errno.ENOSPC in codes:
            reason = f"the inotify watch limit is reached (fs.inotify.max_user_watches = {_proc_value('max_user_watches')})"
            fix = "Raise it: sudo sysctl fs.inotify.max_user_watches=524288"
        elif errno.EMFILE in codes:
            reason = f"no inotify instance is left (fs.inotify.max_user_instances = {_proc_value('max_user_instances')})"
            fix = "Raise it: sudo sysctl fs.inotify.max_user_instances=1024"
        else:
            reason = os.strerror(next(iter(codes)) or errno.EIO)
            fix = ""
        what = "the working tree" if "" in polled else f"{len(polled)} directories"
        self._say(
            "limit",
            f"{what} cannot be watched: {reason}. Changes there are found by polling instead, "
            f"a second or more late. {fix}".rstrip(),
        )
        self.dirty.set_polled(len(polled))
        if poll:
            self._poll(self.clock())
        else:
            self.poller.postpone(self.clock())

    # polling: the directories that could not be watched

    def poll_if_due(self, now: float) -> None:
        if self.poller.due(now):
            self._poll(now)

    def _poll(self, now: float) -> None:
        started = time.monotonic()
        self._mark(self.poller.changes(self.snapshot), refresh=False)
        self.poller.passed(now, time.monotonic() - started)

    def _is_watched(self, full: str) -> bool:
        return self.watch.is_watched(os.fsencode(full))

    # ignore changes

    def check_ignores(self) -> None:
        """When the index or an excludes file changed: reconsider the directories left unwatched as ignored."""
        if self.oracle.changed():
            self._reconsider_skipped()

    def _reconsider_skipped(self) -> None:
        """After an ignore rule changed: directories no longer ignored are watched, their files reported."""
        with self.mutex:
            skipped = sorted(self.skipped)
        if not skipped:
            return
        existing = [d for d in skipped if os.path.isdir(self.paths.full(d))]
        still = self.oracle.ignored_dirs(existing)
        freed = [d for d in existing if d not in still]
        with self.mutex:
            self.skipped = set(still)
        if not freed:
            return
        for d in freed:
            self.watch.watch_more(os.fsencode(self.paths.full(d)))
        fresh = self._scan(freed)
        for rel, sig in fresh.files.items():
            self.snapshot.set(rel, sig)
        self._take_failures()
        self._mark(set(fresh.files), refresh=False)

    # the walk

    def _scan(self, roots: list[str]) -> Snapshot:
        """Stat every file under `roots`, leaving out .git, nested repositories and ignored directories."""
        snap = Snapshot()
        now_ns = time.time_ns()
        for _, files, _ in walk([self.paths.full(d) for d in roots], self._not_skipped):
            for entry in files or ():
                try:
                    snap.set(self.paths.under_top(entry.path), sig_of(entry.stat(follow_symlinks=False), now_ns))
                except OSError:
                    continue
        return snap

    def _not_skipped(self, subdirs: list[str]) -> list[str]:
        encoded = [os.fsencode(s) for s in subdirs]
        skipped = self.skip_dirs(encoded)
        return [s for s, e in zip(subdirs, encoded) if e not in skipped]

    def _say(self, kind: str, message: str) -> None:
        """Log a message once in this watcher's life (one per kind of trouble)."""
        if kind in self.said:
            return
        self.said.add(kind)
        self.log(message)


def _proc_value(name: str) -> str:
    try:
        return Path(f"/proc/sys/fs/inotify/{name}").read_text().strip()
    except OSError:
        return "?"

"""The watcher: every change in the working tree, whoever made it, into the store's dirty set.

Hooks see what agents do through their tools; everything else (an editor, a
build, a person in a terminal, a command an agent started in the background)
is seen only here. `vbranch watch` runs one watcher per repository: an inotify
watch (watchdog) on every directory of the working tree, its events turned
into file paths and written to the `dirty` table with the time they were seen,
in one transaction every ~50 ms.

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
`trusted_since(ws)` is the time from which every change is in the dirty set
(stamped no earlier than it happened), or None. It is the moment all watches
were in place, published once the initial stat snapshot is taken. Two kernel
limits can break that, and both are detected, never silent:
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

Liveness: the watcher holds an flock on `.git/vbranch/watch.lock` for its whole
life and writes `watch_pid`, `watch_started` and a `watch_heartbeat` (every
0.5 s) to the store's meta. `watcher_live` wants both the lock held and a
heartbeat younger than 2 s, so a killed watcher (lock released by the kernel)
and a hung one (stale heartbeat) are both noticed.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import signal
import sqlite3
import stat as stat_module
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from .errors import NotInitialized, StateError, VbranchError
from .dirtyset import (
    LOCK_NAME,
    META_HEARTBEAT,
    META_PID,
    META_STARTED,
    META_TRUSTED,
    INEXACT,
    SYNC_DIR,
    _lock_held,
    _lock_path,
    watcher_live,
    watcher_pid,
)
from .hookserver import HookServer
from .ignores import IgnoreOracle
from .inotify import UNAVAILABLE, EVENT_TYPES, Handler, Observer
from .store import Store
from .treesnap import Snapshot, sig_of

LOG_NAME = "watch.log"
META_OVERFLOWS = "watch_overflows"  # how many queue overflows this watcher recovered from
META_POLLED = "watch_polled_dirs"  # directories polled because the watch limit was reached

FLUSH_INTERVAL = 0.05
HEARTBEAT_INTERVAL = 0.5
HOUSEKEEPING_INTERVAL = 0.5  # ignore sources, sessions, idle
DEFAULT_IDLE_EXIT = 300.0
LOG_LIMIT = 1 << 20

LIMIT_ERRNOS = (errno.ENOSPC, errno.ENOMEM, errno.EMFILE)  # a watch (or inotify instance) the kernel will not give


class WatcherRunning(StateError):
    """Another watcher already holds this repository's watch lock."""


def stop_watcher(ws, timeout: float = 5.0) -> bool:
    """Ask the live watcher to exit (SIGTERM) and wait for it; True if none is left."""
    pid = watcher_pid(ws)
    if pid is None:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _lock_held(_lock_path(ws)):
            return True
        time.sleep(0.02)
    return False


def start_background(
    top: Path | str, *, idle_exit: float = DEFAULT_IDLE_EXIT, wait: float = 0.0
) -> int | None:
    """Start a detached watcher for the repository at `top` unless one is live; its pid, or None.

    It runs `python -m vbranch.watch --idle-exit SECONDS` in a new session with
    its output in `.git/vbranch/watch.log`. With `wait`, returns once it is
    live (or has exited, or `wait` seconds passed).
    """
    from .workspace import open_workspace

    ws = open_workspace(top)
    try:
        if watcher_live(ws):
            return None
        log_path = ws.state_dir / LOG_NAME
        try:
            if log_path.stat().st_size > LOG_LIMIT:
                os.replace(log_path, log_path.with_name(LOG_NAME + ".1"))
        except FileNotFoundError:
            pass
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vbranch.watch", "--idle-exit", repr(float(idle_exit))],
                cwd=str(ws.top),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and proc.poll() is None and not watcher_live(ws):
            time.sleep(0.02)
        return proc.pid
    finally:
        ws.close()


# --- the watcher ------------------------------------------------------------------------------


class Watcher:
    """One repository's watcher: `run()` until idle, stopped or torn down."""

    def __init__(
        self,
        top: Path,
        git_dir: Path,
        *,
        idle_exit: float | None,
        clock: Callable[[], float] = time.time,
        err=None,
    ):
        if UNAVAILABLE:
            raise VbranchError(UNAVAILABLE, hint="pip install 'watchdog>=7.1' (on Linux)")
        self.top = Path(top)
        self.top_s = os.fspath(self.top)
        self.prefix = self.top_s + os.sep
        self.git_dir = Path(git_dir)
        self.git_s = os.fspath(self.git_dir)
        self.git_inside = self.git_s.startswith(self.prefix)  # a git dir not called .git, inside the tree
        self.state_dir = self.git_dir / "vbranch"
        self.idle_exit = idle_exit
        self.clock = clock
        self.err = err or sys.stderr
        self.stop_event = threading.Event()
        self.wake = threading.Event()  # a barrier token arrived, or stop
        self.sync_dir = self.state_dir / SYNC_DIR
        self.sync_prefix = os.fspath(self.sync_dir) + os.sep
        self.tokens: list[str] = []  # barrier tokens seen, answered once their earlier events are stored
        self.sync_polled = False  # the sync directory could not be watched: every token is answered inexact
        self.events: deque = deque()
        self.mutex = threading.Lock()  # what the inotify thread reports to us
        self.overflow_started = 0
        self.overflow_done = 0
        self.overflow_handled = 0
        self.failed_new: list[tuple[str, int]] = []
        self.skipped: set[str] = set()  # ignored directories we do not watch
        self.polled: set[str] = set()  # directories we could not watch
        self.said: set[str] = set()
        self.snapshot = Snapshot()
        self.trusted_from: float | None = None
        self.oracle: IgnoreOracle | None = None
        self.group = None
        self.observer = None
        self.server: HookServer | None = None
        self.next_poll = 0.0
        self.poll_interval = 1.0
        self.unwritten: list[tuple[list[str], float]] = []  # marks the store refused (busy): retried next tick

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
        rel = "" if full == self.top_s else self._rel(full)
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
            rel = self._rel(full)
            if rel is None or os.path.basename(full) == ".git" or os.path.lexists(os.path.join(full, ".git")):
                out.add(path)
            else:
                ask[rel] = path
        for rel in self.oracle.ignored_dirs(ask):
            out.add(ask[rel])
            with self.mutex:
                self.skipped.add(rel)
        return out

    # paths

    def _rel(self, full: str) -> str | None:
        """Repository-relative path, or None for the top itself, outside, or inside a git dir."""
        if not full.startswith(self.prefix):
            return None
        if self.git_inside and (full == self.git_s or full.startswith(self.git_s + os.sep)):
            return None
        rel = full[len(self.prefix):]
        if ".git" in rel and ".git" in rel.split("/"):
            return None
        return rel

    # the run

    def run(self) -> int:
        db = self.state_dir / "state.db"
        if not db.exists():
            raise NotInitialized(f"vbranch is not set up in {self.top}", hint="run `vbranch init` first")
        lock_fd = self._take_lock()
        store = Store(db)
        self.store = store
        watchdog_log = logging.getLogger("watchdog")
        old_level = watchdog_log.level
        watchdog_log.setLevel(logging.ERROR)  # we say it ourselves, once
        old_handlers = self._install_signals()
        try:
            started = self.clock()
            with store.tx():
                store.set_meta(META_PID, str(os.getpid()))
                store.set_meta(META_STARTED, repr(started))
                store.set_meta(META_HEARTBEAT, repr(started))
                store.set_meta(META_TRUSTED, "")
                store.set_meta(META_OVERFLOWS, "0")
                store.set_meta(META_POLLED, "0")
            self.oracle = IgnoreOracle(self.top, self.git_dir)
            self._reset_sync_dir()
            self._start_observer()
            watched_from = self.clock()
            self._take_failures(poll=False)  # the scan below is their baseline
            self.snapshot = self._scan([""])
            self.trusted_from = watched_from
            self._recover()  # an overflow already: rescan first
            with self.mutex:
                pending = self.overflow_started > self.overflow_handled
            if not pending:
                self._set_meta(META_TRUSTED, repr(watched_from))
            self._log(f"watching {self.top} ({len(self.snapshot)} files) since {time.strftime('%H:%M:%S')}")
            self.server = HookServer(self.state_dir, self._log)
            self.server.start()
            return self._loop()
        finally:
            if self.server is not None:
                self.server.stop()
            self._restore_signals(old_handlers)
            watchdog_log.setLevel(old_level)
            if self.observer is not None:
                self.observer.stop()
                try:
                    self.observer.join(timeout=5)
                except RuntimeError:
                    pass
            if self.oracle is not None:
                self.oracle.close()
            try:
                with store.tx():
                    store.set_meta(META_TRUSTED, "")
                    store.set_meta(META_PID, "")
            except sqlite3.Error:
                pass
            store.close()
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def _take_lock(self) -> int:
        path = self.state_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            store = Store(self.state_dir / "state.db")
            try:
                pid = store.get_meta(META_PID) or "?"
            finally:
                store.close()
            raise WatcherRunning(
                f"a watcher (pid {pid}) is already running for {self.top}",
                hint="only one watcher runs per repository; `vbranch watch --background` starts one only when none is live",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            old[sig] = signal.signal(sig, lambda *_: self.stop())
        return old

    @staticmethod
    def _restore_signals(old) -> None:
        for sig, handler in (old or {}).items():
            signal.signal(sig, handler)

    def _start_observer(self) -> None:
        try:
            self.observer = Observer(self)  # inotify_init: fails at fs.inotify.max_user_instances
            self.observer.start()
            self.observer.schedule(Handler(self.events, self.sync_prefix, self.wake), self.top_s, recursive=True, event_filter=EVENT_TYPES)
        except OSError as error:
            if error.errno not in LIMIT_ERRNOS:
                raise
            # Not even the top can be watched: poll the whole tree.
            with self.mutex:
                self.failed_new.append(("", error.errno))
            return
        emitter = next(iter(self.observer.emitters))
        self.group = emitter.group

    def _loop(self) -> int:
        last_beat = last_house = 0.0
        last_activity = self.clock()
        while not self.stop_event.is_set():
            tick = time.monotonic()
            now = self.clock()
            self._write_marks()
            self._recover()
            if self._flush(now):
                last_activity = now
            self._answer_tokens()
            if self.polled and now >= self.next_poll:
                self._poll(now)
            if now - last_house >= HOUSEKEEPING_INTERVAL:
                last_house = now
                if self.oracle.changed():
                    self._reconsider_skipped(now)
                live, active = self._sessions()
                if not active or not os.path.isdir(self.top_s):
                    self._log("the vbranch workspace was torn down or removed: stopping")
                    return 0
                if live:
                    last_activity = now
                if self.idle_exit is not None and now - last_activity >= self.idle_exit:
                    self._log(f"no live session and no change for {self.idle_exit:g} s: stopping")
                    return 0
            if now - last_beat >= HEARTBEAT_INTERVAL:
                last_beat = now
                self._set_meta(META_HEARTBEAT, repr(now))
            self.wake.wait(max(0.0, FLUSH_INTERVAL - (time.monotonic() - tick)))
            self.wake.clear()  # before the next _flush: a token queued after this is handled there
        return 0

    def _sessions(self) -> tuple[int, bool]:
        live = self.store.db.execute("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL").fetchone()[0]
        return live, self.store.get_meta("active") == "1"

    # events -> dirty paths

    def _flush(self, now: float) -> bool:
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
            src_rel = self._rel(src)
            dest_rel = self._rel(dest) if dest else None
            if kind == "deleted" and src_rel is not None:
                paths.update(self.snapshot.pop_subtree(src_rel))
            elif kind == "moved":
                gone = self.snapshot.pop_subtree(src_rel) if src_rel is not None else []
                paths.update(gone)
                if dest_rel is not None:
                    paths.update(dest_rel + p[len(src_rel):] for p in gone)
            # created: watchdog reports the files in it
        for full in touched:
            rel = self._rel(full)
            if rel is not None:
                paths.add(rel)
        ignores_changed = any(p == ".gitignore" or p.endswith("/.gitignore") for p in paths)
        return self._mark(paths, now, refresh=True, ignores_changed=ignores_changed)

    def _mark(self, paths: set[str], now: float, *, refresh: bool, ignores_changed: bool = False) -> bool:
        """Record paths as dirty (after dropping ignored ones); with refresh, restat them for the snapshot."""
        if refresh:
            now_ns = time.time_ns()
            for rel in list(paths):
                try:
                    st = os.lstat(os.path.join(self.top_s, rel))
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
            self._reconsider_skipped(now)
        keep = sorted(set(paths) - self.oracle.ignored(paths)) if paths else []
        if keep:
            self.unwritten.append((keep, now))
        return self._write_marks() and bool(keep)

    def _write_marks(self) -> bool:
        """Write the pending marks in one transaction (each keeps the time it was seen); False if busy."""
        if not self.unwritten:
            return True
        try:
            with self.store.tx():
                for paths, when in self.unwritten:
                    self.store.mark_dirty(paths, when)
        except sqlite3.OperationalError as error:  # locked past the busy timeout: keep them, try again
            self._log(f"could not write to the store ({error}); retrying")
            return False
        self.unwritten.clear()
        return True

    # the barrier (dirtyset.settle)

    def _reset_sync_dir(self) -> None:
        """Tokens left from before this watcher cannot be vouched for: answer them inexact."""
        os.makedirs(self.sync_dir, exist_ok=True)
        for entry in os.scandir(self.sync_dir):
            if entry.name.endswith(INEXACT):
                if time.time() - entry.stat().st_mtime > 60:
                    os.unlink(entry.path)  # its hook is long gone
            else:
                self._answer(entry.path, exact=False)

    def sync_unwatched(self, error: OSError) -> None:
        self.sync_polled = True
        self._log(f"the sync directory cannot be watched ({error}); commands will ask git instead")

    def _answer_tokens(self) -> None:
        """Answer the tokens whose earlier events are all in the store.

        Held while an overflow is being recovered from (its lost events are not
        in the store until the rescan) and while marks wait to be written.
        """
        if self.sync_polled:  # no events from there: look
            self.tokens += [e.path for e in os.scandir(self.sync_dir) if not e.name.endswith(INEXACT)]
        if not self.tokens or self.unwritten:
            return
        with self.mutex:
            recovering = self.overflow_started > self.overflow_handled
            exact = not self.polled and not self.failed_new and not self.sync_polled
        if recovering:
            return
        for token in dict.fromkeys(self.tokens):
            self._answer(token, exact)
        self.tokens.clear()

    @staticmethod
    def _answer(token: str, exact: bool) -> None:
        try:
            if exact:
                os.unlink(token)
            else:
                os.rename(token, token + INEXACT)
        except FileNotFoundError:
            pass  # its hook gave up waiting

    # recovery: overflow, watch limit

    def _recover(self) -> None:
        with self.mutex:
            started, done = self.overflow_started, self.overflow_done
        if started > self.overflow_handled:
            self._set_meta(META_TRUSTED, "")  # events were lost: untrusted until the rescan
            self._say(
                "overflow",
                "vbranch watch: the kernel's inotify queue overflowed and file events were lost "
                f"(fs.inotify.max_queued_events = {_proc_value('max_queued_events')}); rescanning the working tree "
                "so that no change is missed. Raise the limit to avoid rescans: "
                "sudo sysctl fs.inotify.max_queued_events=1048576",
            )
            if done < started:
                return  # watchdog is still rebuilding its watches: rescan after that
            at = self.clock()
            self._rescan(at)
            self.overflow_handled = started
            with self.mutex:
                again = self.overflow_started > started
            self._set_meta(META_OVERFLOWS, str(self.overflow_handled))
            if not again:
                self._set_meta(META_TRUSTED, repr(self.trusted_from))
        self._take_failures()

    def _rescan(self, at: float) -> None:
        self._flush(at)  # what arrived before the rescan, with its own expansion
        fresh = self._scan([""])
        old = self.snapshot.files
        changed = {
            rel for rel in old.keys() | fresh.files.keys()
            if old.get(rel) is None or fresh.files.get(rel) is None or old[rel] != fresh.files[rel]
        }
        self.snapshot = fresh
        self._mark(changed, at, refresh=False)
        self._log(f"rescan after overflow: {len(changed)} changed paths")

    def _take_failures(self, poll: bool = True) -> None:
        """Directories that could not be watched join the polled ones (and are compared with the snapshot now)."""
        with self.mutex:
            failed, self.failed_new = self.failed_new, []
        new = [rel for rel, _ in failed if rel not in self.polled]
        if not new:
            return
        with self.mutex:
            self.polled.update(new)
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
        what = "the working tree" if "" in self.polled else f"{len(self.polled)} directories"
        self._say(
            "limit",
            f"vbranch watch: {what} cannot be watched: {reason}. Changes there are found by polling instead, "
            f"a second or more late. {fix}".rstrip(),
        )
        self._set_meta(META_POLLED, str(len(self.polled)))
        if poll:
            self._poll(self.clock())
        else:
            self.next_poll = self.clock() + self.poll_interval

    def _poll(self, now: float) -> None:
        started = time.monotonic()
        changed: set[str] = set()
        todo = sorted(self.polled)
        now_ns = time.time_ns()
        while todo:
            d = todo.pop()
            full = os.path.join(self.top_s, d) if d else self.top_s
            try:
                entries = list(os.scandir(full))
            except OSError:
                with self.mutex:
                    self.polled.discard(d)
                changed.update(self.snapshot.pop_subtree(d))
                continue
            seen_files, subdirs = set(), []
            for entry in entries:
                rel = f"{d}/{entry.name}" if d else entry.name
                if entry.name == ".git":
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(rel)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                seen_files.add(rel)
                old = self.snapshot.files.get(rel)
                new = sig_of(st, now_ns)
                if old is None or new is None or old != new:
                    changed.add(rel)
                self.snapshot.set(rel, new)
            for rel in self.snapshot.files_in(d):
                if rel not in seen_files:
                    self.snapshot.pop(rel)
                    changed.add(rel)
            present = set(subdirs)
            for rel in self.snapshot.dirs_in(d):
                if rel not in present and rel not in self.polled:
                    changed.update(self.snapshot.pop_subtree(rel))
            # New or unwatched subdirectories are polled too.
            candidates = [s for s in subdirs if s not in self.polled and not self._is_watched(s)]
            skipped = self.skip_dirs([os.fsencode(os.path.join(self.top_s, s)) for s in candidates])
            for rel in candidates:
                if os.fsencode(os.path.join(self.top_s, rel)) not in skipped:
                    with self.mutex:
                        self.polled.add(rel)
                    todo.append(rel)
        self._mark(changed, now, refresh=False)
        took = time.monotonic() - started
        self.poll_interval = max(1.0, 10 * took)
        self.next_poll = now + self.poll_interval

    def _is_watched(self, rel: str) -> bool:
        return self.group is not None and self.group.is_watched(os.fsencode(os.path.join(self.top_s, rel)))

    def _reconsider_skipped(self, now: float) -> None:
        """After an ignore rule changed: directories no longer ignored are watched, their files reported."""
        with self.mutex:
            skipped = sorted(self.skipped)
        if not skipped:
            return
        existing = [d for d in skipped if os.path.isdir(os.path.join(self.top_s, d))]
        still = self.oracle.ignored_dirs(existing)
        freed = [d for d in existing if d not in still]
        with self.mutex:
            self.skipped = set(still)
        if not freed:
            return
        for d in freed:
            if self.group is not None:
                self.group.watch_more(os.fsencode(os.path.join(self.top_s, d)))
        fresh = self._scan(freed)
        for rel, sig in fresh.files.items():
            self.snapshot.set(rel, sig)
        self._take_failures()
        self._mark(set(fresh.files), now, refresh=False)

    def _scan(self, roots: list[str]) -> Snapshot:
        """Stat every file under `roots`, leaving out .git, nested repositories and ignored directories."""
        snap = Snapshot()
        level = list(roots)
        now_ns = time.time_ns()
        while level:
            subdirs: list[str] = []
            for d in level:
                full = os.path.join(self.top_s, d) if d else self.top_s
                try:
                    entries = os.scandir(full)
                except OSError:
                    continue
                with entries:
                    for entry in entries:
                        if entry.name == ".git":
                            continue
                        rel = f"{d}/{entry.name}" if d else entry.name
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                subdirs.append(rel)
                            else:
                                snap.set(rel, sig_of(entry.stat(follow_symlinks=False), now_ns))
                        except OSError:
                            continue
            full_paths = {os.fsencode(os.path.join(self.top_s, s)): s for s in subdirs}
            skipped = self.skip_dirs(list(full_paths))
            level = [rel for path, rel in full_paths.items() if path not in skipped]
        return snap

    # small things

    def _set_meta(self, key: str, value: str) -> None:
        try:
            with self.store.tx():
                self.store.set_meta(key, value)
        except sqlite3.OperationalError as error:
            if key != META_HEARTBEAT:  # a missed heartbeat is only a heartbeat
                raise
            self._log(f"heartbeat not written ({error})")

    def _say(self, kind: str, message: str) -> None:
        if kind in self.said:
            return
        self.said.add(kind)
        self.err.write(message + "\n")
        self.err.flush()

    def _log(self, message: str) -> None:
        self.err.write(f"vbranch watch: {message}\n")
        self.err.flush()


def _proc_value(name: str) -> str:
    try:
        return Path(f"/proc/sys/fs/inotify/{name}").read_text().strip()
    except OSError:
        return "?"


def run_watcher(
    top: Path | str,
    git_dir: Path | str,
    *,
    idle_exit: float | None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Watch the working tree at `top` in the foreground until idle (`idle_exit` s), signalled or torn down.

    Raises WatcherRunning if another watcher holds the lock. Returns 0.
    """
    return Watcher(Path(top), Path(git_dir), idle_exit=idle_exit, clock=clock).run()


# --- command line -----------------------------------------------------------------------------


def cmd_watch(args) -> int:
    """`vbranch watch [--background] [--idle-exit SECONDS] | --status [--json] | --stop`
    (args: C, background, idle_exit; status, stop and json may be absent)."""
    from . import ui
    from .workspace import open_workspace

    ws = open_workspace(args.C)
    top, git_dir = ws.top, ws.git_dir
    try:
        if getattr(args, "status", False):
            return show_status(ws, as_json=getattr(args, "json", False))
        if getattr(args, "stop", False):
            return stop(ws)
        if args.background:
            pid = start_background(top, idle_exit=args.idle_exit if args.idle_exit is not None else DEFAULT_IDLE_EXIT, wait=5.0)
            if pid is None:
                ui.line(f"a watcher is already running for {top} (pid {watcher_pid(ws)})")
            elif watcher_live(ws):
                ui.line(f"watcher started for {top} (pid {pid}); log: {ws.state_dir / LOG_NAME}")
            else:
                raise StateError(
                    f"the watcher (pid {pid}) did not start",
                    hint=f"see {ws.state_dir / LOG_NAME}",
                )
            return 0
    finally:
        ws.close()
    return run_watcher(top, git_dir, idle_exit=args.idle_exit)


STOP_WAIT = 10.0


def status_lines(info: dict, now: float | None = None) -> list[str]:
    """dirtyset.watcher_status as the lines `vbranch watch --status` prints."""
    now = time.time() if now is None else now
    if info["state"] == "stopped":
        return ["watcher: not running (`vbranch watch --background` starts one; hooks start one at the next tool call)"]
    lines = [f"watcher: {info['state']} (pid {info['pid'] if info['pid'] is not None else '?'})"]
    if info["started"] is not None:
        lines.append(f"  running since {_when(info['started'], now)}")
    if info["state"] == "trusted":
        lines.append(f"  dirty set complete since {_when(info['trusted_since'], now)}; {info['dirty']} changed path(s) seen")
    elif info["state"] == "recovering":
        lines.append(f"  dirty set not trusted yet (starting, or rescanning after a lost event); readers ask git meanwhile; "
                     f"{info['dirty']} changed path(s) seen")
    else:
        age = info["heartbeat_age"]
        lines.append(f"  no heartbeat for {age:.0f} s: hung? `vbranch watch --stop` (or kill {info['pid']}) and start a new one"
                     if age is not None else "  no heartbeat written")
    lines.append(f"  hook socket: {info['socket']}{'' if info['socket_present'] else ' (absent: hooks run the full hook themselves)'}")
    if info["overflows"]:
        lines.append(f"  recovered from {info['overflows']} inotify queue overflow(s)")
    if info["polled_dirs"]:
        lines.append(f"  {info['polled_dirs']} directories polled (inotify watch limit reached)")
    lines.append(f"  log: {info['log']}")
    return lines


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "?"
    ago = max(0, int(now - at))
    span = f"{ago} s" if ago < 120 else f"{ago // 60} min" if ago < 7200 else f"{ago // 3600} h"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} ({span} ago)"


def show_status(ws, as_json: bool = False) -> int:
    """`vbranch watch --status`: always exit 0 (the state is the answer; `vbranch doctor` judges it)."""
    import json

    from . import ui
    from .dirtyset import watcher_status

    info = watcher_status(ws)
    if as_json:
        ui.write_raw(json.dumps(info, indent=2) + "\n")
    else:
        for text in status_lines(info):
            ui.line(text)
    return 0


def stop(ws, timeout: float = STOP_WAIT) -> int:
    """`vbranch watch --stop`: SIGTERM to the live watcher, wait until its lock is released."""
    from . import ui

    pid = watcher_pid(ws)
    if pid is None:
        ui.line(f"no watcher is running for {ws.top}")
        return 0
    if not stop_watcher(ws, timeout=timeout):
        raise StateError(
            f"the watcher (pid {pid}) did not stop within {timeout:.0f} s",
            hint=f"it may be hung: `kill -KILL {pid}`; hooks and `vbranch watch --background` start a new one",
        )
    ui.line(f"watcher (pid {pid}) stopped; hooks start a new one at the next tool call (unless config watcher is \"off\")")
    return 0


def _main(argv: list[str] | None = None) -> int:
    """`python -m vbranch.watch`: what start_background runs (the same as `vbranch watch`)."""
    parser = argparse.ArgumentParser(prog="vbranch watch")
    parser.add_argument("-C", default=".", metavar="DIR")
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true")
    what.add_argument("--stop", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return cmd_watch(args)
    except VbranchError as error:
        from . import ui

        ui.show_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(_main())

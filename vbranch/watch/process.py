"""The watcher process: one per repository, alive while it is needed, around a Monitor (monitor.py).

It holds the watch lock, writes what the monitor sees into the store's `dirty`
table (the dirty set, one transaction per ~50 ms tick), answers the barrier
(`dirtyset.settle`), hosts the hook server with the handler it is given, and
exits when idle, signalled or torn down.

Liveness: the watcher holds an flock on `.git/vbranch/watch.lock` for its whole
life and writes `watch_pid`, `watch_started` and a `watch_heartbeat` (every
0.5 s) to the store's meta. `watcher_live` wants both the lock held and a
heartbeat younger than 2 s, so a killed watcher (lock released by the kernel)
and a hung one (stale heartbeat) are both noticed.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from vbranch.errors import NotInitialized
from vbranch.state import flock
from vbranch.state.store import Store
from vbranch.watch import memory
from vbranch.watch.control import WatcherRunning
from vbranch.watch.dirtyset import (
    INEXACT,
    LOCK_NAME,
    META_HEARTBEAT,
    META_OVERFLOWS,
    META_PID,
    META_POLLED,
    META_STARTED,
    META_TRUSTED,
    SYNC_DIR,
    live_sessions,
    vouched_paths,
)
from vbranch.watch.hookserver import HookServer
from vbranch.watch.monitor import Monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vbranch.watch.hookserver import HookHandler

FLUSH_INTERVAL = 0.05
HEARTBEAT_INTERVAL = 0.5
HOUSEKEEPING_INTERVAL = 0.5  # ignore sources, sessions, idle


class DirtySetWriter:
    """The watcher's side of the dirty set: marks and the watcher's status, into the store.

    Marks are written in one transaction per call, each with the time it was seen; marks
    the store refuses (busy past its timeout) are kept and written with the next ones.
    """

    def __init__(self, store: Store, log: Callable[[str], None]):
        self.store = store
        self.log = log
        self.unwritten: list[tuple[list[str], float]] = []

    def begin(self, started: float) -> None:
        """This process is the watcher since `started`; its set is not trusted yet."""
        with self.store.tx():
            self.store.set_meta(META_PID, str(os.getpid()))
            self.store.set_meta(META_STARTED, repr(started))
            self.store.set_meta(META_HEARTBEAT, repr(started))
            self.store.set_meta(META_TRUSTED, "")
            self.store.set_meta(META_OVERFLOWS, "0")
            self.store.set_meta(META_POLLED, "0")

    def end(self) -> None:
        """No watcher any more (best effort: the lock's release says it too)."""
        try:
            with self.store.tx():
                self.store.set_meta(META_TRUSTED, "")
                self.store.set_meta(META_PID, "")
        except sqlite3.Error:
            pass

    @property
    def pending(self) -> bool:
        return bool(self.unwritten)

    def record(self, paths: list[str], when: float) -> bool:
        """Mark paths dirty as seen at `when`; False if the store was busy (they are kept)."""
        if paths:
            self.unwritten.append((paths, when))
        return self.write_pending()

    def write_pending(self) -> bool:
        """Write the pending marks in one transaction (each keeps the time it was seen); False if busy."""
        if not self.unwritten:
            return True
        try:
            with self.store.tx():
                for paths, when in self.unwritten:
                    self.store.mark_dirty(paths, when)
        except sqlite3.OperationalError as error:  # locked past the busy timeout: keep them, try again
            self.log(f"could not write to the store ({error}); retrying")
            return False
        self.unwritten.clear()
        return True

    def set_trusted(self, since: float | None) -> None:
        self._set_meta(META_TRUSTED, "" if since is None else repr(since))

    def set_overflows(self, count: int) -> None:
        self._set_meta(META_OVERFLOWS, str(count))

    def set_polled(self, count: int) -> None:
        self._set_meta(META_POLLED, str(count))

    def beat(self, now: float) -> None:
        try:
            self._set_meta(META_HEARTBEAT, repr(now))
        except sqlite3.OperationalError as error:  # a missed heartbeat is only a heartbeat
            self.log(f"heartbeat not written ({error})")

    def _set_meta(self, key: str, value: str) -> None:
        with self.store.tx():
            self.store.set_meta(key, value)


class Watcher:
    """One repository's watcher process: `run()` until idle, stopped or torn down.

    `hook_handler` answers the hook server's requests (see hookserver.HookHandler); None
    serves no hooks.
    """

    def __init__(
        self,
        top: Path,
        git_dir: Path,
        *,
        idle_exit: float | None,
        hook_handler: HookHandler | None,
        clock: Callable[[], float] = time.time,
        err=None,
    ):
        self.top = Path(top)
        self.state_dir = Path(git_dir) / "vbranch"
        self.idle_exit = idle_exit
        self.hook_handler = hook_handler
        self.clock = clock
        self.err = err or sys.stderr
        self.stop_event = threading.Event()
        self.wake = threading.Event()  # a barrier token arrived, or stop
        self.sync_dir = self.state_dir / SYNC_DIR
        self.tokens: list[str] = []  # barrier tokens seen, answered once their earlier events are stored
        self.monitor = Monitor(self.top, git_dir, self.sync_dir, wake=self.wake, clock=clock, log=self._log)
        self.store: Store | None = None
        self.dirty: DirtySetWriter | None = None
        self.server: HookServer | None = None

    # the run

    def run(self) -> int:
        db = self.state_dir / "state.db"
        if not db.exists():
            raise NotInitialized(f"vbranch is not set up in {self.top}", hint="run `vbranch init` first")
        lock_fd = self._take_lock()
        memory.limit_arenas()  # before the threads start
        store = self.store = Store(db)
        self.dirty = DirtySetWriter(store, self._log)
        old_handlers = self._install_signals()
        try:
            self.dirty.begin(self.clock())
            self._reset_sync_dir()
            self.monitor.start(self.dirty)
            if self.hook_handler is not None:
                self.server = HookServer(self.state_dir, self._log, self.hook_handler)
                self.server.start()
            threading.Thread(target=self._seed, name="seed", daemon=True).start()
            return self._loop()
        finally:
            if self.server is not None:
                self.server.stop()
            self._restore_signals(old_handlers)
            self.monitor.stop()
            self.dirty.end()
            store.close()
            flock.release(lock_fd)

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def _seed(self) -> None:
        """Add the changes made before this watcher started to its dirty set now (one `git status`,
        ~0.1 s on 33,000 files, 0.35 s on 100,000), rather than in the first command or Stop that
        asks for the set (dirtyset.vouched_paths, which would do the same, once per watcher)."""
        from vbranch.state.workspace import open_workspace

        try:
            ws = open_workspace(self.top)
            try:
                vouched_paths(ws)
            finally:
                ws.close()
        except Exception as error:  # noqa: BLE001 - only a head start: the first caller seeds instead
            self._log(f"seeding the dirty set at start failed ({error}); the first command does it")

    def _take_lock(self) -> int:
        fd = flock.take(self.state_dir / LOCK_NAME)
        if fd is None:
            store = Store(self.state_dir / "state.db")
            try:
                pid = store.get_meta(META_PID) or "?"
            finally:
                store.close()
            raise WatcherRunning(
                f"a watcher (pid {pid}) is already running for {self.top}",
                hint="only one watcher runs per repository; `vbranch watch --background` starts one only when none is live",
            )
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

    def _loop(self) -> int:
        last_beat = last_house = last_trim = 0.0
        last_activity = self.clock()
        while not self.stop_event.is_set():
            tick = time.monotonic()
            now = self.clock()
            self.dirty.write_pending()
            self.monitor.catch_up()
            if self.monitor.flush():
                last_activity = now
            self._answer_tokens()
            self.monitor.poll_if_due(now)
            if now - last_house >= HOUSEKEEPING_INTERVAL:
                last_house = now
                self.monitor.check_ignores()
                if self._torn_down():
                    self._log("the vbranch workspace was torn down or removed: stopping")
                    return 0
                if live_sessions(self.store):
                    last_activity = now
                if self.idle_exit is not None and now - last_activity >= self.idle_exit:
                    self._log(f"no live session and no change for {self.idle_exit:g} s: stopping")
                    return 0
            if now - last_trim >= memory.TRIM_EVERY:
                last_trim = now
                memory.trim()
            if now - last_beat >= HEARTBEAT_INTERVAL:
                last_beat = now
                self.dirty.beat(now)
            self.wake.wait(max(0.0, FLUSH_INTERVAL - (time.monotonic() - tick)))
            self.wake.clear()  # before the next flush: a token queued after this is handled there
        return 0

    def _torn_down(self) -> bool:
        return self.store.get_meta("active") != "1" or not os.path.isdir(self.top)

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

    def _answer_tokens(self) -> None:
        """Answer the tokens whose earlier events are all in the store.

        Held while an overflow is being recovered from (its lost events are not
        in the store until the rescan) and while marks wait to be written.
        """
        self.tokens += self.monitor.take_tokens()
        if not self.tokens or self.dirty.pending:
            return
        exact = self.monitor.vouch()
        if exact is None:
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

    def _log(self, message: str) -> None:
        self.err.write(f"vbranch watch: {message}\n")
        self.err.flush()


def run_watcher(
    top: Path | str,
    git_dir: Path | str,
    *,
    idle_exit: float | None,
    hook_handler: HookHandler | None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Watch the working tree at `top` in the foreground until idle (`idle_exit` s), signalled or torn down.

    Raises WatcherRunning if another watcher holds the lock. Returns 0.
    """
    return Watcher(Path(top), Path(git_dir), idle_exit=idle_exit, hook_handler=hook_handler, clock=clock).run()

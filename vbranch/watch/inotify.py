"""The watchdog layer: one private inotify instance, with what watchdog does not tell.

Our watch group leaves ignored directories unwatched and reports queue overflows and
failed watches to its sink (monitor.Monitor), which watchdog would swallow.
TreeWatch is the whole of it that the monitor uses.
"""
from __future__ import annotations

import errno
import logging
import os
from collections import deque

from vbranch.watch.treewalk import walk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Protocol

    class Sink(Protocol):
        """What the watch group reports to, and asks (monitor.Monitor)."""

        sync_dir: Path  # barrier tokens: watched with the same instance as the tree

        def overflow_begins(self) -> None: ...
        def overflow_ends(self) -> None: ...
        def watch_failed(self, path: bytes, error: OSError) -> None: ...
        def skip_dirs(self, paths: list[bytes]) -> set[bytes]: ...
        def sync_unwatched(self, error: OSError) -> None: ...


try:  # watchdog >= 7.1 (InotifyWatchGroup.on_queue_overflow); Linux only
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileAttribEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
        FileSystemEventHandler,
    )
    from watchdog.observers.api import BaseObserver
    from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyFD

    UNAVAILABLE = None if hasattr(InotifyWatchGroup, "on_queue_overflow") else (
        "this watchdog does not report inotify queue overflows; vbranch needs watchdog >= 7.1"
    )
except ImportError as error:  # pragma: no cover - non-Linux, or an old watchdog
    UNAVAILABLE = f"the inotify watcher is unavailable ({error}); vbranch watch needs Linux and watchdog >= 7.1"

# What we ask the kernel for: no opens, reads or close-without-write (they only
# fill the queue). DirModifiedEvent is left out: the files say what changed.
EVENT_TYPES = (
    []
    if UNAVAILABLE
    else [
        FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
        FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent,
    ]
)

if not UNAVAILABLE:
    from dataclasses import dataclass, field

    @dataclass
    class WatchGroup(InotifyWatchGroup):
        """watchdog's recursive watch, plus: ignored directories unwatched, failures and overflows reported."""

        sink: "Sink | None" = field(default=None)

        def on_queue_overflow(self) -> None:
            self.sink.overflow_begins()
            try:
                super().on_queue_overflow()  # drops pending moves, rebuilds every watch
                if self.is_active and self.path not in self._active_callbacks_by_path:
                    # watchdog only logs a failed rebuild of the top: without it we see nothing.
                    self.sink.watch_failed(self.path, OSError(errno.ENOSPC, "the top directory could not be watched again"))
            finally:
                self.sink.overflow_ends()

        def _add_all_callbacks(self, path: bytes) -> None:
            # Breadth first, one check-ignore batch per level; .git, nested repositories
            # and ignored directories are not watched.
            if path != self.path and self.sink.skip_dirs([path]):
                return
            if path == self.path:
                self._add_sync_callback()
            self._add_callback(path)
            if not self.is_recursive or not os.path.isdir(path):
                return
            # Each level is watched before it is listed. The walk does not follow symlinks:
            # TreeWatch schedules the watch with follow_symlink=False.
            for _ in walk([path], self._watch_level):
                pass

        def _watch_level(self, subdirs: list[bytes]) -> list[bytes]:
            skipped = self.sink.skip_dirs(subdirs)
            level = [d for d in subdirs if d not in skipped]
            for d in level:
                self._add_callback(d)
            return level

        def _add_callback(self, path: bytes) -> None:
            # watchdog swallows every failure below the top: we need ENOSPC (watch limit) to be heard.
            try:
                wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)
            except OSError as error:
                if path == self.path:
                    raise
                self.sink.watch_failed(path, error)
                return
            self._active_callbacks_by_path[path] = wd
            self._active_callbacks_by_watch[wd] = path

        def _add_sync_callback(self) -> None:
            # Barrier tokens (dirtyset.settle) must queue behind the tree's events: same instance.
            sync = os.fsencode(self.sink.sync_dir)
            try:
                wd = self._inotify_fd.add_callback(sync, self.event_mask, self._callback, self._id)
            except OSError as error:
                self.sink.sync_unwatched(error)
                return
            self._active_callbacks_by_path[sync] = wd
            self._active_callbacks_by_watch[wd] = sync

        def watch_more(self, path: bytes) -> None:
            with self._lock:
                if self.is_active:
                    self._add_all_callbacks(path)

        def is_watched(self, path: bytes) -> bool:
            with self._lock:
                return path in self._active_callbacks_by_path

    class Emitter(InotifyEmitter):
        def __init__(self, event_queue, watch, *, sink=None, **kwargs):
            super().__init__(event_queue, watch, **kwargs)
            self.sink = sink
            self.group: WatchGroup | None = None

        def on_thread_start(self) -> None:
            self.group = WatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                sink=self.sink,
            )
            self._inotify = self.group

    class Observer(BaseObserver):
        """InotifyObserver with our emitter (one private inotify instance)."""

        def __init__(self, sink: "Sink"):
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            super().__init__(Emitter, timeout=1.0, inotify_fd=self._inotify_fd, sink=sink)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._inotify_fd.stop()
            self._inotify_fd.join()

    class Handler(FileSystemEventHandler):
        """Queues every event in order; a barrier token also wakes the watcher at once."""

        def __init__(self, queue: deque, sync_prefix: str, wake):
            self.queue = queue
            self.sync_prefix = sync_prefix
            self.wake = wake

        def on_any_event(self, event) -> None:
            self.queue.append((event.event_type, event.src_path, getattr(event, "dest_path", ""), event.is_directory))
            if event.src_path.startswith(self.sync_prefix):
                self.wake.set()


class TreeWatch:
    """A working tree watched recursively through one private inotify instance: all a Monitor holds of watchdog.

    Events go to `events` in order, as (kind, src, dest, is_directory); a barrier
    token's (a path starting with `sync_prefix`) also sets `wake`.
    """

    def __init__(self, sink: "Sink", top: str, events: deque, sync_prefix: str, wake):
        self.sink = sink
        self.top = top
        self.handler = Handler(events, sync_prefix, wake)
        self.observer = None
        self.group: "WatchGroup | None" = None
        self.log = logging.getLogger("watchdog")
        self.log_level = self.log.level

    def start(self) -> None:
        """Add the watches; OSError if not even the top can be watched (ENOSPC, EMFILE, ENOMEM: a kernel limit)."""
        self.log.setLevel(logging.ERROR)  # the sink says it itself, once
        self.observer = Observer(self.sink)  # inotify_init: fails at fs.inotify.max_user_instances
        self.observer.start()
        # The walk that adds the watches does not follow symlinks (WatchGroup._add_all_callbacks): nor do we.
        self.observer.schedule(self.handler, self.top, recursive=True, event_filter=EVENT_TYPES)
        self.group = next(iter(self.observer.emitters)).group

    def stop(self) -> None:
        self.log.setLevel(self.log_level)
        if self.observer is not None:
            self.observer.stop()
            try:
                self.observer.join(timeout=5)
            except RuntimeError:
                pass

    def is_watched(self, path: bytes) -> bool:
        return self.group is not None and self.group.is_watched(path)

    def watch_more(self, path: bytes) -> None:
        """Watch a directory (and what is under it) left unwatched so far."""
        if self.group is not None:
            self.group.watch_more(path)

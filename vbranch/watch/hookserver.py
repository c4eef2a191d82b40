"""The watcher's hook server: runs hook payloads warm, for hookclient.py.

A hook process that imports vbranch spends ~80 ms starting Python and importing
before its ~5 ms of work. The watcher is already a long-lived process per
repository, so it listens on `.git/vbranch/hook.sock` and hands each request to
the handler it was given (whoever starts the watcher wires in what `vbranch hook`
runs: watch.run_hook), one thread per connection (threads kept for the next
connection once done, a few of them: see Workers): every request has its own
workspace (own SQLite connection, own flock; reused from a WorkspacePool, one
request at a time), exactly as separate hook processes would, so concurrent
sessions are kept apart by the same locks and leases.

This module only carries requests and answers (the protocol is in hookclient.py);
it imports nothing of the hooks themselves.
"""
from __future__ import annotations

import os
import queue
import socket
import threading
from pathlib import Path

from vbranch.hookclient import SOCKET_NAME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    # (header: "AGENT \0 CLAUDE_PROJECT_DIR \0 CWD", payload, the agent's pid or None)
    #   -> (exit code, stdout, stderr), as `vbranch hook [--agent AGENT]` would exit and print
    HookHandler = Callable[[str, bytes, "int | None"], "tuple[int, bytes, bytes]"]

MAX_NAME = 100  # sun_path holds 108 bytes with its NUL
DRAIN_WAIT = 30.0  # on stop, how long requests in flight may finish
CLIENT_WAIT = 60.0  # a client that neither sends nor reads for this long is dropped


class HookServer:
    def __init__(self, state_dir: Path, log, handler: HookHandler):
        self.path = Path(state_dir) / SOCKET_NAME
        self.log = log
        self.handler = handler
        self.sock: socket.socket | None = None
        self.active = 0
        self.idle = threading.Condition()
        self.workers = Workers(self._serve)

    def start(self) -> bool:
        """Listen (replacing a socket a dead watcher left); False, logged, if that cannot be done."""
        name = os.path.relpath(self.path)
        if len(os.fsencode(name)) > MAX_NAME:
            self.log(f"hooks will not be served: the socket path {name} is too long")
            return False
        try:
            os.unlink(name)  # we hold the watch lock: no other server uses it
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            os.chmod(name, 0o600)  # only this user's hooks
            sock.listen(64)
        except OSError as error:
            sock.close()
            self.log(f"hooks will not be served: {error}")
            return False
        self.sock = sock
        threading.Thread(target=self._accept, name="hook-server", daemon=True).start()
        return True

    def stop(self) -> None:
        """Stop listening, and let the requests in flight finish."""
        if self.sock is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self.idle:
            self.idle.wait_for(lambda: self.active == 0, timeout=DRAIN_WAIT)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            with self.idle:
                self.active += 1
            self.workers.run(conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(CLIENT_WAIT)
                request = _read_all(conn)
                header, _, payload = request.partition(b"\n")
                code, out, err = self.handler(header.decode("utf-8", "surrogateescape"), payload, _agent_pid(conn))
                conn.sendall(b"%d %d\n" % (code, len(out)) + out + err)
        except OSError:
            pass  # the client went away (timed out, killed): it does not need the answer
        finally:
            with self.idle:
                self.active -= 1
                self.idle.notify_all()


class Workers:
    """Threads that serve connections, each kept for the next connection once done (up to KEEP idle).

    Starting a thread per request cost the watcher ~0.6 ms of its one interpreter: about a sixth of a
    hook's work there. A few are kept (each holds its stack). There is no bound on how many run at
    once: a request waiting for a file's lease must never keep the request that releases it from
    starting. Each idle worker waits on its own inbox, so a connection handed to one is surely taken.
    """

    KEEP = 8

    def __init__(self, serve: Callable[[socket.socket], None]):
        self.serve = serve
        self.lock = threading.Lock()
        self.idle: list[queue.SimpleQueue] = []  # the inboxes of the workers waiting for a connection

    def run(self, conn: socket.socket) -> None:
        with self.lock:
            inbox = self.idle.pop() if self.idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._work, args=(inbox,), name="hook-worker", daemon=True).start()
        inbox.put(conn)

    def _work(self, inbox: queue.SimpleQueue) -> None:
        while True:
            self.serve(inbox.get())
            with self.lock:
                if len(self.idle) >= self.KEEP:
                    return
                self.idle.append(inbox)


def _agent_pid(conn: socket.socket) -> int | None:
    """The agent that ran the hook client: the client's parent (the client is Claude Code's child)."""
    import struct

    try:
        client, _uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        with open(f"/proc/{client}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)

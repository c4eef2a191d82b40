"""The command tracer: which files a command, and every process it starts, writes.

Installed as Claude Code's `CLAUDE_CODE_SHELL_PREFIX`, so every Bash command
runs as `python -S tracer.py '<command string>'`. The session is the one in
the environment (`CLAUDE_CODE_SESSION_ID`, Codex's `CODEX_THREAD_ID`,
`VBRANCH_SESSION`), so whatever else runs at the same time, a file a
command's process writes is known to be that session's: attribution by
process, not by time window.

How (Linux seccomp user notification; no privileges needed):

    W (this process: Claude Code waits for it; exits with the command's status)
    └─ S supervisor: a child subreaper in its own session, so it outlives W and
       │ stays an ancestor of everything the command leaves running
       └─ C: loads the filter (tracefilter.py), hands S the listener, execs bash -c

Every path syscall that can change a file (a write-open, rename, unlink, link,
truncate, chmod) of C or any descendant stops until S has read its path from
/proc/PID/mem and appended it to the trace log `.git/vbranch/traces/*.log`;
then it goes on unchanged. Read-only opens never leave the kernel. S exits when
the last traced process has (the listener reports POLLHUP), writing an end line.

Standard library only, and ctypes only in C: this runs before every command.
If tracing cannot start (no seccomp, no libseccomp, another OS), the command
runs untraced and the log says why, so the hooks fall back to time windows
and tell the user.
"""
from __future__ import annotations

import os
import struct
import sys

SESSION_VARIABLES = ("VBRANCH_SESSION", "CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID")
TRACED_MARK = "VBRANCH_TRACED"  # set for the traced command: a nested tracer of the same session adds nothing
TRACE_DIR = "traces"
FILTER_FILE = "tracer-filter"
FILTER_VERSION = "v2"
LEASE_HINT = "leases.hint"  # leases.HINT_FILE: grows by a byte each time a lease is taken
NATIVE_SOURCE = "supervise.c"  # S's loop in C (tracefilter.build_native); Python's loop is the fallback
NATIVE_SWITCH = "VBRANCH_TRACER_NATIVE"  # "off": Python's loop (tests, benchmarks)
VERSION_LIMIT = 4 << 20  # a file larger than this is not kept before a command writes it

# <linux/seccomp.h>
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)
NOTIF_ID_VALID = 0x40082102  # _IOW('!', 2, __u64)
NOTIF_SET_FLAGS = 0x40082104  # _IOW('!', 4, __u64), Linux 6.6+
SYNC_WAKE_UP = 1  # SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
NOTIF = struct.Struct("=QII iIQ6Q")  # id, pid, flags; seccomp_data: nr, arch, ip, args[6]
RESP = struct.Struct("=QqiI")  # id, val, error, flags
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
AT_FDCWD = -100


def main(argv: list[str]) -> int:
    argv = argv[1:]
    if not argv or argv == ["--"]:
        sys.stderr.write("usage: tracer.py COMMAND-STRING | tracer.py -- PROGRAM ARGS...\n")
        return 2
    # Claude Code passes the whole command as one string; after `--` come a program and its arguments.
    program = argv[1:] if argv[0] == "--" else [_shell(), "-c", argv[0]] if len(argv) == 1 else argv
    session = next((os.environ[v] for v in SESSION_VARIABLES if os.environ.get(v)), None)
    found = _repository(os.getcwd())
    if session is None or found is None or os.environ.get("VBRANCH_TRACE") == "off" or os.environ.get(TRACED_MARK) == session:
        _exec(program)
    return run(program, session, found, argv[0] if len(argv) == 1 else " ".join(argv))


def _shell() -> str:
    return "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"


def _exec(program: list[str]) -> None:
    try:
        os.execvp(program[0], program)
    except OSError as error:
        sys.stderr.write(f"vbranch tracer: cannot run {program[0]}: {error}\n")
        os._exit(127)


def _repository(start: str) -> tuple[str, str] | None:
    """The working tree's top and its `.git/vbranch`, if vbranch is set up there (found without git)."""
    here = os.path.abspath(start)
    while True:
        dotgit = os.path.join(here, ".git")
        git_dir = None
        if os.path.isdir(dotgit):
            git_dir = dotgit
        elif os.path.isfile(dotgit):
            try:
                with open(dotgit) as f:
                    text = f.read().strip()
            except OSError:
                return None
            if text.startswith("gitdir:"):
                git_dir = os.path.join(here, text[len("gitdir:"):].strip())
        if git_dir is not None:
            state = os.path.join(git_dir, "vbranch")
            return (os.path.realpath(here), state) if os.path.exists(os.path.join(state, "state.db")) else None
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def run(program: list[str], session: str, found: tuple[str, str], command: str) -> int:
    import _socket
    import ctypes  # noqa: F401 - loaded once here, before the fork, for both S and C

    top, state_dir = found
    status_r, status_w = os.pipe()
    to_child, to_supervisor = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    supervisor = os.fork()
    if supervisor == 0:
        os.close(status_r)
        code = 70
        try:
            code = _supervise(program, session, state_dir, top, command, status_w, to_child, to_supervisor)
        finally:
            os._exit(code)
    os.close(status_w)
    to_child.close()
    to_supervisor.close()
    return _wait_for_command(status_r)


def _wait_for_command(status_r: int) -> int:
    """W: relay signals to the command and exit with its status, as the shell would."""
    import _signal as signal  # the signal module would import enum: 10 ms

    command_pid: list[int] = []

    def relay(signum, _frame):
        if command_pid:
            try:
                os.kill(command_pid[0], signum)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, relay)
    data = b""
    while True:
        chunk = os.read(status_r, 64)
        if not chunk:
            break
        data += chunk
        for line in data.split(b"\n")[:-1]:
            word, _, value = line.partition(b" ")
            if word == b"pid":
                command_pid[:] = [int(value)]
            elif word == b"exit":
                return int(value)
    sys.stderr.write("vbranch tracer: the supervisor ended before the command did; its exit status is unknown\n")
    return 70


def _supervise(program, session, state_dir, top, command, status_w, to_child, to_supervisor) -> int:
    """S: start the command under the filter, then answer its notifications until nothing traced is left."""
    import _signal as signal

    filt = _load_filter(state_dir)
    child = os.fork()
    if child == 0:
        to_child.close()
        os.close(status_w)
        _start_command(program, filt, to_supervisor, session)
    to_supervisor.close()
    os.setsid()  # out of the command's process group: Claude Code's kill of the group spares us
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the command become ours: we stay their ancestor
    try:
        _write_all(status_w, b"pid %d\n" % child)
    except OSError:
        pass  # W is gone already
    listener, reason = _receive_listener(to_child)
    lib, loop = None, "-"
    if listener is not None:
        _wake_on_our_cpu(listener)  # False on a kernel before 6.6: the same, slower
        lib, why = _load_native(state_dir)
        loop = "native" if lib is not None else f"python: {why}"
    log = TraceLog.create(state_dir, session, command, reason, loop)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # Claude Code waits for the command's output pipes to close, not for us
    os.close(devnull)
    where = (top, os.path.dirname(os.path.realpath(state_dir)), child, Leases(state_dir), CallerMemory())
    native = None if lib is None else Native.start(lib, listener, filt, where, log, state_dir)
    try:
        _serve(listener, child, filt, where, log, status_w, native)
    finally:
        log.end()
    return 0


def _wake_on_our_cpu(listener: int) -> bool:
    """Ask the kernel to run a caller we answer on our CPU, at once: a round trip ~4x faster
    (160 -> 45 us per notification here). The flags are the ioctl's value, not a buffer."""
    import fcntl

    try:
        fcntl.ioctl(listener, NOTIF_SET_FLAGS, SYNC_WAKE_UP)
    except OSError:
        return False
    return True


def _load_filter(state_dir: str) -> dict | str:
    """The cached filter (tracefilter.py), built once when missing; else why there is none."""
    for attempt in (1, 2):
        filt = read_filter(state_dir)
        if filt is not None:
            return filt
        if attempt == 1:
            _build_caches(state_dir)
    return "no seccomp filter could be built (is libseccomp installed?)"


def _build_caches(state_dir: str) -> None:
    """`vbranch init` builds the filter and the native loop; a command finding one missing builds it."""
    import subprocess

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(
        [sys.executable or "python3", "-m", "vbranch.tracefilter", state_dir],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        env={**os.environ, "PYTHONPATH": package_root},
    )


def native_library() -> str:
    """Where supervise.c's build is cached: per user and by the source's hash, so it is compiled once
    per machine and version (not at every `vbranch init`: the tests set up hundreds of repositories),
    and a changed source is never run with an old build. `.failed` beside it: why it could not be built."""
    from _sha1 import sha1

    cache = os.environ.get("XDG_CACHE_HOME") or (os.environ.get("HOME") and os.path.join(os.environ["HOME"], ".cache"))
    if not cache:
        raise OSError("no HOME or XDG_CACHE_HOME to keep it in")
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), NATIVE_SOURCE), "rb") as f:
        digest = sha1(f.read()).hexdigest()[:16]
    return os.path.join(cache, "vbranch", f"supervise-{digest}.so")


def _load_native(state_dir: str):
    """supervise.c's library, loaded (built first if neither it nor a failed build is there); else why not."""
    if os.environ.get(NATIVE_SWITCH) == "off":
        return None, f"{NATIVE_SWITCH}=off"
    try:
        path = native_library()
    except OSError as error:
        return None, f"no native loop ({error})"
    failed = path[:-len(".so")] + ".failed"
    for attempt in (1, 2):
        if os.path.exists(path):
            import ctypes

            try:
                return ctypes.CDLL(path, use_errno=True), None
            except OSError as error:
                return None, f"cannot load {path}: {error}"
        try:
            with open(failed, encoding="utf-8", errors="replace") as f:
                return None, f.read().strip() or "its build failed"
        except OSError:
            pass
        if attempt == 1:
            try:  # a cache we cannot write to would have every command try to build it
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError as error:
                return None, f"cannot build the native loop in {os.path.dirname(path)} ({error.strerror})"
            if not os.access(os.path.dirname(path), os.W_OK):
                return None, f"cannot build the native loop in {os.path.dirname(path)} (not writable)"
            _build_caches(state_dir)
    return None, f"not built ({path})"


def read_filter(state_dir: str) -> dict | None:
    """tracefilter.py's cache: a header line, one line per syscall, a blank line, then the BPF program.

    Plain lines, not JSON: json would cost this process 30 ms.
    """
    try:
        with open(os.path.join(state_dir, FILTER_FILE), "rb") as f:
            data = f.read()
        head, _, bpf = data.partition(b"\n\n")
        lines = head.decode().split("\n")
        version, machine, seccomp_nr = lines[0].split()
        if version != FILTER_VERSION or machine != os.uname().machine:
            return None
        syscalls = {}
        for line in lines[1:]:
            nr, name, *pairs = line.split()
            paths = [tuple(None if x == "-" else int(x) for x in pair.split(":")) for pair in pairs]
            syscalls[int(nr)] = {"name": name, "paths": paths}
        return {"seccomp_nr": int(seccomp_nr), "syscalls": syscalls, "bpf": bpf}
    except (OSError, ValueError):
        return None


def _start_command(program, filt, sock, session) -> None:
    """C: load the filter, hand its listener to S, become the command."""
    reason = None
    if isinstance(filt, dict):
        try:
            listener = _install_filter(filt)
        except OSError as error:
            reason = f"seccomp user notification is not available here ({error.strerror or error})"
        else:
            import _socket

            sock.sendmsg([b"ok"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("=i", listener))])
            os.close(listener)
    else:
        reason = filt
    if reason is not None:
        sock.sendall(b"no " + reason.encode())
    sock.close()
    os.environ[TRACED_MARK] = session
    _exec(program)


def _install_filter(filt: dict) -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    code = filt["bpf"]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = SockFprog(len(code) // 8, code)
    libc.syscall.restype = ctypes.c_long

    def load() -> int:
        return libc.syscall(filt["seccomp_nr"], SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, ctypes.byref(prog))

    fd = load()
    if fd < 0 and ctypes.get_errno() == 13:  # EACCES: unprivileged callers must give up gaining privileges first
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        fd = load()
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _prctl(option: int, value: int) -> None:
    import ctypes

    ctypes.CDLL(None).prctl(option, value, 0, 0, 0)


def _receive_listener(sock) -> tuple[int | None, str | None]:
    import _socket

    try:
        msg, ancillary, _flags, _addr = sock.recvmsg(1024, _socket.CMSG_SPACE(4))
    except OSError as error:
        return None, f"the command did not start ({error})"
    finally:
        sock.close()
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            return struct.unpack("=i", data[:4])[0], None
    text = msg.decode(errors="replace")
    return None, text[3:] if text.startswith("no ") else (text or "the command did not start")


def _serve(listener, child, filt, where, log, status_w, native=None) -> None:
    """Answer notifications until nothing traced is left; report the command's (C's) status as soon as it exits.

    Processes the command left running (servers, `&`) are still traced after that,
    until they exit too: the listener reports POLLHUP when no traced task is left.
    With `native`, C waits and answers what needs no Python; it returns for the rest.
    """
    import _signal as signal
    import select

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    poller = select.poll()
    poller.register(wake_r, select.POLLIN)
    if listener is not None:
        poller.register(listener, select.POLLIN)
    reported = False
    traced_left = listener is not None
    status = _reap(child)
    while not reported or traced_left:
        if status is not None and not reported:
            try:
                _write_all(status_w, b"exit %d\n" % status)
            except OSError:
                pass  # W was killed: nobody waits for the status, but what the command left running is still traced
            os.close(status_w)
            reported = True
            continue
        if native is not None and traced_left:
            got = native.serve(wake_r)
            if got == Native.PYTHON:
                _respond(listener, filt, where, log, *native.notification())
                native.after(where[3])
                continue
            if got not in (Native.WAKE, Native.HANGUP):
                log.problem(f"the native loop failed ({os.strerror(-got)}): Python's loop goes on")
                native = None
                continue
            ready = [(wake_r, select.POLLIN)] if got == Native.WAKE else [(listener, select.POLLHUP)]
        else:
            ready = poller.poll()
        for fd, events in ready:
            if fd == wake_r:
                _drain(wake_r)
                found = _reap(child)  # only after a SIGCHLD: a waitpid per notification is measurable
                status = found if found is not None else status
            elif events & select.POLLIN:
                _answer(listener, filt, where, log)
            elif events & (select.POLLHUP | select.POLLERR):
                poller.unregister(listener)
                traced_left = False


def _reap(child: int | None) -> int | None:
    """Reap exited children; the shell-style status of `child` if it is one of them."""
    found = None
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == child:
            found = os.waitstatus_to_exitcode(raw)
            found = 128 - found if found < 0 else found  # killed by a signal: as bash reports it


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _answer(listener: int, filt: dict, where: tuple, log: TraceLog) -> None:
    """One notification: note the paths the syscall names, then let it run unchanged.

    Except a write into git's own files that a shared directory depends on (PROTECTED):
    refused with EPERM, and logged for the hook to explain, unless vbranch itself does it.
    """
    import fcntl

    buf = bytearray(NOTIF.size)
    try:
        fcntl.ioctl(listener, NOTIF_RECV, buf, True)
    except OSError:
        return  # the task died (or was interrupted) before we read it
    notif_id, pid, _flags, nr, _arch, _ip, *args = NOTIF.unpack(buf)
    _respond(listener, filt, where, log, notif_id, pid, nr, args)


def _respond(listener: int, filt: dict, where: tuple, log: TraceLog, notif_id: int, pid: int, nr: int, args: list[int]) -> None:
    import fcntl

    refused = None
    try:
        refused = _look(listener, filt, where, log, notif_id, pid, nr, args)
    except Exception as error:  # noqa: BLE001 - our trouble must never fail or hang the command's syscall
        try:
            log.problem(f"{type(error).__name__}: {error}")
        except Exception:  # noqa: BLE001
            pass
    try:
        if refused is not None:
            fcntl.ioctl(listener, NOTIF_SEND, RESP.pack(notif_id, 0, -1, 0))  # EPERM
            return
        fcntl.ioctl(listener, NOTIF_SEND, RESP.pack(notif_id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE))
    except OSError:
        pass  # the task is gone


def _look(listener, filt, where, log, notif_id, pid, nr, args) -> str | None:
    """Log the paths one notified syscall names; the path in git's directory to refuse, if any."""
    import fcntl

    spec = filt["syscalls"].get(nr)
    top, git_dir, root, leases, memory = where
    refused = None
    try:
        if spec is None:
            return None
        # Most notified opens are of files outside the repository (/dev/null, /tmp): they need nothing more.
        mine = [full for full in map(_resolved, _paths(memory, pid, spec, args)) if full.startswith((top + os.sep, git_dir + os.sep))]
        if not mine:
            return None
        # The memory we read must still be the caller's, blocked in this very call.
        fcntl.ioctl(listener, NOTIF_ID_VALID, struct.pack("=Q", notif_id))
        for full in mine:
            if full.startswith(git_dir + os.sep):  # git's own files are no session's work: only some are guarded
                if _protected(full[len(git_dir) + 1:]) and not _by_vbranch(pid, root):
                    refused = full[len(git_dir) + 1:]
                    log.refused(refused)
                continue
            rel = full[len(top) + 1:]
            if leases.held(rel):  # a file tool is mid read-modify-write: this write waits its turn
                log.waiting(rel)
                leases.wait(rel)
            log.add(rel, full)
    except OSError:
        pass  # the caller died, or its memory or a path vanished meanwhile: nothing to note
    return refused


def _paths(memory: CallerMemory, pid: int, spec: dict, args: list[int]) -> list[str]:
    if spec["name"] == "openat2" and not _openat2_writes(memory, pid, args[2]):
        return []
    out = []
    for dirfd_arg, path_arg in spec["paths"]:
        raw = memory.string(pid, args[path_arg])
        if raw is None:
            continue
        path = os.fsdecode(raw)
        if not path.startswith("/"):
            dirfd = AT_FDCWD if dirfd_arg is None else _signed(args[dirfd_arg])
            where = f"/proc/{pid}/cwd" if dirfd == AT_FDCWD else f"/proc/{pid}/fd/{dirfd}"
            path = os.path.join(os.readlink(where), path)
        out.append(path)
    return out


def _openat2_writes(memory: CallerMemory, pid: int, how: int) -> bool:
    """openat2's flags are in a struct the filter cannot read: ask about them here."""
    raw = memory.read(pid, how, 8)
    if raw is None:
        raise OSError("openat2: its flags are unreadable")
    (flags,) = struct.unpack("=Q", raw)
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class CallerMemory:
    """Reads a stopped caller's memory with process_vm_readv: one syscall, where /proc/PID/mem took
    an open, a read and a close per notification (a tenth of the supervisor's time in a git loop)."""

    PAGE = 4096

    def __init__(self):
        import ctypes

        class Iovec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        self.ctypes = ctypes
        self.readv = ctypes.CDLL(None, use_errno=True).process_vm_readv
        self.readv.restype = ctypes.c_ssize_t
        self.buffer = ctypes.create_string_buffer(2 * self.PAGE)
        self.local = Iovec(ctypes.addressof(self.buffer), 2 * self.PAGE)
        self.remote = (Iovec * 2)()

    def read(self, pid: int, address: int, length: int) -> bytes | None:
        """Up to `length` bytes (at most two pages) from `address`; fewer where the caller's memory ends."""
        first = min(length, self.PAGE - address % self.PAGE)
        # Two pieces: a piece that reaches an unmapped page is not read at all, so the first ends at its page.
        self.remote[0].base, self.remote[0].len = address, first
        self.remote[1].base, self.remote[1].len = address + first, length - first
        done = self.readv(pid, self.ctypes.byref(self.local), 1, self.remote, 2, 0)
        return self.ctypes.string_at(self.buffer, done) if done > 0 else None

    def string(self, pid: int, address: int) -> bytes | None:
        """A NUL-terminated string (PATH_MAX at most), or None."""
        data = self.read(pid, address, self.PAGE + 1)
        end = -1 if data is None else data.find(b"\0")
        return data[:end] if end >= 0 else None


class Native:
    """supervise.c's loop, loaded in S (tracefilter.build_native): it waits on the listener and the
    wake fd and answers, without Python, the notifications that need nothing but a path resolved and
    maybe a W line (Python's loop took 60-160 us of CPU each, C ~a tenth). It returns to Python for a
    SIGCHLD, the listener's hang-up, and any notification it leaves to `_respond` (a protected git
    path, a write while a lease may be held, anything it is unsure about). All W lines of a native
    supervisor are written by C (`TraceLog.add` calls it), so one table says what was logged last."""

    WAKE, HANGUP, PYTHON = 0, 1, 2

    @classmethod
    def start(cls, lib, listener: int, filt: dict, where: tuple, log: TraceLog, state_dir: str) -> Native | None:
        import ctypes

        top, git_dir = where[0], where[1]
        rows = []
        for nr, spec in filt["syscalls"].items():
            pairs = [(-1 if d is None else d, p) for d, p in spec["paths"]][:2]
            rows += [nr, int(spec["name"] == "openat2"), len(pairs), *[x for pair in pairs + [(-1, -1)] * (2 - len(pairs)) for x in pair]]
        table = (ctypes.c_int * len(rows))(*rows)
        lib.vb_add.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.vb_leases.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_int64]
        if lib.vb_setup(listener, log.fd, os.fsencode(log.versions), os.fsencode(top), os.fsencode(git_dir),
                        os.fsencode(os.path.join(state_dir, LEASE_HINT)), table, len(filt["syscalls"])) != 0:
            log.problem("the native loop refused its setup (a path too long?): Python's loop answers")
            return None
        log.native = native = cls(lib)
        return native

    def __init__(self, lib):
        import ctypes

        class Notification(ctypes.Structure):  # supervise.c's struct vb_notif
            _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("nr", ctypes.c_int32), ("args", ctypes.c_uint64 * 6)]

        self.lib, self.ctypes = lib, ctypes
        self.got = Notification()
        self.pointer = ctypes.byref(self.got)

    def serve(self, wake: int) -> int:
        """WAKE, HANGUP or PYTHON (`notification()` is Python's to answer); -errno if the loop failed."""
        got = self.lib.vb_serve(wake, self.pointer)
        return got if got >= 0 else -(self.ctypes.get_errno() or 5)

    def notification(self) -> tuple:
        got = self.got
        return got.id, got.pid, got.nr, list(got.args)

    def after(self, leases: Leases) -> None:
        """Tell C whether a lease can be held now: only once Python has asked the store (an in-repository write)."""
        if leases.db is not None:
            hint = leases.quiet()
            self.lib.vb_leases(hint is not None, *(hint or (0, 0)))

    def add(self, rel: str, full: str) -> None:
        if self.lib.vb_add(os.fsencode(rel), os.fsencode(full)) != 0:
            raise OSError(f"the native loop could not log {rel}")

    def counts(self) -> tuple[int, int]:
        handled, passed = self.ctypes.c_uint64(), self.ctypes.c_uint64()
        self.lib.vb_counts(self.ctypes.byref(handled), self.ctypes.byref(passed))
        return handled.value, passed.value

    def close(self) -> None:
        self.lib.vb_close()


class Leases:
    """The hooks' write leases (leases.py), read from the store: a traced write to a file a tool call
    is writing waits until that call is done, so neither overwrites the other.

    Asking the store costs a query per write; instead the leased paths are read again only when
    the hint file (LEASE_HINT) has grown: leases.acquire appends a byte to it after committing a
    lease, so an unchanged hint means no lease was taken since the last read. A path still leased
    then is asked about for real (releases do not touch the hint)."""

    WAIT = 10.0  # at most, as the hooks' default lease_wait

    def __init__(self, state_dir: str):
        self.path, self.db = os.path.join(state_dir, "state.db"), None
        self.hint = os.path.join(state_dir, LEASE_HINT)
        self.seen, self.leased = None, {}  # the hint's (inode, size) when `leased` (path -> expires) was read

    def held(self, rel: str) -> bool:
        import time

        try:
            hint = self._hint()
            if hint is None or hint != self.seen:
                self.leased = dict(self._query("SELECT path, expires FROM leases", ()))
                self.seen = hint
            if self.leased.get(rel, 0) < time.time():
                return False
            row = self._query("SELECT expires FROM leases WHERE path = ?", (rel,))
        except Exception:  # noqa: BLE001 - no store, or busy: never block a command on our own trouble
            return False
        return bool(row) and row[0][0] >= time.time()

    def quiet(self) -> tuple[int, int] | None:
        """The hint's (inode, size) if no lease is live: while the hint stays so, none can be (for Native)."""
        import time

        try:
            hint = self._hint()
            if hint is None:
                return None
            if hint != self.seen or any(expires >= time.time() for expires in self.leased.values()):
                self.leased = dict(self._query("SELECT path, expires FROM leases", ()))  # released ones are gone
                self.seen = hint
        except Exception:  # noqa: BLE001 - no store, or busy: Python's loop decides then
            return None
        now = time.time()
        return hint if all(expires < now for expires in self.leased.values()) else None

    def _hint(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.hint)
        except FileNotFoundError:
            try:  # created empty, before the store is read: any lease committed later grows it
                os.close(os.open(self.hint, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            except OSError:
                return None
            return self._hint()
        return st.st_ino, st.st_size

    def _query(self, sql: str, params: tuple) -> list:
        if self.db is None:
            import sqlite3

            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1, isolation_level=None)
        return self.db.execute(sql, params).fetchall()

    def wait(self, rel: str) -> None:
        import time

        deadline = time.monotonic() + self.WAIT
        while self.held(rel) and time.monotonic() < deadline:
            time.sleep(0.005)


def _protected(rel: str) -> bool:
    """Git's files that commands must leave alone in a shared directory: the configuration (aliases,
    hooks and remotes run code), HEAD (it must stay on the workspace), hooks, vbranch's state, the workspace ref."""
    name = rel[:-5] if rel.endswith(".lock") else rel
    return name in ("config", "HEAD") or name.startswith(("hooks/", "vbranch/", "refs/heads/vbranch/"))


def _by_vbranch(pid: int, root: int) -> bool:
    """The process, or one it descends from below the command's shell, is vbranch itself
    (an agent running `vbranch commit` or `vbranch rescue`, and the git commands they run)."""
    for _ in range(16):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if _is_vbranch(argv):
            return True
        if pid == root or parent <= 1:
            return False
        pid = parent
    return False


def _is_vbranch(argv: list[bytes]) -> bool:
    """`vbranch …` (the console script: python runs it as its first argument) or `python -m vbranch …`."""
    program = os.path.basename(argv[0])
    if program == b"vbranch":
        return True
    if not program.startswith(b"python"):
        return False
    options = argv[1:]
    while options and options[0].startswith(b"-") and options[0] != b"-m":
        options = options[1:]  # interpreter options such as -S or -u
    return (options[:2] == [b"-m", b"vbranch"]) or (bool(options) and os.path.basename(options[0]) == b"vbranch")


_REAL_DIRS: dict[str, str] = {}


def _resolved(path: str) -> str:
    """The path with its parent's symlinks resolved (the name itself is what is written: a link is a file).

    Directories are resolved once per supervisor: a command rarely turns a directory it
    writes into into a symlink, and realpath costs a syscall per component every time.
    """
    parent, name = os.path.split(os.path.normpath(path))
    real = _REAL_DIRS.get(parent)
    if real is None:
        real = _REAL_DIRS[parent] = os.path.realpath(parent)
    return os.path.join(real, name)


class TraceLog:
    """One traced command's log, read by traces.py. Tab-separated lines:

        H  session  sha1(command)  supervisor pid  its start time  started (unix time)  traced (1/0)  why not  loop
        W  time (ns)  version  path     a process is about to write `path` (repository-relative)
        D  path                         a write into git's directory was refused (path relative to it)
        L  path                         a write waits for a file tool's lease on `path` (then its W follows)
        X  text                         the supervisor's own trouble with one syscall (it went ahead)
        N  answered  handed on          a native loop's count of notifications it answered and left to Python
        E  time (ns)                    the supervisor is done: nothing traced is running any more

    `loop` says who answered: `native` (supervise.c, Python for the rest) or `python: why not native`.

    `version` is what the path held just before: `a` (absent), `-` (not kept: a directory, or
    over VERSION_LIMIT), or `OFFSET+LENGTH:MODE`, its bytes at that place in the log's `.v` file. So
    when processes of several sessions write one file, each one's part can be told apart, and
    every version a command overwrote is kept. An event is written only when the path changed
    since this log's last one for it.
    """

    def __init__(self, fd: int, versions: str):
        self.fd, self.versions, self.last = fd, versions, {}
        self.kept, self.count = None, 0  # the versions file, and its size
        self.native = None  # a Native: it writes every W line then

    @classmethod
    def create(cls, state_dir: str, session: str, command: str, reason: str | None, loop: str = "-") -> TraceLog:
        import time
        from _sha1 import sha1

        folder = os.path.join(state_dir, TRACE_DIR)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        pid, started = os.getpid(), process_start(os.getpid())
        name = os.path.join(folder, f"{pid}-{started}")
        fd = os.open(name + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fields = ["H", session, sha1(command.encode()).hexdigest(), str(pid), started, repr(time.time()), "0" if reason else "1", reason or "", loop]
        _write_all(fd, ("\t".join(quote(f) for f in fields) + "\n").encode("utf-8", "surrogateescape"))
        return cls(fd, name + ".v")

    def add(self, rel: str, full: str) -> None:
        if self.native is not None:
            self.native.add(rel, full)
            return
        import time

        at = time.time_ns()  # before looking: the version is what the file held no later than this
        try:
            st = os.lstat(full)
        except OSError:
            st = None
        key = None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
        if rel in self.last and self.last[rel] == key:
            return  # nothing changed it since our last event: this one tells nothing new
        self.last[rel] = key
        line = f"W\t{at}\t{self._keep(full, st)}\t{quote(rel)}\n"
        _write_all(self.fd, line.encode("utf-8", "surrogateescape"))

    def _keep(self, full: str, st) -> str:
        import stat

        if st is None:
            return "a"
        if stat.S_ISLNK(st.st_mode):
            data, mode = os.fsencode(os.readlink(full)), 0o120000
        elif stat.S_ISREG(st.st_mode) and st.st_size <= VERSION_LIMIT:
            try:
                with open(full, "rb") as f:
                    data = f.read(VERSION_LIMIT + 1)
            except OSError:
                return "-"
            mode = 0o100755 if st.st_mode & 0o100 else 0o100644
        else:
            return "-"
        if len(data) > VERSION_LIMIT:
            return "-"
        if self.kept is None:  # one file of versions, appended to: no file to create per write
            self.kept = os.open(self.versions, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        offset = self.count
        _write_all(self.kept, data)
        self.count += len(data)
        return f"{offset}+{len(data)}:{mode:o}"

    def waiting(self, rel: str) -> None:
        _write_all(self.fd, f"L\t{quote(rel)}\n".encode("utf-8", "surrogateescape"))

    def problem(self, text: str) -> None:
        _write_all(self.fd, f"X\t{quote(text)}\n".encode("utf-8", "surrogateescape"))

    def refused(self, rel: str) -> None:
        _write_all(self.fd, f"D\t{quote(rel)}\n".encode("utf-8", "surrogateescape"))

    def end(self) -> None:
        import time

        if self.native is not None:
            _write_all(self.fd, b"N\t%d\t%d\n" % self.native.counts())
            self.native.close()
        _write_all(self.fd, b"E\t%d\n" % time.time_ns())
        os.close(self.fd)
        if self.kept is not None:
            os.close(self.kept)


def quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def unquote(text: str) -> str:
    out, chars = [], iter(text)
    for c in chars:
        out.append({"n": "\n", "t": "\t"}.get(next(chars, ""), "\\") if c == "\\" else c)
    return "".join(out)


def process_start(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22): a pid plus this names one process."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[19].decode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


if __name__ == "__main__":
    sys.exit(main(sys.argv))

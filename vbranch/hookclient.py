"""`vbranch hook`, fast: hand the payload to the repository's watcher, which runs the hook warm.

The installed hooks run hookclient.c, its native twin, which hands over to this file whenever the
server does not answer in full; where no C compiler built it, they run this file as
`python -S .../vbranch/hookclient.py hook [--agent NAME]`: no site, standard library only, nothing
slow to import, so a tool call waits for an interpreter start and one round trip to
`.git/vbranch/hook.sock` (hookserver.py).
Whenever the server cannot answer (no watcher, a stale socket, a git directory found
another way), the full hook runs in a fresh interpreter instead, with the same result.

VBRANCH_HOOK_SERVER=off runs the full hook always; =only never does (it fails instead:
for tests and for finding out whether the server answers).

Protocol: one request per connection. The client sends
`AGENT \\0 CLAUDE_PROJECT_DIR \\0 CWD \\n` and the payload, then closes its side; the
server answers `CODE STDOUT_LENGTH \\n`, the hook's stdout, and its stderr.
"""
import os
import sys

SOCKET_NAME = "hook.sock"


def main(argv: list) -> int:
    data = _read_all(0)
    args = argv or ["hook"]
    agent = args[2] if args[1:2] == ["--agent"] and len(args) > 2 else "claude"
    cwd = os.getcwd()
    mode = os.environ.get("VBRANCH_HOOK_SERVER", "auto")
    reply = None
    if mode != "off" and args[0] == "hook" and "GIT_DIR" not in os.environ:
        state_dir = find_state_dir(cwd)
        if state_dir is not None:
            header = "\0".join([agent, os.environ.get("CLAUDE_PROJECT_DIR", ""), cwd]).encode("utf-8", "surrogateescape")
            reply = ask(state_dir, header + b"\n" + data)
    if reply is None:
        if mode == "only":
            _write_all(2, b"vbranch hook: no hook server answered (VBRANCH_HOOK_SERVER=only)\n")
            return 1
        os.chdir(cwd)
        run_full_hook(args, data)  # does not return
    code, out, err = reply
    _write_all(1, out)
    _write_all(2, err)
    return code


def find_state_dir(start: str):
    """`.git/vbranch` of the repository around `start`, if it has a plain .git directory."""
    d = start
    while True:
        git = os.path.join(d, ".git")
        if os.path.isdir(git):
            return os.path.join(git, "vbranch")
        if os.path.lexists(git):
            return None  # a gitfile (worktree, submodule): the full hook resolves it
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def ask(state_dir: str, request: bytes):
    """The server's (code, stdout, stderr), or None if it did not answer in full."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        os.chdir(state_dir)  # connect by a relative name: socket paths may not exceed 107 bytes
        sock.connect(SOCKET_NAME)
        sock.sendall(request)
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        sock.close()
    return parse_reply(b"".join(chunks))


def parse_reply(reply: bytes):
    head, _, rest = reply.partition(b"\n")
    try:
        code, length = (int(field) for field in head.split())
    except ValueError:
        return None  # the server went away before answering
    if length > len(rest):
        return None
    return code, rest[:length], rest[length:]


def run_full_hook(args: list, data: bytes) -> None:
    """Replace this process with `python -m vbranch ARGS`, the payload again on its stdin."""
    fd = payload_fd(data)
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)
    os.execv(sys.executable, [sys.executable, "-m", "vbranch", *args])


def payload_fd(data: bytes) -> int:
    """A descriptor to read `data` from, through no name in the file system.

    No temporary file: a predictable name in /tmp is one another local user can
    take first, and the hook would then crash and let the tool call through. An
    anonymous memory file where the system has one (Linux), else a pipe.
    """
    try:
        fd = os.memfd_create("vbranch-hook", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # not Linux, or refused (old kernel, seccomp)
        return pipe_fd(data)
    try:
        _write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:  # e.g. a memory limit: the pipe needs no space
        os.close(fd)
        return pipe_fd(data)
    return fd


def pipe_fd(data: bytes) -> int:
    """The read end of a pipe that yields `data`: written here when it fits in the pipe
    without blocking (POSIX promises 512 bytes), else by a forked child."""
    r, w = os.pipe()
    if len(data) <= 512:
        _write_all(w, data)
        os.close(w)
        return r
    if os.fork() == 0:
        code = 0
        try:
            os.close(r)
            _write_all(w, data)
        except BaseException:  # the reader went away: nothing to report to anyone
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return r


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

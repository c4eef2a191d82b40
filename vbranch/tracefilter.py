"""The command tracer's seccomp filter, built once with libseccomp (pyseccomp) and cached.

The tracer (tracer.py) runs before every Bash command, so it cannot afford to
import pyseccomp (~50 ms: ctypes.util looks for the library by running
ldconfig). libseccomp is what knows each architecture's syscall numbers and
how to compare arguments in BPF, so we let it build the program once and keep
its raw bytes, with the syscall numbers the tracer decodes, in
`.git/vbranch/tracer-filter`.

The filter asks the supervisor about every syscall that can create, change,
rename or remove a file by path: open/openat only with a write flag (reads
stay in the kernel, which is what keeps the cost near zero), the rest always.
io_uring is refused with ENOSYS: its operations bypass seccomp, and programs
fall back to plain syscalls when it is missing.

It also compiles the supervisor's native loop (supervise.c) when a C compiler
is there; without one, the supervisor's Python loop answers every notification.
"""
from __future__ import annotations

import os
from pathlib import Path

from vbranch.tracer import (
    FILTER_FILE,
    FILTER_VERSION,
    NATIVE_SOURCE,
    native_library,
    read_filter,
)

# syscall -> the (dirfd argument or None, path argument) pairs naming the files it changes.
PATH_ARGS: dict[str, tuple[tuple[int | None, int], ...]] = {
    "open": ((None, 0),),
    "creat": ((None, 0),),
    "openat": ((0, 1),),
    "openat2": ((0, 1),),
    "rename": ((None, 0), (None, 1)),
    "renameat": ((0, 1), (2, 3)),
    "renameat2": ((0, 1), (2, 3)),
    "unlink": ((None, 0),),
    "unlinkat": ((0, 1),),
    "link": ((None, 1),),
    "linkat": ((2, 3),),
    "symlink": ((None, 1),),
    "symlinkat": ((1, 2),),
    "truncate": ((None, 0),),
    "chmod": ((None, 0),),
    "fchmodat": ((0, 1),),
    "fchmodat2": ((0, 1),),
}
# Where open-style calls keep their flags: only a write-open is asked about.
FLAGS_ARG = {"open": 1, "openat": 2}
WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC)


def build() -> bytes:
    """The filter for this machine's architecture, in the cache's format (tracer.read_filter)."""
    import tempfile

    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    arch = sc.system_arch()
    lines = [f"{FILTER_VERSION} {os.uname().machine} {sc.resolve_syscall(arch, 'seccomp')}"]
    for name, pairs in PATH_ARGS.items():
        try:
            nr = sc.resolve_syscall(arch, name)
        except Exception:  # noqa: BLE001 - not a syscall on this architecture (aarch64 has no open)
            continue
        if nr < 0:
            continue
        lines.append(" ".join([str(nr), name, *(f"{'-' if d is None else d}:{p}" for d, p in pairs)]))
        if name in FLAGS_ARG:
            for flag in WRITE_FLAGS:
                f.add_rule(sc.NOTIFY, name, sc.Arg(FLAGS_ARG[name], sc.MASKED_EQ, flag, flag))
        else:
            f.add_rule(sc.NOTIFY, name)
    f.add_rule(sc.ERRNO(38), "io_uring_setup")  # ENOSYS
    with tempfile.TemporaryFile() as out:  # libseccomp writes to a file descriptor
        f.export_bpf(out)
        out.seek(0)
        bpf = out.read()
    return "\n".join(lines).encode() + b"\n\n" + bpf


def ensure(state_dir: Path) -> dict | None:
    """The cached filter, built now if missing or stale; None when libseccomp is unavailable.
    The native loop too, when missing (its failure is only noted: Python's loop does the same work)."""
    build_native()
    cached = read_filter(str(state_dir))
    if cached is not None:
        return cached
    try:
        built = build()
    except (ImportError, RuntimeError, OSError):
        return None  # no libseccomp here: the tracer reports why and commands run untraced
    path = Path(state_dir) / FILTER_FILE
    tmp = path.with_name(f"{FILTER_FILE}.tmp{os.getpid()}")
    tmp.write_bytes(built)
    tmp.replace(path)
    return read_filter(str(state_dir))


def build_native() -> str | None:
    """supervise.c compiled into the per-user cache (tracer.native_library) unless it is there; else why not,
    also written to the `.failed` file beside it, which the tracer's log header then quotes. Tried again
    at every `vbranch init` (a compiler installed since); a command only builds when neither file is there."""
    from vbranch import native

    try:
        target = Path(native_library())
    except OSError as error:
        return f"no native loop ({error})"
    return native.build(NATIVE_SOURCE, target, ["-shared", "-fPIC"], "the native loop")


if __name__ == "__main__":  # `python -m vbranch.tracefilter STATE_DIR`: what the tracer runs when the cache is missing
    import sys

    sys.exit(0 if ensure(Path(sys.argv[1])) else 1)

"""vbranch's native parts, compiled with the system's C compiler into the per-user cache.

Two C sources ship with the package: supervise.c, the command tracer's notification loop
(a library the tracer loads; tracefilter.build_native), and hookclient.c, the hook client
the installed hook command starts (hook_client below). Each is built once per user and
source, named by the source's hash (`~/.cache/vbranch/NAME-<hash>`, `$XDG_CACHE_HOME`): an
upgrade builds a new one and never runs an old build, while a command installed earlier
keeps its own. A build that cannot be made leaves a `.failed` file beside it saying why.
Without a compiler everything still works, through Python.

Standard library only; imported at install, init and doctor time, never on a hook's path.
"""
from __future__ import annotations

import os
from pathlib import Path

HOOK_CLIENT_SOURCE = "hookclient.c"
HOOK_CLIENT_SWITCH = "VBRANCH_HOOK_NATIVE"  # "off": hooks are installed with the Python client (tests, benchmarks)


def cached(source: str, suffix: str = "") -> Path:
    """Where the build of `source` (a file beside this module) is kept: `<cache>/vbranch/<stem>-<hash><suffix>`.
    OSError when there is no cache to keep it in. (tracer.native_library names supervise.c's the same way.)"""
    import hashlib

    cache = os.environ.get("XDG_CACHE_HOME") or (os.environ.get("HOME") and os.path.join(os.environ["HOME"], ".cache"))
    if not cache:
        raise OSError("no HOME or XDG_CACHE_HOME to keep it in")
    digest = hashlib.sha1(Path(__file__).with_name(source).read_bytes()).hexdigest()[:16]
    return Path(cache) / "vbranch" / f"{Path(source).stem}-{digest}{suffix}"


def compiler() -> list[str]:
    """$CC (words, as make reads it), else cc or gcc on PATH; [] when there is none."""
    import shlex
    import shutil

    return shlex.split(os.environ.get("CC", "")) or [c for c in (shutil.which("cc") or shutil.which("gcc"),) if c]


def build(source: str, target: Path, flags: list[str], what: str) -> str | None:
    """`cc -O2 FLAGS` of `source` (beside this module) into `target` unless it is there; else why not, also
    written to the `.failed` file beside it. The build is renamed into place whole, so a concurrent
    build or user never sees half a file."""
    import subprocess

    if target.exists():
        return None
    failed = target.with_suffix(".failed")
    cc = compiler()
    why = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cc:
            why = f"no C compiler (cc or gcc) to build {what}"
        else:
            tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
            proc = subprocess.run([*cc, "-O2", *flags, "-o", str(tmp), str(Path(__file__).with_name(source))],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode == 0:
                tmp.replace(target)
                failed.unlink(missing_ok=True)
                return None
            tmp.unlink(missing_ok=True)
            said = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
            why = f"{' '.join(cc)} could not build {source}: {said[-1] if said else f'status {proc.returncode}'}"
        failed.write_text(why[:300] + "\n")
    except (OSError, subprocess.SubprocessError) as error:
        why = why or f"{what}'s build failed ({error})"
    return why


def hook_client() -> tuple[str | None, str]:
    """The native hook client's path, built now if missing, and "native"; else None and why not.
    Tried again whenever asked (`vbranch install`, doctor): a compiler may have been installed since."""
    if os.environ.get(HOOK_CLIENT_SWITCH) == "off":
        return None, f"{HOOK_CLIENT_SWITCH}=off"
    try:
        target = cached(HOOK_CLIENT_SOURCE)
    except OSError as error:
        return None, f"no native client ({error})"
    why = build(HOOK_CLIENT_SOURCE, target, [], "the native hook client")
    return (None, why) if why else (str(target), "native")

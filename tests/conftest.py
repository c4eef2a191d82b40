"""A temporary-repository factory, a small driver for vbranch's library API, and a watcher fixture."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Hooks start a background file watcher per repository; tests that want one start it themselves.
os.environ.setdefault("VBRANCH_WATCHER", "off")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests use benchmarks.corpus

from vbranch.ops import committing, lifecycle, status
from vbranch.record import recording  # noqa: E402
from vbranch.state.workspace import open_workspace  # noqa: E402
from vbranch.watch import dirtyset


def git(repo: Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def write(repo: Path, path: str, content: bytes | str, mode: int | None = None) -> None:
    full = repo / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(content.encode() if isinstance(content, str) else content)
    if mode is not None:
        full.chmod(mode)


def tree_files(repo: Path, rev: str) -> dict[str, bytes]:
    """Every file of a commit: path -> content (symlinks as their target)."""
    out = {}
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", rev], capture_output=True, check=True).stdout
    for entry in listing.split(b"\0"):
        if entry:
            meta, _, name = entry.partition(b"\t")
            oid = meta.split()[2].decode()
            data = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", oid], capture_output=True, check=True).stdout
            out[name.decode()] = data
    return out


def work_files(repo: Path) -> dict[str, bytes]:
    """Every file of the working tree outside .git."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if not (dirpath == str(repo) and d == ".git")]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, repo)
            out[rel] = os.fsencode(os.readlink(full)) if os.path.islink(full) else Path(full).read_bytes()
    return out


def fingerprint(repo: Path) -> dict[str, tuple]:
    """Content, mode and mtime of every working file: proof that nothing touched them."""
    out = {}
    for rel, data in work_files(repo).items():
        st = os.lstat(repo / rel)
        out[rel] = (hashlib.sha1(data).hexdigest(), st.st_mode, st.st_mtime_ns)
    return out


def lock_files(repo: Path) -> list[str]:
    return [str(p) for p in (repo / ".git").rglob("*.lock")]


def state_lock_is_free(v: VB) -> None:
    """Take and let go the state lock; held by a command planning in this very thread, it times out."""
    ws = v.ws()
    ws.lock.timeout = 1.0
    try:
        with ws.lock:
            pass
    finally:
        ws.close()


def ignore_questions(monkeypatch) -> list[tuple[list[str], bool]]:
    """Spy on gitcli.ignored: each question's paths, and whether a state lock was held when asked."""
    from vbranch.git import gitcli
    from vbranch.state import lock

    asked, real = [], gitcli.ignored

    def ignored(top, paths):
        if paths:
            asked.append((sorted(paths), any(held.locked() for held in lock._in_process.values())))
        return real(top, paths)

    monkeypatch.setattr(gitcli, "ignored", ignored)
    return asked


class VB:
    """Drives one repository's workspace through the library, as the CLI does."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.clock = 0

    def at(self) -> str:
        self.clock += 1
        return f"2026-01-01T00:00:{self.clock:06d}"

    def init(self, target: str | None = None):
        lifecycle.init(self.repo, target, self.at()).close()
        return self

    def ws(self):
        return open_workspace(self.repo)

    def record(self, session: str, *paths: str, branch: str | None = None) -> list[str]:
        ws = self.ws()
        try:
            return recording.record(ws, session, [str(self.repo / p) for p in paths], self.at(), branch=branch)
        finally:
            ws.close()

    def edit(self, session: str, path: str, content: bytes | str, mode: int | None = None) -> None:
        write(self.repo, path, content, mode)
        self.record(session, path)

    def delete(self, session: str, path: str) -> None:
        (self.repo / path).unlink()
        self.record(session, path)

    def status(self):
        ws = self.ws()
        try:
            return status.status(ws, self.at())
        finally:
            ws.close()

    def commit(self, *names: str, message: str | None = None):
        ws = self.ws()
        try:
            return committing.commit(ws, list(names) or None, message, self.at())
        finally:
            ws.close()

    def branch_of(self, session: str) -> str:
        ws = self.ws()
        try:
            return ws.store.branch_by_id(ws.store.session(session).branch_id).name
        finally:
            ws.close()

    def files_of(self, session: str) -> dict[str, bytes]:
        return tree_files(self.repo, f"refs/heads/{self.branch_of(session)}")


@pytest.fixture
def make_repo(tmp_path):
    """make_repo({path: content}) -> a git repository with one commit on main holding those files."""
    counter = [0]

    def make(files: dict[str, bytes | str] | None = None, *, commit: bool = True) -> Path:
        counter[0] += 1
        repo = tmp_path / f"repo{counter[0]}"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.name", "Test")
        git(repo, "config", "user.email", "test@example.invalid")
        for path, content in (files or {}).items():
            write(repo, path, content)
        if commit:
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "--allow-empty", "-m", "base")
        return repo

    return make


@pytest.fixture
def vb(make_repo):
    """A VB driver on a small initialized repository."""

    def start(files: dict[str, bytes | str] | None = None, **kwargs) -> VB:
        return VB(make_repo(files, **kwargs)).init()

    return start


# --- the watcher, as a separate process -------------------------------------------------------

TIMEOUT = 10.0


def wait_for(condition, timeout: float = TIMEOUT, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def with_ws(repo: Path, fn):
    ws = open_workspace(repo)
    try:
        return fn(ws)
    finally:
        ws.close()


def trusted(repo: Path) -> float | None:
    return with_ws(repo, dirtyset.trusted_since)


class Watcher:
    """A `python -m vbranch watch` process started by the test (and only ever stopped by its pid)."""

    def __init__(self, repo: Path, *args: str, prefix: list[str] | None = None):
        self.repo = repo
        self.err_path = repo.parent / f"{repo.name}-watch-{time.monotonic_ns()}.err"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "vbranch", "watch", *args],
            cwd=repo,
            stdout=self.err,
            stderr=subprocess.STDOUT,
        )

    def wait_trusted(self, timeout: float = TIMEOUT) -> float:
        since = wait_for(lambda: self.proc.poll() is None and trusted(self.repo), timeout)
        assert since, f"watcher not trusted in {timeout} s:\n{self.stderr()}"
        return since

    def stderr(self) -> str:
        self.err.flush()
        return self.err_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


@pytest.fixture(autouse=True)
def _no_watcher_outlives_its_test(tmp_path_factory):
    """Stop the watchers a test left running in its repositories (a hook or command started them; a
    session that never ends keeps one alive). Each holds an inotify instance, and a user gets 128:
    a full run leaves ~200, and once they are used up later watchers cannot vouch for anything."""
    yield
    root = str(tmp_path_factory.getbasetemp())
    for pid in _watcher_pids():
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(root):
                os.kill(pid, signal.SIGTERM)
        except OSError:
            continue  # gone already


def _watcher_pids() -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if b"\0vbranch\0watch" in f.read():
                        pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def watcher():
    started: list[Watcher] = []

    def start(repo: Path, *args: str, prefix: list[str] | None = None, trusted: bool = True) -> Watcher:
        w = Watcher(repo, *args, prefix=prefix)
        started.append(w)
        if trusted:
            w.wait_trusted()
        return w

    yield start
    for w in started:
        w.stop()

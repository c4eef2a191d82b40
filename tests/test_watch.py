"""The watcher (vbranch/watch/), run as a real process against real repositories.

Changes are made by other processes, as an editor or a build would; the test
reads the dirty set back from the store. Timing is only ever checked as "the
change was recorded no earlier than it was made and within a second of it";
everything else polls with a generous timeout.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT, git, trusted, wait_for, with_ws, write
from tests.hookdriver import Session
from vbranch.cli import watch
from vbranch.state.workspace import ensure_session, open_workspace
from vbranch.watch import dirtyset, ignores, inotify, treesnap
from vbranch.watch.treewalk import walk

PROC_INOTIFY = Path("/proc/sys/fs/inotify")

pytestmark = pytest.mark.skipif(inotify.UNAVAILABLE is not None, reason=str(inotify.UNAVAILABLE))


# --- helpers ------------------------------------------------------------------------------------


def dirty(repo: Path, since: float = 0.0) -> dict[str, float]:
    return with_ws(repo, lambda ws: ws.store.dirty_since(since))


def live(repo: Path) -> bool:
    return with_ws(repo, dirtyset.watcher_live)




def outside(repo: Path, code: str) -> tuple[float, float]:
    """Run Python code in another process in the repository; the times just before and after."""
    before = time.time()
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True)
    return before, time.time()


def assert_all_reported(repo: Path, paths: set[str], since: float, timeout: float = TIMEOUT) -> dict[str, float]:
    def complete():
        d = dirty(repo, since)
        return d if paths <= set(d) else None

    seen = wait_for(complete, timeout, step=0.1)
    if not seen:
        missing = sorted(paths - set(dirty(repo, since)))
        raise AssertionError(f"{len(missing)} of {len(paths)} paths never reported, e.g. {missing[:5]}")
    return seen


# --- the dirty set ------------------------------------------------------------------------------


def test_outside_write_is_dirty_within_a_second(vb, watcher):
    repo = vb({"a.txt": "one\n"}).repo
    watcher(repo)
    for name in ("a.txt", "new.txt", "dir/deeper/new.txt"):
        before, after = outside(
            repo, f"import os; os.makedirs(os.path.dirname({name!r}) or '.', exist_ok=True); open({name!r}, 'a').write('x\\n')"
        )
        seen = wait_for(lambda: dirty(repo, before).get(name))
        assert seen, f"{name} not reported"
        assert before <= seen <= after + 1.0, (name, before, seen, after)


def test_delete_and_rename_report_both_ends(vb, watcher):
    repo = vb({"a.txt": "a\n", "b.txt": "b\n", "d/x.txt": "x\n", "d/e/y.txt": "y\n", "m/z.txt": "z\n"}).repo
    watcher(repo)
    start, _ = outside(
        repo,
        "import os, shutil\n"
        "os.remove('a.txt'); os.rename('b.txt', 'c.txt')\n"
        "os.rename('d', 'd2')\n"  # a directory moved inside the tree
        "shutil.move('m', os.path.join('..', 'moved-out-' + str(os.getpid())))\n",  # and one moved out of it
    )
    assert_all_reported(repo, {"a.txt", "b.txt", "c.txt", "d/x.txt", "d/e/y.txt", "d2/x.txt", "d2/e/y.txt", "m/z.txt"}, start)
    # No directory paths, only files.
    assert not {"d", "d2", "m", "d/e", "d2/e"} & set(dirty(repo))


def test_ignored_and_git_paths_are_left_out(vb, watcher):
    repo = vb({".gitignore": "build/\n*.log\n!keep.log\n", "src/a.py": "a\n", "tracked.log": "t\n"}).repo
    git(repo, "add", "-f", "tracked.log")
    watcher(repo)
    start, _ = outside(
        repo,
        "import os\n"
        "os.makedirs('build/deep', exist_ok=True)\n"
        "open('build/deep/o.o', 'w').write('x'); open('x.log', 'w').write('x'); open('src/b.log', 'w').write('x')\n"
        "open('keep.log', 'w').write('x'); open('tracked.log', 'a').write('more')\n"
        "open('.git/stray', 'w').write('x')\n"
        "open('src/last.py', 'w').write('x')\n",
    )
    git(repo, "status")  # git's own writes under .git
    seen = assert_all_reported(repo, {"src/last.py", "keep.log", "tracked.log"}, start)
    time.sleep(0.3)  # anything else would have been flushed by now
    seen = dirty(repo, start)
    assert not [p for p in seen if p.startswith(("build", ".git")) or p in ("x.log", "src/b.log")], seen


def test_unignored_directory_is_reported_and_watched(vb, watcher):
    repo = vb({".gitignore": "gen/\n", "a.txt": "a\n"}).repo
    write(repo, "gen/one.txt", "1\n")
    write(repo, "gen/sub/two.txt", "2\n")
    watcher(repo)
    start, _ = outside(repo, "open('.gitignore', 'w').write('')")
    assert_all_reported(repo, {".gitignore", "gen/one.txt", "gen/sub/two.txt"}, start)
    later, _ = outside(repo, "open('gen/sub/three.txt', 'w').write('3')")
    assert_all_reported(repo, {"gen/sub/three.txt"}, later)


def many_repo(vb) -> Path:
    repo = vb({"a.txt": "a\n", **{f"t/file{i}.txt": f"line {i}\n" for i in range(10)}}).repo
    (repo / "many").mkdir()
    return repo


MANY = 10_000
CREATE_MANY = (
    f"for i in range({MANY}):\n"
    "    with open(f'many/f{i:05d}.txt', 'w') as f: f.write('x')\n"
    "for i in range(10):\n"
    "    with open(f't/file{i}.txt', 'a') as f: f.write('edited\\n')\n"
)
MANY_PATHS = {f"many/f{i:05d}.txt" for i in range(MANY)} | {f"t/file{i}.txt" for i in range(10)}


def test_ten_thousand_files_and_ten_edits(vb, watcher):
    repo = many_repo(vb)
    watcher(repo)
    start, _ = outside(repo, CREATE_MANY)
    seen = assert_all_reported(repo, MANY_PATHS, start, timeout=60)
    assert min(seen[p] for p in MANY_PATHS) >= start


@pytest.fixture
def small_inotify_queue():
    """fs.inotify.max_queued_events lowered while a watcher starts (it applies to new inotify instances)."""
    knob = PROC_INOTIFY / "max_queued_events"
    try:
        saved = knob.read_text()
        knob.write_text(saved)
    except OSError as error:
        pytest.skip(f"cannot change {knob} ({error.strerror}): needs root on Linux")
    lowered = {"on": False}

    def lower():
        knob.write_text("64\n")
        lowered["on"] = True

    def restore():
        if lowered["on"]:
            knob.write_text(saved)
            lowered["on"] = False

    try:
        yield lower, restore
    finally:
        restore()


def test_ten_thousand_files_under_forced_queue_overflow(vb, watcher, small_inotify_queue):
    lower, restore = small_inotify_queue
    repo = many_repo(vb)
    lower()
    try:
        w = watcher(repo)
    finally:
        restore()  # the watcher's instance keeps its 64-event queue
    start, _ = outside(repo, CREATE_MANY)
    seen = assert_all_reported(repo, MANY_PATHS, start, timeout=60)
    assert min(seen[p] for p in MANY_PATHS) >= start
    assert "overflowed" in w.stderr()
    assert int(with_ws(repo, lambda ws: ws.store.get_meta(dirtyset.META_OVERFLOWS))) >= 1
    # Trusted again after the rescan, from the watcher's start, and answering barriers.
    assert wait_for(lambda: trusted(repo)) is not None
    assert with_ws(repo, dirtyset.settle)
    # And it still sees the next change.
    later, _ = outside(repo, "open('after.txt', 'w').write('x')")
    assert_all_reported(repo, {"after.txt"}, later)


def test_watch_limit_falls_back_to_polling(vb, watcher, tmp_path):
    """Real ENOSPC: the watcher runs in a user namespace whose inotify watch limit is 3."""
    probe = subprocess.run(
        ["unshare", "-U", "-r", "sh", "-c", "echo 3 > /proc/sys/user/max_inotify_watches"], capture_output=True
    )
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"cannot make a user namespace with a lower watch limit: {probe.stderr.decode().strip()}")
    files = {f"d{i}/sub/f.txt": f"{i}\n" for i in range(8)}
    repo = vb({"a.txt": "a\n", **files}).repo
    script = 'echo 3 > /proc/sys/user/max_inotify_watches && exec "$@"'
    w = watcher(repo, prefix=["unshare", "-U", "-r", "sh", "-c", script, "sh"])
    assert "watch limit" in w.stderr()
    assert int(with_ws(repo, lambda ws: ws.store.get_meta(dirtyset.META_POLLED))) > 0
    assert with_ws(repo, dirtyset.settle) is False  # polled directories: the watcher cannot vouch for "now"
    start, _ = outside(
        repo,
        "import os\n"
        "open('d7/sub/f.txt', 'a').write('edit'); open('d6/sub/new.txt', 'w').write('new')\n"
        "os.remove('d5/sub/f.txt'); os.makedirs('d4/sub/added/x'); open('d4/sub/added/x/y.txt', 'w').write('y')\n"
        "open('a.txt', 'a').write('top')\n",
    )
    assert_all_reported(repo, {"d7/sub/f.txt", "d6/sub/new.txt", "d5/sub/f.txt", "d4/sub/added/x/y.txt", "a.txt"}, start)


# --- one watcher, and knowing whether it is alive -----------------------------------------------


def test_single_instance(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo
    first = watcher(repo)
    second = subprocess.run([sys.executable, "-m", "vbranch", "watch"], cwd=repo, capture_output=True, timeout=30)
    assert second.returncode == watch.WatcherRunning.exit_code
    assert f"pid {first.proc.pid}" in second.stderr.decode() + second.stdout.decode()
    assert watch.start_background(repo) is None
    assert first.proc.poll() is None and live(repo)


def test_sigkill_is_detected(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo
    w = watcher(repo)
    assert live(repo)
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(timeout=10)
    # The heartbeat in the store is still fresh, but the lock died with the process.
    assert not live(repo)
    assert trusted(repo) is None
    assert with_ws(repo, dirtyset.watcher_pid) is None


def test_a_crashed_watcher_is_replaced_at_the_next_tool_call(vb, watcher, monkeypatch):
    repo = vb({"a.txt": "a\n"}).repo
    monkeypatch.delenv("VBRANCH_WATCHER", raising=False)
    session = Session(repo, "s1")
    w = watcher(repo)
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(timeout=10)
    assert not live(repo)
    session.bash("ls")
    try:
        # live (its lock held) comes a moment before it has written its pid
        assert wait_for(lambda: live(repo) and with_ws(repo, dirtyset.watcher_pid), 15)
        replacement = with_ws(repo, dirtyset.watcher_pid)
        assert replacement not in (None, w.proc.pid)
    finally:
        assert with_ws(repo, watch.stop_watcher)
    # A watcher that stopped cleanly (idle, or asked to) is not restarted by tool calls.
    session.bash("ls")
    time.sleep(0.5)
    assert not live(repo) and with_ws(repo, dirtyset.watcher_pid) is None


def test_a_slow_watcher_is_not_taken_for_a_crashed_one(vb, watcher, monkeypatch):
    """On a loaded machine the heartbeat can be late while the watcher lives (it holds its lock):
    a tool call must leave it be, not clear its pid and start another one that cannot run."""
    repo = vb({"a.txt": "a\n"}).repo
    monkeypatch.delenv("VBRANCH_WATCHER", raising=False)
    from vbranch.watch import control

    started = []
    monkeypatch.setattr(control, "start_background", lambda *a, **k: started.append(a))
    w = watcher(repo)
    assert wait_for(lambda: with_ws(repo, dirtyset.watcher_pid) == w.proc.pid)
    w.proc.send_signal(signal.SIGSTOP)  # its heartbeat goes stale; its lock stays held
    try:
        assert wait_for(lambda: not live(repo), timeout=dirtyset.HEARTBEAT_FRESH + 3)
        Session(repo, "s1").bash("ls")
        assert started == [] and with_ws(repo, dirtyset.watcher_pid) == w.proc.pid
    finally:
        w.proc.send_signal(signal.SIGCONT)
    assert wait_for(lambda: live(repo))


def test_hung_watcher_is_not_trusted(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo
    w = watcher(repo)
    w.proc.send_signal(signal.SIGSTOP)
    try:
        assert wait_for(lambda: not live(repo), timeout=dirtyset.HEARTBEAT_FRESH + 3)
        assert trusted(repo) is None
    finally:
        w.proc.send_signal(signal.SIGCONT)
    assert wait_for(lambda: live(repo))


def test_idle_exit_waits_for_live_sessions(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo

    def session(ended: bool):
        def go(ws):
            with ws.lock, ws.store.tx():
                ensure_session(ws, "s1", "2026-01-01T00:00:00")
                if ended:
                    ws.store.end_session("s1", "2026-01-01T00:00:01")
        with_ws(repo, go)

    session(ended=False)
    w = watcher(repo, "--idle-exit", "1")
    time.sleep(2.5)
    assert w.proc.poll() is None, "exited with a live session"
    session(ended=True)
    assert w.proc.wait(timeout=TIMEOUT) == 0
    assert "no live session" in w.stderr()
    assert not live(repo)


def test_idle_exit_counts_file_changes(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo
    w = watcher(repo, "--idle-exit", "1.5")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # keep it busy past its idle limit
        outside(repo, "open('a.txt', 'a').write('x')")
        time.sleep(0.3)
    assert w.proc.poll() is None
    assert w.proc.wait(timeout=TIMEOUT) == 0


def test_start_background_and_stop(vb):
    repo = vb({"a.txt": "a\n"}).repo
    pid = watch.start_background(repo, idle_exit=30, wait=TIMEOUT)
    try:
        assert pid is not None
        assert wait_for(lambda: trusted(repo))
        assert with_ws(repo, dirtyset.watcher_pid) == pid
        assert (repo / ".git" / "vbranch" / watch.LOG_NAME).exists()
        start, _ = outside(repo, "open('b.txt', 'w').write('b')")
        assert_all_reported(repo, {"b.txt"}, start)
        assert watch.start_background(repo) is None
    finally:
        assert with_ws(repo, watch.stop_watcher)
    assert not live(repo)


def test_cmd_watch_background(vb, capsys):
    import argparse

    repo = vb({"a.txt": "a\n"}).repo
    args = argparse.Namespace(C=str(repo), background=True, idle_exit=30.0)
    try:
        assert watch.cmd_watch(args) == 0
        assert "watcher started" in capsys.readouterr().out
        assert live(repo)
        assert watch.cmd_watch(args) == 0
        assert "already running" in capsys.readouterr().out
    finally:
        assert with_ws(repo, watch.stop_watcher)


def test_torn_down_workspace_stops_the_watcher(vb, watcher):
    from vbranch.ops.lifecycle import teardown

    repo = vb({"a.txt": "a\n"}).repo
    w = watcher(repo)
    teardown(open_workspace(repo), "2026-01-01T00:00:09")
    assert w.proc.wait(timeout=TIMEOUT) == 0


def test_not_initialized(make_repo):
    repo = make_repo({"a.txt": "a\n"})
    proc = subprocess.run([sys.executable, "-m", "vbranch", "watch"], cwd=repo, capture_output=True, timeout=30)
    assert proc.returncode == 3
    assert not (repo / ".git" / "vbranch" / dirtyset.LOCK_NAME).exists()


# --- the pieces ---------------------------------------------------------------------------------


def test_snapshot_subtrees():
    snap = treesnap.Snapshot()
    for path in ("a", "d/x", "d/e/y", "d/e/f/z", "dd/w"):
        snap.set(path, (1,))
    assert sorted(snap.pop_subtree("d")) == ["d/e/f/z", "d/e/y", "d/x"]
    assert sorted(snap.files) == ["a", "dd/w"]
    assert snap.dirs_in("") == ["dd"]
    assert snap.pop("a") and not snap.pop("a")
    assert snap.files_in("dd") == ["dd/w"]


def test_one_walk_breadth_first_with_one_batch_per_level(tmp_path):
    for path in ("a", "d/x", "d/e/y", "skip/z", ".git/HEAD", "sub/.git", "sub/w"):
        write(tmp_path, path, "x")
    (tmp_path / "link").symlink_to("d")  # a symlink is a file here: never followed
    batches = []

    def descend(subdirs):
        batches.append(sorted(os.path.relpath(s, tmp_path) for s in subdirs))
        return [s for s in subdirs if not s.endswith("skip")]

    seen = {os.path.relpath(d, tmp_path): sorted(e.name for e in files) for d, files, _ in walk([str(tmp_path)], descend)}
    assert seen == {".": ["a", "link"], "d": ["x"], "sub": ["w"], "d/e": ["y"]}  # no .git, directory or gitfile
    assert batches == [["d", "skip", "sub"], ["d/e"]]
    # bytes in, bytes out (the watch group's paths); a directory that cannot be listed says so
    d = os.fsencode(tmp_path / "d")
    assert [(top, [e.name for e in files], subdirs) for top, files, subdirs in walk([d], lambda s: [])] == [
        (d, [b"x"], [os.path.join(d, b"e")])
    ]
    assert list(walk([str(tmp_path / "gone")], descend)) == [(str(tmp_path / "gone"), None, None)]


def test_tree_paths():
    from vbranch.watch.monitor import TreePaths

    paths = TreePaths(Path("/r"), Path("/r/.git"))
    assert paths.rel("/r/a/b") == "a/b" and paths.full("a/b") == "/r/a/b" and paths.full("") == "/r"
    assert paths.rel("/r") is None and paths.rel("/rx/a") is None and paths.rel("/r/sub/.git/x") is None
    assert paths.under_top("/r") == "" and paths.under_top("/r/a") == "a"
    inside = TreePaths(Path("/r"), Path("/r/gitdir"))  # a git dir inside the tree, not called .git
    assert inside.rel("/r/gitdir/HEAD") is None and inside.rel("/r/gitdirx") == "gitdirx"


def test_a_poll_pass_finds_what_changed_and_takes_in_new_directories(tmp_path, monkeypatch):
    from vbranch.watch.monitor import Poller, TreePaths

    monkeypatch.setattr(treesnap, "RACY_NS", 0)  # files written just now compare by their stat, not as racy
    for path in ("a", "d/x", "d/gone/y", "skip/z"):
        write(tmp_path, path, "1")
    poller = Poller(TreePaths(tmp_path, tmp_path / ".git"), is_watched=lambda full: False,
                    not_skipped=lambda subdirs: [s for s in subdirs if not s.endswith("skip")])
    poller.dirs.add("")  # the whole tree could not be watched
    snap = treesnap.Snapshot()
    assert poller.changes(snap) == {"a", "d/x", "d/gone/y"}  # all new to the snapshot
    assert poller.dirs == {"", "d", "d/gone"}
    assert poller.changes(snap) == set()
    write(tmp_path, "a", "longer")
    shutil.rmtree(tmp_path / "d" / "gone")
    write(tmp_path, "d/new/n", "n")
    assert poller.changes(snap) == {"a", "d/gone/y", "d/new/n"}
    assert poller.dirs == {"", "d", "d/new"}
    assert poller.due(0.0)
    poller.passed(100.0, took=0.5)  # a slow pass: ten times as long until the next
    assert not poller.due(104.9) and poller.due(105.0)


def test_ignore_oracle(make_repo):
    repo = make_repo({".gitignore": "build/\n*.pyc\n!keep.pyc\nforced/\n", "src/a.py": "a\n"})
    write(repo, "forced/t", "t")
    git(repo, "add", "-f", "forced/t")
    for path in ("build/o.o", "keep.pyc", "src/x.pyc", "forced/u"):
        write(repo, path, "x")
    oracle = ignores.IgnoreOracle(repo, repo / ".git")
    try:
        assert oracle.ignored_dirs(["build", "src", "forced"]) == {"build"}  # forced/ holds a tracked file
        paths = ["build/o.o", "build/gone.o", "keep.pyc", "src/x.pyc", "src/a.py", "forced/t", "forced/u", "weird\nname"]
        assert oracle.ignored(paths) == {"build/o.o", "build/gone.o", "src/x.pyc", "forced/u"}
        assert oracle.ignored(["build/again.o"]) == {"build/again.o"}  # from the directory's answer
        # The index changes (every commit changes it): an ignored directory stays ignored without
        # the whole index's directories listed, until a file in it is tracked.
        write(repo, "src/b.py", "b")
        git(repo, "add", "src/b.py")
        assert oracle.changed()
        assert oracle.ignored_dirs(["build"]) == {"build"} and oracle.tracked is None
        git(repo, "add", "-f", "build/o.o")
        assert oracle.changed()
        assert oracle.ignored_dirs(["build"]) == set()
        assert oracle.ignored(["build/o.o"]) == set()
        git(repo, "rm", "-q", "--cached", "build/o.o")
        assert oracle.changed()
        assert oracle.ignored_dirs(["build"]) == {"build"}
        # A path git refuses does not take the others down with it.
        (repo / "link").symlink_to("src")
        assert oracle.ignored(["link/x.pyc", "src/y.pyc"]) >= {"src/y.pyc"}
        (repo / ".gitignore").write_text("")
        oracle.invalidate()
        assert oracle.ignored_dirs(["build"]) == set()
    finally:
        oracle.close()


# --- watch --status / --stop ----------------------------------------------------------------------


def _watch_args(repo: Path, **kw):
    import argparse

    return argparse.Namespace(**{"C": str(repo), "background": False, "idle_exit": None,
                                 "status": False, "stop": False, "json": False, **kw})


def test_status_of_a_live_watcher_and_of_none(vb, watcher):
    repo = vb({"a.txt": "a\n"}).repo
    assert with_ws(repo, dirtyset.watcher_status)["state"] == "stopped"
    w = watcher(repo)
    write(repo, "b.txt", "b\n")
    assert wait_for(lambda: "b.txt" in dirty(repo))
    info = with_ws(repo, dirtyset.watcher_status)
    assert info["state"] == "trusted" and info["live"]
    assert info["pid"] == w.proc.pid
    assert info["started"] is not None and info["trusted_since"] is not None
    assert info["socket"].endswith("hook.sock") and info["socket_present"]
    assert info["dirty"] >= 1
    lines = watch.status_lines(info)
    assert lines[0] == f"watcher: trusted (pid {w.proc.pid})"
    assert any("hook socket" in line for line in lines)
    # a watcher whose heartbeat is stale (seen from 10 s later) is hung, not live
    hung = with_ws(repo, lambda ws: dirtyset.watcher_status(ws, clock=lambda: time.time() + 10))
    assert hung["state"] == "not responding" and not hung["live"] and hung["pid"] == w.proc.pid


def test_status_and_stop_commands(vb, watcher, capsys):
    import json

    repo = vb({"a.txt": "a\n"}).repo
    w = watcher(repo)
    assert watch.cmd_watch(_watch_args(repo, status=True, json=True)) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["state"] == "trusted" and info["pid"] == w.proc.pid
    assert watch.cmd_watch(_watch_args(repo, stop=True)) == 0
    assert f"pid {w.proc.pid}) stopped" in capsys.readouterr().out
    assert w.proc.wait(timeout=TIMEOUT) == 0  # a clean exit, not a kill
    assert not live(repo)
    assert with_ws(repo, dirtyset.watcher_status)["state"] == "stopped"
    assert watch.cmd_watch(_watch_args(repo, stop=True)) == 0
    assert "no watcher is running" in capsys.readouterr().out
    assert watch.cmd_watch(_watch_args(repo, status=True)) == 0
    assert "not running" in capsys.readouterr().out


def test_status_and_stop_as_a_process(vb):
    """`vbranch watch --status/--stop` run as the watcher is (`python -m vbranch watch`)."""
    import json

    repo = vb({"a.txt": "a\n"}).repo
    pid = watch.start_background(repo, idle_exit=30, wait=TIMEOUT)
    try:
        assert wait_for(lambda: trusted(repo))
        proc = subprocess.run([sys.executable, "-m", "vbranch", "watch", "--status", "--json"], cwd=repo,
                              capture_output=True, timeout=30)
        assert proc.returncode == 0 and json.loads(proc.stdout)["pid"] == pid
        proc = subprocess.run([sys.executable, "-m", "vbranch", "watch", "--stop"], cwd=repo, capture_output=True, timeout=30)
        assert proc.returncode == 0 and b"stopped" in proc.stdout
        assert not live(repo)
    finally:
        with_ws(repo, watch.stop_watcher)


# --- the watcher's modules: who imports whom (the layers themselves: pyproject.toml, tests/test_layers.py) ---


def test_starting_a_watcher_loads_neither_watchdog_nor_the_hooks():
    """The handler imports watch.control to start a watcher: that must not load the watcher, watchdog or the hooks again."""
    code = "import sys, vbranch.watch.control; print(' '.join(m for m in sys.modules if m.startswith(('vbranch', 'watchdog'))))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert not loaded & {"vbranch.hooks.handler", "vbranch.agents", "vbranch.watch.monitor", "vbranch.watch.process", "vbranch.watch.hookserver",
                         "vbranch.watch.inotify", "watchdog"}

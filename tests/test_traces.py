"""Reading and pruning the tracer's logs (record/traces.py), on logs written by hand in its format."""
from __future__ import annotations

import os
import time
from pathlib import Path

from vbranch.record import traces
from vbranch.tracer import TRACE_DIR


def write_log(state: Path, name: str, session: str, paths: list[str], ended: bool = True) -> Path:
    folder = state / TRACE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"H\t{session}\tsha\t{os.getpid()}\t1\t{time.time()!r}\t1\t"]
    lines += [f"W\t{time.time_ns()}\ta\t{p}" for p in paths]
    lines += [f"E\t{time.time_ns()}"] if ended else []
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_prune_drops_done_logs_last_written_long_ago_and_keeps_the_rest(tmp_path):
    old = write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    old.with_suffix(".v").write_bytes(b"kept version")
    fresh = write_log(tmp_path, "2-1.done", "s2", ["b.txt"])
    live = write_log(tmp_path, "3-1.log", "s3", ["c.txt"], ended=False)
    for path in (old, old.with_suffix(".v"), live):
        age(path, traces.DONE_KEPT + 60)
    now = time.time()
    traces.prune(tmp_path, now)
    assert sorted(p.name for p in (tmp_path / TRACE_DIR).iterdir()) == ["2-1.done", "3-1.log"]
    assert fresh.exists() and live.exists()
    # A process prunes a folder at most once a PRUNE_EVERY: a fold runs at nearly every hook.
    age(fresh, traces.DONE_KEPT + 60)
    traces.prune(tmp_path, now + traces.PRUNE_EVERY / 2)
    assert fresh.exists()
    traces.prune(tmp_path, now + traces.PRUNE_EVERY)
    assert not fresh.exists()


def test_done_logs_are_parsed_once_and_dropped_when_gone(tmp_path, monkeypatch):
    """Done logs never change: read again, the parse is not repeated; one removed is forgotten."""
    write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    write_log(tmp_path, "2-1.log", "s2", ["b.txt"], ended=False)
    assert [t.paths for t in traces.read_all(tmp_path, done=True)] == [frozenset({"a.txt"}), frozenset({"b.txt"})]
    parsed = []
    real = traces._read
    monkeypatch.setattr(traces, "_read", lambda path: parsed.append(path.name) or real(path))
    assert [t.session for t in traces.read_all(tmp_path, done=True)] == ["s1", "s2"]
    assert parsed == ["2-1.log"]  # a live log is read every time: it grows
    (tmp_path / TRACE_DIR / "1-1.done").unlink()
    assert [t.session for t in traces.read_all(tmp_path, done=True)] == ["s2"]
    assert traces._DONE[str(tmp_path / TRACE_DIR)] == {}
    assert [t.session for t in traces.read_all(tmp_path)] == ["s2"]  # without `done`, done logs are not read at all


def test_the_parsed_logs_a_reader_sees_are_never_changed_under_it(tmp_path):
    """The hook server reads logs in many threads at once: one iterating the parsed logs while another
    added one failed a PostToolUse ("dictionary changed size during iteration", seen in the soak). A
    folder's parsed logs are published whole and never changed in place, which this pins down."""
    write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    traces.read_all(tmp_path, done=True)
    published = traces._DONE[str(tmp_path / TRACE_DIR)]
    before = dict(published)
    write_log(tmp_path, "2-1.done", "s2", ["b.txt"])
    (tmp_path / TRACE_DIR / "1-1.done").unlink()
    assert [t.session for t in traces.read_all(tmp_path, done=True)] == ["s2"]
    assert published == before and traces._DONE[str(tmp_path / TRACE_DIR)] is not published


def test_many_threads_read_while_logs_come_and_go(tmp_path):
    """The same for real: readers in threads while logs are added and removed; every read sees whole logs.
    Threads switch every microsecond here (not every 5 ms), so that they interleave inside reads."""
    import sys
    import threading


    for i in range(40):
        write_log(tmp_path, f"{i}-1.done", f"s{i}", [f"f{i}.txt"])
    stop, failures = threading.Event(), []

    def reader():
        try:
            while not stop.is_set():
                for trace in traces.read_all(tmp_path, done=True):
                    assert trace.paths == {f"f{trace.session[1:]}.txt"}
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            failures.append(error)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for i in range(40, 240):
            write_log(tmp_path, f"{i}-1.done", f"s{i}", [f"f{i}.txt"])
            (tmp_path / TRACE_DIR / f"{i - 40}-1.done").unlink()
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(previous)
    assert failures == []

"""Reading and pruning the tracer's logs (record/traces.py), on logs written by hand in its format."""
from __future__ import annotations

import os
import time
from collections import namedtuple
from pathlib import Path

import pytest

from vbranch.record import traces
from vbranch.tracer import TRACE_DIR


def write_log(state: Path, name: str, session: str, paths: list[str], ended: bool = True, ended_at: float | None = None) -> Path:
    folder = state / TRACE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"H\t{session}\tsha\t{os.getpid()}\t1\t{time.time()!r}\t1\t"]
    lines += [f"W\t{time.time_ns()}\ta\t{p}" for p in paths]
    lines += [f"E\t{int((ended_at or time.time()) * 1e9)}"] if ended else []
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


Window = namedtuple("Window", "session started")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_prune_moves_done_logs_no_open_window_claims_and_keeps_the_rest(tmp_path):
    """Every hook lists the trace folder: it holds live logs and the done ones an open window may claim."""
    opened = time.time() - 5
    claimed = write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    claimed.with_suffix(".v").write_bytes(b"kept version")
    other_session = write_log(tmp_path, "2-1.done", "s2", ["b.txt"])
    other_session.with_suffix(".v").write_bytes(b"b's version")
    live = write_log(tmp_path, "3-1.log", "s2", ["c.txt"], ended=False)
    write_log(tmp_path, "4-1.log", "s1", ["d.txt"])  # ended, not folded yet: not done
    windows = [Window("s1", opened), Window("s3", opened)]
    asked = []
    traces.prune(tmp_path, lambda: asked.append(1) or windows)
    folder = tmp_path / TRACE_DIR
    assert listing(folder) == ["1-1.done", "1-1.v", "3-1.log", "4-1.log"]
    assert listing(folder / traces.KEPT_DIR) == ["2-1.done", "2-1.v"]
    assert (folder / traces.KEPT_DIR / "2-1.v").read_bytes() == b"b's version"
    assert live.exists() and asked == [1]
    # A window of its session opened after the command started does not claim it (of_window's rule).
    traces.prune(tmp_path, lambda: [Window("s1", time.time() + traces.SLACK + 1)])
    assert listing(folder) == ["3-1.log", "4-1.log"]
    assert listing(folder / traces.KEPT_DIR) == ["1-1.done", "1-1.v", "2-1.done", "2-1.v"]


def test_a_claimed_log_that_ended_more_than_done_kept_ago_moves_all_the_same(tmp_path):
    write_log(tmp_path, "1-1.done", "s1", ["a.txt"], ended_at=time.time() - traces.DONE_KEPT - 60)
    write_log(tmp_path, "2-1.done", "s1", ["b.txt"])
    traces.prune(tmp_path, lambda: [Window("s1", 0.0)])
    assert listing(tmp_path / TRACE_DIR) == ["2-1.done"]


def test_prune_asks_for_the_windows_after_listing_the_folder(tmp_path, monkeypatch):
    """A log listed as done ended after its window opened: windows read after the listing include it
    if it is still open. Read before, a command that opened its window, ran and was folded in between
    would lose its log while its PostToolUse is still to come."""
    write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    order = []
    real = os.listdir
    monkeypatch.setattr(traces.os, "listdir", lambda path: order.append("list") or real(path))
    traces.prune(tmp_path, lambda: order.append("windows") or [Window("s1", 0.0)])
    assert order[:2] == ["list", "windows"]


def test_prune_asks_for_no_windows_when_nothing_is_done(tmp_path):
    write_log(tmp_path, "1-1.log", "s1", ["a.txt"], ended=False)
    traces.prune(tmp_path, lambda: pytest.fail("windows read with no done log"))


def test_kept_logs_go_done_kept_after_their_last_write_at_most_every_prune_every(tmp_path, monkeypatch):
    monkeypatch.setattr(traces, "_EXPIRED_AT", {})
    kept = tmp_path / TRACE_DIR / traces.KEPT_DIR
    old = write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    old.with_suffix(".v").write_bytes(b"old version")
    fresh = write_log(tmp_path, "2-1.done", "s2", ["b.txt"])
    now = time.time()
    traces.prune(tmp_path, lambda: [], now)
    for name in ("1-1.done", "1-1.v"):
        age(kept / name, traces.DONE_KEPT + 60)
    traces.prune(tmp_path, lambda: [], now + traces.PRUNE_EVERY / 2)
    assert listing(kept) == ["1-1.done", "1-1.v", "2-1.done"]  # a stat per kept log: at most once a PRUNE_EVERY
    traces.prune(tmp_path, lambda: [], now + traces.PRUNE_EVERY)
    assert listing(kept) == ["2-1.done"]
    age(kept / fresh.name, traces.DONE_KEPT + 60)
    traces.prune(tmp_path, lambda: [], now + 2 * traces.PRUNE_EVERY)
    assert listing(kept) == []


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

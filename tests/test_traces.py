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
    traces.prune(tmp_path)
    assert sorted(p.name for p in (tmp_path / TRACE_DIR).iterdir()) == ["2-1.done", "3-1.log"]
    assert fresh.exists() and live.exists()


def test_a_done_log_read_again_is_what_its_file_holds(tmp_path):
    """Done logs are parsed once per process, but one rewritten or removed is not served from memory."""
    path = write_log(tmp_path, "1-1.done", "s1", ["a.txt"])
    assert [t.paths for t in traces.read_all(tmp_path, done=True)] == [frozenset({"a.txt"})]
    write_log(tmp_path, "1-1.done", "s1", ["a.txt", "b.txt"])
    age(path, 5)  # another mtime, whatever the clock's granularity
    assert [t.paths for t in traces.read_all(tmp_path, done=True)] == [frozenset({"a.txt", "b.txt"})]
    path.unlink()
    assert traces.read_all(tmp_path, done=True) == []
    assert not [p for p in traces._DONE if p.startswith(str(tmp_path))]
    assert traces.read_all(tmp_path) == []  # without `done`, done logs are not read at all

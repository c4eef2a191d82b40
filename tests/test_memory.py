"""The watcher gives the memory malloc holds free back to the system (watch/memory.py)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from tests.conftest import VB, wait_for
from vbranch.watch import memory
from vbranch.watch import process as watchproc

pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="malloc_trim and mallopt are glibc's")

# Half-kept heap: 2,400 blocks of 48 KiB (below malloc's mmap threshold, so on the heap), every
# eighth kept. What is freed lies between kept blocks: free() cannot shrink the heap past them.
FRAGMENT = textwrap.dedent("""
    import sys
    from vbranch.watch import memory

    def anon():
        return int([l for l in open("/proc/self/status") if l.startswith("RssAnon")][0].split()[1])

    blocks = [bytearray(48 << 10) for _ in range(2400)]
    kept = blocks[::8]
    del blocks
    before = anon()
    memory.trim()
    print(before, anon())
""")


def test_trim_gives_back_what_was_freed_between_kept_blocks():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True).stdout
    before, after = (int(n) for n in out.split())
    freed = 2400 * 7 // 8 * 48  # KiB
    assert before - after > freed // 2, (before, after)


def test_the_watcher_limits_arenas_and_trims_every_trim_every(make_repo, monkeypatch):
    repo = make_repo({"a.txt": "a\n"})
    VB(repo).init()
    now, trims, beats, limited = [1000.0], [], [], []
    monkeypatch.setattr(memory, "trim", lambda: trims.append(now[0]) or True)
    monkeypatch.setattr(memory, "limit_arenas", lambda: limited.append(threading.active_count()) or True)
    real_beat = watchproc.DirtySetWriter.beat
    monkeypatch.setattr(watchproc.DirtySetWriter, "beat", lambda self, when: beats.append(when) or real_beat(self, when))
    watcher = watchproc.Watcher(repo, repo / ".git", idle_exit=None, hook_handler=None, clock=lambda: now[0])
    thread = threading.Thread(target=watcher.run)
    running = threading.active_count()
    thread.start()
    try:
        assert wait_for(lambda: trims == [1000.0])
        assert limited == [running + 1]  # before the watcher started threads of its own
        now[0] = 1000 + memory.TRIM_EVERY / 2
        assert wait_for(lambda: now[0] in beats)  # a loop ran at that time
        assert trims == [1000.0]
        now[0] = 1000 + memory.TRIM_EVERY
        assert wait_for(lambda: len(trims) == 2)
        assert trims == [1000.0, 1000 + memory.TRIM_EVERY]
    finally:
        watcher.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()

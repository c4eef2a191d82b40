"""flock.py, the one flock helper, and the state lock built on it."""
from __future__ import annotations

import pytest

from vbranch.errors import LockTimeout
from vbranch.state import flock
from vbranch.state.lock import StateLock


def test_take_is_exclusive_until_released(tmp_path):
    path = tmp_path / "lock"
    assert not flock.held(path)  # no file yet: nobody holds it
    fd = flock.take(path)
    assert fd is not None and flock.held(path)
    assert flock.take(path) is None  # another open file: flocks conflict even within one process
    assert flock.take_within(path, 0) is None
    flock.release(fd)
    assert not flock.held(path)
    again = flock.take_within(path, 0)
    assert again is not None and flock.held(path)
    flock.release(again)


def test_state_lock_nests_and_times_out_while_another_holds_it(tmp_path):
    path = tmp_path / "lock"
    other = flock.take(path)
    with pytest.raises(LockTimeout):
        with StateLock(path, timeout=0):
            pass
    flock.release(other)
    lock = StateLock(path, timeout=0)
    with lock:
        with lock:  # re-entered by its holder
            assert flock.held(path)
        assert flock.held(path)
    assert not flock.held(path)


def test_threads_of_one_process_hand_the_state_lock_over_without_polling(tmp_path, monkeypatch):
    """The watcher's hook threads: one waiting for another gets the lock when it is released, not at a
    later poll of the flock (here a poll would sleep for a minute)."""
    import threading

    monkeypatch.setattr(flock.time, "sleep", lambda _s: threading.Event().wait(60))
    path = tmp_path / "lock"
    first, second = StateLock(path), StateLock(path)
    entered, inside = threading.Event(), []

    def take() -> None:
        with second:
            inside.append(flock.held(path))
        entered.set()

    with first:
        thread = threading.Thread(target=take)
        thread.start()
        assert not inside  # (it cannot enter while the first holds the lock)
    assert entered.wait(10) and inside == [True]
    thread.join(10)
    assert not flock.held(path)


def test_a_thread_waiting_in_the_process_times_out_as_the_flock_would(tmp_path):
    import threading

    path = tmp_path / "lock"
    holder = StateLock(path)
    holder.__enter__()
    failed = []

    def take() -> None:
        try:
            with StateLock(path, timeout=0.1):
                pass
        except LockTimeout:
            failed.append(True)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(10)
    holder.__exit__(None, None, None)
    assert failed == [True]
    with StateLock(path, timeout=0):  # free again, in this thread and for others
        assert flock.held(path)

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

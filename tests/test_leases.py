"""Write leases handed on within one process (the watcher's hook threads): a waiter is woken by the release."""
from __future__ import annotations

import threading

from vbranch.state import leases


def test_a_waiter_in_the_same_process_is_woken_by_the_release(vb, monkeypatch):
    v = vb({"a.txt": "a\n"})
    # Polls so far apart that the waiter could only get the lease within the test's time by being woken.
    monkeypatch.setattr(leases, "POLL_FIRST", 60.0)
    monkeypatch.setattr(leases, "POLL_MAX", 60.0)
    holder = v.ws()
    try:
        assert leases.acquire(holder, "a.txt", "s1", "call-1", wait=0, ttl=60) is None
        got = []
        polls = threading.Event()
        real_wait = leases._until_released

        def wait(delay: float) -> None:
            polls.set()
            real_wait(delay)

        def take() -> None:  # as a hook thread of the watcher: its own workspace
            waiter = v.ws()
            try:
                got.append(leases.acquire(waiter, "a.txt", "s2", "call-2", wait=300, ttl=60, sleep=wait))
            finally:
                waiter.close()

        thread = threading.Thread(target=take)
        thread.start()
        assert polls.wait(10)  # the waiter found the lease held and waits
        assert leases.holder(holder, "a.txt") == "s1"
        leases.release(holder, "s1", "call-1")
        thread.join(10)
        assert not thread.is_alive() and got == [None]
        assert leases.holder(holder, "a.txt") == "s2"
    finally:
        holder.close()


def test_a_waiter_still_polls_when_nothing_notifies(vb, monkeypatch):
    """A lease released by another process (a hook without the watcher) is found by polling."""
    v = vb({"a.txt": "a\n"})
    holder, waiter = v.ws(), v.ws()
    try:
        assert leases.acquire(holder, "a.txt", "s1", "call-1", wait=0, ttl=60) is None
        waits = []

        def sleep(delay: float) -> None:
            waits.append(delay)
            if len(waits) == 3:  # released behind the process's back: no notification
                with holder.lock, holder.store.tx():
                    holder.store.release_leases("s1", "call-1")

        assert leases.acquire(waiter, "a.txt", "s2", "call-2", wait=300, ttl=60, sleep=sleep) is None
        assert waits == [leases.POLL_FIRST, 2 * leases.POLL_FIRST, 4 * leases.POLL_FIRST]
    finally:
        holder.close()
        waiter.close()

"""The time stamps vbranch records: UTC, ISO 8601, milliseconds.

The one place commands read the clock; the library is passed the time.
Plain `time` rather than `datetime`, which the hook path would pay to import.
"""
from __future__ import annotations

import time


def now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+00:00"

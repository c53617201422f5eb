"""Waiting for something a real process or the sandbox's delivery threads do in their own time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], object], timeout: float = 5.0, what: str = "the condition") -> float:
    """Poll ``check`` every 10 ms until it is truthy; the monotonic time it became so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout} s")

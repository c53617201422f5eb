"""The clocks loopsync reads while it talks to the APIs, in one replaceable place.

Production uses the system's. A recorded cassette (``recording``) swaps in a
virtual clock for the length of one command, so a replayed run reads the same
times and waits the same (zero) seconds as the recorded one. ``service`` hands
``current()`` to every client and to the reconciler; nothing else reads time
for API work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Clock:
    now: Callable[[], datetime]  # wall time, aware UTC
    monotonic: Callable[[], float]  # for measuring waits
    sleep: Callable[[float], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


SYSTEM = Clock(now=_utc_now, monotonic=time.monotonic, sleep=time.sleep)

_current: ContextVar[Clock] = ContextVar("loopsync_clock", default=SYSTEM)


def current() -> Clock:
    return _current.get()


@contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the one ``current()`` returns inside the block."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)

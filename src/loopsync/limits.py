"""The two rate limits loopsync lives under, as objects every client of one process can share.

A scan has one Shopify client and one Loop client, so each could keep its own count. serve's
worker reconciles on several threads, each with clients of its own, and they all spend the
same store's cost bucket and the same Loop key's 300 requests a minute: paced apart, eight
threads each believed the whole bucket was theirs, and a burst of 500 deliveries met about
1,900 THROTTLED answers. Shared, they take turns.

Both are thread-safe, take their clock from the caller, and never sleep themselves: each
call says how long to wait and the client sleeps (so tests and cassettes keep their clocks).
Processes do not share them: a cron scan beside serve paces on its own view, and Shopify's
throttleStatus, which both read after every answer, is what brings them back in line.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from loopsync.http import MAX_SINGLE_WAIT
from loopsync.models import ThrottleStatus


class CostBucket:
    """One store's Admin API cost bucket as loopsync last saw it, less what is in flight.

    ``reserve(requested)`` before a request says how long to wait for the bucket to hold
    ``requested`` points besides those that requests already sent (or waiting to be sent)
    will take; ``settle`` with the answer's throttleStatus gives the reservation back and
    takes Shopify's own figure. An answer can already count a request still marked in
    flight here, so the estimate errs towards waiting, for as long as that request is out.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._status: ThrottleStatus | None = None
        self._seen_at = 0.0
        self._in_flight = 0.0

    def available_now(self) -> float | None:
        """Points Shopify should have restored by now, from the last throttleStatus seen."""
        with self._lock:
            return self._available(self._clock())

    def _available(self, now: float) -> float | None:
        status = self._status
        if status is None:
            return None
        elapsed = max(now - self._seen_at, 0.0)
        return min(status.maximum_available, status.currently_available + elapsed * status.restore_rate)

    def reserve(self, requested: float) -> float:
        """Seconds to wait before sending a request that asks for ``requested`` points."""
        with self._lock:
            available = self._available(self._clock())
            wait = 0.0
            if available is not None and self._status is not None:
                needed = min(requested, self._status.maximum_available)
                free = available - self._in_flight
                if needed > free:
                    wait = min((needed - free) / self._status.restore_rate, MAX_SINGLE_WAIT)
            self._in_flight += requested
            return wait

    def settle(self, requested: float, status: ThrottleStatus | None) -> None:
        """The request that reserved ``requested`` was answered (or failed); ``status`` as it reported."""
        with self._lock:
            self._in_flight = max(self._in_flight - requested, 0.0)
            if status is not None:
                self._status = status
                self._seen_at = self._clock()


class RequestWindow:
    """At most ``limit`` requests in any 60 seconds, by the times they were (or will be) sent."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()

    def reserve(self) -> float:
        """Seconds to wait before the next request; its place in the window is taken now."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= 60:
                self._sent.popleft()
            at = now
            if len(self._sent) >= self.limit:
                # The times are in order (each is at least the one before), so the request
                # `limit` places back is the one this one must be 60 s after.
                at = max(now, self._sent[-self.limit] + 60)
            self._sent.append(at)
            return at - now


@dataclass
class SharedLimits:
    """What serve's worker hands every reconcile thread's clients: one bucket, one Loop window."""

    clock: Callable[[], float]
    shopify: CostBucket = field(init=False)
    loop: RequestWindow = field(init=False)

    def __post_init__(self) -> None:
        from loopsync.loop import REQUESTS_PER_MINUTE

        self.shopify = CostBucket(self.clock)
        self.loop = RequestWindow(REQUESTS_PER_MINUTE, self.clock)

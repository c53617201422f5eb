"""The virtual clock a cassette runs on: it starts at the recorded instant and moves only when loopsync sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from loopsync import clock as clocks

# --- time ---------------------------------------------------------------------------


class VirtualClock:
    """loopsync's wall clock, monotonic clock and sleep while a cassette is in use.

    Time starts at ``start`` and advances only by what is slept, so the same run
    reads the same times whether it is recorded or replayed. ``planned`` sleeps (a
    replay's) replace the durations asked for, in order; ``real_sleep`` really waits
    (a recording against real services must respect Shopify's throttle).
    """

    def __init__(
        self,
        start: datetime,
        *,
        real_sleep: bool,
        planned: list[float] | None = None,
        on_sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.start = start.astimezone(UTC)
        self.elapsed = 0.0
        self.real_sleep = real_sleep
        self.planned = list(planned or [])
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        index = len(self.slept)
        seconds = self.planned[index] if index < len(self.planned) else round(max(float(seconds), 0.0), 6)
        if self.real_sleep and seconds > 0:
            time.sleep(seconds)
        self.slept.append(seconds)
        self.elapsed += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)


def virtual_time(virtual: VirtualClock):
    """Every clock loopsync reads for API work (``loopsync.clock``) becomes ``virtual``.

    The state file's own timestamps stay real.
    """
    return clocks.use(clocks.Clock(now=virtual.now, monotonic=virtual.monotonic, sleep=virtual.sleep))



def _utc_second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)



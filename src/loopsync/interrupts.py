"""SIGINT and SIGTERM during a scan: stop after the call in flight, not in the middle of it.

A scan killed between an API call and the ledger row that announces it is safe (the
next scan re-derives everything from Shopify and Loop), but Ctrl-C and systemd's
SIGTERM deserve better than that: while a scan runs, the first signal only asks it
to stop. The reconciler looks at :meth:`StopSignals.check` before every side effect
and between orders, so the call being made is finished and recorded, then the scan
records itself as interrupted and says how far it got. A second signal stops at once
(someone who presses Ctrl-C twice means it), as a crash would; that too is safe.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """Ends a scan early. A BaseException, as KeyboardInterrupt is, so that no
    ``except Exception`` on the way (a retry loop, a client) swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        #: What the order being reconciled got done before the stop (set by the reconciler).
        self.outcome: object | None = None


class StopSignals:
    """The signal that asked the running scan to stop, if one did."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self) -> None:
        """Raise :class:`StopRequested` if a stop was asked for: call only at a safe point."""
        if self.signum is not None:
            raise StopRequested(self.signum)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is not None:
            raise StopRequested(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopSignals]:
    """Turn SIGINT and SIGTERM into a stop request for the block; the old handlers come back after."""
    stop = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        # Only the main thread may set handlers; elsewhere Ctrl-C stays a KeyboardInterrupt,
        # which the reconciler records as an interruption too.
        yield stop
        return
    previous = {signum: signal.signal(signum, stop._handle) for signum in SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

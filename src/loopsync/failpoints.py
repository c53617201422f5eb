"""Named crash points, for the crash-safety tests.

``reconcile`` calls ``reached(name)`` at every step boundary of a side effect
(before the intent is written, after it, after the API answered, after the
result is written). When ``LOOPSYNC_FAILPOINT`` names that point the process
kills itself with SIGKILL, exactly as a power cut or an OOM kill would: no
``finally`` blocks, no flushing. The tests use it to prove that the next scan
converges from any of those states. Unset (always, in production) it costs two
dictionary lookups.

``LOOPSYNC_FAILPOINT=hold.sent`` kills at the first hold that Shopify accepted;
``hold.sent:3`` at the third time that point is reached.

``LOOPSYNC_FAILPOINT_TRACE=FILE`` appends the name of every point reached to FILE,
one a line, so the tests can enumerate every kill point of a scan (each name and
how often it is reached) instead of guessing them.
"""

from __future__ import annotations

import os
import signal

ENV = "LOOPSYNC_FAILPOINT"
TRACE_ENV = "LOOPSYNC_FAILPOINT_TRACE"
_seen: dict[str, int] = {}


def reached(name: str) -> None:
    trace = os.environ.get(TRACE_ENV)
    if trace:
        # Opened per point so the line is on disk even if the next point kills us.
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)

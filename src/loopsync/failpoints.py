"""Named crash points, for the crash-safety tests.

``reconcile`` calls ``reached(name)`` at every step boundary of a side effect
(before the intent is written, after it, after the API answered, after the
result is written). When ``LOOPSYNC_FAILPOINT`` names that point the process
kills itself with SIGKILL, exactly as a power cut or an OOM kill would: no
``finally`` blocks, no flushing. The tests use it to prove that the next scan
converges from any of those states. Unset (always, in production) it costs one
dictionary lookup.

``LOOPSYNC_FAILPOINT=hold.sent`` kills at the first hold that Shopify accepted;
``hold.sent:3`` at the third time that point is reached.
"""

from __future__ import annotations

import os
import signal

ENV = "LOOPSYNC_FAILPOINT"
_seen: dict[str, int] = {}


def reached(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)

"""serve's log: one line per delivery and action on stderr, from both of its processes alike."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("loopsync.serve")


def setup_logging() -> None:
    """Never a body, never a secret: the lines name deliveries by webhook id and orders by name."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s loopsync serve: %(message)s", "%Y-%m-%dT%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

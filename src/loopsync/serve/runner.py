"""Running `loopsync serve`: two processes, one that acknowledges and one that reconciles.

This one (the process `loopsync serve` is) serves HTTP with uvicorn in its main thread:
verify, commit to the inbox, answer; nothing in it calls an API, so a busy worker never
delays an acknowledgement. The second, the worker process (``serve.worker_main``,
started and watched by ``serve.supervisor``), reconciles what the inbox names and runs
the catch-up scan once the inbox left by the last run is worked through, then one every
``scan_every`` seconds. It is woken over a pipe as each delivery is committed, and dies
with this process.

Scans and serve on one state file: serve holds the scan lock (``<db>.lock``) only while
its own scan runs, and takes it without waiting: when a cron `scan` has it, serve's scan
is skipped (logged) since that scan does the same work. Every reconcile, wherever it
runs, holds its order's lock (``store.lock.order_lock``), so the worker and any scan
never act on one order at the same time.

SIGTERM or SIGINT: uvicorn stops accepting, the worker finishes and records the orders
in hand (the deliveries it has not reached stay pending for the next start), a running
scan stops at its next safe point, and both processes exit 0.
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from loopsync import service
from loopsync.errors import ConfigError, LoopsyncError
from loopsync.serve.app import LOOP_WEBHOOK_PATH, WEBHOOK_PATH, InboxWriter, build_app
from loopsync.serve.logs import log, setup_logging
from loopsync.serve.metrics import Metrics
from loopsync.serve.supervisor import WorkerProcess


def _listen(host: str, port: int) -> socket.socket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(128)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}).") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn, with loopsync's own signal handling: uvicorn's would re-raise SIGTERM once it has
    shut down, and the process would then die of it instead of exiting 0."""

    def __init__(self, config: uvicorn.Config, stop: threading.Event) -> None:
        super().__init__(config)
        self._stop = stop

    async def on_tick(self, counter: int) -> bool:
        # The worker process stops serve when it cannot go on (the state file failed): without it,
        # nothing accepted would be processed, so deliveries should go unacknowledged and be retried.
        return self._stop.is_set() or await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(signum: int, _frame: object) -> None:
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            log.info("%s: stopping after the order in hand", signal.Signals(signum).name)
            self._stop.set()

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def run(db: Path, *, host: str, port: int, scan_every: float) -> None:
    """Serve until SIGTERM or SIGINT; returns normally then (the CLI exits 0)."""
    setup_logging()
    store = service.open_store(db)
    try:
        conn = service.require_connection(store)
        if not conn.webhook_secret:
            raise ConfigError(
                "No webhook secret is stored, so no delivery could be verified: set "
                "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET to the app's client secret (API secret key) and run "
                "`loopsync connect` again."
            )
        stop = threading.Event()

        def depth() -> float:
            try:
                return float(store.inbox.depth())
            except LoopsyncError:
                return math.nan

        metrics = Metrics(depth)
        sock = _listen(host, port)
        worker = WorkerProcess(Path(db), scan_every, metrics, stop)
        writer = InboxWriter(lambda: service.open_store(db))
        config = uvicorn.Config(
            build_app(store, conn.shop, metrics, writer, worker),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server = _Server(config, stop)
        bound = sock.getsockname()
        worker.start()
        # Loop's route is always there; it answers 404 until a Loop webhook secret is stored.
        loop_route = f", POST {LOOP_WEBHOOK_PATH}" if conn.loop_webhook_secret and conn.loop_connected else ""
        log.info(
            "listening on http://%s:%d (POST %s%s, GET /healthz, GET /metrics) for %s",
            bound[0], bound[1], WEBHOOK_PATH, loop_route, conn.shop,
        )
        try:
            server.run(sockets=[sock])
        finally:
            stop.set()
            writer.close()
            worker.shutdown()
            sock.close()
        if worker.failed is not None:
            raise worker.failed
        log.info("stopped")
    finally:
        store.close()

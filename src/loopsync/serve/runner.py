"""Running `loopsync serve`: uvicorn in the main thread, the worker and the scanner beside it.

Three threads, each with a state file connection of its own (SQLite connections are
per thread): the main one serves HTTP (verify, write to the inbox, acknowledge); the
worker reconciles what the inbox names; the scanner runs the catch-up scan once the
inbox left by the last run is worked through, then one every ``scan_every`` seconds.

Scans and serve on one state file: serve holds the scan lock (``<db>.lock``) only while
its own scan runs, and takes it without waiting: when a cron `scan` has it, serve's scan
is skipped (logged) since that scan does the same work. Every reconcile, wherever it
runs, holds its order's lock (``store.lock.order_lock``), so the worker and any scan
never act on one order at the same time.

SIGTERM or SIGINT: uvicorn stops accepting, the worker finishes the order in hand (the
deliveries it has not reached stay pending for the next start), a running scan stops at
its next safe point, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from loopsync import service
from loopsync.errors import ConfigError, LockHeldError, LoopsyncError
from loopsync.interrupts import StopRequested
from loopsync.serve.app import WEBHOOK_PATH, build_app
from loopsync.serve.metrics import Metrics
from loopsync.serve.worker import Worker

log = logging.getLogger("loopsync.serve")


def _setup_logging() -> None:
    """One line per delivery and action, on stderr: never a body, never a secret."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s loopsync serve: %(message)s", "%Y-%m-%dT%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


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

    def __init__(self, config: uvicorn.Config, stop: threading.Event, wake: threading.Event) -> None:
        super().__init__(config)
        self._stop, self._wake = stop, wake

    async def on_tick(self, counter: int) -> bool:
        # The worker stops serve when it cannot go on (the state file failed): without it, nothing
        # accepted would be processed, so deliveries should go unacknowledged and be retried.
        return self._stop.is_set() or await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(signum: int, _frame: object) -> None:
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            log.info("%s: stopping after the order in hand", signal.Signals(signum).name)
            self._stop.set()
            self._wake.set()

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class Scanner:
    """serve's catch-up scan at start and its periodic scans."""

    def __init__(self, db: Path, metrics: Metrics, stop: threading.Event, every: float, after: threading.Event) -> None:
        self.db, self.metrics, self.stop, self.every, self.after = db, metrics, stop, every, after

    def run(self) -> None:
        with service.open_store(self.db) as store:
            while not self.after.wait(0.2):
                if self.stop.is_set():
                    return
            if self.stop.is_set():
                return
            self.scan(store, "catch-up")
            while self.every > 0 and not self.stop.wait(self.every):
                self.scan(store, "periodic")

    def _check(self) -> None:
        if self.stop.is_set():
            raise StopRequested(signal.SIGTERM)

    def scan(self, store, why: str) -> None:
        started = time.monotonic()
        try:
            rec = service.reconciler(store)
            with store.scan_lock(wait=False):
                report = rec.scan(None, stop=self._check)
        except LockHeldError:
            # A cron `scan` is at it right now and does the same work: no need for two.
            log.info("%s scan skipped: another loopsync scan is running on this state file", why)
            self.metrics.scans.labels(outcome="skipped").inc()
            return
        except service.ScanInterrupted as stopped:
            self._finished(why, "interrupted", f"{len(stopped.report.outcomes)} orders reconciled before the stop")
            return
        except LoopsyncError as exc:
            self._finished(why, "failed", exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - the scan is a safety net; serve keeps receiving
            self._finished(why, "failed", f"unexpected {type(exc).__name__}")
            return
        outcome = "pending" if report.pending else "ok"
        self._finished(
            why,
            outcome,
            f"{report.orders_seen} orders seen, {report.count('hold')} holds, {report.count('release')} releases, "
            f"{len(report.pending)} pending, {time.monotonic() - started:.1f} s",
        )

    def _finished(self, why: str, outcome: str, detail: str) -> None:
        self.metrics.scans.labels(outcome=outcome).inc()
        self.metrics.last_scan.set(time.time())
        self.metrics.last_scan_ok.set(1 if outcome in ("ok", "pending") else 0)
        log.info("%s scan %s: %s", why, outcome, detail)


def run(db: Path, *, host: str, port: int, scan_every: float) -> None:
    """Serve until SIGTERM or SIGINT; returns normally then (the CLI exits 0)."""
    _setup_logging()
    store = service.open_store(db)
    try:
        conn = service.require_connection(store)
        if not conn.webhook_secret:
            raise ConfigError(
                "No webhook secret is stored, so no delivery could be verified: set "
                "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET to the app's client secret (API secret key) and run "
                "`loopsync connect` again."
            )
        stop, wake = threading.Event(), threading.Event()

        def depth() -> float:
            try:
                return float(store.inbox.depth())
            except LoopsyncError:
                return math.nan

        metrics = Metrics(depth)
        sock = _listen(host, port)
        worker = Worker(
            lambda: service.open_store(db), service.reconciler, metrics, stop=stop, wake=wake
        )
        scanner = Scanner(Path(db), metrics, stop, scan_every, worker.drained)
        threads = [
            threading.Thread(target=worker.run, name="loopsync-worker", daemon=True),
            threading.Thread(target=scanner.run, name="loopsync-scanner", daemon=True),
        ]
        config = uvicorn.Config(
            build_app(store, conn.shop, metrics, wake),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server = _Server(config, stop, wake)
        bound = sock.getsockname()
        for t in threads:
            t.start()
        log.info(
            "listening on http://%s:%d (POST %s, GET /healthz, GET /metrics) for %s",
            bound[0], bound[1], WEBHOOK_PATH, conn.shop,
        )
        try:
            server.run(sockets=[sock])
        finally:
            stop.set()
            wake.set()
            for t in threads:
                t.join()
            sock.close()
        if worker.failed is not None:
            raise worker.failed
        log.info("stopped")
    finally:
        store.close()

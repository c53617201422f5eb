"""serve's second process: the inbox worker and the scans, started and watched by `loopsync serve`.

`serve` runs ``python -m loopsync.serve.worker_main --db DB --scan-every SECONDS`` (see
``serve.supervisor``); nobody else should. A process, not threads beside the HTTP handler:
reconciles and scans are Python work (parsing, planning, the ledger), and in one
interpreter they took the acknowledging handler's turn (the burst's acknowledgement p99
went over 200 ms). What it shares with the HTTP process, and how:

- stdin, from serve: one byte per delivery committed to the inbox, to look at once
  instead of at the next poll; end of file means serve is gone (even by SIGKILL), and
  the worker exits at once: nothing acknowledged is lost and nothing is done twice, the
  same as when the worker itself is killed (the inbox and the order locks see to it);
- stdout, to serve: one JSON object a line, what ``/metrics`` shows (``Relay``); anything
  else that writes to stdout here goes to stderr instead, so it cannot garble them;
- stderr: serve's own, one log.

SIGTERM or SIGINT: the passes in hand finish and are recorded, a running scan stops at
its next safe point, exit 0. A failure the worker cannot go on from (the state file is
unusable) is sent as a ``fatal`` event with its one sentence and exit code, and the
worker exits with that code; serve then stops too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from loopsync import clock, service
from loopsync.errors import LockHeldError, LoopsyncError
from loopsync.exit_codes import ExitCode
from loopsync.interrupts import StopRequested
from loopsync.limits import SharedLimits
from loopsync.serve.logs import log, setup_logging
from loopsync.serve.worker import Worker

#: How long the inbox keeps a delivery after it was done (or ignored): long enough to look into
#: last week's deliveries with `sqlite3`, short enough that a busy store's state file stays small.
INBOX_KEEP_DAYS = 7
#: Added to the worker's niceness (the HTTP process keeps serve's own).
WORKER_NICENESS = 10


class Relay:
    """The worker's side of /metrics: events written to serve's pipe, one line each."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, **event: object) -> None:
        line = (json.dumps(event) + "\n").encode()
        with self._lock:
            try:
                while line:
                    line = line[os.write(self._fd, line):]
            except OSError:
                pass  # serve is gone; the worker notices on stdin and exits

    def reconciled(self) -> None:
        self.send(event="reconciled")

    def error(self) -> None:
        self.send(event="error")

    def latency(self, seconds: float) -> None:
        self.send(event="latency", seconds=seconds)

    def scan(self, outcome: str) -> None:
        self.send(event="scan", outcome=outcome, at=time.time())


class Scanner:
    """The catch-up scan once the inbox left by the last run is worked through, then one every ``every`` seconds.

    serve holds the scan lock (``<db>.lock``) only while its own scan runs, and takes it
    without waiting: when a cron `scan` has it, this scan is skipped (logged), since that
    scan does the same work. After each, deliveries done more than INBOX_KEEP_DAYS ago
    are deleted from the inbox, so a busy store's state file does not grow without end.
    """

    def __init__(self, db: Path, events: Relay, stop: threading.Event, every: float, after: threading.Event,
                 limits: SharedLimits) -> None:
        self.db, self.events, self.stop, self.every, self.after = db, events, stop, every, after
        self.limits = limits

    def run(self) -> None:
        with service.open_store(self.db) as store:
            while not self.after.wait(0.2):
                if self.stop.is_set():
                    return
            if self.stop.is_set():
                return
            self.scan(store, "catch-up")
            self.prune(store)
            while self.every > 0 and not self.stop.wait(self.every):
                self.scan(store, "periodic")
                self.prune(store)

    def prune(self, store) -> None:
        before = (datetime.now(UTC) - timedelta(days=INBOX_KEEP_DAYS)).isoformat()
        try:
            gone = store.inbox.prune(before)
        except LoopsyncError as exc:
            log.warning("inbox: could not delete old deliveries (%s)", exc.message)
            return
        if gone:
            log.info("inbox: deleted %d deliveries done more than %d days ago", gone, INBOX_KEEP_DAYS)

    def _check(self) -> None:
        if self.stop.is_set():
            raise StopRequested(signal.SIGTERM)

    def scan(self, store, why: str) -> None:
        started = time.monotonic()
        try:
            rec = service.reconciler(store, limits=self.limits)
            with store.scan_lock(wait=False):
                report = rec.scan(None, stop=self._check)
        except LockHeldError:
            # A cron `scan` is at it right now and does the same work: no need for two.
            log.info("%s scan skipped: another loopsync scan is running on this state file", why)
            self.events.scan("skipped")
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
        self.events.scan(outcome)
        log.info("%s scan %s: %s", why, outcome, detail)


def _watch_serve(worker: Worker) -> None:
    """Wake the worker for each byte serve writes; exit the moment serve is gone."""
    while True:
        try:
            data = os.read(0, 4096)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            # serve died (a SIGKILL, say): dying with it is what a kill of this process would do.
            os._exit(int(ExitCode.TERMINATED))
        worker.notify()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopsync.serve.worker_main")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--scan-every", type=float, default=0.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        # On a busy machine the kernel runs serve's HTTP process first: an acknowledgement
        # is due within Shopify's 5 s, a reconcile a moment later costs nothing.
        os.nice(WORKER_NICENESS)
    setup_logging()
    events = Relay(os.dup(1))
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    stop = threading.Event()
    # One cost bucket and one Loop window for the reconcile threads and the scans alike.
    limits = SharedLimits(clock.current().monotonic)
    worker = Worker(lambda: service.open_store(args.db), partial(service.reconciler, limits=limits), events,
                    stop=stop)
    scanner = Scanner(args.db, events, stop, args.scan_every, worker.drained, limits)

    def handle(_signum: int, _frame: object) -> None:
        stop.set()
        worker.notify()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, handle)
    threading.Thread(target=_watch_serve, args=(worker,), name="loopsync-serve-watch", daemon=True).start()
    threads = [
        threading.Thread(target=worker.run, name="loopsync-worker", daemon=True),
        threading.Thread(target=scanner.run, name="loopsync-scanner", daemon=True),
    ]
    for t in threads:
        t.start()
    # Joined with a timeout, so the signal handler runs in this thread promptly.
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
    failed = worker.failed
    if failed is None:
        return 0
    if isinstance(failed, LoopsyncError):
        message, code = failed.message, int(failed.exit_code)
    else:
        message = f"The webhook worker hit an unexpected problem ({type(failed).__name__})."
        code = int(ExitCode.INTERNAL)
    events.send(event="fatal", message=message, code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The worker process as serve's HTTP process sees it: started, woken, listened to, restarted, stopped.

What happens when the worker process ends without being asked to:

- killed by a signal (the OOM killer, an operator's ``kill -9``) or gone without a word:
  serve starts a new one after ``RESTART_DELAY`` (logged, counted in
  ``loopsync_worker_restarts_total``). Nothing acknowledged was lost: its deliveries are
  still pending in the inbox, and the new worker takes them first. ``/healthz`` answers
  503 until it runs again, so a load balancer or a probe sees the gap;
- stopped by a failure it reported (a ``fatal`` event: the state file is unusable, say):
  restarting would fail the same way, so serve stops accepting and exits with that
  failure's sentence and exit code (systemd's ``Restart=on-failure`` takes it from there).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from loopsync.errors import LoopsyncError
from loopsync.exit_codes import ExitCode
from loopsync.serve.logs import log
from loopsync.serve.metrics import Metrics

#: How long serve waits before starting a worker again after it died.
RESTART_DELAY = 1.0
#: How long a SIGTERM'd worker may take for the orders in hand before it is killed (safe: see above).
STOP_TIMEOUT = 50.0


class WorkerFailed(LoopsyncError):
    """The worker process stopped on a failure it reported: serve stops with the same sentence and code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)


class WorkerProcess:
    def __init__(self, db: Path, scan_every: float, metrics: Metrics, stop: threading.Event) -> None:
        self.db, self.scan_every, self.metrics, self.stop = db, scan_every, metrics, stop
        self.failed: WorkerFailed | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # the current process and its stdin, against wake() from the event loop
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="loopsync-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    @property
    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def wake(self) -> None:
        """A delivery was committed: one byte down the worker's stdin. Never blocks the event loop: when
        the pipe is full the worker has bytes to read already, and a dead worker's successor reads the
        inbox from the start."""
        with self._lock:
            if self._proc is None or self._proc.stdin is None:
                return
            with contextlib.suppress(OSError):
                os.write(self._proc.stdin.fileno(), b"\x01")

    def shutdown(self) -> None:
        """SIGTERM to the worker and wait for it: it finishes and records the orders in hand."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("the worker did not stop within %g s; killing it (its deliveries stay pending)",
                            STOP_TIMEOUT)
                proc.kill()
        self._thread.join()

    def _spawn(self) -> bool:
        """A new worker process, unless serve is stopping (checked under the lock shutdown() takes)."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._proc = self._popen()
        log.info("worker process %d started", self._proc.pid)
        return True

    def _popen(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loopsync.serve.worker_main", "--db", str(self.db),
             "--scan-every", repr(float(self.scan_every))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
        )
        assert proc.stdin is not None
        os.set_blocking(proc.stdin.fileno(), False)
        return proc

    def _supervise(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            fatal = None
            for line in proc.stdout:
                event = self._apply(line)
                if event is not None and event.get("event") == "fatal":
                    fatal = event
            code = proc.wait()
            with self._lock:
                proc.stdin.close()
                proc.stdout.close()
            if self._stopping.is_set():
                return
            if fatal is not None:
                self.failed = WorkerFailed(str(fatal.get("message")), int(fatal.get("code") or ExitCode.INTERNAL))
                log.warning("worker process %d stopped: %s", proc.pid, self.failed.message)
                self.stop.set()
                return
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            with contextlib.suppress(ValueError):
                how = signal.Signals(-code).name if code < 0 else how
            log.warning("worker process %d died (%s); starting another in %g s", proc.pid, how, RESTART_DELAY)
            if self._stopping.wait(RESTART_DELAY):
                return
            if not self._spawn():
                return
            self.metrics.worker_restarts.inc()

    def _apply(self, line: bytes) -> dict | None:
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if isinstance(event, dict):
            self.metrics.apply(event)
            return event
        return None

"""What `loopsync serve` exposes on ``GET /metrics`` (Prometheus text, prometheus-client).

Its own registry: the process-wide default one would add the client library's process
and platform collectors, and two servers in one test process would share counters.

The registry lives in the HTTP process. What the worker process counts (reconciles, its
errors, the exchange-to-hold latency, scans) reaches it as events on a pipe
(``worker_main.Relay`` → :meth:`Metrics.apply`): simpler than prometheus-client's
multiprocess mode, which cannot serve the inbox depth gauge's live function and needs a
directory of memory-mapped files cleaned up after every kill.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# The *_created series (when each counter was made) double the page and say nothing an operator needs.
disable_created_metrics()

#: Exchange created → hold placed, in seconds: webhook mode aims under 1-2 s, a cron scan minutes.
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Metrics:
    def __init__(self, inbox_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.accepted = Counter(
            "loopsync_webhook_deliveries_accepted", "Verified deliveries written to the inbox.", ["topic"], registry=r
        )
        self.rejected = Counter(
            "loopsync_webhook_deliveries_rejected", "Deliveries refused, by reason.", ["reason"], registry=r
        )
        self.duplicate = Counter(
            "loopsync_webhook_deliveries_duplicate", "Deliveries whose webhook id was already in the inbox.", registry=r
        )
        self.depth = Gauge("loopsync_inbox_depth", "Deliveries waiting for the worker.", registry=r)
        self.depth.set_function(inbox_depth)
        self.latency = Histogram(
            "loopsync_exchange_to_hold_seconds",
            "From the exchange order's createdAt to its hold being placed.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.orders_reconciled = Counter(
            "loopsync_worker_orders_reconciled", "Orders the webhook worker reconciled.", registry=r
        )
        self.worker_errors = Counter(
            "loopsync_worker_errors", "Deliveries the worker could not finish (the scan covers them).", registry=r
        )
        self.last_scan = Gauge(
            "loopsync_last_scan_timestamp_seconds", "When serve's last scan finished (Unix time).", registry=r
        )
        self.last_scan_ok = Gauge(
            "loopsync_last_scan_ok", "1 when serve's last scan finished ok or pending, else 0.", registry=r
        )
        self.scans = Counter("loopsync_scans", "Scans serve ran or skipped, by outcome.", ["outcome"], registry=r)
        self.worker_restarts = Counter(
            "loopsync_worker_restarts", "Times serve started its worker process again after it died.", registry=r
        )

    def apply(self, event: dict) -> None:
        """One event from the worker process (see ``serve.worker_main.Relay``); unknown ones are ignored."""
        kind = event.get("event")
        if kind == "reconciled":
            self.orders_reconciled.inc()
        elif kind == "error":
            self.worker_errors.inc()
        elif kind == "latency" and isinstance(event.get("seconds"), int | float):
            self.latency.observe(event["seconds"])
        elif kind == "scan" and isinstance(event.get("outcome"), str):
            outcome = event["outcome"]
            self.scans.labels(outcome=outcome).inc()
            if outcome != "skipped" and isinstance(event.get("at"), int | float):
                self.last_scan.set(event["at"])
                self.last_scan_ok.set(1 if outcome in ("ok", "pending") else 0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

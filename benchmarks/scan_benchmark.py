"""How much a scan costs, measured against the sandbox over real HTTP.

For generated stores of several sizes this runs a first scan (everything in the
lookback window is new: the backfill), the scan right after it (which re-reads,
once, the orders its own holds and tags updated), a steady-state scan an hour
later (nothing new: idle) and a scan after every pre-order ships (the release
wave); and an idle scan of a store holding 300 orders. For each it reports: wall
time, Shopify requests, the query cost Shopify reported (``extensions.cost``:
requested, which must be in the bucket before a query runs, and actual, what the
bucket is charged after the refund), THROTTLED answers, Loop requests and Loop
requests per note posted, and the time the rate limits would impose on a real
store: Shopify's Standard plan (a 2000-point bucket restoring 100 points a
second) for the actual cost, and Loop's 300 requests a minute.

The sandbox runs with an unlimited bucket so the wall time measures loopsync and
the sandbox, not the limit; the limits' time is computed from what was measured.

It also measures the road not taken: listing every updated order in full (75
points each, 10 per page) instead of a one-point summary first.
Usage: `make bench` or `python benchmarks/scan_benchmark.py [ORDERS ...]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from loopsync import service
from loopsync.demo import connect_to_sandbox
from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.server import Sandbox
from loopsync.shopify import ShopifyClient, StaticToken

BUCKET, RESTORE = 2000.0, 100.0  # Shopify's Standard plan
LOOP_PER_MINUTE = 300
HELD = 300

HEADER = (
    "run", "orders", "exchanges", "wall s", "shopify req", "requested", "actual", "throttled", "shopify limit s",
    "loop req", "loop/note", "loop limit s", "holds", "notes", "releases",
)


def limit_seconds(cost: float) -> float:
    """Time a real Standard-plan store needs to serve ``cost`` points from a full bucket."""
    return max(0.0, (cost - BUCKET) / RESTORE)


def loop_seconds(requests: int) -> float:
    """Time Loop's 300-a-minute limit needs for ``requests`` (a burst of 300 goes at once)."""
    return max(0.0, (requests - LOOP_PER_MINUTE) * 60 / LOOP_PER_MINUTE)


def run_scan(store, label: str, rows: list) -> None:
    rec = service.reconciler(store)
    started = time.perf_counter()
    report = rec.scan()
    elapsed = time.perf_counter() - started
    stats = rec.shopify.stats
    loop_requests = rec.loop.stats.requests if rec.loop else 0
    notes = report.count("note")
    rows.append(
        (
            label,
            report.orders_seen,
            report.exchanges_seen,
            f"{elapsed:.2f}",
            stats.requests,
            int(stats.requested_cost),
            int(stats.actual_cost),
            stats.throttled,
            f"{limit_seconds(stats.actual_cost):.0f}",
            loop_requests,
            f"{loop_requests / notes:.2f}" if notes else "-",
            f"{loop_seconds(loop_requests):.0f}",
            report.count("hold"),
            notes,
            report.count("release"),
        )
    )


@contextmanager
def _connected_store(orders: int, **shares):
    """A sandbox with a generated store, an unlimited bucket, and a state file connected to it."""
    with tempfile.TemporaryDirectory() as tmp, Sandbox(scenario="demo") as sb:
        sb.world.bucket_size = sb.world.restore_rate = 10**9
        generated = generate_store(sb.world, orders=orders, seed=42, **shares)
        store = service.open_store(Path(tmp) / "bench.db")
        connect_to_sandbox(store, sb)
        yield sb, store, generated


def _quiet_hour(world) -> None:
    """An hour on, with unrelated store activity having moved the cursor past our own changes."""
    world.advance(timedelta(hours=1))
    world.touch_order(next(o.id for o in world.orders.values() if not o.name.startswith("EXC-")))


def bench(orders: int) -> list:
    rows: list = []
    with _connected_store(orders, exchange_share=0.1, preorder_share=0.5) as (sb, store, generated):
        world = sb.world
        run_scan(store, f"{orders}: first scan", rows)
        run_scan(store, f"{orders}: right after", rows)
        _quiet_hour(world)
        run_scan(store, f"{orders}: 1 h later", rows)
        run_scan(store, f"{orders}: idle", rows)
        for variant in generated.preorder_variant_ids:
            world.take_off_preorder(variant)
        run_scan(store, f"{orders}: pre-orders ship", rows)

        # The road not taken: every updated order in full.
        creds = sb.credentials
        full = ShopifyClient(creds["shop_domain"], StaticToken(creds["shopify_token"]), base_url=sb.url)
        started = time.perf_counter()
        count = sum(1 for _ in full.iter_orders("updated_at:>='2000-01-01T00:00:00Z'"))
        elapsed = time.perf_counter() - started
        rows.append(
            (
                f"{orders}: list all in full", count, "-", f"{elapsed:.2f}", full.stats.requests,
                int(full.stats.requested_cost), int(full.stats.actual_cost), full.stats.throttled,
                f"{limit_seconds(full.stats.actual_cost):.0f}", 0, "-", "0", "-", "-", "-",
            )
        )
    return rows


def bench_held() -> list:
    """A store holding 300 orders, idle: nothing changed, so nothing is read in full."""
    rows: list = []
    # Every exchange goes into a pre-order; about 300 of 700 orders are exchanges.
    with _connected_store(700, exchange_share=0.45, preorder_share=1.0) as (sb, store, _):
        run_scan(store, f"{HELD} held: first scan", rows)
        run_scan(store, f"{HELD} held: right after", rows)
        _quiet_hour(sb.world)
        run_scan(store, f"{HELD} held: 1 h later", rows)
        run_scan(store, f"{HELD} held: idle", rows)
    return rows


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000, 3000]
    rows = [HEADER]
    for n in sizes:
        rows.extend(bench(n))
    rows.extend(bench_held())
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(HEADER))]
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])

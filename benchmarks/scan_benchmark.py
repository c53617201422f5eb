"""How much a scan costs, measured against the sandbox over real HTTP.

For generated stores of several sizes this runs a first scan (everything in the
lookback window is new), the scan right after it (which re-reads, once, the
orders its own holds and tags updated), a steady-state scan an hour later
(nothing new) and a scan after every pre-order ships, and reports for each: wall time, Shopify requests, the query
cost twice (as the sandbox charged it, and as loopsync estimated it before
sending: the sandbox charges `nodes(ids:)` as one object, a GUESS, so our own
per-id estimate is the safer bound), Loop requests, and the time Shopify's
Standard-plan rate limit (a 2000-point bucket restoring 100 points a second)
would add on a real store for the larger of the two costs. The sandbox runs with an unlimited bucket so the wall time measures
loopsync and the sandbox, not the limit; the limit's time is computed from the
measured cost.

It also measures the alternative the scan does not use: listing every updated
order in full (173 points each, 4 per page) instead of a one-point summary
first. Usage: `make bench` or `python benchmarks/scan_benchmark.py [ORDERS ...]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from loopsync import service
from loopsync.demo import connect_to_sandbox
from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.server import Sandbox
from loopsync.shopify import ShopifyClient, StaticToken

BUCKET, RESTORE = 2000.0, 100.0  # Shopify's Standard plan


def limit_seconds(cost: float) -> float:
    """Time a real Standard-plan store needs to serve ``cost`` points from a full bucket."""
    return max(0.0, (cost - BUCKET) / RESTORE)


def run_scan(store, label: str, rows: list) -> None:
    rec = service.reconciler(store)
    started = time.perf_counter()
    report = rec.scan()
    elapsed = time.perf_counter() - started
    stats = rec.shopify.stats
    rows.append(
        (
            label,
            report.orders_seen,
            report.exchanges_seen,
            f"{elapsed:.2f}",
            stats.requests,
            int(stats.requested_cost),
            int(stats.estimated_cost),
            f"{limit_seconds(max(stats.requested_cost, stats.estimated_cost)):.0f}",
            rec.loop.stats.requests if rec.loop else 0,
            report.count("hold"),
            report.count("release"),
        )
    )


def bench(orders: int) -> list:
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(scenario="demo") as sb:
        world = sb.world
        world.bucket_size = world.restore_rate = 10**9
        generated = generate_store(world, orders=orders, exchange_share=0.1, preorder_share=0.5, seed=42)
        creds = sb.credentials
        store = service.open_store(Path(tmp) / "bench.db")
        connect_to_sandbox(store, sb)
        run_scan(store, f"{orders}: first scan", rows)
        # Our own holds and tags updated those orders: the next scan reads them once more.
        run_scan(store, f"{orders}: right after", rows)
        # Steady state: an hour on, with unrelated store activity having moved the cursor.
        world.advance(timedelta(hours=1))
        world.touch_order(next(o.id for o in world.orders.values() if not o.name.startswith("EXC-")))
        run_scan(store, f"{orders}: 1 h later", rows)
        run_scan(store, f"{orders}: steady state", rows)
        for variant in generated.preorder_variant_ids:
            world.take_off_preorder(variant)
        run_scan(store, f"{orders}: pre-orders ship", rows)

        # The road not taken: every updated order in full.
        full = ShopifyClient(creds["shop_domain"], StaticToken(creds["shopify_token"]), base_url=sb.url)
        started = time.perf_counter()
        count = sum(1 for _ in full.iter_orders("updated_at:>='2000-01-01T00:00:00Z'"))
        elapsed = time.perf_counter() - started
        rows.append(
            (
                f"{orders}: list all in full",
                count,
                "-",
                f"{elapsed:.2f}",
                full.stats.requests,
                int(full.stats.requested_cost),
                int(full.stats.estimated_cost),
                f"{limit_seconds(max(full.stats.requested_cost, full.stats.estimated_cost)):.0f}",
                0,
                "-",
                "-",
            )
        )
    return rows


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000, 3000]
    header = (
        "run", "orders", "exchanges", "wall s", "shopify req", "cost (sandbox)", "cost (ours)", "limit s",
        "loop req", "holds", "releases",
    )
    rows = [header]
    for n in sizes:
        rows.extend(bench(n))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])

"""What a scan costs, against the sandbox over real HTTP, next to the naive way, in one run.

Two parts.

**The table** (one generated store: 3,000 orders, 10% of them Loop exchanges, every one into a
pre-order, so about 300 orders end up held). Scenarios, in order: the backfill (first scan), an
idle scan (nothing changed), a busy incremental scan (500 new orders, 20 of them exchanges) and
the release wave (every pre-order ships at once). For each, loopsync's scan and then the naive
approach's reads: every order Shopify reports updated since the cursor and every held order read
in full (``orders(first:)`` / ``nodes(ids:)`` with full orders, as many to a page as the cost
limit allows), and each variant those orders need looked up alone. The naive rows count reads
only: holds, tags and notes cost the same either way.

The sandbox runs a real Standard-plan bucket (2,000 points restoring 100 a second) and Loop's
300 requests a minute, so THROTTLED answers and waits are real, sped up ``TIME_SCALE`` times
(``--time-scale`` or ``TIME_SCALE``, default 5; 1 is the real thing and takes five times as long): the bucket
restores 100 × scale points a second, Loop allows 300 × scale requests a minute and loopsync's
Loop client paces on a clock that runs scale times faster. "bound" is the time the rate limits
alone impose (from a full bucket: (actual − 2,000) / 100 s for Shopify; for Loop a minute for
every 300 requests after the first 300; the larger of the two) in real Standard-plan seconds; "wall" is the measured time
times the scale, so "wall / bound" is what a real store would see, pessimistically: loopsync's
own CPU and each request's latency are not sped up.

**Scale** (``--scale-orders``, default 20,000; ``make bench-large`` adds 100,000): a store whose
orders are all in the scan window, 0.5% of them exchanges. The scan runs in a child process (the
sandbox, which holds the whole store, stays in this one) with an unlimited bucket; the child's
CPU seconds come from ``wait4`` and its peak RSS from its own VmHWM. CPU per 1,000 orders is the
child's CPU less that of the same scan over a window with no orders in it (starting the CLI,
opening the state file, the idle requests: what every scan pays once, shown in its own column),
over the orders scanned.

``make bench`` prints both tables and rewrites the block between the bench markers in README.md
(``--no-readme`` leaves it alone).
Usage: ``python benchmarks/scan_benchmark.py [--time-scale N] [--scale-orders N ...] [--no-readme]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loopsync import service
from loopsync.demo import connect_to_sandbox
from loopsync.limits import RequestWindow
from loopsync.models import Order
from loopsync.reconcile import Reconciler
from loopsync.reconcile.plan import exchange_kind
from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.server import Sandbox
from loopsync.shopify import ShopifyClient, StaticToken

BUCKET, RESTORE = 2000.0, 100.0  # Shopify's Standard plan
LOOP_PER_MINUTE = 300
WRITES = ("LoopsyncFulfillmentOrderHold", "LoopsyncFulfillmentOrderReleaseHold", "LoopsyncTagsAdd")
README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def shopify_bound(actual: float) -> float:
    """Seconds a Standard-plan store needs to serve ``actual`` points from a full bucket."""
    return max(0.0, (actual - BUCKET) / RESTORE)


def loop_bound(requests: int) -> float:
    """Seconds Loop's limit (300 in any 60 s) needs for ``requests``: 300 at once, the next 300 a minute on."""
    return 60.0 * ((requests - 1) // LOOP_PER_MINUTE) if requests > 0 else 0.0


@dataclass
class Row:
    scenario: str
    approach: str
    orders: int | str
    shopify_requests: int
    requested: float
    actual: float
    throttled: int
    loop_requests: int
    wall: float  # real Standard-plan seconds (measured × scale)
    writes: int = 0  # holds, tags and releases: 10 points each, requested and actual
    floor: float = 0.0  # seconds no rate limit imposes but the scenario does (deliveries arriving)

    @property
    def bound(self) -> float:
        return max(shopify_bound(self.actual), loop_bound(self.loop_requests), self.floor)

    def cells(self) -> list[str]:
        ratio = f"{self.wall / self.bound:.2f}×" if self.bound >= 1 else "in the bucket"
        if self.bound >= 1 and self.floor >= self.bound:
            ratio += " (of the delivery window)"
        return [self.scenario, self.approach, str(self.orders), str(self.shopify_requests), str(self.writes),
                f"{self.requested:,.0f}",
                f"{self.actual:,.0f}", str(self.throttled), str(self.loop_requests) if self.loop_requests else "0",
                f"{self.wall:.1f}", f"{self.bound:.0f}", ratio]


HEADER = ["scenario", "approach", "orders seen", "Shopify requests", "of which writes", "requested", "actual",
          "THROTTLED",
          "Loop requests", "wall (s)", "bound (s)", "wall / bound"]


class Bench:
    """One sandbox with a real (sped-up) Standard-plan bucket and a state file connected to it."""

    def __init__(self, sb: Sandbox, db: Path, scale: float) -> None:
        self.sb, self.db, self.scale = sb, db, scale
        with service.open_store(db) as store:
            self.options = service.options(store)
        world = sb.world
        world.bucket_size, world.restore_rate = BUCKET, RESTORE * scale
        world.loop_rate_per_minute = int(LOOP_PER_MINUTE * scale)

    def _full_bucket(self) -> None:
        """Each measured run starts from a full bucket, as the bound assumes."""
        world = self.sb.world
        with world.lock:
            world.cost_buckets.clear()

    def reconciler(self, store) -> Reconciler:
        rec = service.reconciler(store)
        if rec.loop is not None:
            # Loop's client paces itself on its own clock: run it as fast as the sandbox's limit.
            started, scale = time.monotonic(), self.scale
            rec.loop.clock = lambda: started + (time.monotonic() - started) * scale
            rec.loop.sleep = lambda seconds: time.sleep(seconds / scale)
            rec.loop.window = RequestWindow(rec.loop.window.limit, rec.loop.clock)
        return rec

    def scan(self, scenario: str, rows: list[Row] | None) -> tuple[set[str], datetime]:
        """loopsync's scan; returns the orders it held before it started and where it started."""
        with service.open_store(self.db) as store:
            held = {h.order_id for h in store.holds.active_holds()}
            rec = self.reconciler(store)
            self._full_bucket()
            started = time.perf_counter()
            report = rec.scan()
            elapsed = time.perf_counter() - started
            stats = rec.shopify.stats
            if rows is not None:
                rows.append(Row(scenario, "loopsync", report.orders_seen, stats.requests, stats.requested_cost,
                                stats.actual_cost, stats.throttled, rec.loop.stats.requests if rec.loop else 0,
                                elapsed * self.scale, sum(stats.by_operation.get(op, 0) for op in WRITES)))
            return held, report.since

    def naive(self, scenario: str, since: datetime, held: set[str], rows: list[Row]) -> None:
        """Every updated order and every held order in full, each variant they need looked up alone."""
        creds = self.sb.credentials
        client = ShopifyClient(creds["shop_domain"], StaticToken(creds["shopify_token"]), base_url=self.sb.url)
        self._full_bucket()
        started = time.perf_counter()
        moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        orders: dict[str, Order] = {o.id: o for o in client.iter_orders(f"updated_at:>='{moment}'")}
        missing = sorted(held - set(orders))
        orders.update({k: v for k, v in client.fetch_orders(missing).items() if v is not None})
        variants = sorted({
            line.variant_id for order in orders.values() if exchange_kind(order, self.options) is not None
            for line in order.line_items if line.variant_id
        })
        for variant in variants:
            client.variant_info([variant])
        elapsed = time.perf_counter() - started
        s = client.stats
        rows.append(Row(scenario, "naive", len(orders), s.requests, s.requested_cost, s.actual_cost, s.throttled,
                        0, elapsed * self.scale))


def settle(bench: Bench) -> None:
    """Past the scans that re-read, once, the orders loopsync's own holds, tags and notes updated: the
    next scan after an hour of unrelated store activity (which moves the cursor past them) is idle."""
    world = bench.sb.world
    bench.scan("settling", None)
    world.advance(timedelta(hours=1))
    world.touch_order(next(o.id for o in world.orders.values() if not o.name.startswith("EXC-")))
    bench.scan("settling", None)


def table(scale: float) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(scenario="demo") as sb:
        world = sb.world
        generated = generate_store(world, orders=3000, exchange_share=0.1, preorder_share=1.0, seed=42)
        db = Path(tmp) / "bench.db"
        with service.open_store(db) as store:
            connect_to_sandbox(store, sb)
        bench = Bench(sb, db, scale)

        held, since = bench.scan("backfill", rows)
        bench.naive("backfill", since, held, rows)
        settle(bench)

        held, since = bench.scan("idle", rows)
        bench.naive("idle", since, held, rows)

        busy = generate_store(world, orders=500, exchange_share=0.04, preorder_share=0.5, seed=7)
        with world.lock:
            for order in world.orders.values():
                if order.name in set(busy.orders) or order.name in set(busy.native_exchanges):
                    world.touch_order(order.id)
        held, since = bench.scan("busy: 500 new orders, 20 exchanges", rows)
        bench.naive("busy: 500 new orders, 20 exchanges", since, held, rows)
        settle(bench)

        with service.open_store(db) as store:
            wave = len(store.holds.active_holds())
        for variant in generated.preorder_variant_ids:
            world.take_off_preorder(variant)
        held, since = bench.scan(f"release wave: {wave} holds ship", rows)
        bench.naive(f"release wave: {wave} holds ship", since, held, rows)
    return rows


# -- webhook burst ---------------------------------------------------------------------------------


def webhook_burst(count: int = 500, seconds: float = 10.0) -> Row:
    """``loopsync serve`` (a child process) takes webhook_burst.py's burst: ``count`` signed deliveries
    over ``seconds`` naming 100 new pre-order exchanges, sent by that benchmark's own sender.

    In real time, on the real Standard-plan bucket and Loop limit: serve paces its Loop requests on
    its own clock, which this process cannot speed up, and the deliveries arrive in real time anyway.
    Its requests and their cost are read from the sandbox's log, as serve's own counters are out of
    reach; "wall" runs from the first delivery sent to the last reconcile done (the inbox drained),
    and the bound is the rate limits' or the delivery window's, whichever is longer.
    """
    import random
    import sqlite3

    import webhook_burst as burst_bench  # benchmarks/, this script's own directory

    from loopsync.sandbox import activity
    from loopsync.serve.child import ServeChild

    with tempfile.TemporaryDirectory() as tmp, Sandbox(scenario="demo") as sb:
        world = sb.world
        world.bucket_size, world.restore_rate = BUCKET, RESTORE
        world.loop_rate_per_minute = LOOP_PER_MINUTE
        db = Path(tmp) / "burst.db"
        with service.open_store(db) as store:
            connect_to_sandbox(store, sb)
        creds = sb.credentials
        with ServeChild(db, "--scan-every", "0") as served:
            served.wait_for(r"catch-up scan (ok|pending)")
            with world.lock:
                world.cost_buckets.clear()
                mark = len(world.log)
            made = [activity.create_exchange(world, {"sku": "JKT-L-PRE"}) for _ in range(burst_bench.ORDERS)]
            deliveries = burst_bench.deliveries(world, made, count, random.Random(11))
            began = time.perf_counter()
            burst_bench.post_all(served.url, creds["shop_domain"], creds["webhook_secret"], deliveries, seconds)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
                try:
                    pending = con.execute("SELECT COUNT(*) FROM inbox WHERE state = 'pending'").fetchone()[0]
                finally:
                    con.close()
                if not pending:
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - began
        with world.lock:
            entries = world.log[mark:]
    shopify = [e for e in entries if e.api == "shopify"]
    return Row(f"webhook burst: {count} deliveries, {len(made)} exchanges", "loopsync serve", len(made),
               len(shopify), sum(e.requested_cost or 0 for e in shopify), sum(e.actual_cost or 0 for e in shopify),
               sum(e.throttled for e in shopify), sum(e.api == "loop" for e in entries), wall,
               sum(m in ("fulfillmentOrderHold", "fulfillmentOrderReleaseHold", "tagsAdd")
                   for e in shopify for m in e.mutations),
               floor=seconds)


# -- scale ---------------------------------------------------------------------------------------


@dataclass
class ScaleRow:
    orders: int
    orders_scanned: int
    exchanges: int  # read in full and reconciled: their holds, tags and notes are in ``cpu`` too
    cpu: float  # the scanning process's user + system seconds, less the empty scan's
    fixed_cpu: float  # the same scan over a window with no orders: what any scan costs
    peak_rss_mb: float
    wall: float

    def cells(self) -> list[str]:
        per_1000 = self.cpu / self.orders_scanned * 1000 * 1000 if self.orders_scanned else 0.0
        return [f"{self.orders:,}", f"{self.orders_scanned:,}", f"{self.exchanges:,}", f"{self.fixed_cpu:.2f}",
                f"{self.cpu:.2f}",
                f"{per_1000:.1f}", f"{self.peak_rss_mb:.0f}", f"{self.wall:.1f}"]


SCALE_HEADER = ["orders in the window", "orders scanned", "exchanges", "empty scan CPU (s)", "CPU for the orders (s)",
                "CPU per 1,000 orders (ms)", "peak RSS (MB)", "wall (s)"]


# The child reports its own peak RSS (VmHWM) as it exits: wait4's ru_maxrss would count this
# process's pages, which a forked child is charged for until it execs.
_PEAK = """
import atexit, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith("VmHWM:"))
    sys.stderr.write("PEAK_KB " + line.split()[1] + "\\n")
atexit.register(_peak)
sys.argv = sys.argv[1:]
{run}
"""


def _child(args: list[str], run: str = "runpy.run_module('loopsync', run_name='__main__')"
           ) -> tuple[float, float, float, int, bytes]:
    """Run loopsync with ``args`` (or ``run``): its CPU seconds, peak RSS in MB, wall seconds, exit code, stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", _PEAK.format(run=run), "loopsync", *args],
                                stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        peak = re.search(rb"PEAK_KB (\d+)", err.read())
    wall = time.perf_counter() - started
    return (usage.ru_utime + usage.ru_stime, int(peak.group(1)) / 1024 if peak else 0.0, wall, proc.returncode,
            out)


def scale(orders: int) -> ScaleRow:
    import json

    with tempfile.TemporaryDirectory() as tmp, Sandbox(scenario="demo") as sb:
        sb.world.bucket_size = sb.world.restore_rate = 10**9
        generate_store(sb.world, orders=orders, exchange_share=0.005, preorder_share=0.5, seed=42)
        db = Path(tmp) / "scale.db"
        with service.open_store(db) as store:
            connect_to_sandbox(store, sb)
        # No generated order was updated in the last second (the newest is a minute old).
        base_cpu, _, _, code, out = _child(["scan", "--db", str(db), "--since", "1s", "--json"])
        if code != 0 or json.loads(out)["orders_seen"] != 0:
            raise SystemExit(f"the empty scan exited {code} or saw orders: {out[:200]!r}")
        # Every generated order is at most 30 days old, so 31 days puts them all in the window.
        cpu, rss, wall, code, out = _child(["scan", "--db", str(db), "--since", "31d", "--json"])
        if code != 0:
            raise SystemExit(f"the {orders}-order scan exited {code}")
        report = json.loads(out)
        return ScaleRow(orders, int(report["orders_seen"]), int(report["exchanges_seen"]), max(0.0, cpu - base_cpu),
                        base_cpu, rss, wall)


# -- output --------------------------------------------------------------------------------------


def markdown(header: list[str], rows: list[list[str]]) -> str:
    right = {i for i, h in enumerate(header) if i >= 2}
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if i in right else "---" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plain(header: list[str], rows: list[list[str]]) -> str:
    table_rows = [header, *rows]
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(header))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in table_rows)


def readme_block(rows: list[Row], scale_rows: list[ScaleRow], time_scale: float) -> str:
    return "\n".join([
        BEGIN,
        f"<!-- written by `make bench` (benchmarks/scan_benchmark.py, time scale {time_scale:g}); do not edit -->",
        markdown(HEADER, [r.cells() for r in rows]),
        "",
        markdown(SCALE_HEADER, [r.cells() for r in scale_rows]),
        END,
    ])


def write_readme(block: str) -> None:
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {BEGIN} … {END} block to rewrite")
    README.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=float(os.environ.get("TIME_SCALE", 5)))
    parser.add_argument("--scale-orders", type=int, nargs="*", default=[20_000])
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--skip-table", action="store_true", help="only the scale runs (and no README)")
    args = parser.parse_args(argv)

    rows = [] if args.skip_table else [*table(args.time_scale), webhook_burst()]
    if rows:
        print(plain(HEADER, [r.cells() for r in rows]), flush=True)
    scale_rows = [scale(n) for n in args.scale_orders]
    print(plain(SCALE_HEADER, [r.cells() for r in scale_rows]))
    if rows and not args.no_readme:
        write_readme(readme_block(rows, scale_rows, args.time_scale))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Loop return created -> loopsync's note on it, for exchanges whose note waited for their return.

An exchange order can exist before Loop's return is visible to its API: loopsync holds and
tags it at once, and its note waits, looked for again 5 min, 15 min, 1 h, 4 h after the first
miss, then daily. With Loop's return webhooks (`serve`'s /webhooks/loop) the note goes on as
soon as Loop makes the return. This measures that, over real HTTP: `loopsync serve` as a child
process against the sandbox, Shopify's topics installed with `webhooks install` and Loop's
return.created webhook made as on Loop's Developer Tools page. EXCHANGES exchanges are made
with no Loop return and held; then their returns are made one at a time, each timed from
`create_loop_return` to its note being in the sandbox (polled every 2 ms), with the APIs as
fast as the sandbox answers and then with 100 ms added to every Shopify and Loop answer.

The comparison is computed: without the webhook, a return that appears within the first five
minutes after the miss waits for the lookup at five minutes, so uniformly 0-300 s.

Usage: `make bench-webhooks` or `python benchmarks/loop_note_latency.py [EXCHANGES]`.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import time
from pathlib import Path

import requests
from webhook_latency import _wait_drained, quantile, subscribed_serve

from loopsync.sandbox import activity
from loopsync.sandbox.faults import FaultPlan

TARGETS = {0: 1.0, 100: 2.0}  # added API latency (ms) -> p99 target (s), as for holds
FIRST_LOOKUP = 300.0  # the note's first back-off step


def _notes(world, original: str) -> int:
    with world.lock:
        return sum(len(r.notes) for r in world.loop_returns.values() if r.order_name == original)


def _waiting(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM orders WHERE note_next_retry_at IS NOT NULL").fetchone()[0]
    finally:
        con.close()


def run(exchanges: int, latency_ms: int) -> dict:
    with subscribed_serve() as (sb, db, served):
        made = requests.post(f"{sb.url}/_sandbox/loop/webhooks", timeout=5,
                             json={"trigger": "return.created", "url": f"{served.url}/webhooks/loop"})
        made.raise_for_status()
        waiting_before = _waiting(db)
        created = [activity.create_exchange(sb.world, {"sku": "JKT-L-PRE", "return": None})
                   for _ in range(exchanges)]
        deadline = time.monotonic() + 120
        while _waiting(db) < waiting_before + exchanges and time.monotonic() < deadline:
            time.sleep(0.05)
        sb.webhooks.wait_idle(30)
        _wait_drained(db)
        if latency_ms:
            sb.app.faults = FaultPlan(slow=1.0, slow_seconds=latency_ms / 1000)
        latencies, missing = [], []
        for exchange in created:
            started = time.monotonic()
            activity.create_loop_return(sb.world, {"order": exchange["order"]["name"]})
            while not _notes(sb.world, exchange["original"]) and time.monotonic() - started < 30:
                time.sleep(0.002)
            if _notes(sb.world, exchange["original"]):
                latencies.append(time.monotonic() - started)
            else:
                missing.append(exchange["order"]["name"])
        sb.app.faults = None
        # Every return made names one waiting order: the others' back-off must not have moved.
        escalated = served.log().count("Loop return not found yet (lookup ")
        return {"latencies": latencies, "missing": missing, "escalated": escalated}


def main(argv: list[str]) -> int:
    exchanges = int(argv[0]) if argv else 50
    print(f"{exchanges} held exchanges whose note waits for its Loop return; each return made in turn.")
    print("Latency: create_loop_return -> the note in the sandbox (wall clock, polled every 2 ms).\n")
    header = f"{'mode':<40}{'p50 s':>9}{'p95 s':>9}{'p99 s':>9}{'max s':>9}  target"
    print(header)
    print("-" * len(header))
    failed = False
    for latency_ms, target in TARGETS.items():
        result = run(exchanges, latency_ms)
        values = result["latencies"] or [float("inf")]
        p99 = quantile(values, 0.99)
        met = not result["missing"] and p99 < target
        failed |= not met
        label = f"Loop webhook, +{latency_ms} ms per API answer"
        print(f"{label:<40}{statistics.median(values):>9.3f}{quantile(values, 0.95):>9.3f}{p99:>9.3f}"
              f"{max(values):>9.3f}  p99 < {target:g} s: {'met' if met else 'MISSED'}")
        if result["missing"]:
            print(f"  no note within 30 s: {len(result['missing'])}")
        if result["escalated"]:
            failed = True
            print(f"  {result['escalated']} lookups moved a waiting order's back-off on (each should wait its turn)")
    label = "no Loop webhook (computed)"
    print(f"{label:<40}{0.5 * FIRST_LOOKUP:>9.1f}{0.95 * FIRST_LOOKUP:>9.1f}{0.99 * FIRST_LOOKUP:>9.1f}"
          f"{FIRST_LOOKUP:>9.1f}  (the back-off's lookup at 5 min)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

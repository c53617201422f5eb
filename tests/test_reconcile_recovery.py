"""A crash between sending a release and writing it down is recovered as *our* release.

Mistaking it for a merchant's release in the admin would mark the order as
released by hand, and loopsync would never hold it again.
"""

from __future__ import annotations

import os
import subprocess
import sys

from loopsync.store import Store


def _scan_killed_at(db, failpoint: str) -> int:
    env = {**os.environ, "LOOPSYNC_FAILPOINT": failpoint}
    proc = subprocess.run(
        [sys.executable, "-m", "loopsync", "scan", "--db", str(db)], env=env, capture_output=True, timeout=60
    )
    return proc.returncode


def test_release_recorded_then_crash_is_settled_as_ours(connected, cli, sandbox):
    assert cli(["scan", "--db", str(connected)]).code == 0
    world = sandbox.world
    jacket = next(v for v in sorted(world.variants) if world.variants[v].sku == "JKT-L-PRE")
    world.take_off_preorder(jacket)

    assert _scan_killed_at(connected, "release.recorded") == -9
    assert cli(["scan", "--db", str(connected)]).code == 0

    with Store.open(connected) as store:
        order = store.orders.order_by_name("EXC-1086-1")
        rows = store.holds.holds_for_order(order.order_id)
        assert [r.status for r in rows] == ["released"] and rows[0].released_by == "scan"
        assert not store.orders.is_manually_released(order.order_id)
    # And Shopify agrees: no loopsync hold on either jacket exchange, Upsell Guard's hold intact.
    snapshot = {o["name"]: o for o in world.snapshot()["orders"]}
    for name in ("EXC-1086-1", "EXC-1092-1"):
        handles = [h["handle"] for fo in snapshot[name]["fulfillmentOrders"] for h in fo["holds"]]
        assert "loopsync-preorder" not in handles
    upsell = [h["appId"] for fo in snapshot["EXC-1092-1"]["fulfillmentOrders"] for h in fo["holds"]]
    assert len(upsell) == 1

"""`loopsync serve` fed by the sandbox's own webhook deliveries, end to end.

No test here posts a delivery itself: `loopsync webhooks install` subscribes serve's
address in the sandbox, and what other actors do to the store (``sandbox.activity``)
reaches serve as Shopify would send it: signed, at least once, possibly out of order.
Serve starts (and finishes its catch-up scan) before the subscriptions exist, so every
hold, tag and note after that is the webhooks' doing; each test checks no scan ran.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime

import pytest

from loopsync import guard
from loopsync.sandbox import activity
from loopsync.sandbox.faults import FaultPlan
from support.sandbox import sandbox_env
from support.serve import Served
from support.state import one
from support.waiting import wait_until

RELEASE_NOTE = "The pre-order item is ready: the hold was released."


@pytest.fixture
def live(sandbox, db, cli, tmp_path):
    """serve on a port of its own, subscribed in the sandbox with `loopsync webhooks install`."""
    assert cli(["connect", "--db", str(db)], env=sandbox_env(sandbox)).code == 0
    served = Served(db, tmp_path / "serve.log", "--scan-every", "0").ready()
    installed = cli(["webhooks", "install", "--url", served.url, "--db", str(db)])
    assert installed.code == 0, installed.output
    yield served
    served.stop(signal.SIGKILL)


def scans(db) -> int:
    return one(db, "SELECT COUNT(*) FROM scans")


def exchange(probe, **spec) -> dict:
    """Loop creates a jacket pre-order exchange now (on a new original, #2001, #2002, …)."""
    return activity.create_exchange(probe.world, {"sku": "JKT-L-PRE", **spec})


def exact(text: str) -> datetime:
    return datetime.fromisoformat(text)


def hold_latency(probe, created: dict) -> float:
    """Seconds from the exchange's creation to loopsync's hold, both by the sandbox world's own clock."""
    [hold] = probe.our_holds(created["order"]["name"])
    return (hold.placed_at - exact(created["created_at_exact"])).total_seconds()


def answered(probe, topic: str) -> None:
    """Wait for the sandbox to record a 200 for `topic`. It records an attempt only once the answer is back,
    and serve's worker may act on the delivery before then."""
    wait_until(lambda: any(a.topic == topic and a.status == 200 for a in probe.sb.webhooks.attempts()),
               what=f"a 200 for {topic}")


def ours(probe, mark):
    mutations = probe.mutations(mark)
    return mutations.count("fulfillmentOrderHold"), mutations.count("tagsAdd"), len(probe.loop_posts(mark))


def test_a_created_exchange_is_held_tagged_and_noted_within_a_second_by_the_sandboxs_delivery(live, probe, db):
    scans_before = scans(db)
    mark = probe.mark()

    created = exchange(probe)
    name = created["order"]["name"]
    wait_until(lambda: probe.our_holds(name) and probe.notes(created["original"]), what="hold and note")

    assert hold_latency(probe, created) < 1.0
    assert "EXC-2001-1" == name and "2001" in probe.order(name).tags
    assert "pre-order" in probe.order(name).tags
    assert ours(probe, mark) == (1, 1, 1)
    assert scans(db) == scans_before
    answered(probe, "orders/create")
    assert probe.sb.webhooks.wait_idle(5)
    assert all(a.status == 200 for a in probe.sb.webhooks.attempts() if a.topic == "orders/create")


def test_duplicated_and_reordered_deliveries_of_ten_exchanges_give_one_hold_tag_and_note_each(live, probe, db):
    probe.sb.webhooks.configure({"duplicate": 0.5, "reorder": 6, "reorder_wait_ms": 100, "seed": 11})
    scans_before = scans(db)
    mark = probe.mark()

    made = [exchange(probe) for _ in range(10)]
    wait_until(lambda: all(probe.notes(c["original"]) for c in made), timeout=15, what="ten notes")
    assert probe.sb.webhooks.wait_idle(10)
    wait_until(lambda: one(db, "SELECT COUNT(*) FROM inbox WHERE state = 'pending'") == 0, what="an empty inbox")

    for created in made:
        assert len(probe.our_holds(created["order"]["name"])) == 1
        assert len(probe.notes(created["original"])) == 1
    assert ours(probe, mark) == (10, 10, 10)
    assert scans(db) == scans_before
    attempts = probe.sb.webhooks.attempts()
    # The switches really did their worst: some deliveries went twice under one webhook id.
    assert any(a.duplicate for a in attempts)
    assert one(db, "SELECT COUNT(*) FROM inbox") == len({a.webhook_id for a in attempts})


def test_a_hold_wiped_by_flow_is_put_back_within_seconds_by_the_real_hold_released_delivery(live, probe, db):
    created = exchange(probe)
    name = created["order"]["name"]
    wait_until(lambda: probe.our_holds(name), what="the first hold")
    scans_before = scans(db)

    activity.release_every_hold(probe.world, name)
    wiped = time.monotonic()
    assert probe.our_holds(name) == []
    wait_until(lambda: probe.our_holds(name), what="the hold put back")

    assert time.monotonic() - wiped < 3
    assert len(probe.our_holds(name)) == 1
    live.wait_for(f"order {re.escape(name)}: held .*{re.escape(guard.REHELD)}")
    answered(probe, "fulfillment_holds/released")
    assert scans(db) == scans_before


def test_a_shipped_preorder_is_released_and_noted_from_selling_plan_groups_update_without_a_scan(live, probe, db):
    created = exchange(probe)
    name, original = created["order"]["name"], created["original"]
    wait_until(lambda: probe.our_holds(name) and probe.notes(original), what="the hold and its note")
    scans_before = scans(db)
    mark = probe.mark()

    activity.ship_preorder(probe.world, {"sku": "JKT-L-PRE"})
    wait_until(lambda: not probe.our_holds(name) and len(probe.notes(original)) == 2, what="release and note")

    assert RELEASE_NOTE in probe.notes(original)[-1]
    assert "fulfillmentOrderReleaseHold" in probe.mutations(mark)
    # A late orders/updated (loopsync's own tag, say) may reach serve first and release just as
    # well: the world is re-read either way. The delivery this test is about still arrives.
    answered(probe, "selling_plan_groups/update")
    assert scans(db) == scans_before
    live.wait_for(f"order {re.escape(name)}: release")


def test_an_exchange_routed_late_is_pending_first_and_held_once_order_routing_complete_arrives(live, probe, db):
    scans_before = scans(db)

    created = exchange(probe, routing_delay_ms=400)
    name = created["order"]["name"]
    live.wait_for(f"order {re.escape(name)}: pending")
    assert probe.our_holds(name) == [] and probe.fulfillment_orders(name) == []
    wait_until(lambda: probe.our_holds(name), what="the hold after routing")

    assert 0.4 <= hold_latency(probe, created) < 1.4
    answered(probe, "fulfillment_orders/order_routing_complete")
    assert scans(db) == scans_before


def test_exchanges_arriving_together_are_reconciled_side_by_side_while_shopify_and_loop_are_slow(live, probe, sandbox):
    # Every API answer takes 0.3 s: one exchange's reconcile takes about two seconds. One at a
    # time, the last exchange waits for the others' whole reconciles (about 10 s here); side by
    # side, for at most the round in progress and its own first few calls (about 3 s).
    sandbox.app.faults = FaultPlan(slow=1.0, slow_seconds=0.3)
    made = [exchange(probe) for _ in range(4)]
    wait_until(lambda: all(probe.our_holds(c["order"]["name"]) for c in made), timeout=20, what="four holds")

    assert max(hold_latency(probe, c) for c in made) < 6


def test_exchanges_arriving_together_take_turns_at_the_stores_cost_bucket(live, probe):
    # A small bucket that eight reconcile threads could empty at once: each thread's clients
    # must count what the others have in flight, not only the last throttleStatus they saw.
    world = probe.world
    with world.lock:
        world.bucket_size, world.restore_rate = 200.0, 400.0
    mark = probe.mark()
    made = [exchange(probe) for _ in range(8)]
    wait_until(lambda: all(probe.our_holds(c["order"]["name"]) and probe.notes(c["original"]) for c in made),
               timeout=30, what="eight holds and notes")

    shopify = [e for e in probe.entries(mark) if e.api == "shopify"]
    assert shopify and [e.operation for e in shopify if e.throttled] == []

"""serve's worker dispatches orders as they become due, against a real inbox and a reconciler
whose passes wait for the test: no rounds, coalescing, one thread per order, a clean stop."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter, defaultdict

import pytest

from loopsync.serve.worker import Worker
from loopsync.store import Store
from loopsync.store.inbox import NewDelivery


class Gated:
    """The reconciler factory and reconciler at once: a pass over an order waits for its gate."""

    def __init__(self) -> None:
        self.gates: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.started: queue.Queue = queue.Queue()
        self.passes: Counter = Counter()

    def __call__(self, _store: Store) -> Gated:
        return self

    def reconcile_one(self, order_id: str) -> None:
        self.started.put(order_id)
        assert self.gates[order_id].wait(10), f"{order_id}'s gate never opened"
        self.passes[order_id] += 1
        return None  # "not a Loop exchange loopsync knows": nothing to report but the pass


class Events:
    def __init__(self) -> None:
        self.reconciles = 0

    def reconciled(self) -> None:
        self.reconciles += 1

    def error(self) -> None:
        raise AssertionError("no pass fails here")

    def latency(self, seconds: float) -> None:
        raise AssertionError("no hold is placed here")


def gid(n: int) -> str:
    return f"gid://shopify/Order/{n}"


@pytest.fixture
def inbox(tmp_path):
    path = tmp_path / "state.db"
    made = iter(range(1, 1000))
    store = Store.open(path)

    def deliver(*orders: int) -> None:
        store.inbox.add_many([
            NewDelivery(webhook_id=f"w{next(made)}", topic="orders/updated", shop="s.myshopify.com",
                        body=json.dumps({"admin_graphql_api_id": gid(n)}))
            for n in orders
        ])

    def states() -> dict[str, str]:
        return dict(store.db.execute("SELECT webhook_id, state FROM inbox").fetchall())

    deliver.states = states
    deliver.taken = lambda: store.db.execute("SELECT COUNT(*) FROM inbox WHERE attempts > 0").fetchone()[0]
    deliver.path = path
    yield deliver
    store.close()


def start(inbox, gated: Gated, concurrency: int) -> tuple[Worker, threading.Thread]:
    worker = Worker(lambda: Store.open(inbox.path), gated, Events(), stop=threading.Event(), idle_wait=0.05,
                    concurrency=concurrency)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def wait_for(check, timeout=5.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        done.wait(0.01)
    raise AssertionError("not within the time")


def test_an_order_named_during_another_orders_slow_pass_is_reconciled_without_waiting_for_it(inbox):
    gated = Gated()
    inbox(1)
    worker, thread = start(inbox, gated, concurrency=4)
    assert gated.started.get(timeout=5) == gid(1)

    inbox(2)
    worker.notify()
    assert gated.started.get(timeout=5) == gid(2)
    gated.gates[gid(2)].set()
    # Order 2 is done while order 1's pass is still in progress: no round to wait for.
    wait_for(lambda: inbox.states()["w2"] == "done")
    assert inbox.states()["w1"] == "pending"

    gated.gates[gid(1)].set()
    wait_for(lambda: inbox.states()["w1"] == "done")
    worker.stop.set()
    worker.notify()
    thread.join(5)
    assert worker.failed is None and gated.passes == {gid(1): 1, gid(2): 1}


def test_deliveries_coalesce_into_one_pass_and_an_order_in_progress_gets_one_more(inbox, caplog):
    caplog.set_level(logging.INFO, "loopsync.serve")
    gated = Gated()
    inbox(1, 3)
    worker, thread = start(inbox, gated, concurrency=2)
    assert {gated.started.get(timeout=5), gated.started.get(timeout=5)} == {gid(1), gid(3)}

    # Both threads are busy: two more for order 1 (in progress) and two for order 2 (queued).
    inbox(1, 2, 1, 2)
    worker.notify()
    wait_for(lambda: inbox.taken() == 6)
    with pytest.raises(queue.Empty):
        gated.started.get(timeout=0.2)  # never a second thread on order 1, and order 2 waits for a free one

    for n in (1, 2, 3):
        gated.gates[gid(n)].set()
    wait_for(lambda: set(inbox.states().values()) == {"done"})
    worker.stop.set()
    worker.notify()
    thread.join(5)

    assert worker.failed is None
    assert gated.passes == {gid(1): 2, gid(2): 1, gid(3): 1}
    covered = sorted(r.getMessage().rsplit("; ", 1)[1] for r in caplog.records if "nothing to do" in r.getMessage())
    assert covered == ["1 delivery", "1 delivery", "2 deliveries", "2 deliveries"]


def test_a_stop_finishes_and_records_the_pass_in_hand_and_leaves_the_queued_orders_pending(inbox):
    gated = Gated()
    inbox(1, 2)
    worker, thread = start(inbox, gated, concurrency=1)
    assert gated.started.get(timeout=5) == gid(1)

    worker.stop.set()
    worker.notify()
    gated.gates[gid(1)].set()
    gated.gates[gid(2)].set()
    thread.join(5)

    assert not thread.is_alive() and worker.failed is None
    assert inbox.states() == {"w1": "done", "w2": "pending"}
    assert gated.passes == {gid(1): 1}


def _waiting(order_id: str, name: str, kind: str):
    from loopsync.store.orders import OrderRow

    return OrderRow(order_id=f"gid://shopify/Order/{order_id}", name=name, kind=kind, first_seen="", last_seen="",
                    state="held", window=None, return_id=None, note_posted_at=None, tagged_at=None,
                    pending_reason=None, attempts=0, manual_release=False, manual_release_at=None)


def test_a_loop_return_names_only_the_waiting_orders_it_points_at():
    from loopsync.serve.worker import waiting_for_return

    waiting = [_waiting("11", "EXC-2001-1", "separate"), _waiting("12", "EXC-2002-1", "separate"),
               _waiting("13", "#2003", "native")]
    by_id = {"exchanges": [{"exchange_order_id": 11, "exchange_order_name": None}], "provider_order_id": "9"}
    by_name = {"exchanges": [{"exchange_order_id": None, "exchange_order_name": "EXC-2002-1"}]}
    native = {"exchanges": [], "provider_order_id": "13"}
    unrelated = {"exchanges": [{"exchange_order_id": 99, "exchange_order_name": "EXC-9-1"}], "provider_order_id": "8"}
    assert waiting_for_return(by_id, waiting) == ["gid://shopify/Order/11"]
    assert waiting_for_return(by_name, waiting) == ["gid://shopify/Order/12"]
    assert waiting_for_return(native, waiting) == ["gid://shopify/Order/13"]
    assert waiting_for_return(unrelated, waiting) == []
    # Not the documented shape: every waiting order is read again rather than none.
    assert len(waiting_for_return({"id": 5, "trigger": "return.created"}, waiting)) == 3

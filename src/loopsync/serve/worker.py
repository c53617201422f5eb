"""The inbox worker: pending deliveries → the orders they name → the reconcile a scan uses.

It runs in serve's second process (``serve.worker_main``), so its threads never hold the
interpreter the acknowledging HTTP handler needs. One dispatcher thread reads the inbox
and hands orders to a pool of ``CONCURRENCY`` reconcile threads as they become due: no
rounds, so no order waits for the slowest of a batch. Nothing is taken from a payload
but the id of what it names: the order and its variants are read again from Shopify
(retries carry stale copies, and deliveries come out of order).

Coalescing: a delivery for an order already queued joins that order's coming pass (ten
deliveries about one order waiting together cost one reconcile); a delivery for an order
whose pass is in progress gets one more pass after it, because that pass may have read
the order before the change the delivery announces. A delivery is marked done only
after every order it names has been reconciled since it arrived; a crash in between
leaves it pending, and the next start reconciles the order again, which changes nothing
because reconcile is idempotent.

Each reconcile thread has its own state file connection and reconciler (SQLite
connections and a Reconciler's per-order state belong to one thread). Never two threads
on one order: the dispatcher gives an order to one thread at a time, and the order lock
(``store.lock.order_lock``, a POSIX record lock) keeps any reconcile elsewhere, in this
process or another, off it as well. Inbox rows are written by the dispatcher only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from loopsync import guard
from loopsync.errors import LoopsyncError
from loopsync.store import Store
from loopsync.store.inbox import Delivery
from loopsync.store.orders import OrderRow
from loopsync.store.schema import InboxState

ORDER_TOPICS = frozenset({"orders/create", "orders/updated"})
FULFILLMENT_ORDER_TOPICS = frozenset({"fulfillment_holds/released", "fulfillment_orders/order_routing_complete"})
SELLING_PLAN_TOPICS = frozenset({"selling_plan_groups/update"})
#: The topics loopsync subscribes to and acts on (`loopsync webhooks install`).
TOPICS = ORDER_TOPICS | FULFILLMENT_ORDER_TOPICS | SELLING_PLAN_TOPICS
#: Loop's deliveries to /webhooks/loop, stored as "loop/" + the payload's trigger: a return that
#: appears (or changes) may be the one an exchange's note has been waiting for.
LOOP_TOPICS = frozenset({"loop/return.created", "loop/return.updated"})

#: After this many failed attempts a delivery is marked failed; the scan covers its order.
MAX_ATTEMPTS = 5
#: Deliveries read from the inbox at a time (more are read as soon as these are handed out).
BATCH = 200
#: How long a delivery that failed waits before it is tried again (an API outage, say).
RETRY_DELAY = 5.0
#: Reconcile threads. They spend nearly all their time waiting on Shopify and Loop. Measured
#: against 16: the same figures (+100 ms answers: hold p99 0.38-0.40 s; the 500-delivery burst
#: drained 11-13 s after its first post either way), so no more connections than needed.
#: Shopify's cost bucket is shared by them all (the transport backs off on THROTTLED), and
#: Loop's 300 a minute with its Retry-After.
CONCURRENCY = 8
#: A reconcile thread makes a new reconciler (connection, settings, clients) once its current
#: one is this old, so a `connect`, `disconnect` or `config set` reaches the worker within a
#: second, while a busy minute reuses the HTTP connections.
RECONCILER_AGE = 1.0

log = logging.getLogger("loopsync.serve")


class Events(Protocol):
    """Where the worker reports what /metrics shows (the HTTP process, over a pipe)."""

    def reconciled(self) -> None: ...
    def error(self) -> None: ...
    def latency(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class _Lookup:
    """A fulfillment order the ledger does not know: its order is asked of Shopify, by a pool thread."""

    delivery: Delivery
    fulfillment_order_id: str


@dataclass
class _Order:
    """One order's place in the dispatch: the deliveries its queued pass covers, and those that
    arrived while a pass was running (they get the next one)."""

    queued: set[int] = field(default_factory=set)
    running: set[int] | None = None
    again: set[int] = field(default_factory=set)


class Worker:
    """:meth:`run` in a thread of its own; :meth:`notify` when a delivery was written."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        reconciler: Callable[[Store], Any],
        events: Events,
        *,
        stop: threading.Event,
        idle_wait: float = 1.0,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._open_store = open_store
        self._reconciler = reconciler
        self.events = events
        self.stop = stop
        self.idle_wait = idle_wait
        self.concurrency = concurrency
        #: Set once the inbox left by the last run has been worked through (the catch-up scan waits for it).
        self.drained = threading.Event()
        self.failed: BaseException | None = None
        #: Pool threads' answers, for the dispatcher: ("order", order id, result) or ("lookup", _Lookup, result).
        self._answers: queue.Queue = queue.Queue()
        self._tasks: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # _orders is read by the pool threads as a pass starts
        self._orders: dict[str, _Order] = {}
        self._deliveries: dict[int, Delivery] = {}
        #: Per delivery in hand: the orders still to be reconciled before it is done.
        self._remaining: dict[int, set[str]] = {}
        self._lookups = 0
        self._retries: list[tuple[float, Delivery]] = []
        self._seen = 0  # the highest inbox id taken

    def notify(self) -> None:
        """A delivery was committed to the inbox (or serve is stopping): look now, not at the next poll."""
        self._answers.put(None)

    # -- the dispatcher --------------------------------------------------------------

    def run(self) -> None:
        try:
            with self._open_store() as store:
                try:
                    self._dispatch(store)
                finally:
                    self._stop_pool()
                    # The passes in hand when the stop came finished: record them.
                    self._collect(store, block=False)
        except BaseException as exc:  # noqa: BLE001 - worker_main stops serve and reports it as the CLI would
            self.failed = exc
            self.stop.set()
        finally:
            self.drained.set()

    def _dispatch(self, store: Store) -> None:
        while not self.stop.is_set():
            took = self._take(store)
            if took >= BATCH:
                # More may be waiting behind a full batch: read again before waiting.
                self._collect(store, block=False)
                continue
            if not took and self._idle():
                self.drained.set()
            # Until a pass ends, a delivery is written (notify), a retry is due or idle_wait passes.
            self._collect(store, block=True)

    def _idle(self) -> bool:
        return not self._remaining and not self._lookups

    def _take(self, store: Store) -> int:
        """Hand out the inbox's new pending deliveries and the retries now due; how many."""
        now = time.monotonic()
        due = [d for at, d in self._retries if at <= now]
        self._retries = [(at, d) for at, d in self._retries if at > now]
        new = store.inbox.pending_after(self._seen, BATCH)
        if new:
            self._seen = new[-1].id
        taken = [*due, *new]
        if not taken:
            return 0
        store.inbox.started([d.id for d in taken])
        for delivery in taken:
            self._deliveries[delivery.id] = delivery
            try:
                named = self.orders_named(store, delivery)
            except LoopsyncError as exc:
                self._failed(store, [delivery.id], exc.message)
                continue
            if isinstance(named, _Lookup):
                self._lookups += 1
                self._start_threads()
                self._tasks.put(("lookup", named))
            else:
                self._assign(store, delivery, named)
        return len(taken)

    def _assign(self, store: Store, delivery: Delivery, order_ids: list[str]) -> None:
        if not order_ids:
            self._finish(store, [delivery.id], "names no order loopsync acts on")
            log.info("delivery %s %s: nothing to do", delivery.webhook_id, delivery.topic)
            return
        self._remaining[delivery.id] = set(order_ids)
        for order_id in order_ids:
            with self._lock:
                entry = self._orders.get(order_id)
                if entry is None:
                    entry = self._orders[order_id] = _Order()
                if entry.running is not None:
                    entry.again.add(delivery.id)
                    continue
                fresh = not entry.queued
                entry.queued.add(delivery.id)
            if fresh:
                self._start_threads()
                self._tasks.put(("order", order_id))

    def _collect(self, store: Store, *, block: bool) -> None:
        """Record the pool's answers: all that are there, after waiting for one if ``block``."""
        wait = self._next_wait() if block else 0.0
        while True:
            try:
                answer = self._answers.get(timeout=wait) if wait > 0 else self._answers.get_nowait()
            except queue.Empty:
                return
            wait = 0.0
            if answer is None:  # notify(): the dispatcher looks at the inbox again
                continue
            kind, subject, result = answer
            if isinstance(result, BaseException) and not isinstance(result, LoopsyncError):
                raise result
            if kind == "lookup":
                self._looked_up(store, subject, result)
            else:
                self._passed(store, subject, result)

    def _next_wait(self) -> float:
        wait = self.idle_wait
        if self._retries:
            wait = min(wait, max(0.01, min(at for at, _d in self._retries) - time.monotonic()))
        return wait

    def _looked_up(self, store: Store, lookup: _Lookup, result: Any) -> None:
        self._lookups -= 1
        if isinstance(result, LoopsyncError):
            self._failed(store, [lookup.delivery.id], result.message)
            return
        self._assign(store, lookup.delivery, [result] if result else [])

    def _passed(self, store: Store, order_id: str, result: Any) -> None:
        """One pass over ``order_id`` ended: mark what it covered, and queue the next pass if one is due."""
        with self._lock:
            entry = self._orders[order_id]
            covered = entry.running or set()
            entry.running = None
            if entry.again:
                entry.queued, entry.again = entry.again, set()
                again = True
            else:
                again = False
                if not entry.queued:
                    del self._orders[order_id]
        if again:
            self._tasks.put(("order", order_id))
        if isinstance(result, LoopsyncError):
            self._failed(store, [i for i in covered if i in self._remaining], result.message)
            return
        self._report(order_id, result, len(covered))
        done = []
        for delivery_id in covered:
            left = self._remaining.get(delivery_id)
            if left is None:  # it failed on another of its orders and waits for a retry
                continue
            left.discard(order_id)
            if not left:
                done.append(delivery_id)
        self._finish(store, done)

    def _finish(self, store: Store, ids: list[int], note: str | None = None) -> None:
        if not ids:
            return
        store.inbox.finish(ids, InboxState.DONE, note)
        for i in ids:
            self._remaining.pop(i, None)
            self._deliveries.pop(i, None)

    def _failed(self, store: Store, ids: list[int], message: str) -> None:
        """Count the failure; give up on a delivery after MAX_ATTEMPTS, else try it again after RETRY_DELAY."""
        if not ids:
            return
        self.events.error()
        for i in ids:
            self._remaining.pop(i, None)
            d = self._deliveries.pop(i)
            # attempts was counted before this attempt started.
            gave_up = d.attempts + 1 >= MAX_ATTEMPTS
            if gave_up:
                store.inbox.finish([d.id], InboxState.FAILED, message)
            else:
                store.inbox.retry_later(d.id, message)
                self._retries.append((time.monotonic() + RETRY_DELAY, dataclasses.replace(d, attempts=d.attempts + 1)))
            log.warning(
                "delivery %s %s: %s (%s)",
                d.webhook_id,
                d.topic,
                "gave up; the next scan covers it" if gave_up else "failed, will retry",
                message,
            )

    # -- the pool ----------------------------------------------------------------

    def _start_threads(self) -> None:
        """One more thread per task handed out, up to ``concurrency`` (an idle one waits on the queue)."""
        if len(self._threads) < self.concurrency:
            thread = threading.Thread(target=self._pool_thread, name=f"loopsync-reconcile-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _stop_pool(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()

    def _pool_thread(self) -> None:
        """A reconcile thread: its own state file connection, a reconciler renewed every RECONCILER_AGE."""
        store: Store | None = None
        made: tuple[float, Any] | None = None

        def reconciler() -> Any:
            nonlocal store, made
            if store is None:
                store = self._open_store()
            if made is None or time.monotonic() - made[0] > RECONCILER_AGE:
                made = (time.monotonic(), self._reconciler(store))
            return made[1]

        try:
            while (task := self._tasks.get()) is not None:
                if self.stop.is_set():
                    # Stopping: what is not started stays pending and is done on the next start.
                    continue
                kind, subject = task
                try:
                    if kind == "lookup":
                        result: Any = reconciler().shopify.order_of_fulfillment_order(subject.fulfillment_order_id)
                    else:
                        with self._lock:
                            entry = self._orders[subject]
                            entry.running, entry.queued = entry.queued, set()
                        result = reconciler().reconcile_one(subject)
                except LoopsyncError as exc:
                    result = exc
                except BaseException as exc:  # noqa: BLE001 - handed to the dispatcher, which stops serve
                    result = exc
                self._answers.put((kind, subject, result))
        finally:
            if store is not None:
                store.close()

    # -- what a delivery names ---------------------------------------------------------

    def orders_named(self, store: Store, delivery: Delivery) -> list[str] | _Lookup:
        """The order ids a delivery is about (for selling plans: every order loopsync holds or waits
        on; for Loop returns: the orders whose note waits for that return), or the fulfillment
        order whose order Shopify must be asked for."""
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            return []
        if not isinstance(payload, dict):
            return []
        if delivery.topic in ORDER_TOPICS:
            order_id = _order_gid(payload)
            return [order_id] if order_id else []
        if delivery.topic in FULFILLMENT_ORDER_TOPICS:
            fo = payload.get("fulfillment_order")
            fo_id = fo.get("id") if isinstance(fo, dict) else None
            if not isinstance(fo_id, str) or not fo_id.startswith("gid://shopify/FulfillmentOrder/"):
                return []
            # The ledger knows the fulfillment orders loopsync holds; any other is looked up.
            row = store.holds.hold(fo_id)
            return [row.order_id] if row is not None else _Lookup(delivery, fo_id)
        if delivery.topic in LOOP_TOPICS:
            return waiting_for_return(payload, store.orders.note_waits())
        if delivery.topic in SELLING_PLAN_TOPICS:
            # GUESS: the payload may not list every variant whose plan changed (see the webhook
            # facts); the orders loopsync holds or waits on are the ones a change can concern.
            held = [h.order_id for h in store.holds.active_holds()]
            waiting = [p.order_id for p in store.orders.pending_orders()]
            return list(dict.fromkeys([*held, *waiting]))
        return []

    def _report(self, order_id: str, result: Any, deliveries: int) -> None:
        self.events.reconciled()
        covered = f"; {deliveries} deliver{'y' if deliveries == 1 else 'ies'}"
        if result is None:
            log.info("order %s: not a Loop exchange loopsync knows; nothing to do%s", order_id, covered)
            return
        order, outcome = result
        # The first hold only: a hold put back after another app wiped it is not news about the
        # exchange's wait (it would count hours since the order was created). Reported before the
        # log line, so that a reader who saw the line finds it in /metrics.
        first = [a for a in outcome.actions if a.kind == "hold" and a.status == "done" and a.detail != guard.REHELD]
        if first and order.created_at:
            created = order.created_at if order.created_at.tzinfo else order.created_at.replace(tzinfo=UTC)
            self.events.latency(max(0.0, (datetime.now(UTC) - created).total_seconds()))
        acted = [f"{a.kind} {a.status}" for a in outcome.actions]
        log.info(
            "order %s: %s (%s)%s%s",
            order.name,
            outcome.decision,
            outcome.pending or outcome.reason,
            f"; {', '.join(acted)}" if acted else "",
            covered,
        )


def waiting_for_return(payload: dict, waiting: list[OrderRow]) -> list[str]:
    """The orders whose note waits for a Loop return that this Loop payload may be.

    Loop sends return.created and return.updated for every return of the shop, and each
    order read again spends some of the Loop key's 300 requests a minute, so only the
    waiting orders the return points at are named, by the rule the reconciler matches a
    return with (``reconcile.returns.matcher``): a separate exchange order by its id or name
    in ``exchanges[]``, a native one by the original order's ``provider_order_id``. Each is
    still read again and its return looked up through the API. A payload without those
    fields (not the documented shape) names every waiting order: correctness before budget.
    """
    exchanges = payload.get("exchanges")
    provider = payload.get("provider_order_id")
    if not isinstance(exchanges, list) and provider is None:
        return [row.order_id for row in waiting]
    ids, names = set(), set()
    for x in exchanges if isinstance(exchanges, list) else []:
        if isinstance(x, dict):
            ids.add(str(x.get("exchange_order_id") or ""))
            names.add(str(x.get("exchange_order_name") or ""))
    ids.discard("")
    names.discard("")
    named = []
    for row in waiting:
        legacy = row.order_id.rsplit("/", 1)[-1]
        if row.kind == "native":
            if str(provider or "") == legacy:
                named.append(row.order_id)
        elif legacy in ids or (row.name is not None and row.name in names):
            named.append(row.order_id)
    return named


def _order_gid(payload: dict) -> str | None:
    gid = payload.get("admin_graphql_api_id")
    if isinstance(gid, str) and gid.startswith("gid://shopify/Order/") and gid.rsplit("/", 1)[-1].isdigit():
        return gid
    number = payload.get("id")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return f"gid://shopify/Order/{number}"
    return None

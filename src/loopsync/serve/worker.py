"""The inbox worker: pending deliveries → the orders they name → the reconcile a scan uses.

One thread. Each round it takes the pending deliveries oldest first, works out which
order each one names, and reconciles every such order once (ten deliveries about one
order cost one reconcile). Nothing is taken from a payload but the id of what it names:
the order and its variants are read again from Shopify (retries carry stale copies, and
deliveries come out of order). A delivery is marked done only after its orders were
reconciled; a crash in between leaves it pending, and the next start reconciles the
order again, which changes nothing because reconcile is idempotent.

The orders of one round are reconciled side by side by ``CONCURRENCY`` threads: each
reconcile spends nearly all its time waiting on Shopify and Loop, so one at a time a
busy minute queued new exchanges behind whole reconciles of others (with 100 ms API
answers, 200 exchanges at 150 ms apart waited up to half a minute for their hold). Each
thread has its own state file connection and reconciler (SQLite connections and a
Reconciler's per-order state belong to one thread); the order lock keeps any two of
them, and any scan, off one order. The inbox rows are written by the worker thread only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loopsync import guard
from loopsync.errors import LoopsyncError
from loopsync.serve.metrics import Metrics
from loopsync.store import Store
from loopsync.store.inbox import Delivery
from loopsync.store.schema import InboxState

ORDER_TOPICS = frozenset({"orders/create", "orders/updated"})
FULFILLMENT_ORDER_TOPICS = frozenset({"fulfillment_holds/released", "fulfillment_orders/order_routing_complete"})
SELLING_PLAN_TOPICS = frozenset({"selling_plan_groups/update"})
#: The topics loopsync subscribes to and acts on (`loopsync webhooks install`).
TOPICS = ORDER_TOPICS | FULFILLMENT_ORDER_TOPICS | SELLING_PLAN_TOPICS

#: After this many failed attempts a delivery is marked failed; the scan covers its order.
MAX_ATTEMPTS = 5
BATCH = 100
#: How long the worker waits before retrying deliveries that failed (an API outage, say).
RETRY_DELAY = 5.0
#: Orders of one round reconciled at once. Shopify's cost bucket is shared by them all (the
#: transport backs off on THROTTLED), and Loop's 300 a minute with its Retry-After.
CONCURRENCY = 8
#: What a reconcile thread answers for an order it did not start because serve is stopping.
_SKIPPED = object()

log = logging.getLogger("loopsync.serve")


class Worker:
    """Runs :meth:`run` in its own thread, with a state file connection of its own."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        reconciler: Callable[[Store], Any],
        metrics: Metrics,
        *,
        stop: threading.Event,
        wake: threading.Event,
        idle_wait: float = 1.0,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._open_store = open_store
        self._reconciler = reconciler
        self.metrics = metrics
        self.stop = stop
        self.wake = wake
        self.idle_wait = idle_wait
        #: Set once the inbox left by the last run has been worked through (the catch-up scan waits for it).
        self.drained = threading.Event()
        self.failed: BaseException | None = None
        self.concurrency = concurrency
        self._tasks: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._round = 0

    def run(self) -> None:
        try:
            with self._open_store() as store, self._reconcile_threads():
                while not self.stop.is_set():
                    self.wake.clear()
                    batch = store.inbox.pending(BATCH)
                    if not batch:
                        self.drained.set()
                        self.wake.wait(self.idle_wait)
                        continue
                    if self.process(store, batch):
                        # Some failed: give the API a moment instead of spinning on it.
                        self.stop.wait(RETRY_DELAY)
        except BaseException as exc:  # noqa: BLE001 - the runner stops serve and reports it as the CLI would
            self.failed = exc
            self.stop.set()
            self.wake.set()
        finally:
            self.drained.set()

    def process(self, store: Store, batch: list[Delivery]) -> bool:
        """Work through one batch; True when a delivery failed and stays pending for a retry."""
        store.inbox.started([d.id for d in batch])
        rec = self._reconciler(store)
        by_order: dict[str, list[int]] = {}
        left: dict[int, int] = {}
        failed = False
        for delivery in batch:
            try:
                order_ids = self.orders_named(store, rec, delivery)
            except LoopsyncError as exc:
                failed |= self._failed(store, [delivery], exc.message)
                continue
            if not order_ids:
                store.inbox.finish([delivery.id], InboxState.DONE, "names no order loopsync acts on")
                log.info("delivery %s %s: nothing to do", delivery.webhook_id, delivery.topic)
                continue
            left[delivery.id] = len(order_ids)
            for order_id in order_ids:
                by_order.setdefault(order_id, []).append(delivery.id)
        if by_order:
            # One line per round: how many deliveries were coalesced into how many reconciles.
            log.info("inbox round: %d deliveries name %d orders, each reconciled once", len(batch), len(by_order))
        by_id = {d.id: d for d in batch}
        for order_id, result in self._reconcile_all(rec, list(by_order)):
            delivery_ids = by_order[order_id]
            if result is _SKIPPED:
                # Stopping: what is left stays pending and is done on the next start.
                continue
            if isinstance(result, LoopsyncError):
                failed |= self._failed(store, [by_id[i] for i in delivery_ids if i in left], result.message)
                for i in delivery_ids:
                    left.pop(i, None)
                continue
            self._report(order_id, result)
            done = []
            for i in delivery_ids:
                if i in left:
                    left[i] -= 1
                    if left[i] == 0:
                        del left[i]
                        done.append(i)
            if done:
                store.inbox.finish(done, InboxState.DONE)
        return failed

    def _reconcile_all(self, rec: Any, order_ids: list[str]):
        """(order id, result) as each reconcile ends: ``reconcile_one``'s answer, the LoopsyncError
        it raised, or _SKIPPED. Any other exception is raised here, and stops serve."""
        if len(order_ids) == 1 or self.concurrency <= 1:
            for order_id in order_ids:
                yield order_id, self._reconcile(lambda: rec, order_id)
            return
        self._round += 1
        answers: queue.Queue = queue.Queue()
        self._start_threads(len(order_ids))
        for order_id in order_ids:
            self._tasks.put((self._round, order_id, answers))
        for _ in order_ids:
            order_id, result = answers.get()
            if isinstance(result, BaseException) and not isinstance(result, LoopsyncError):
                raise result
            yield order_id, result

    def _reconcile(self, reconciler: Callable[[], Any], order_id: str) -> Any:
        if self.stop.is_set():
            return _SKIPPED
        try:
            return reconciler().reconcile_one(order_id)
        except LoopsyncError as exc:
            return exc

    def _start_threads(self, wanted: int) -> None:
        while len(self._threads) < min(wanted, self.concurrency):
            thread = threading.Thread(target=self._reconcile_thread, name=f"loopsync-reconcile-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _reconcile_thread(self) -> None:
        """One of the reconcile threads: its own state file connection, a reconciler per round."""
        store: Store | None = None
        made: tuple[int, Any] | None = None
        try:
            while (task := self._tasks.get()) is not None:
                round_, order_id, answers = task

                def reconciler(round_: int = round_) -> Any:
                    nonlocal store, made
                    if store is None:
                        store = self._open_store()
                    if made is None or made[0] != round_:
                        made = (round_, self._reconciler(store))
                    return made[1]

                try:
                    answers.put((order_id, self._reconcile(reconciler, order_id)))
                except BaseException as exc:  # noqa: BLE001 - handed to the worker thread, which stops serve
                    answers.put((order_id, exc))
        finally:
            if store is not None:
                store.close()

    @contextlib.contextmanager
    def _reconcile_threads(self):
        try:
            yield
        finally:
            for _ in self._threads:
                self._tasks.put(None)
            for thread in self._threads:
                thread.join()

    def _failed(self, store: Store, deliveries: list[Delivery], message: str) -> bool:
        """Count the failure; give up on a delivery after MAX_ATTEMPTS. True when any is retried."""
        self.metrics.worker_errors.inc()
        retried = False
        for d in deliveries:
            # attempts was counted before this round started.
            gave_up = d.attempts + 1 >= MAX_ATTEMPTS
            if gave_up:
                store.inbox.finish([d.id], InboxState.FAILED, message)
            else:
                store.inbox.retry_later(d.id, message)
            retried |= not gave_up
            log.warning(
                "delivery %s %s: %s (%s)",
                d.webhook_id,
                d.topic,
                "gave up; the next scan covers it" if gave_up else "failed, will retry",
                message,
            )
        return retried

    def orders_named(self, store: Store, rec: Any, delivery: Delivery) -> list[str]:
        """The order ids a delivery is about (for selling plans: every order loopsync holds or waits on)."""
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
            order_id = row.order_id if row is not None else rec.shopify.order_of_fulfillment_order(fo_id)
            return [order_id] if order_id else []
        if delivery.topic in SELLING_PLAN_TOPICS:
            # GUESS: the payload may not list every variant whose plan changed (see the webhook
            # facts); the orders loopsync holds or waits on are the ones a change can concern.
            held = [h.order_id for h in store.holds.active_holds()]
            waiting = [p.order_id for p in store.orders.pending_orders()]
            return list(dict.fromkeys([*held, *waiting]))
        return []

    def _report(self, order_id: str, result: Any) -> None:
        self.metrics.orders_reconciled.inc()
        if result is None:
            log.info("order %s: not a Loop exchange loopsync knows; nothing to do", order_id)
            return
        order, outcome = result
        acted = [f"{a.kind} {a.status}" for a in outcome.actions]
        log.info(
            "order %s: %s (%s)%s",
            order.name,
            outcome.decision,
            outcome.pending or outcome.reason,
            f"; {', '.join(acted)}" if acted else "",
        )
        # The first hold only: a hold put back after another app wiped it is not news about the
        # exchange's wait (it would count hours since the order was created).
        first = [a for a in outcome.actions if a.kind == "hold" and a.status == "done" and a.detail != guard.REHELD]
        if first and order.created_at:
            created = order.created_at if order.created_at.tzinfo else order.created_at.replace(tzinfo=UTC)
            self.metrics.latency.observe(max(0.0, (datetime.now(UTC) - created).total_seconds()))


def _order_gid(payload: dict) -> str | None:
    gid = payload.get("admin_graphql_api_id")
    if isinstance(gid, str) and gid.startswith("gid://shopify/Order/") and gid.rsplit("/", 1)[-1].isdigit():
        return gid
    number = payload.get("id")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return f"gid://shopify/Order/{number}"
    return None

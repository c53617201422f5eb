"""The reconciler: compare what should be true with what is, and converge.

Data flows one way: fetch (``candidates``, the clients) → decide (``plan``, over
``detect``) → act (``effects``) → record (``effects`` again, into the store). Every
decision is re-derived from what Shopify and Loop say *now*, never from what the
ledger claims. So a crash at any point, a retry or two overlapping runs cannot
create a second hold (Shopify's per-app hold ``handle`` refuses it), a second tag
(tags are a set, and we only add what is missing) or a second note (we read the
return's notes before posting).

``reconcile_order`` is the unit of work. ``scan`` feeds it the orders
``candidates`` chooses; ``reconcile_one`` (the webhook worker of `loopsync serve`)
and ``release_by_hand`` call it, or its parts, for one order directly. Each holds
the order's lock (``store.order_lock``) meanwhile, so two processes never act on
one order at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime

from loopsync import guard
from loopsync.errors import ApiError, NotFoundError, OutcomeUnknownError
from loopsync.interrupts import StopRequested
from loopsync.loop import LoopClient
from loopsync.models import Order, VariantInfo
from loopsync.reconcile import candidates, plan
from loopsync.reconcile.effects import DryRun, Executor, LoopDisconnected
from loopsync.reconcile.report import OrderOutcome, ScanInterrupted, ScanObserver, ScanReport
from loopsync.settings import Settings
from loopsync.shopify import ShopifyClient
from loopsync.store import Store


def _now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        store: Store,
        shopify: ShopifyClient,
        loop: LoopClient | None,
        options: Settings,
        *,
        dry_run: bool = False,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.shopify = shopify
        self._loop_stats = loop.stats if loop else None
        self.options = options
        self.dry_run = dry_run
        self.clock = clock
        # A dry run applies the same plan through an executor that only lists it.
        self.effects = (DryRun if dry_run else Executor)(store, shopify, loop, options, clock)
        self._variants: dict[str, VariantInfo] = {}

    @property
    def loop(self) -> LoopClient | None:
        """None once disconnected: no new holds, tags or notes; releases go on."""
        return self.effects.loop

    @property
    def scan_id(self) -> int | None:
        return self.effects.scan_id

    # -- the scan -------------------------------------------------------------

    def scan(
        self,
        since: datetime | None = None,
        *,
        stop: Callable[[], None] | None = None,
        observer: ScanObserver | None = None,
    ) -> ScanReport:
        """One pass over recent and remembered orders; ``observer`` hears how far it got.

        ``stop`` is called before every side effect and between orders; when it raises
        :class:`StopRequested` (or Ctrl-C raises KeyboardInterrupt) the scan is recorded
        as interrupted, the cursor stays where it was, and :class:`ScanInterrupted` says
        what was done.
        """
        since = candidates.since(self.store, self.options, since, self.clock())
        report = ScanReport(scan_id=None, since=since, dry_run=self.dry_run)
        if stop is not None:
            self.effects.stop = stop
        report.scan_id = self.effects.scan_started(since)
        try:
            self._scan(report, observer or ScanObserver())
        except (StopRequested, KeyboardInterrupt) as exc:
            signum = exc.signum if isinstance(exc, StopRequested) else signal.SIGINT
            partial = exc.outcome if isinstance(exc, StopRequested) else None
            if isinstance(partial, OrderOutcome) and partial not in report.outcomes:
                report.outcomes.append(partial)
            report.interrupted = signal.Signals(signum).name
            self.effects.scan_finished(outcome="interrupted", counters=self._counters(report), error=report.interrupted)
            raise ScanInterrupted(report, signum) from None
        except BaseException as exc:
            self.effects.scan_finished(outcome="failed", counters=self._counters(report), error=type(exc).__name__)
            raise
        # The cursor moves only after a finished scan, and only to a timestamp
        # Shopify itself reported: this machine's clock is never compared with Shopify's.
        self.effects.scan_finished(
            outcome="pending" if report.pending else "ok",
            counters=self._counters(report),
            new_cursor=report.new_cursor,
        )
        return report

    def _scan(self, report: ScanReport, observer: ScanObserver) -> None:
        found = candidates.gather(
            self.store,
            self.shopify,
            self.options,
            report,
            now=self.clock(),
            loop_connected=self.loop is not None,
            stop=self.effects.stop,
            forget=self.effects.forget_order,
            seen=observer.order_read,
        )
        self._variants = dict(found.variants)
        observer.reconciling(len(found.orders) + len(found.shipped))
        for order in found.orders:
            self._reconcile_in_scan(order, report, observer)
        shipped = candidates.read_shipped(self.store, self.shopify, self.options, found, report, now=self.clock(),
                                          forget=self.effects.forget_order)
        for batch, variants in shipped:
            self._variants.update(variants)
            for order in batch:
                self._reconcile_in_scan(order, report, observer)

    def _reconcile_in_scan(self, order: Order, report: ScanReport, observer: ScanObserver) -> None:
        self.effects.stop()
        with self._order_in_hand(order.id) as waited:
            if waited:
                # `serve` had this order in hand while the scan waited: what it did is
                # news, so plan from the order as it is now, not as the scan read it.
                order = self._reread(order.id)
                if order is None:
                    return
            outcome = self.reconcile_order(order)
        report.outcomes.append(outcome)
        observer.reconciled(outcome, report.scan_id)

    def _counters(self, report: ScanReport) -> dict[str, int]:
        return {
            "orders_seen": report.orders_seen,
            "exchanges_seen": report.exchanges_seen,
            "holds": report.count("hold"),
            "tags": report.count("tag"),
            "notes": report.count("note"),
            "releases": report.count("release"),
            "holds_reheld": report.reheld,
            "pending": len(report.pending),
            "shopify_requests": self.shopify.stats.requests,
            "loop_requests": self._loop_stats.requests if self._loop_stats else 0,
        }

    # -- one order ------------------------------------------------------------

    def _order_in_hand(self, order_id: str):
        """The per-order lock shared with `loopsync serve` and `release` (see ``store.lock``).
        A dry run changes nothing, so it neither takes it nor waits for it."""
        if self.dry_run:
            return nullcontext(False)
        return self.store.order_lock(order_id)

    def _reread(self, order_id: str) -> Order | None:
        order = self.shopify.fetch_orders([order_id])[order_id]
        if order is None:
            self.effects.forget_order(order_id)
            return None
        self._variants = {**self._variants, **candidates.variants_for(self.store, self.shopify, self.options, [order])}
        return order

    def reconcile_one(self, order_id: str) -> tuple[Order, OrderOutcome] | None:
        """Read one order now and converge it: what a webhook delivery naming it leads to.

        Nothing is trusted from the delivery: the order and its variants are read again
        (a retry carries a stale copy). An order that is not a Loop exchange and that
        loopsync never recorded is left alone (None), so that orders/create for every
        ordinary sale adds nothing to the state file. Otherwise: the order as read, and
        what was done.
        """
        with self._order_in_hand(order_id):
            if self.effects.returns is not None:
                # What an earlier pass listed may predate the return a delivery announces.
                self.effects.returns.reset()
            order = self.shopify.fetch_orders([order_id])[order_id]
            if order is None:
                if self.store.orders.order(order_id) is not None:
                    self.effects.forget_order(order_id)
                return None
            known = self.store.orders.order(order_id) is not None or self.store.holds.holds_for_order(order_id)
            if plan.exchange_kind(order, self.options) is None and not known:
                return None
            self._variants = candidates.variants_for(self.store, self.shopify, self.options, [order])
            return order, self.reconcile_order(order)

    def reconcile_order(self, order: Order) -> OrderOutcome:
        """Converge one order. Safe to call any number of times, from anywhere."""
        kind = plan.exchange_kind(order, self.options)
        outcome = OrderOutcome(order_id=order.id, order_name=order.name, kind=kind)
        try:
            self.effects.settle_interrupted(order)
            steps = plan.plan_order(
                order,
                self._variants,
                self.effects.overrides(),
                self.options,
                self.effects.ledger(order.id),
                loop_connected=self.loop is not None,
                now=self.clock(),
            )
            outcome.window = steps.window
            self.effects.apply(order, kind, steps.intents, outcome)
            self._conclude(steps, outcome)
            if steps.pending and not outcome.pending:
                outcome.pending, outcome.pending_told = steps.pending, steps.pending_told
            self._release_note(order, outcome)
        except OutcomeUnknownError as exc:
            outcome.pending = f"outcome of a call unknown, will verify next scan ({exc.message})"
        except ApiError as exc:
            outcome.pending = exc.message
        except LoopDisconnected:
            # A hold this pass placed before it noticed still protects the order.
            held = any(a.kind == "hold" and a.status == "done" for a in outcome.actions)
            outcome.decision = "held" if held or plan.held_by_us(order) else "disconnected_skip"
            outcome.reason = "Loop was disconnected during the scan: no new holds, tags or notes"
        except StopRequested as stop:
            # The scan's report counts what this order got done before the stop.
            stop.outcome = outcome
            raise
        if outcome.pending:
            outcome.decision = "pending"
        self.effects.record(order, outcome)
        return outcome

    @staticmethod
    def _conclude(steps: plan.Plan, outcome: OrderOutcome) -> None:
        """The plan's decision, now that its intents have been applied."""
        if steps.decision is None or (steps.unless_acted and outcome.actions):
            return  # what the releases said stands
        if steps.decision == "held":
            if outcome.pending:
                return
            outcome.decision, outcome.reason = steps.decision, steps.reason
            if any(a.kind == "hold" and a.status == "done" and a.detail == guard.REHELD for a in outcome.actions):
                outcome.reason += f"; {guard.REHELD}"
            if outcome.waiting:
                outcome.reason += f"; {outcome.waiting}"
            return
        outcome.decision, outcome.reason = steps.decision, steps.reason

    def _release_note(self, order: Order, outcome: OrderOutcome) -> None:
        released = {a.target for a in outcome.actions if a.kind == "release" and a.status in ("done", "planned")}
        intents = plan.plan_release_note(
            order,
            released,
            self.effects.ledger_after(order.id, released),
            self.options,
            loop_connected=self.loop is not None,
        )
        self.effects.apply(order, outcome.kind, intents, outcome)

    # -- manual release -------------------------------------------------------

    def release_by_hand(self, ref: str) -> OrderOutcome:
        """Support lifts loopsync's holds on one order; later scans leave it alone.

        The decision is written down before the holds are lifted, in the state file and
        as the release tag on the order in Shopify, so that neither a crash half-way
        nor a new state file lets a scan hold the order again.
        """
        order = self.shopify.find_order(ref)
        if order is None:
            raise NotFoundError(f"No order '{ref}' was found in Shopify.")
        with self._order_in_hand(order.id) as waited:
            if waited:
                order = self._reread(order.id)
                if order is None:
                    raise NotFoundError(f"No order '{ref}' was found in Shopify.")
            return self._release_by_hand(order)

    def _release_by_hand(self, order: Order) -> OrderOutcome:
        outcome = OrderOutcome(order_id=order.id, order_name=order.name, kind=plan.exchange_kind(order, self.options))
        self.effects.apply(order, outcome.kind, plan.plan_manual_release(order, self.options), outcome)
        if self.effects.dry_run or outcome.pending:
            return outcome
        released = any(a.kind == "release" for a in outcome.actions)
        try:
            self._release_note(order, outcome)
        except OutcomeUnknownError as exc:
            outcome.pending = f"the release note's outcome is unknown; the next scan checks it ({exc.message})"
        except ApiError as exc:
            outcome.pending = f"the release note was not posted; the next scan retries it ({exc.message})"
        outcome.decision = "released_manually"
        outcome.reason = "released by hand" if released else "no loopsync hold; future scans will not hold it"
        self.effects.record_decision(order, outcome.decision, outcome.reason, scan_id=None)
        return outcome

"""The reconciler: compare what should be true with what is, and converge.

Data flows one way: fetch (``shopify``, ``loop``) → decide (``detect``) → act
(the clients again) → record (``store``). Every side effect is written to the
ledger as an *intent* before it is sent and as a *result* after, and every
decision is re-derived from what Shopify and Loop say *now*, never from what the
ledger claims. So a crash at any point, a retry or two overlapping runs cannot
create a second hold (Shopify's per-app hold ``handle`` refuses it), a second
tag (tags are a set, and we only add what is missing) or a second note (we read
the return's notes before posting).

``reconcile_order`` is the unit of work. ``scan`` feeds it the orders Shopify
reports as recently updated plus every order the ledger says we still hold,
are waiting on, or were interrupted acting on. A future webhook listener calls
``reconcile_order`` for one order directly.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from loopsync import detect, failpoints
from loopsync.errors import ApiError, LoopsyncError, NotFoundError, OutcomeUnknownError
from loopsync.exit_codes import ExitCode
from loopsync.interrupts import StopRequested
from loopsync.loop import LoopClient
from loopsync.models import HOLD_HANDLE, FulfillmentOrder, Order, VariantInfo
from loopsync.settings import Settings
from loopsync.shopify import ShopifyClient
from loopsync.store import Store

# How far back to look for the Loop return in the list fallback, before the
# exchange order was created. Loop creates the exchange order when it processes
# the return, which can be weeks after the return was opened.
RETURN_SEARCH_WINDOW = timedelta(days=90)


@dataclass
class Action:
    kind: str  # hold | tag | note | release
    target: str
    detail: str
    status: str = "done"  # done | planned | failed | unknown


@dataclass
class OrderOutcome:
    order_id: str
    order_name: str
    kind: str | None = None  # separate | native | None
    decision: str = "ignored"
    reason: str = ""
    window: str | None = None
    actions: list[Action] = field(default_factory=list)
    pending: str | None = None  # why this order needs another pass, next scan
    # The note waits for a Loop return that does not exist yet: looked for again on a
    # back-off schedule (detect.note_retry), not every scan.
    note_wait: detect.NoteRetry | None = None
    waiting: str | None = None  # that wait, in a sentence

    @property
    def attention(self) -> str | None:
        """What a person should hear about this order; a scan with any exits 1.

        A note waiting for its Loop return is news twice: when it starts, and when
        loopsync gives up reporting it. In between it is only shown by ``status``.
        """
        if self.pending:
            return self.pending
        if self.note_wait is not None and self.note_wait.news:
            return self.waiting
        return None


@dataclass
class ScanReport:
    scan_id: int | None
    since: datetime
    dry_run: bool
    orders_seen: int = 0
    exchanges_seen: int = 0
    outcomes: list[OrderOutcome] = field(default_factory=list)
    new_cursor: datetime | None = None
    interrupted: str | None = None  # the signal that stopped the scan early (SIGINT, SIGTERM)
    # Orders an earlier scan already left unheld (and said so): not new, only listed in `status`.
    known_unheld: frozenset[str] = frozenset()

    def count(self, kind: str, status: str = "done") -> int:
        return sum(1 for o in self.outcomes for a in o.actions if a.kind == kind and a.status == status)

    @property
    def pending(self) -> list[OrderOutcome]:
        """Orders that need attention (see ``OrderOutcome.attention``)."""
        return [o for o in self.outcomes if o.attention]

    @property
    def waiting(self) -> list[OrderOutcome]:
        """Orders whose note waits for its Loop return, news or not."""
        return [o for o in self.outcomes if o.note_wait is not None]

    @property
    def left_unheld(self) -> list[OrderOutcome]:
        """Pre-order exchanges this scan was first to leave unheld because Loop is disconnected."""
        return [o for o in self.outcomes if o.decision == "disconnected_skip" and o.order_id not in self.known_unheld]


class ScanInterrupted(LoopsyncError):
    """SIGINT or SIGTERM stopped the scan; ``report`` holds what it got done."""

    def __init__(self, report: ScanReport, signum: int) -> None:
        super().__init__("The scan was interrupted; the next scan finishes the rest.")
        self.report = report
        self.signum = signum
        # The shell's convention, 128 + the signal, so `$?` tells Ctrl-C from a service stop.
        self.exit_code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED


class _LoopDisconnected(Exception):
    """`disconnect` ran while this scan was under way: start no new hold, tag or note."""


# Side effects that need Loop connected: releases go on after a disconnect.
_NEEDS_LOOP = frozenset({"hold", "tag", "note"})


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _moment(iso: str | None) -> datetime | None:
    return None if iso is None else _utc(datetime.fromisoformat(iso))


# Decisions after which an order needs no "on pre-order" note: its wait for the Loop return ends.
_NO_NOTE_NEEDED = frozenset(
    {"not_exchange", "no_preorder_items", "manual_release_respected", "closed", "released", "released_manually"}
)


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
        # None once disconnected: no new holds, tags or notes; releases go on.
        self.loop = loop
        self._loop_stats = loop.stats if loop else None
        self.options = options
        self.dry_run = dry_run
        self.clock = clock
        self.scan_id: int | None = None
        self._variants: dict[str, VariantInfo] = {}
        # Raises StopRequested once a signal asked the scan to stop; called at safe points only.
        self._stop: Callable[[], None] = lambda: None

    # -- the scan -------------------------------------------------------------

    def scan(
        self,
        since: datetime | None = None,
        *,
        progress: Callable[[str], None] | None = None,
        stop: Callable[[], None] | None = None,
    ) -> ScanReport:
        """One pass over recent and remembered orders.

        ``stop`` is called before every side effect and between orders; when it raises
        :class:`StopRequested` (or Ctrl-C raises KeyboardInterrupt) the scan is recorded
        as interrupted, the cursor stays where it was, and :class:`ScanInterrupted` says
        what was done.
        """
        since = self._since(since)
        report = ScanReport(scan_id=None, since=since, dry_run=self.dry_run)
        if stop is not None:
            self._stop = stop
        if not self.dry_run:
            self.scan_id = self.store.ledger.scan_started(since=since)
            report.scan_id = self.scan_id
        try:
            self._scan(report, progress)
        except (StopRequested, KeyboardInterrupt) as exc:
            signum = exc.signum if isinstance(exc, StopRequested) else signal.SIGINT
            partial = exc.outcome if isinstance(exc, StopRequested) else None
            if isinstance(partial, OrderOutcome) and partial not in report.outcomes:
                report.outcomes.append(partial)
            report.interrupted = signal.Signals(signum).name
            if self.scan_id is not None:
                self.store.ledger.scan_finished(
                    self.scan_id,
                    outcome="interrupted",
                    counters=self._counters(report),
                    error=report.interrupted,
                )
            raise ScanInterrupted(report, signum) from None
        except BaseException as exc:
            if self.scan_id is not None:
                self.store.ledger.scan_finished(
                    self.scan_id, outcome="failed", counters=self._counters(report), error=type(exc).__name__
                )
            raise
        if self.scan_id is not None:
            outcome = "pending" if report.pending else "ok"
            # The cursor moves only after a finished scan, and only to a
            # timestamp Shopify itself reported: this machine's clock is never
            # compared with Shopify's.
            self.store.ledger.scan_finished(
                self.scan_id, outcome=outcome, counters=self._counters(report), new_cursor=report.new_cursor
            )
        return report

    def _since(self, since: datetime | None) -> datetime:
        if since is not None:
            return _utc(since)
        cursor = self.store.ledger.cursor()
        if cursor is not None:
            return _utc(cursor) - self.options.overlap
        return self.clock() - self.options.lookback

    def _scan(self, report: ScanReport, progress: Callable[[str], None] | None) -> None:
        say = progress or (lambda _msg: None)
        query = f"updated_at:>='{report.since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        wanted: set[str] = set()
        newest: datetime | None = None
        # First pass: a cheap summary of every updated order (name, tags,
        # updatedAt) is all it takes to recognise a Loop exchange; only those
        # are then read in full.
        for summary in self.shopify.iter_order_summaries(query, sort_key="UPDATED_AT"):
            self._stop()
            report.orders_seen += 1
            newest = summary.updated_at if newest is None or summary.updated_at > newest else newest
            if self._kind(summary) is not None:
                wanted.add(summary.id)
            if report.orders_seen % 1000 == 0:
                say(f"{report.orders_seen} orders read")
        report.new_cursor = newest

        # Level-triggered: orders we are waiting on or were interrupted acting
        # on are read in full every scan, whether Shopify reports them as
        # updated or not.
        wanted.update(p.order_id for p in self.store.orders.pending_orders())
        wanted.update(i.order_id for i in self.store.ledger.open_intents())
        # An order whose note waits for its Loop return is held and costs nothing until
        # its next lookup is due (or Shopify reports it updated, above).
        wanted.update(self.store.orders.note_retries_due(self.clock()))
        holds_by_order: dict[str, list] = {}
        for row in self.store.holds.active_holds():
            holds_by_order.setdefault(row.order_id, []).append(row)
        wanted.update(set(self.store.orders.order_ids_needing_attention()) - set(holds_by_order))
        unheld = {o.order_id for o in self.store.orders.orders_left_unheld()}
        report.known_unheld = frozenset(unheld)
        if self.loop is not None:
            # Exchanges a disconnected scan left unheld are held once Loop is back,
            # however long ago Shopify last updated them.
            wanted.update(unheld)
        candidates = self._fetch(wanted)
        self._variants = self._lookup_variants(candidates.values(), holds_by_order)

        # Orders we hold and Shopify did not report as updated are read in full
        # only when their pre-order shipped (a shipping pre-order does not touch
        # the order): a store with hundreds of held orders pays for a variant
        # lookup each scan, not for hundreds of full orders. A hold released or
        # an order changed in the admin bumps updatedAt, so the first pass sees it.
        overrides = self.store.config.overrides()
        shipped = {
            order_id
            for order_id, rows in holds_by_order.items()
            if order_id not in candidates
            and any(detect.release_needed(r.variant_ids, self._variants, overrides) for r in rows)
        }
        if shipped:
            more = self._fetch(shipped)
            candidates.update(more)
            self._variants.update(self._lookup_variants(more.values(), {}, known=self._variants))
        report.exchanges_seen = sum(1 for o in candidates.values() if self._kind(o) is not None)

        for order in sorted(candidates.values(), key=lambda o: (o.created_at, o.id)):
            self._stop()
            say(f"reconciling {order.name}")
            report.outcomes.append(self.reconcile_order(order))

    def _fetch(self, order_ids: set[str]) -> dict[str, Order]:
        """Full orders by id; an order Shopify no longer has is forgotten."""
        found: dict[str, Order] = {}
        if not order_ids:
            return found
        for order_id, order in self.shopify.fetch_orders(sorted(order_ids)).items():
            if order is not None:
                found[order_id] = order
            elif not self.dry_run:
                self.store.orders.forget_order(order_id, reason="order no longer exists in Shopify")
        return found

    def _counters(self, report: ScanReport) -> dict[str, int]:
        return {
            "orders_seen": report.orders_seen,
            "exchanges_seen": report.exchanges_seen,
            "holds": report.count("hold"),
            "tags": report.count("tag"),
            "notes": report.count("note"),
            "releases": report.count("release"),
            "pending": len(report.pending),
            "shopify_requests": self.shopify.stats.requests,
            "loop_requests": self._loop_stats.requests if self._loop_stats else 0,
        }

    def _kind(self, order: Order) -> str | None:
        o = self.options
        return detect.exchange_kind(
            order, name_prefix=o.exchange_name_prefix, exchange_tag=o.exchange_tag, native_tag=o.native_exchange_tag
        )

    def _lookup_variants(
        self, orders: Iterable[Order], holds_by_order: dict[str, list], *, known: dict[str, VariantInfo] | None = None
    ) -> dict[str, VariantInfo]:
        """One batched lookup per scan: Loop's exchange items carry no selling plan."""
        wanted: set[str] = set()
        for order in orders:
            kind = self._kind(order)
            for line in detect.exchange_line_items(order, kind) if kind else ():
                if line.variant_id:
                    wanted.add(line.variant_id)
            for fo in order.fulfillment_orders:
                if fo.our_hold is not None:
                    wanted.update(li.variant_id for li in fo.lines if li.variant_id)
        for rows in holds_by_order.values():
            for row in rows:
                wanted.update(row.variant_ids)
        wanted -= set(known or ())
        if not wanted:
            return {}
        return self.shopify.variant_info(
            sorted(wanted),
            metafield_namespace=self.options.metafield_namespace,
            metafield_key=self.options.metafield_key,
        )

    # -- one order ------------------------------------------------------------

    def reconcile_order(self, order: Order, variants: dict[str, VariantInfo] | None = None) -> OrderOutcome:
        """Converge one order. Safe to call any number of times, from anywhere."""
        if variants is not None:
            self._variants = {**self._variants, **variants}
        kind = self._kind(order)
        outcome = OrderOutcome(order_id=order.id, order_name=order.name, kind=kind)
        try:
            self._reconcile(order, kind, outcome)
            self._ensure_release_note(order, outcome)
        except OutcomeUnknownError as exc:
            outcome.pending = f"outcome of a call unknown, will verify next scan ({exc.message})"
        except ApiError as exc:
            outcome.pending = exc.message
        except _LoopDisconnected:
            # A hold this pass placed before it noticed still protects the order.
            held = any(a.kind == "hold" and a.status == "done" for a in outcome.actions)
            outcome.decision = "held" if held or _held_by_us(order) else "disconnected_skip"
            outcome.reason = "Loop was disconnected during the scan: no new holds, tags or notes"
        except StopRequested as stop:
            # The scan's report counts what this order got done before the stop.
            stop.outcome = outcome
            raise
        if outcome.pending:
            outcome.decision = "pending"
        self._record(order, outcome)
        return outcome

    def _reconcile(self, order: Order, kind: str | None, outcome: OrderOutcome) -> None:
        self._settle_interrupted(order)
        overrides = self.store.config.overrides()
        preorder = detect.preorder_lines(order, kind, self._variants, overrides) if kind else []
        preorder_line_ids = {p.line_item.id for p in preorder}

        # Releases come first and run even when disconnected: a hold we placed
        # is ours to lift once its pre-order ships, whatever else changed.
        self._release_shipped(order, overrides, outcome)

        if kind is None:
            outcome.decision, outcome.reason = "not_exchange", "not a Loop exchange order"
            return
        if not preorder:
            if not outcome.actions:
                outcome.decision, outcome.reason = "no_preorder_items", "no exchange item is on pre-order"
            return
        outcome.window = detect.combined_window([p.window for p in preorder])
        if self.store.orders.is_manually_released(order.id):
            outcome.decision = "manual_release_respected"
            outcome.reason = "support released this order by hand; loopsync leaves it alone"
            return
        if detect.has_tag(order.tags, self.options.release_tag):
            # The tag `loopsync release` adds: the decision lives with the order in Shopify,
            # so a new or lost state file does not hold again what support released.
            outcome.decision = "manual_release_respected"
            outcome.reason = f"the order carries the tag '{self.options.release_tag}'; loopsync leaves it alone"
            return
        if order.closed or order.cancelled:
            outcome.decision, outcome.reason = "closed", "the order is closed or cancelled"
            return
        if self.loop is None:
            if _held_by_us(order):
                outcome.decision = "held"
                outcome.reason = "held by loopsync; Loop is disconnected: no new holds, tags or notes"
            else:
                # Left unheld: the scan says so, and `status` lists it until a scan holds it.
                outcome.decision = "disconnected_skip"
                outcome.reason = "Loop is disconnected: no new holds, tags or notes"
            return

        self._ensure_holds(order, preorder, preorder_line_ids, outcome)
        self._ensure_tag(order, outcome)
        self._ensure_note(order, kind, outcome)
        if not outcome.pending:
            outcome.decision = "held"
            outcome.reason = f"{len(preorder)} exchange item(s) on pre-order, estimated shipping: {outcome.window}"
            if outcome.waiting:
                outcome.reason += f"; {outcome.waiting}"

    # -- holds ------------------------------------------------------------------

    def _ensure_holds(self, order: Order, preorder, preorder_line_ids: set[str], outcome: OrderOutcome) -> None:
        window = outcome.window or "to be confirmed"
        order_variants = sorted({p.variant_id for p in preorder if p.variant_id})
        for step in detect.hold_plan(order, preorder_line_ids):
            fo = step.fulfillment_order
            # The hold row remembers which pre-order variants this fulfillment order waits for.
            variant_ids = list(step.variant_ids) or order_variants
            if step.action == "none":
                if fo.our_hold is not None:
                    self._remember_hold(order, fo, fo.our_hold.id, window, variant_ids)
                continue
            if step.action == "skip":
                # Not holdable (closed, cancelled, fulfilled): nothing can ship from it.
                continue
            notes = f"Loop exchange into a pre-order item; estimated shipping: {window}. Placed by loopsync."
            detail = "pre-order lines only (split)" if step.line_items else "whole fulfillment order"
            if self.dry_run:
                outcome.actions.append(Action("hold", fo.id, f"would hold {detail}", "planned"))
                continue
            action_id, result = self._send(
                "hold",
                order.id,
                fo.id,
                f"hold:{fo.id}",
                {"line_items": step.line_items, "notes": notes},
                partial(
                    self.shopify.hold,
                    fo.id,
                    handle=HOLD_HANDLE,
                    reason_notes=notes,
                    line_items=step.line_items or None,
                ),
            )
            if result.hold is not None:
                held_fo = result.fulfillment_order_id or fo.id
                self._done("hold", action_id, {"hold_id": result.hold.id, "fo": held_fo})
                self._remember_hold(order, fo, result.hold.id, window, variant_ids, fo_id=held_fo)
                outcome.actions.append(Action("hold", held_fo, detail))
            elif result.duplicate:
                # Our hold is there (most often this very request's first try, whose
                # answer was lost): read it back rather than trust either side's memory,
                # and report it as what it is, a hold this scan made sure of.
                found = self._find_our_hold(order, fo.id)
                if found is None:
                    self.store.ledger.finish_action(action_id, "unknown", {"duplicate": True, "hold_id": None})
                    outcome.pending = f"Shopify says loopsync's hold is on {fo.id}, but it could not be read back"
                    continue
                held_fo, hold_id = found
                self._done("hold", action_id, {"hold_id": hold_id, "fo": held_fo, "duplicate": True})
                self._remember_hold(order, fo, hold_id, window, variant_ids, fo_id=held_fo)
                outcome.actions.append(Action("hold", held_fo, detail))
            else:
                message = "; ".join(f"{e.code or 'ERROR'}: {e.message}" for e in result.user_errors)
                self.store.ledger.finish_action(action_id, "failed", {"user_errors": message})
                outcome.actions.append(Action("hold", fo.id, message, "failed"))
                outcome.pending = f"Shopify refused the hold on {fo.id}: {message}"

    def _find_our_hold(self, order: Order, fo_id: str) -> tuple[str, str] | None:
        """(fulfillment order, hold id) of our hold placed on ``fo_id``, as Shopify shows it now.

        A hold on some lines splits the fulfillment order. GUESS: the held lines keep
        its id, as ``fulfillmentOrderSplit`` documents for the original; should Shopify
        have moved them instead, our hold is on a fulfillment order this order did not
        have before, and that is where it is read back from.
        """
        fresh = self.shopify.fetch_orders([order.id]).get(order.id)
        fos = fresh.fulfillment_orders if fresh else ()
        known = {f.id for f in order.fulfillment_orders}
        for fo in sorted(fos, key=lambda f: (f.id != fo_id, f.id in known)):
            if fo.our_hold is not None and (fo.id == fo_id or fo.id not in known):
                return fo.id, fo.our_hold.id
        return None

    def _remember_hold(
        self, order: Order, fo: FulfillmentOrder, hold_id: str, window: str, variant_ids, *, fo_id: str | None = None
    ) -> None:
        if self.dry_run:
            return
        self.store.holds.upsert_hold(
            fulfillment_order_id=fo_id or fo.id,
            order_id=order.id,
            order_name=order.name,
            hold_id=hold_id,
            handle=HOLD_HANDLE,
            window=window,
            variant_ids=list(variant_ids),
        )

    def _release_shipped(self, order: Order, overrides: dict[str, str], outcome: OrderOutcome) -> None:
        """Lift our hold on every fulfillment order with no pre-order item left.

        Shopify is the truth about which holds exist: a hold we placed but never
        recorded (a crash between the call and the ledger) is found by its handle.
        """
        ours_at_shopify = set()
        for fo in order.fulfillment_orders:
            hold = fo.our_hold
            if hold is None:
                continue
            ours_at_shopify.add(fo.id)
            variant_ids = [li.variant_id for li in fo.lines if li.variant_id]
            # Only positive evidence releases: a variant that was not looked up,
            # or was deleted, keeps the hold (support can still release by hand).
            if detect.release_needed(variant_ids, self._variants, overrides):
                self._release(order, fo, hold.id, "scan", outcome, "its pre-order item shipped")
        # A hold the ledger calls active but Shopify no longer shows was lifted
        # by someone else (a merchant in the admin): respect that decision.
        for row in self.store.holds.holds_for_order(order.id):
            if row.status != "active" or row.fulfillment_order_id in ours_at_shopify or self.dry_run:
                continue
            ours = self.store.ledger.last_action_for_key(f"release:{row.hold_id}") if row.hold_id else None
            if ours is not None and ours.status != "failed":
                # We sent that release ourselves and crashed before writing it down.
                self.store.holds.mark_hold_released(row.fulfillment_order_id, by="scan", at=self.clock())
                continue
            self.store.holds.mark_hold_released(row.fulfillment_order_id, by="external", at=self.clock())
            self.store.orders.mark_manual_release(order.id)
            outcome.actions.append(
                Action("release", row.fulfillment_order_id, "hold was released outside loopsync", "observed")
            )

    def _release(self, order: Order, fo: FulfillmentOrder, hold_id: str, by: str, outcome, why: str) -> None:
        if self.dry_run:
            outcome.actions.append(Action("release", fo.id, f"would release ({why})", "planned"))
            return
        action_id, errors = self._send(
            "release", order.id, fo.id, f"release:{hold_id}", {"hold_id": hold_id},
            lambda: self.shopify.release_hold(fo.id, [hold_id]),
        )
        if errors:
            message = "; ".join(f"{e.code or 'ERROR'}: {e.message}" for e in errors)
            self.store.ledger.finish_action(action_id, "failed", {"user_errors": message})
            outcome.actions.append(Action("release", fo.id, message, "failed"))
            outcome.pending = f"Shopify refused to release the hold on {fo.id}: {message}"
            return
        self._done("release", action_id, {"hold_id": hold_id})
        self.store.holds.mark_hold_released(fo.id, by=by, at=self.clock())
        outcome.actions.append(Action("release", fo.id, why))
        if outcome.decision in ("ignored", "no_preorder_items"):
            outcome.decision, outcome.reason = "released", why

    # -- the ledger around every side effect --------------------------------------

    def _send(self, kind: str, order_id: str, target: str, key: str, payload: dict, call, *, refused: str = "unknown"):
        """Write the intent, make the call, and return (action id, its answer).

        A call that may or may not have taken effect leaves the action ``unknown``
        for the next pass to verify; ``refused`` is the status of any other API
        failure: ``unknown`` for Shopify's mutations (a retried request may have
        landed), ``failed`` where the API said no.
        """
        # A stop asked for by a signal takes effect here, between two calls, never within one.
        self._stop()
        if kind in _NEEDS_LOOP and self.loop is not None:
            self._check_still_connected()
        failpoints.reached(f"{kind}.before")
        action_id = self.store.ledger.begin_action(kind, order_id, target, key, payload, scan_id=self.scan_id)
        failpoints.reached(f"{kind}.intent")
        try:
            answer = call()
        except OutcomeUnknownError:
            self.store.ledger.finish_action(action_id, "unknown", {"error": "outcome unknown"})
            raise
        except ApiError:
            self.store.ledger.finish_action(action_id, refused, {"error": "request failed"})
            raise
        failpoints.reached(f"{kind}.sent")
        return action_id, answer

    def _check_still_connected(self) -> None:
        """`disconnect` may have run since this scan read the connection: one read of the
        state file before each hold, tag and note means nothing new is started after it."""
        conn = self.store.config.connection()
        if conn is None or not conn.loop_connected:
            self.loop = None
            raise _LoopDisconnected()

    def _done(self, kind: str, action_id: int, result: dict) -> None:
        self.store.ledger.finish_action(action_id, "done", result)
        failpoints.reached(f"{kind}.recorded")

    # -- tag ------------------------------------------------------------------

    def _ensure_tag(self, order: Order, outcome: OrderOutcome, tag: str | None = None) -> None:
        tag = tag or self.options.preorder_tag
        if detect.has_tag(order.tags, tag):
            return
        if self.dry_run:
            outcome.actions.append(Action("tag", order.id, f"would add tag '{tag}'", "planned"))
            return
        action_id, errors = self._send(
            "tag", order.id, tag, f"tag:{order.id}:{tag}", {"tag": tag}, lambda: self.shopify.add_tags(order.id, [tag])
        )
        if errors:
            message = "; ".join(e.message for e in errors)
            self.store.ledger.finish_action(action_id, "failed", {"user_errors": message})
            outcome.pending = f"Shopify refused the tag: {message}"
            return
        self._done("tag", action_id, {"tag": tag})
        outcome.actions.append(Action("tag", order.id, f"added tag '{tag}'"))

    # -- note -------------------------------------------------------------------

    def _ensure_note(self, order: Order, kind: str, outcome: OrderOutcome) -> None:
        assert self.loop is not None
        content = detect.note_text(self.options.note_label, outcome.window or "to be confirmed")
        return_id = self.store.orders.return_for_order(order.id) or self._find_return(order, kind)
        if return_id is None:
            self._wait_for_return(order, outcome)
            return
        if not self.dry_run:
            self.store.orders.set_order_return(order.id, return_id)
            self.store.orders.clear_note_wait(order.id)
        self._post_note(order, return_id, content, outcome)

    def _wait_for_return(self, order: Order, outcome: OrderOutcome) -> None:
        """No Loop return yet: the hold stays, and the note is looked for again later, less and less often."""
        row = self.store.orders.order(order.id)
        wait = detect.note_retry(
            row.note_attempts if row else 0,
            _moment(row.note_first_missed_at) if row else None,
            _moment(row.note_gave_up_at) if row else None,
            self.clock(),
        )
        outcome.note_wait = wait
        next_try = wait.next_retry_at.strftime("%Y-%m-%d %H:%M UTC")
        if wait.gave_up_at is not None:
            days = detect.NOTE_GIVE_UP_AFTER.days
            outcome.waiting = (
                f"Loop return still not found after {days} days: gave up reporting it "
                f"(the hold stays; looked for once a day, next {next_try})"
            )
        elif wait.attempts == 1:
            outcome.waiting = (
                f"Loop return not found yet: the hold is in place; the note is looked for again at {next_try}, "
                f"then less often (gives up after {detect.NOTE_GIVE_UP_AFTER.days} days)"
            )
        else:
            outcome.waiting = f"Loop return not found yet (lookup {wait.attempts}; next {next_try})"
        if not self.dry_run:
            self.store.orders.set_note_wait(
                order.id,
                attempts=wait.attempts,
                first_missed_at=wait.first_missed_at,
                next_retry_at=wait.next_retry_at,
                gave_up_at=wait.gave_up_at,
            )

    def _post_note(self, order: Order, return_id: int | str, content: str, outcome: OrderOutcome) -> None:
        """Post ``content`` on the return once: not if the ledger or Loop's own list already has it."""
        assert self.loop is not None
        if self.store.notes.note_recorded(return_id, content) and not self.dry_run:
            return
        existing = self.loop.notes(return_id)
        if any(n.content == content for n in existing):
            if not self.dry_run:
                self.store.notes.record_note(return_id, content, order_id=order.id)
            return
        if self.dry_run:
            outcome.actions.append(Action("note", str(return_id), f"would post: {content}", "planned"))
            return
        # Loop's note is not idempotent: a failure Loop reports is "failed", one whose
        # outcome is unknown is verified from the notes list next pass, never resent blindly.
        action_id, _ = self._send(
            "note", order.id, str(return_id), f"note:{return_id}:{content}", {"content": content},
            lambda: self.loop.create_note(return_id, content),
            refused="failed",
        )
        self._done("note", action_id, {"return_id": return_id})
        self.store.notes.record_note(return_id, content, order_id=order.id)
        outcome.actions.append(Action("note", str(return_id), content))

    def _ensure_release_note(self, order: Order, outcome: OrderOutcome) -> None:
        """Once loopsync has lifted its last hold on the order, tell the Loop return (once).

        What is owed is recorded with the release itself (``release_note_due_at``, set in
        the same transaction), so a crash after the release still gets the note posted by
        the next pass; the ledger and Loop's notes list keep it from being posted twice.
        """
        released_now = {a.target for a in outcome.actions if a.kind == "release" and a.status in ("done", "planned")}
        if self.dry_run:
            due = bool(released_now)
        else:
            due = self.store.orders.release_note_due(order.id)
        if not due:
            return
        still_held = any(fo.our_hold is not None and fo.id not in released_now for fo in order.fulfillment_orders)
        still_recorded = any(
            r.status == "active" and r.fulfillment_order_id not in released_now
            for r in self.store.holds.holds_for_order(order.id)
        )
        if still_held or still_recorded:
            return  # another of our holds waits for its own pre-order: not ready yet
        return_id = self.store.orders.return_for_order(order.id)
        # Not posted (and not owed any more) when it is switched off, when Loop is
        # disconnected, or when no return ever received the pre-order note.
        if self.options.release_note and self.loop is not None and return_id is not None:
            self._post_note(order, return_id, detect.release_note_text(self.options.note_label), outcome)
        if not self.dry_run:
            self.store.orders.clear_release_note_due(order.id)

    def _find_return(self, order: Order, kind: str) -> int | None:
        assert self.loop is not None

        def matches(ret) -> bool:
            if kind == "native":
                return str(ret.provider_order_id or "") == str(order.legacy_id)
            return any(
                x.exchange_order_id == order.legacy_id or (x.exchange_order_name or "") == order.name
                for x in ret.exchanges
            )

        for lookup in self._details_lookups(order, kind):
            found = self.loop.return_details(**lookup)
            if found is not None and matches(found):
                return found.id
        # Fallback: the list, over a bounded window and every state (out-of-stock
        # exchanges wait in `review`, which Loop's default filter leaves out).
        # An hour past our clock: Loop's may run ahead of ours, and a return it
        # updated a moment ago must not fall outside the window. GUESS: Loop
        # accepts a `to` in the future (the docs only bound the range's length).
        until = self.clock() + timedelta(hours=1)
        since = _utc(order.created_at) - RETURN_SEARCH_WINDOW
        for ret in self.loop.iter_returns(since=since, until=until, filter="updated_at"):
            if matches(ret):
                return ret.id
        return None

    def _details_lookups(self, order: Order, kind: str) -> list[dict]:
        if kind == "native":
            return [{"order_id": order.legacy_id}]
        lookups = []
        original = original_order_name(order, self.options.exchange_name_prefix)
        if original:
            lookups.append({"order_name": original})
        for tag in order.tags:
            # Loop tags a separate exchange order with the original order number.
            if tag.lstrip("#").isdigit() and tag.lstrip("#") != original:
                lookups.append({"order_name": tag.lstrip("#")})
        return lookups

    # -- crash recovery ---------------------------------------------------------

    def _settle_interrupted(self, order: Order) -> None:
        """Close intents a crash left open, from what Shopify shows now.

        The action itself is re-derived by the normal pass (the hold handle, the
        tag set and the notes list tell whether it happened); this only keeps the
        ledger from claiming something unfinished forever.
        """
        if self.dry_run:
            return
        for intent in self.store.ledger.open_intents(order_id=order.id):
            if intent.kind == "hold":
                fo = next((f for f in order.fulfillment_orders if f.id == intent.target), None)
                hold = fo.our_hold if fo else None
                if hold is None:
                    # The split may have moved our hold: look on every FO.
                    hold = next((f.our_hold for f in order.fulfillment_orders if f.our_hold), None)
                self.store.ledger.finish_action(
                    intent.id, "done" if hold else "failed", {"recovered": True, "hold_id": hold.id if hold else None}
                )
            elif intent.kind == "tag":
                present = any(t.lower() == str(intent.target).lower() for t in order.tags)
                self.store.ledger.finish_action(intent.id, "done" if present else "failed", {"recovered": True})
            elif intent.kind == "release":
                hold_id = (intent.payload or {}).get("hold_id")
                still = any(h.id == hold_id for fo in order.fulfillment_orders for h in fo.holds)
                if not still:
                    self.store.holds.mark_hold_released(intent.target, by="scan", at=self.clock())
                self.store.ledger.finish_action(intent.id, "failed" if still else "done", {"recovered": True})
            elif intent.kind == "note":
                # Settled by _ensure_note, which reads Loop's notes list.
                self.store.ledger.finish_action(intent.id, "unknown", {"recovered": True})

    # -- record ---------------------------------------------------------------

    def _record(self, order: Order, outcome: OrderOutcome) -> None:
        if self.dry_run or (outcome.kind is None and not outcome.actions):
            return
        row = self.store.orders.record_order_outcome(
            order_id=order.id,
            name=order.name,
            kind=outcome.kind,
            state=outcome.decision,
            window=outcome.window,
            pending_reason=outcome.pending,
        )
        if row.note_next_retry_at is not None and outcome.note_wait is None and outcome.decision in _NO_NOTE_NEEDED:
            self.store.orders.clear_note_wait(order.id)
        self.store.ledger.record_decision(
            scan_id=self.scan_id,
            order_id=order.id,
            order_name=order.name,
            decision=outcome.decision,
            reason=outcome.pending or outcome.reason,
        )

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
        outcome = OrderOutcome(order_id=order.id, order_name=order.name, kind=self._kind(order))
        if not self.dry_run:
            self.store.orders.mark_manual_release(order.id, name=order.name)
            self.store.orders.clear_note_wait(order.id)  # released: the "on pre-order" note is moot
        self._ensure_tag(order, outcome, self.options.release_tag)
        for fo in order.fulfillment_orders:
            if fo.our_hold is not None:
                self._release(order, fo, fo.our_hold.id, "manual", outcome, "released by hand")
        if self.dry_run or outcome.pending:
            return outcome
        released = any(a.kind == "release" for a in outcome.actions)
        try:
            self._ensure_release_note(order, outcome)
        except OutcomeUnknownError as exc:
            outcome.pending = f"the release note's outcome is unknown; the next scan checks it ({exc.message})"
        except ApiError as exc:
            outcome.pending = f"the release note was not posted; the next scan retries it ({exc.message})"
        outcome.decision = "released_manually"
        outcome.reason = "released by hand" if released else "no loopsync hold; future scans will not hold it"
        self.store.ledger.record_decision(
            scan_id=None, order_id=order.id, order_name=order.name, decision=outcome.decision, reason=outcome.reason
        )
        return outcome


def _held_by_us(order: Order) -> bool:
    return any(fo.our_hold is not None for fo in order.fulfillment_orders)


_TRAILING_COUNTER = re.compile(r"-\d+$")


def original_order_name(order: Order, prefix: str | None) -> str | None:
    """``EXC-1086-1`` → ``1086``: Loop names exchange orders after the original."""
    name = order.name.lstrip("#")
    if not prefix or not name.upper().startswith(prefix.upper()):
        return None
    rest = _TRAILING_COUNTER.sub("", name[len(prefix):])
    return rest.lstrip("#") or None

"""Decide what one order needs: facts in, intents out. No I/O, no store, no clients.

The planner sees the order as Shopify shows it now, the variant facts, the
overrides, the settings and a read-only ``LedgerView`` of what loopsync recorded.
It returns the intents in the order they are to be applied, and the decision the
order ends in when they all succeed. ``effects`` applies them (or, for a dry run,
lists them); what an intent's answer changes (a refused hold, a Loop return not
found yet) is the executor's to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loopsync import detect, guard
from loopsync.models import Order, VariantInfo
from loopsync.settings import Settings

# -- what the planner reads from the ledger ------------------------------------------


@dataclass(frozen=True)
class HoldRecord:
    """A hold the state file remembers for this order."""

    fulfillment_order_id: str
    hold_id: str | None
    active: bool
    # loopsync's last release request for this hold exists and was not refused.
    release_sent: bool = False
    # The pre-order variants the hold waits for: whether the item is still on pre-order.
    variant_ids: tuple[str, ...] = ()
    # Outside releases of this fulfillment order's hold within rehold_window, counting this
    # hold's own once (should it be gone now): the hold guard's limit.
    losses_in_window: int = 1


@dataclass(frozen=True)
class LedgerView:
    manually_released: bool = False
    holds: tuple[HoldRecord, ...] = ()
    release_note_due: bool = False
    return_id: int | str | None = None
    # The back-off of the note's wait for a Loop return that does not exist yet.
    note_attempts: int = 0
    note_first_missed_at: datetime | None = None
    note_gave_up_at: datetime | None = None
    note_next_retry_at: datetime | None = None
    # Another app kept releasing this order's hold and loopsync stopped putting it back.
    fight_given_up: bool = False


# -- intents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseHold:
    fulfillment_order_id: str
    hold_id: str
    by: str  # scan | manual
    why: str


@dataclass(frozen=True)
class SettleRelease:
    """A hold the ledger calls active is gone at Shopify: write down who lifted it."""

    fulfillment_order_id: str
    by: str  # scan (our own request, sent before a crash) | external


@dataclass(frozen=True)
class MarkHoldClosed:
    """Our hold went with its fulfillment order, closed or cancelled: nothing to send, nobody's release."""

    fulfillment_order_id: str


@dataclass(frozen=True)
class RecordHoldLoss:
    """Our hold was released outside loopsync: counted towards the guard's limit.

    ``rehold``: the hold planning puts it back this pass; ``give_up``: it stays off until support
    settles the order."""

    fulfillment_order_id: str
    verdict: str  # rehold | give_up


@dataclass(frozen=True)
class KeepHold:
    """Our hold is in place: the ledger remembers which pre-order variants it waits for."""

    fulfillment_order_id: str
    hold_id: str
    window: str
    variant_ids: tuple[str, ...]


@dataclass(frozen=True)
class PlaceHold:
    fulfillment_order_id: str
    line_items: tuple[tuple[str, int], ...]  # (fulfillment-order line, quantity); empty: the whole FO
    notes: str
    window: str
    variant_ids: tuple[str, ...]
    # Put back after a release outside loopsync (loopsync.guard).
    reheld: bool = False

    @property
    def detail(self) -> str:
        if self.reheld:
            return guard.REHELD
        return "pre-order lines only (split)" if self.line_items else "whole fulfillment order"


@dataclass(frozen=True)
class AddTag:
    tag: str


@dataclass(frozen=True)
class PostNote:
    content: str
    kind: str  # pre-order | release
    # release: the return the pre-order note went to. pre-order: found by the executor.
    return_id: int | str | None = None
    # pre-order: where the back-off stands should the Loop return not exist yet.
    wait: detect.NoteRetry | None = None


@dataclass(frozen=True)
class ClearReleaseNote:
    """The release note is posted, or owed no more."""


@dataclass(frozen=True)
class MarkManualRelease:
    """Support released the order by hand: written down before any hold is lifted."""


Intent = (
    ReleaseHold
    | SettleRelease
    | MarkHoldClosed
    | RecordHoldLoss
    | KeepHold
    | PlaceHold
    | AddTag
    | PostNote
    | ClearReleaseNote
    | MarkManualRelease
)


@dataclass
class Plan:
    kind: str | None
    intents: list[Intent] = field(default_factory=list)
    # What the order ends in once the intents succeed; None leaves what the releases said.
    decision: str | None = None
    reason: str = ""
    window: str | None = None
    # "no_preorder_items" applies only when nothing was released or observed.
    unless_acted: bool = False
    # Why the order needs a person (the hold guard gave up); ``pending_told``: an earlier scan
    # said so already, so `status` lists it but this scan does not exit 1 for it.
    pending: str | None = None
    pending_told: bool = False


# -- the planner ---------------------------------------------------------------------------


def exchange_kind(order: Order, settings: Settings) -> str | None:
    return detect.exchange_kind(
        order,
        name_prefix=settings.exchange_name_prefix,
        exchange_tag=settings.exchange_tag,
        native_tag=settings.native_exchange_tag,
    )


def held_by_us(order: Order) -> bool:
    return any(fo.our_hold is not None for fo in order.fulfillment_orders)


NO_FULFILLMENT_ORDER_YET = "its pre-order item is in no fulfillment order yet; held once Shopify creates one"


def plan_order(
    order: Order,
    variants: dict[str, VariantInfo],
    overrides: dict[str, str],
    settings: Settings,
    ledger: LedgerView,
    *,
    loop_connected: bool,
    now: datetime,
) -> Plan:
    """The intents for one scan pass over ``order`` (the release note is planned after them)."""
    kind = exchange_kind(order, settings)
    plan = Plan(kind=kind)
    # The release tag added in the Shopify admin is `loopsync release ORDER --yes`.
    if detect.has_tag(order.tags, settings.release_tag) and held_by_us(order):
        why = f"released with the tag '{settings.release_tag}' added in Shopify"
        plan.intents += [MarkManualRelease(), *_release_ours(order, why)]
        return _concluded(plan, "released_manually", why)
    # Releases come first and are planned even when disconnected: a hold we placed
    # is ours to lift once its pre-order ships, whatever else changed.
    plan.intents += plan_releases(order, variants, overrides, ledger, settings)
    preorder = detect.preorder_lines(order, kind, variants, overrides) if kind else []
    if kind is None:
        return _concluded(plan, "not_exchange", "not a Loop exchange order")
    if not preorder:
        plan.unless_acted = True
        return _concluded(plan, "no_preorder_items", "no exchange item is on pre-order")
    plan.window = detect.combined_window([p.window for p in preorder])
    gate = _left_alone(order, settings, ledger, plan.intents, loop_connected, preorder)
    if gate is not None:
        return _concluded(plan, *gate)
    given_up_now = any(isinstance(i, RecordHoldLoss) and i.verdict == "give_up" for i in plan.intents)
    if given_up_now or ledger.fight_given_up:
        # No hold until support settles it (`loopsync release` or the release tag, both gated
        # above). The scan that gives up exits 1 so cron mails ops; later scans stay quiet.
        plan.pending, plan.pending_told = guard.GIVE_UP, not given_up_now
        return _concluded(plan, "pending", guard.GIVE_UP)
    reheld = {i.fulfillment_order_id for i in plan.intents if isinstance(i, RecordHoldLoss) and i.verdict == "rehold"}
    plan.intents += plan_holds(order, preorder, plan.window, settings.release_tag, reheld)
    in_fulfillment_orders = {line.line_item_id for fo in order.fulfillment_orders for line in fo.lines}
    if any(p.line_item.id not in in_fulfillment_orders for p in preorder):
        # Shopify creates an order's fulfillment orders a little after the order (Flow's docs
        # suggest waiting about five minutes): nothing to hold yet, but the order is not done
        # with. Pending keeps it read every scan; `serve` acts on order_routing_complete.
        plan.pending = NO_FULFILLMENT_ORDER_YET
    if not detect.has_tag(order.tags, settings.preorder_tag):
        plan.intents.append(AddTag(settings.preorder_tag))
    plan.intents.append(
        PostNote(detect.note_text(settings.note_label, plan.window), "pre-order", wait=note_wait(ledger, now))
    )
    count = len(preorder)
    return _concluded(plan, "held", f"{count} exchange item(s) on pre-order, estimated shipping: {plan.window}")


def _concluded(plan: Plan, decision: str, reason: str) -> Plan:
    plan.decision, plan.reason = decision, reason
    return plan


def _left_alone(
    order: Order,
    settings: Settings,
    ledger: LedgerView,
    intents: list[Intent],
    loop_connected: bool,
    preorder: list[detect.PreorderLine],
) -> tuple[str, str] | None:
    """Why a pre-order exchange gets no new hold, tag or note, if it does not."""
    # A hold lifted outside loopsync that the guard respects (external_release = respect,
    # or the item is no longer on pre-order) is a person's decision, as a release by hand is.
    released_outside = any(isinstance(i, SettleRelease) and i.by == "external" for i in intents)
    if ledger.manually_released or released_outside:
        return "manual_release_respected", "support released this order by hand; loopsync leaves it alone"
    if detect.has_tag(order.tags, settings.release_tag):
        # The tag `loopsync release` adds: the decision lives with the order in Shopify,
        # so a new or lost state file does not hold again what support released.
        return (
            "manual_release_respected",
            f"the order carries the tag '{settings.release_tag}'; loopsync leaves it alone",
        )
    if order.closed or order.cancelled:
        return "closed", "the order is closed or cancelled"
    if guard.nothing_left_to_ship(order, {p.line_item.id for p in preorder}):
        return "already_shipped", guard.ALREADY_SHIPPED
    if not loop_connected:
        if held_by_us(order):
            return "held", "held by loopsync; Loop is disconnected: no new holds, tags or notes"
        # Left unheld: the scan says so, and `status` lists it until a scan holds it.
        return "disconnected_skip", "Loop is disconnected: no new holds, tags or notes"
    return None


def plan_releases(
    order: Order, variants: dict[str, VariantInfo], overrides: dict[str, str], ledger: LedgerView, settings: Settings
) -> list[Intent]:
    """Lift our hold on every fulfillment order with no pre-order item left.

    Shopify is the truth about which holds exist: a hold we placed but never
    recorded (a crash between the call and the ledger) is found by its handle.
    """
    intents: list[Intent] = []
    ours_at_shopify = set()
    for fo in order.fulfillment_orders:
        hold = fo.our_hold
        if hold is None:
            continue
        ours_at_shopify.add(fo.id)
        variant_ids = [li.variant_id for li in fo.lines if li.variant_id]
        # Only positive evidence releases: a variant that was not looked up,
        # or was deleted, keeps the hold (support can still release by hand).
        if detect.release_needed(variant_ids, variants, overrides):
            intents.append(ReleaseHold(fo.id, hold.id, "scan", "its pre-order item shipped"))
    # A hold the ledger calls active but Shopify no longer shows was lifted by
    # someone else, unless we sent that release ourselves and crashed before writing
    # it down. Who (Flow, another app, a person) Shopify does not say: loopsync.guard decides.
    for row in ledger.holds:
        if not row.active or row.fulfillment_order_id in ours_at_shopify:
            continue
        if row.release_sent:
            intents.append(SettleRelease(row.fulfillment_order_id, "scan"))
            continue
        intents.append(_gone_hold(order, row, variants, overrides, ledger, settings))
    return intents


def _gone_hold(
    order: Order,
    row: HoldRecord,
    variants: dict[str, VariantInfo],
    overrides: dict[str, str],
    ledger: LedgerView,
    settings: Settings,
) -> Intent:
    fo = next((f for f in order.fulfillment_orders if f.id == row.fulfillment_order_id), None)
    facts = guard.GoneHold(
        fulfillment_order_status=fo.status if fo else None,
        still_on_preorder=not detect.release_needed(list(row.variant_ids), variants, overrides),
        released_by_support=ledger.manually_released or detect.has_tag(order.tags, settings.release_tag),
        mode=settings.external_release,
        losses_in_window=row.losses_in_window,
        limit=settings.rehold_limit,
    )
    verdict = guard.when_gone(facts)
    if verdict == "closed":
        return MarkHoldClosed(row.fulfillment_order_id)
    if verdict in ("rehold", "give_up"):
        return RecordHoldLoss(row.fulfillment_order_id, verdict)
    return SettleRelease(row.fulfillment_order_id, "external")


def plan_holds(
    order: Order,
    preorder: list[detect.PreorderLine],
    window: str,
    release_tag: str,
    reheld: set[str] | frozenset[str] = frozenset(),
) -> list[Intent]:
    """``reheld``: fulfillment orders whose hold was released outside loopsync and goes back on."""
    intents: list[Intent] = []
    order_variants = tuple(sorted({p.variant_id for p in preorder if p.variant_id}))
    notes = guard.hold_reason_notes(window, release_tag)
    for step in detect.hold_plan(order, {p.line_item.id for p in preorder}):
        fo = step.fulfillment_order
        # The hold row remembers which pre-order variants this fulfillment order waits for.
        variant_ids = tuple(step.variant_ids) or order_variants
        if step.action == "none":
            if fo.our_hold is not None:
                intents.append(KeepHold(fo.id, fo.our_hold.id, window, variant_ids))
        elif step.action != "skip":  # skip: not holdable (closed, cancelled, fulfilled)
            intents.append(PlaceHold(fo.id, tuple(step.line_items), notes, window, variant_ids, fo.id in reheld))
    return intents


def note_wait(ledger: LedgerView, now: datetime) -> detect.NoteRetry:
    """Where the note's back-off goes should this pass not find the Loop return either."""
    return detect.note_retry(ledger.note_attempts, ledger.note_first_missed_at, ledger.note_gave_up_at, now,
                             ledger.note_next_retry_at)


def waiting_text(wait: detect.NoteRetry) -> str:
    next_try = wait.next_retry_at.strftime("%Y-%m-%d %H:%M UTC")
    days = detect.NOTE_GIVE_UP_AFTER.days
    if wait.gave_up_at is not None:
        return (
            f"Loop return still not found after {days} days: gave up reporting it "
            f"(the hold stays; looked for once a day, next {next_try})"
        )
    if wait.attempts == 1:
        return (
            f"Loop return not found yet: the hold is in place; the note is looked for again at {next_try}, "
            f"then less often (gives up after {days} days)"
        )
    return f"Loop return not found yet (lookup {wait.attempts}; next {next_try})"


def plan_release_note(
    order: Order, released: set[str], ledger: LedgerView, settings: Settings, *, loop_connected: bool
) -> list[Intent]:
    """Once loopsync has lifted its last hold on the order, tell the Loop return (once).

    ``released``: the fulfillment orders this pass released; ``ledger`` is read after
    them. What is owed is recorded with the release itself, so a crash after the
    release still gets the note posted by the next pass.
    """
    if not ledger.release_note_due:
        return []
    still_held = any(fo.our_hold is not None and fo.id not in released for fo in order.fulfillment_orders)
    still_recorded = any(h.active and h.fulfillment_order_id not in released for h in ledger.holds)
    if still_held or still_recorded:
        return []  # another of our holds waits for its own pre-order: not ready yet
    intents: list[Intent] = []
    # Not posted (and not owed any more) when it is switched off, when Loop is
    # disconnected, or when no return ever received the pre-order note.
    if settings.release_note and loop_connected and ledger.return_id is not None:
        intents.append(PostNote(detect.release_note_text(settings.note_label), "release", return_id=ledger.return_id))
    intents.append(ClearReleaseNote())
    return intents


def plan_manual_release(order: Order, settings: Settings) -> list[Intent]:
    """Support lifts loopsync's holds on one order; the decision is written down first."""
    intents: list[Intent] = [MarkManualRelease()]
    if not detect.has_tag(order.tags, settings.release_tag):
        intents.append(AddTag(settings.release_tag))
    intents += _release_ours(order, "released by hand")
    return intents


def _release_ours(order: Order, why: str) -> list[Intent]:
    return [ReleaseHold(fo.id, fo.our_hold.id, "manual", why) for fo in order.fulfillment_orders if fo.our_hold]

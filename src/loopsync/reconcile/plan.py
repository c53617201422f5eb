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

from loopsync import detect
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

    @property
    def detail(self) -> str:
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


Intent = ReleaseHold | SettleRelease | KeepHold | PlaceHold | AddTag | PostNote | ClearReleaseNote | MarkManualRelease


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
    # Releases come first and are planned even when disconnected: a hold we placed
    # is ours to lift once its pre-order ships, whatever else changed.
    plan.intents += plan_releases(order, variants, overrides, ledger)
    preorder = detect.preorder_lines(order, kind, variants, overrides) if kind else []
    if kind is None:
        return _concluded(plan, "not_exchange", "not a Loop exchange order")
    if not preorder:
        plan.unless_acted = True
        return _concluded(plan, "no_preorder_items", "no exchange item is on pre-order")
    plan.window = detect.combined_window([p.window for p in preorder])
    gate = _left_alone(order, settings, ledger, plan.intents, loop_connected)
    if gate is not None:
        return _concluded(plan, *gate)
    plan.intents += plan_holds(order, preorder, plan.window)
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
    order: Order, settings: Settings, ledger: LedgerView, intents: list[Intent], loop_connected: bool
) -> tuple[str, str] | None:
    """Why a pre-order exchange gets no new hold, tag or note, if it does not."""
    # A hold lifted outside loopsync is a person's decision, as a release by hand is.
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
    if not loop_connected:
        if held_by_us(order):
            return "held", "held by loopsync; Loop is disconnected: no new holds, tags or notes"
        # Left unheld: the scan says so, and `status` lists it until a scan holds it.
        return "disconnected_skip", "Loop is disconnected: no new holds, tags or notes"
    return None


def plan_releases(
    order: Order, variants: dict[str, VariantInfo], overrides: dict[str, str], ledger: LedgerView
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
    # someone else (a merchant in the admin), unless we sent that release
    # ourselves and crashed before writing it down.
    for row in ledger.holds:
        if row.active and row.fulfillment_order_id not in ours_at_shopify:
            intents.append(SettleRelease(row.fulfillment_order_id, "scan" if row.release_sent else "external"))
    return intents


def plan_holds(order: Order, preorder: list[detect.PreorderLine], window: str) -> list[Intent]:
    intents: list[Intent] = []
    order_variants = tuple(sorted({p.variant_id for p in preorder if p.variant_id}))
    notes = f"Loop exchange into a pre-order item; estimated shipping: {window}. Placed by loopsync."
    for step in detect.hold_plan(order, {p.line_item.id for p in preorder}):
        fo = step.fulfillment_order
        # The hold row remembers which pre-order variants this fulfillment order waits for.
        variant_ids = tuple(step.variant_ids) or order_variants
        if step.action == "none":
            if fo.our_hold is not None:
                intents.append(KeepHold(fo.id, fo.our_hold.id, window, variant_ids))
        elif step.action != "skip":  # skip: not holdable (closed, cancelled, fulfilled)
            intents.append(PlaceHold(fo.id, tuple(step.line_items), notes, window, variant_ids))
    return intents


def note_wait(ledger: LedgerView, now: datetime) -> detect.NoteRetry:
    """Where the note's back-off goes should this pass not find the Loop return either."""
    return detect.note_retry(ledger.note_attempts, ledger.note_first_missed_at, ledger.note_gave_up_at, now)


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
    for fo in order.fulfillment_orders:
        if fo.our_hold is not None:
            intents.append(ReleaseHold(fo.id, fo.our_hold.id, "manual", "released by hand"))
    return intents

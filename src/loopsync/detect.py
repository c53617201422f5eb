"""Decisions without I/O: is this order a Loop exchange, which of its items are on
pre-order, what is the shipping window, how to hold it, and when to release.

Everything here is a pure function of ``loopsync.models`` values, so ``reconcile``
can call it for a scan, a single order (webhooks) or ``explain`` alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

from loopsync import text
from loopsync.models import FulfillmentOrder, FulfillmentOrderLine, LineItem, Order, PreorderPlan, VariantInfo

ExchangeKind = Literal["separate", "native"]
PreorderSource = Literal["selling_plan_group", "line_item_selling_plan", "override"]
#: Which setting recognised a Loop exchange (``explain`` shows it).
ExchangeRule = Literal["name_prefix", "exchange_tag", "native_tag"]
#: Where a shipping window's text came from, in the order ``shipping_window`` tries them.
WindowSource = Literal["override", "metafield", "selling_plan_date", "selling_plan_description", "to_be_confirmed"]
HoldAction = Literal["hold_whole", "hold_lines", "none", "skip"]

TO_BE_CONFIRMED = "to be confirmed"
#: Loop rejects notes longer than this.
NOTE_MAX_LENGTH = 255
#: The longest note label a merchant may set (``config set note_label``).
NOTE_LABEL_MAX_LENGTH = 40
#: The longest shipping window loopsync repeats: with the longest label and the fixed
#: text the Loop note stays within NOTE_MAX_LENGTH uncut (a test checks). GUESS: Shopify
#: documents no limit for a hold's reasonNotes; the about 80 fixed characters loopsync
#: puts around the window keep those notes under 255 too, a common column size.
WINDOW_MAX_LENGTH = 150
_NOTE_BODY = "This exchange item is on pre-order, estimated shipping: "
_RELEASE_NOTE_BODY = "The pre-order item is ready: the hold was released."

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Fulfillment orders loopsync never holds: nothing left to ship, or Shopify cannot hold them.
_UNHOLDABLE_STATUSES = frozenset({"CLOSED", "CANCELLED", "INCOMPLETE"})


# --- is it a Loop exchange? --------------------------------------------------------------


# A scan normalises every tag of every order it lists; the same few tags recur across a store.
@lru_cache(maxsize=4096)
def _norm_tag(tag: str) -> str:
    return " ".join(tag.split()).casefold()


@lru_cache(maxsize=64)
def _norm_prefix(prefix: str) -> str:
    return prefix.strip().lstrip("#").casefold()


def has_tag(tags: Iterable[str], tag: str | None) -> bool:
    """Whether ``tag`` is among ``tags`` as Shopify compares them: case and spacing do not count."""
    return tag is not None and _norm_tag(tag) in {_norm_tag(t) for t in tags}


def exchange_kind(
    order: Order,
    *,
    name_prefix: str | None = "EXC-",
    exchange_tag: str | None = None,
    native_tag: str | None = "Loop Exchange",
) -> ExchangeKind | None:
    """``"separate"`` (a new EXC order), ``"native"`` (exchange items added to the original order) or None."""
    return exchange_rule(order, name_prefix=name_prefix, exchange_tag=exchange_tag, native_tag=native_tag)[0]


def exchange_rule(
    order: Order,
    *,
    name_prefix: str | None = "EXC-",
    exchange_tag: str | None = None,
    native_tag: str | None = "Loop Exchange",
) -> tuple[ExchangeKind | None, ExchangeRule | None]:
    """The exchange kind and the rule that recognised it (the first that matches, as the scan decides)."""
    # GUESS: Shopify order names carry a leading "#" (e.g. "#EXC-1086") unless the
    # store's prefix setting removes it; compare without it.
    name = order.name.strip().lstrip("#").casefold()
    if name_prefix and name.startswith(_norm_prefix(name_prefix)):
        return "separate", "name_prefix"
    if not order.tags:
        return None, None
    tags = {_norm_tag(t) for t in order.tags}
    if exchange_tag and _norm_tag(exchange_tag) in tags:
        return "separate", "exchange_tag"
    # GUESS: Loop announces the "Loop Exchange" tag on native exchanges as "coming soon"
    # (loop-native-exchanges.md §1); it is the only Loop-specific signal on such an
    # order, so without it we cannot tell Loop's exchanges from another app's.
    if native_tag and _norm_tag(native_tag) in tags:
        return "native", "native_tag"
    return None, None


def exchange_line_items(order: Order, kind: ExchangeKind | None) -> tuple[LineItem, ...]:
    """The line items that are exchange items: all of a separate order, only Shopify's exchange items of a native one."""
    if kind == "separate":
        return order.line_items
    if kind == "native":
        return tuple(li for li in order.line_items if li.id in order.exchange_line_item_ids)
    return ()


# --- which items are on pre-order? ----------------------------------------------------------


@dataclass(frozen=True)
class PreorderLine:
    line_item: LineItem
    variant_id: str
    window: str
    source: PreorderSource
    plan_id: str | None = None  # the PRE_ORDER selling plan the window came from
    window_source: WindowSource = "to_be_confirmed"


class MissingVariantInfo(LookupError):
    """A programming error: ``preorder_lines`` was not given a variant it needs."""


def preorder_lines(
    order: Order,
    kind: ExchangeKind | None,
    variants: Mapping[str, VariantInfo],
    overrides: Mapping[str, str],
) -> list[PreorderLine]:
    """The exchange line items that are on pre-order right now, with their shipping window.

    An item is on pre-order when its variant belongs to a PRE_ORDER selling plan
    group now, or a local override names the variant.

    The line item's own selling plan is not enough on its own. Loop's exchange
    items carry none (ExchangeLineItemInput has no selling plan), and a plan stamped
    on a line item at checkout stays there after the merchant ends the pre-order: if
    it kept the item on pre-order, its hold could never be released. So the line
    item's plan only chooses *which* of the variant's current PRE_ORDER plans
    gives the window when there are several.

    Raises :class:`MissingVariantInfo` if ``variants`` lacks a variant that has no override.
    """
    lines: list[PreorderLine] = []
    missing: list[str] = []
    for item in exchange_line_items(order, kind):
        vid = item.variant_id
        if not vid:
            continue  # a custom item: no variant, nothing to be on pre-order
        if vid in overrides:
            info = variants.get(vid)
            window, origin = window_and_source(info, overrides[vid], None)
            lines.append(PreorderLine(item, vid, window, "override", window_source=origin))
            continue
        if vid not in variants:
            missing.append(vid)
            continue
        info = variants[vid]
        if not (info.exists and info.on_preorder):
            continue
        plan = _plan(info, item.selling_plan_id)
        source: PreorderSource = (
            "line_item_selling_plan"
            if item.selling_plan_id and plan.id == item.selling_plan_id
            else "selling_plan_group"
        )
        window, origin = window_and_source(info, None, plan.id)
        lines.append(PreorderLine(item, vid, window, source, plan.id, origin))
    if missing:
        raise MissingVariantInfo(f"variant info not looked up: {', '.join(sorted(set(missing)))}")
    return lines


def _plan(info: VariantInfo, preferred_plan_id: str | None) -> PreorderPlan:
    for plan in info.preorder_plans:
        if preferred_plan_id and plan.id == preferred_plan_id:
            return plan
    return info.preorder_plans[0]


def combined_window(windows: Iterable[str]) -> str:
    """One window text for an order with several pre-order items: the distinct windows, in order."""
    distinct = list(dict.fromkeys(w for w in (_clean(w) for w in windows) if w))
    return text.shorten("; ".join(distinct), WINDOW_MAX_LENGTH) if distinct else TO_BE_CONFIRMED


# --- the shipping window ----------------------------------------------------------------------


def _clean(raw: str | None) -> str | None:
    # Windows come from metafields, selling plan descriptions and overrides, and are
    # repeated into the Loop note, the hold's reason notes and the terminal.
    return text.clean(raw, WINDOW_MAX_LENGTH) or None


def shipping_window(
    variant_info: VariantInfo | None,
    override_window: str | None,
    preferred_plan_id: str | None,
) -> str:
    """Override, else the variant's shipping-window metafield, else the plan's exact date
    ("15 March 2027"), else the plan's description, else "to be confirmed"."""
    return window_and_source(variant_info, override_window, preferred_plan_id)[0]


def window_and_source(
    variant_info: VariantInfo | None,
    override_window: str | None,
    preferred_plan_id: str | None,
) -> tuple[str, WindowSource]:
    """The shipping window (see :func:`shipping_window`) and which of its sources gave it."""
    if override := _clean(override_window):
        return override, "override"
    if variant_info is None:
        return TO_BE_CONFIRMED, "to_be_confirmed"
    if metafield := _clean(variant_info.shipping_window_metafield):
        return metafield, "metafield"
    if not variant_info.preorder_plans:
        return TO_BE_CONFIRMED, "to_be_confirmed"
    plan = _plan(variant_info, preferred_plan_id)
    if plan.fulfillment_exact_time is not None:
        return format_date(plan.fulfillment_exact_time), "selling_plan_date"
    if description := _clean(plan.description):
        return description, "selling_plan_description"
    return TO_BE_CONFIRMED, "to_be_confirmed"


def format_date(moment: date) -> str:
    """``15 March 2027``: no leading zero, English month names whatever the locale."""
    # GUESS: the date is shown as Shopify gives it (its own offset, normally UTC);
    # shifting it to this machine's timezone could move the day.
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


# --- how to hold ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldDecision:
    """What to do with one fulfillment order that has pre-order items left to ship."""

    fulfillment_order: FulfillmentOrder
    action: HoldAction  # hold_whole | hold_lines | none (already held by us) | skip (cannot hold)
    reason: str
    # (FulfillmentOrderLineItem id, quantity) to hold, for "hold_lines"; empty otherwise.
    line_items: tuple[tuple[str, int], ...] = ()
    # The pre-order items on this fulfillment order (what the hold row records).
    preorder_line_item_ids: tuple[str, ...] = ()
    variant_ids: tuple[str, ...] = ()

    @property
    def fulfillment_order_id(self) -> str:
        return self.fulfillment_order.id


def holdable(fo: FulfillmentOrder) -> tuple[bool, str]:
    """Whether Shopify will accept a hold on this fulfillment order, and why not."""
    if fo.status in _UNHOLDABLE_STATUSES:
        return False, f"fulfillment order is {fo.status}"
    # GUESS: when the client read supportedActions we trust it; Shopify only offers
    # HOLD on fulfillment orders it can hold. If it was not read (empty), status decides.
    if fo.supported_actions and "HOLD" not in fo.supported_actions:
        return False, f"Shopify does not offer HOLD on this fulfillment order (status {fo.status})"
    return True, ""


def hold_plan(order: Order, preorder_line_ids: Iterable[str]) -> list[HoldDecision]:
    """One decision per fulfillment order that still has pre-order items to ship."""
    wanted = set(preorder_line_ids)
    decisions: list[HoldDecision] = []
    for fo in order.fulfillment_orders:
        to_ship = [line for line in fo.lines if line.remaining_quantity > 0]
        pre = [line for line in to_ship if line.line_item_id in wanted]
        if not pre:
            continue
        ids = tuple(line.line_item_id for line in pre)
        variants = tuple(sorted({line.variant_id for line in pre if line.variant_id}))
        action, reason, lines = _decide(fo, pre, to_ship)
        decisions.append(HoldDecision(fo, action, reason, lines, ids, variants))
    return decisions


def _decide(
    fo: FulfillmentOrder, pre: list[FulfillmentOrderLine], to_ship: list[FulfillmentOrderLine]
) -> tuple[HoldAction, str, tuple[tuple[str, int], ...]]:
    if fo.our_hold is not None:
        return "none", "already held by loopsync", ()
    ok, why = holdable(fo)
    if not ok:
        return "skip", why, ()
    if len(pre) == len(to_ship):
        return "hold_whole", "every item left to ship is on pre-order", ()
    if fo.held_by_others:
        # Shopify refuses to split a fulfillment order that is already on hold
        # (FULFILLMENT_ORDER_NOT_SPLITTABLE), so the in-stock items wait too.
        return (
            "hold_whole",
            "mixed with in-stock items, but already held by another app so it cannot be split",
            (),
        )
    lines = tuple((line.id, line.remaining_quantity) for line in pre)
    return "hold_lines", "mixed with in-stock items: holding only the pre-order items", lines


# --- the Loop note -----------------------------------------------------------------------------------


def _note_prefix(label: str) -> str:
    return f"[{label}] {_NOTE_BODY}"


def note_text(label: str, window: str) -> str:
    """``[{label}] This exchange item is on pre-order, estimated shipping: {window}.``, at most 255 characters.

    A window too long for Loop's limit is cut and ends with an ellipsis.
    """
    prefix = _note_prefix(text.one_line(label))
    window = text.one_line(window) or TO_BE_CONFIRMED
    room = NOTE_MAX_LENGTH - len(prefix) - 1  # the closing "."
    if room < 2:
        raise ValueError(f"note label too long for Loop's {NOTE_MAX_LENGTH}-character limit")
    if len(window) > room:
        window = window[: room - 1].rstrip() + "…"
    return f"{prefix}{window}."


def release_note_text(label: str) -> str:
    """``[{label}] The pre-order item is ready: the hold was released.``: the note after loopsync lifts its hold."""
    return f"[{label}] {_RELEASE_NOTE_BODY}"


# --- waiting for the Loop return ----------------------------------------------------------------------

#: After the n-th lookup that did not find the Loop return, the next one waits NOTE_RETRY_DELAYS[n-1];
#: after the last of them, a day. A return that is minutes late is found within the hour; one that
#: never comes costs a lookup a day, not one every scan.
NOTE_RETRY_DELAYS = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
NOTE_RETRY_DAILY = timedelta(days=1)
#: How long loopsync reports a missing Loop return as pending before it gives up telling (it still
#: looks once a day). Loop creates the exchange order when it processes the return, so a return still
#: missing after two weeks is not late: someone has to look.
NOTE_GIVE_UP_AFTER = timedelta(days=14)


@dataclass(frozen=True)
class NoteRetry:
    """Where the wait for an order's Loop return stands after one more lookup that did not find it."""

    attempts: int  # lookups that did not find the return, this one included
    first_missed_at: datetime
    next_retry_at: datetime
    gave_up_at: datetime | None
    news: bool  # worth a person's attention (exit 1): the first miss, or the moment it gives up


def note_retry(attempts_before: int, first_missed_at: datetime | None, gave_up_at: datetime | None,
               now: datetime, next_retry_at: datetime | None = None) -> NoteRetry:
    """The back-off after a lookup at ``now`` that did not find the Loop return.

    A lookup before the scheduled one (``next_retry_at``) leaves the schedule as it was: the
    order was read for another reason (a webhook about it, loopsync's own tag coming back as
    ``orders/updated``, a scan that found it changed), and counting each such look as a step
    would push the next real lookup hours out within seconds of the first miss.
    """
    if next_retry_at is not None and first_missed_at is not None and now < next_retry_at:
        return NoteRetry(attempts=max(attempts_before, 1), first_missed_at=first_missed_at,
                         next_retry_at=next_retry_at, gave_up_at=gave_up_at, news=False)
    attempts = attempts_before + 1
    first = first_missed_at or now
    delay = NOTE_RETRY_DELAYS[attempts - 1] if attempts <= len(NOTE_RETRY_DELAYS) else NOTE_RETRY_DAILY
    gives_up_now = gave_up_at is None and now - first >= NOTE_GIVE_UP_AFTER
    return NoteRetry(
        attempts=attempts,
        first_missed_at=first,
        next_retry_at=now + delay,
        gave_up_at=now if gives_up_now else gave_up_at,
        news=attempts == 1 or gives_up_now,
    )


# --- when to release ------------------------------------------------------------------------------------


def still_on_preorder(
    variant_id: str, variants: Mapping[str, VariantInfo], overrides: Mapping[str, str]
) -> bool:
    if variant_id in overrides:
        return True
    info = variants.get(variant_id)
    if info is None:
        # Not looked up (or the lookup failed): keep the hold rather than release on no evidence.
        return True
    if not info.exists:
        # GUESS: a deleted variant never "ships"; releasing would let the warehouse
        # try to send stock that does not exist. The merchant can `loopsync release`.
        return True
    return info.on_preorder


def release_needed(
    variant_ids: Iterable[str], variants: Mapping[str, VariantInfo], overrides: Mapping[str, str]
) -> bool:
    """True when none of a hold's variants is still on pre-order (so loopsync should release it)."""
    ids = list(variant_ids)
    if not ids:
        return False  # nothing to judge by; never release on no evidence
    return not any(still_on_preorder(vid, variants, overrides) for vid in ids)

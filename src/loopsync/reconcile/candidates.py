"""Which orders a scan reads in full, and the variant facts they need.

A cheap summary of every order Shopify reports as updated since the cursor is
enough to recognise a Loop exchange; only those, plus every order the ledger says
we still hold, wait on or were interrupted acting on, are then read in full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from loopsync import detect
from loopsync.models import Order, PreorderPlan, VariantInfo
from loopsync.reconcile.plan import exchange_kind
from loopsync.reconcile.report import ScanReport
from loopsync.settings import Settings
from loopsync.shopify import ShopifyClient, cost
from loopsync.store import Store


@dataclass
class Candidates:
    orders: list[Order] = field(default_factory=list)  # oldest first
    variants: dict[str, VariantInfo] = field(default_factory=dict)
    # Held orders whose pre-order shipped, not read yet: ``read_shipped`` reads them a request's
    # worth at a time as the scan reaches them, so a release wave's reads wait for Shopify's
    # bucket while the releases before them spend Loop's limit, instead of all reads first.
    shipped: list[str] = field(default_factory=list)


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def since(store: Store, options: Settings, given: datetime | None, now: datetime) -> datetime:
    """Where the scan starts: as asked, else the cursor less the overlap, else the lookback."""
    if given is not None:
        return _utc(given)
    cursor = store.ledger.cursor()
    if cursor is not None:
        return _utc(cursor) - options.overlap
    return now - options.lookback


def gather(
    store: Store,
    shopify: ShopifyClient,
    options: Settings,
    report: ScanReport,
    *,
    now: datetime,
    loop_connected: bool,
    stop: Callable[[], None],
    forget: Callable[[str], None],
    seen: Callable[[int], None] = lambda n: None,
) -> Candidates:
    """Fill in ``report``'s counts and cursor; return the orders to reconcile."""
    wanted = _updated_exchanges(shopify, options, report, stop, seen)
    holds_by_order: dict[str, list] = {}
    for row in store.holds.active_holds():
        holds_by_order.setdefault(row.order_id, []).append(row)
    wanted |= _wanted_by_the_ledger(store, report, holds_by_order, now=now, loop_connected=loop_connected)
    found = _fetch(shopify, wanted, forget)
    overrides = store.config.overrides()
    variants = lookup_variants(shopify, options, found.values(), holds_by_order, store=store, now=now,
                               only_held_by=found.keys())
    shipped = _shipped_holds(store, shopify, options, holds_by_order, found, variants, overrides, now)
    report.exchanges_seen = sum(1 for o in found.values() if exchange_kind(o, options) is not None)
    return Candidates(sorted(found.values(), key=_oldest_first), variants, shipped)


def _updated_exchanges(shopify: ShopifyClient, options: Settings, report: ScanReport,
                       stop: Callable[[], None], seen: Callable[[int], None]) -> set[str]:
    """The first pass: a summary of every order updated since the cursor; the exchanges' ids."""
    wanted: set[str] = set()
    newest: datetime | None = None
    # Asked of every order in the window, so the settings are looked up once, not per order.
    recognise = partial(detect.exchange_kind, name_prefix=options.exchange_name_prefix,
                        exchange_tag=options.exchange_tag, native_tag=options.native_exchange_tag)
    for summary in shopify.iter_order_summaries(updated_since=report.since, sort_key="UPDATED_AT"):
        stop()
        report.orders_seen += 1
        seen(report.orders_seen)
        if newest is None or summary.updated_at > newest:
            newest = summary.updated_at
        if recognise(summary) is not None:
            wanted.add(summary.id)
    report.new_cursor = newest
    return wanted


def _wanted_by_the_ledger(store: Store, report: ScanReport, holds_by_order: dict[str, list], *,
                          now: datetime, loop_connected: bool) -> set[str]:
    """Level-triggered: orders we are waiting on or were interrupted acting on are read in
    full every scan, whether Shopify reports them as updated or not."""
    wanted = {p.order_id for p in store.orders.pending_orders()}
    wanted.update(i.order_id for i in store.ledger.open_intents())
    # An order whose note waits for its Loop return is held and costs nothing until
    # its next lookup is due (or Shopify reports it updated).
    wanted.update(store.orders.note_retries_due(now))
    wanted.update(set(store.orders.order_ids_needing_attention()) - set(holds_by_order))
    unheld = {o.order_id for o in store.orders.orders_left_unheld()}
    report.known_unheld = frozenset(unheld)
    if loop_connected:
        # Exchanges a disconnected scan left unheld are held once Loop is back,
        # however long ago Shopify last updated them.
        wanted.update(unheld)
    return wanted


def _shipped_holds(store: Store, shopify: ShopifyClient, options: Settings, holds_by_order: dict[str, list],
                   found: dict[str, Order], variants: dict[str, VariantInfo], overrides: dict[str, str],
                   now: datetime) -> list[str]:
    """Orders we hold that Shopify did not report as updated, whose pre-order shipped.

    They are read in full only then (a shipping pre-order does not touch the order): a store
    with hundreds of held orders pays for a check of its held variants' selling plan groups
    each scan, not for hundreds of full orders. A hold released or an order changed in the
    admin bumps updatedAt, so the first pass sees it."""
    held_only = {
        vid
        for order_id, rows in holds_by_order.items() if order_id not in found
        for row in rows for vid in row.variant_ids
    } - set(variants) - set(overrides)
    verdicts, read_in_full = held_verdicts(store, shopify, options, held_only, now)
    variants.update(read_in_full)
    verdicts.update(variants)
    return sorted(
        order_id
        for order_id, rows in holds_by_order.items()
        if order_id not in found and any(detect.release_needed(r.variant_ids, verdicts, overrides) for r in rows)
    )


def _oldest_first(order: Order) -> tuple:
    return order.created_at, order.id


def read_shipped(
    store: Store,
    shopify: ShopifyClient,
    options: Settings,
    found: Candidates,
    report: ScanReport,
    *,
    now: datetime,
    forget: Callable[[str], None],
) -> Iterator[tuple[list[Order], dict[str, VariantInfo]]]:
    """``found.shipped`` in full, one orders-by-id request at a time (oldest first within it), with
    the variant facts they need that ``found.variants`` lacks; counted into ``report`` as read."""
    batch = cost.orders_page_size(250)
    for start in range(0, len(found.shipped), batch):
        more = _fetch(shopify, set(found.shipped[start : start + batch]), forget)
        variants = lookup_variants(shopify, options, more.values(), {}, known=found.variants, store=store, now=now)
        found.variants.update(variants)
        report.exchanges_seen += sum(1 for o in more.values() if exchange_kind(o, options) is not None)
        yield sorted(more.values(), key=_oldest_first), variants


def _fetch(shopify: ShopifyClient, order_ids: set[str], forget: Callable[[str], None]) -> dict[str, Order]:
    """Full orders by id; an order Shopify no longer has is forgotten."""
    found: dict[str, Order] = {}
    if not order_ids:
        return found
    for order_id, order in shopify.fetch_orders(sorted(order_ids)).items():
        if order is not None:
            found[order_id] = order
        else:
            forget(order_id)
    return found


def variants_for(store: Store, shopify: ShopifyClient, options: Settings, orders: Iterable[Order]) -> dict[str, VariantInfo]:
    """The variant facts reconciling ``orders`` needs, read now: their exchange items, the lines of
    fulfillment orders loopsync holds, and the variants of the holds the ledger has on them (what
    the webhook worker reads for the one order a delivery names)."""
    order_ids = {o.id for o in orders}
    holds_by_order: dict[str, list] = {}
    for row in store.holds.active_holds():
        if row.order_id in order_ids:
            holds_by_order.setdefault(row.order_id, []).append(row)
    return lookup_variants(shopify, options, orders, holds_by_order)


def lookup_variants(
    shopify: ShopifyClient,
    options: Settings,
    orders: Iterable[Order],
    holds_by_order: dict[str, list],
    *,
    known: dict[str, VariantInfo] | None = None,
    store: Store | None = None,
    now: datetime | None = None,
    only_held_by: Iterable[str] | None = None,
) -> dict[str, VariantInfo]:
    """One batched lookup per scan: Loop's exchange items carry no selling plan.

    ``only_held_by`` limits the ledger's holds whose variants are read to those orders'. With
    ``store``, what was read is remembered for the idle scan's check (``held_verdicts``).
    """
    wanted: set[str] = set()
    for order in orders:
        kind = exchange_kind(order, options)
        for line in detect.exchange_line_items(order, kind) if kind else ():
            if line.variant_id:
                wanted.add(line.variant_id)
        for fo in order.fulfillment_orders:
            if fo.our_hold is not None:
                wanted.update(li.variant_id for li in fo.lines if li.variant_id)
    limit = None if only_held_by is None else set(only_held_by)
    for order_id, rows in holds_by_order.items():
        if limit is not None and order_id not in limit:
            continue
        for row in rows:
            wanted.update(row.variant_ids)
    wanted -= set(known or ())
    if not wanted:
        return {}
    found = shopify.variant_info(
        sorted(wanted),
        metafield_namespace=options.metafield_namespace,
        metafield_key=options.metafield_key,
    )
    if store is not None and now is not None:
        store.variants.remember(found.values(), now)
    return found


#: How long a variant's full read stands while its selling plan group ids stay the same.
# GUESS: a pre-order ends by the variant leaving its PRE_ORDER group (Shopify's own pre-order
# app and the sandbox do this) or by the group being deleted, both of which change the variant's
# group ids. A plan edited in place to another category, or a group's plans replaced, leaves
# them alone: `loopsync serve` hears selling_plan_groups/update at once; a scan notices when it
# reads the variant in full again, at the latest this long after the last full read.
FACTS_MAX_AGE = timedelta(hours=24)


def held_verdicts(
    store: Store, shopify: ShopifyClient, options: Settings, variant_ids: Iterable[str], now: datetime
) -> tuple[dict[str, VariantInfo], dict[str, VariantInfo]]:
    """Whether each held variant is still on pre-order, for deciding which held orders to re-read.

    One cheap request asks Shopify for the variants' selling plan group ids. Where they are what
    the last full read (within ``FACTS_MAX_AGE``) saw, that read's verdict stands, and the
    VariantInfo returned carries only it (plan ids, no windows: never hand it to ``plan``).
    The others are read in full now, and remembered. Returns (every verdict, the full reads).
    """
    ids = sorted(set(variant_ids))
    if not ids:
        return {}, {}
    remembered = {vid: f for vid, f in store.variants.facts(ids).items() if now - f.read_at < FACTS_MAX_AGE}
    current = shopify.variant_group_ids([vid for vid in ids if vid in remembered]) if remembered else {}
    verdicts: dict[str, VariantInfo] = {}
    stale: list[str] = []
    for vid in ids:
        facts = remembered.get(vid)
        if facts is None or not facts.exists or current.get(vid) != facts.group_ids:
            stale.append(vid)
            continue
        plans = tuple(PreorderPlan(id=p, description=None, fulfillment_trigger=None, fulfillment_exact_time=None)
                      for p in facts.preorder_plan_ids)
        verdicts[vid] = VariantInfo(id=vid, exists=True, preorder_plans=plans, group_ids=facts.group_ids)
    found: dict[str, VariantInfo] = {}
    if stale:
        found = shopify.variant_info(stale, metafield_namespace=options.metafield_namespace,
                                     metafield_key=options.metafield_key)
        store.variants.remember(found.values(), now)
        verdicts.update(found)
    return verdicts, found

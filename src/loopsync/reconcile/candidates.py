"""Which orders a scan reads in full, and the variant facts they need.

A cheap summary of every order Shopify reports as updated since the cursor is
enough to recognise a Loop exchange; only those, plus every order the ledger says
we still hold, wait on or were interrupted acting on, are then read in full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loopsync import detect
from loopsync.models import Order, VariantInfo
from loopsync.reconcile.plan import exchange_kind
from loopsync.reconcile.report import ScanReport
from loopsync.settings import Settings
from loopsync.shopify import ShopifyClient
from loopsync.store import Store


@dataclass
class Candidates:
    orders: list[Order] = field(default_factory=list)  # oldest first
    variants: dict[str, VariantInfo] = field(default_factory=dict)


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
    wanted: set[str] = set()
    newest: datetime | None = None
    for summary in shopify.iter_order_summaries(updated_since=report.since, sort_key="UPDATED_AT"):
        stop()
        report.orders_seen += 1
        seen(report.orders_seen)
        newest = summary.updated_at if newest is None or summary.updated_at > newest else newest
        if exchange_kind(summary, options) is not None:
            wanted.add(summary.id)
    report.new_cursor = newest

    # Level-triggered: orders we are waiting on or were interrupted acting on are
    # read in full every scan, whether Shopify reports them as updated or not.
    wanted.update(p.order_id for p in store.orders.pending_orders())
    wanted.update(i.order_id for i in store.ledger.open_intents())
    # An order whose note waits for its Loop return is held and costs nothing until
    # its next lookup is due (or Shopify reports it updated, above).
    wanted.update(store.orders.note_retries_due(now))
    holds_by_order: dict[str, list] = {}
    for row in store.holds.active_holds():
        holds_by_order.setdefault(row.order_id, []).append(row)
    wanted.update(set(store.orders.order_ids_needing_attention()) - set(holds_by_order))
    unheld = {o.order_id for o in store.orders.orders_left_unheld()}
    report.known_unheld = frozenset(unheld)
    if loop_connected:
        # Exchanges a disconnected scan left unheld are held once Loop is back,
        # however long ago Shopify last updated them.
        wanted.update(unheld)
    found = _fetch(shopify, wanted, forget)
    variants = lookup_variants(shopify, options, found.values(), holds_by_order)

    # Orders we hold and Shopify did not report as updated are read in full only
    # when their pre-order shipped (a shipping pre-order does not touch the order):
    # a store with hundreds of held orders pays for a variant lookup each scan, not
    # for hundreds of full orders. A hold released or an order changed in the admin
    # bumps updatedAt, so the first pass sees it.
    overrides = store.config.overrides()
    shipped = {
        order_id
        for order_id, rows in holds_by_order.items()
        if order_id not in found and any(detect.release_needed(r.variant_ids, variants, overrides) for r in rows)
    }
    if shipped:
        more = _fetch(shopify, shipped, forget)
        found.update(more)
        variants.update(lookup_variants(shopify, options, more.values(), {}, known=variants))
    report.exchanges_seen = sum(1 for o in found.values() if exchange_kind(o, options) is not None)
    return Candidates(sorted(found.values(), key=lambda o: (o.created_at, o.id)), variants)


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
) -> dict[str, VariantInfo]:
    """One batched lookup per scan: Loop's exchange items carry no selling plan."""
    wanted: set[str] = set()
    for order in orders:
        kind = exchange_kind(order, options)
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
    return shopify.variant_info(
        sorted(wanted),
        metafield_namespace=options.metafield_namespace,
        metafield_key=options.metafield_key,
    )

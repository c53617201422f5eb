"""Plain-object orders and in-process stand-ins for ShopifyClient and LoopClient (same methods)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from loopsync.models import (
    HOLD_HANDLE,
    CallStats,
    FulfillmentOrder,
    FulfillmentOrderLine,
    Hold,
    HoldResult,
    LineItem,
    LoopExchange,
    LoopNote,
    LoopReturn,
    Order,
    OrderSummary,
    PreorderPlan,
    UserError,
    VariantInfo,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PRE, STOCK = "gid://shopify/ProductVariant/1", "gid://shopify/ProductVariant/2"
PLAN = PreorderPlan("gid://shopify/SellingPlan/10", "Ships in spring", "EXACT_TIME", None)
ON_PREORDER = {PRE: VariantInfo(PRE, True, (PLAN,)), STOCK: VariantInfo(STOCK, True)}
SHIPPED = {PRE: VariantInfo(PRE, True), STOCK: VariantInfo(STOCK, True)}
OURS = Hold("gid://shopify/FulfillmentHold/1", HOLD_HANDLE, True)


def fo(n: int, *variants: str, holds: tuple[Hold, ...] = ()) -> FulfillmentOrder:
    lines = tuple(
        FulfillmentOrderLine(f"gid://shopify/FulfillmentOrderLineItem/{i}", f"gid://shopify/LineItem/{i}", v, None, 1)
        for i, v in enumerate(variants, start=n * 10)
    )
    return FulfillmentOrder(f"gid://shopify/FulfillmentOrder/{n}", "OPEN", lines, holds)


def order(*fos: FulfillmentOrder, n: int = 1, name: str | None = None, tags: tuple[str, ...] = ()) -> Order:
    items = tuple(LineItem(li.line_item_id, li.variant_id) for f in fos for li in f.lines)
    return Order(f"gid://shopify/Order/{n}", n, name or f"#EXC-100{n}-1", T0, tags, items, fos)


class FakeShopify:
    """One shop of orders; holds, releases and tags change them as Shopify would."""

    def __init__(self, *orders: Order, variants: dict[str, VariantInfo] | None = None) -> None:
        self.orders = {o.id: o for o in orders}
        self.variants = dict(variants or ON_PREORDER)
        self.stats = CallStats()
        self.writes: list[tuple] = []
        self.hold_answer: HoldResult | None = None  # a canned answer for the next hold

    def iter_order_summaries(self, query=None, *, updated_since=None, sort_key="UPDATED_AT", page_size=250):
        for o in self.orders.values():
            yield OrderSummary(o.id, o.name, o.tags, T0)

    def fetch_orders(self, ids):
        return {i: self.orders.get(i) for i in ids}

    def find_order(self, ref):
        return next((o for o in self.orders.values() if o.name.lstrip("#") == ref.lstrip("#")), None)

    def variant_info(self, ids, *, metafield_namespace, metafield_key):
        return {i: self.variants[i] for i in ids if i in self.variants}

    def _change_fo(self, fo_id, change) -> None:
        for o in self.orders.values():
            fos = tuple(change(f) if f.id == fo_id else f for f in o.fulfillment_orders)
            self.orders[o.id] = replace(o, fulfillment_orders=fos)

    def hold(self, fo_id, *, handle, reason_notes=None, line_items=None):
        self.writes.append(("hold", fo_id, tuple(line_items or ())))
        answer, self.hold_answer = self.hold_answer, None
        if answer is None or answer.duplicate:
            # A duplicate: this hold's first try landed, and only its answer was lost.
            self._change_fo(fo_id, lambda f: replace(f, holds=(OURS,)))
        return answer or HoldResult(OURS, fo_id, None)

    def release_hold(self, fo_id, hold_ids):
        self.writes.append(("release", fo_id))
        self._change_fo(fo_id, lambda f: replace(f, holds=()))
        return ()

    def add_tags(self, order_id, tags):
        self.writes.append(("tag", order_id, tuple(tags)))
        o = self.orders[order_id]
        self.orders[order_id] = replace(o, tags=o.tags + tuple(tags))
        return ()


class FakeLoop:
    def __init__(self, *returns: LoopReturn) -> None:
        self.returns = list(returns)
        self.notes_by_return: dict[int, list[LoopNote]] = {}
        self.stats = CallStats()
        self.posted: list[tuple[int, str]] = []

    def return_details(self, *, return_id=None, order_id=None, order_name=None):
        # Loop's details lookup by name is loose; the finder's own match decides.
        return next((r for r in self.returns if order_name in (r.order_name, None)), None)

    def iter_returns(self, *, since, until, filter="updated_at", page_size=100):  # noqa: A002 - Loop's name
        yield from self.returns

    def notes(self, return_id):
        return list(self.notes_by_return.get(return_id, ()))

    def create_note(self, return_id, content):
        self.posted.append((return_id, content))
        self.notes_by_return.setdefault(return_id, []).append(LoopNote(None, content))


def loop_return(return_id: int = 7, exchange_name: str = "#EXC-1001-1") -> LoopReturn:
    return LoopReturn(return_id, "open", "1001", None, (LoopExchange(1, exchange_name, PRE),))


def refused(code: str, message: str) -> tuple[UserError, ...]:
    return (UserError(message, code),)

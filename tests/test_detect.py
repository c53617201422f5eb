from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopsync import detect
from loopsync.models import (
    HOLD_HANDLE,
    FulfillmentOrder,
    FulfillmentOrderLine,
    Hold,
    LineItem,
    Order,
    PreorderPlan,
    VariantInfo,
)

# Pure code: the no-network guard proves these tests stay fast and offline.
pytestmark = pytest.mark.no_network

T0 = datetime(2026, 11, 1, tzinfo=UTC)
V1, V2, V3 = (f"gid://shopify/ProductVariant/{n}" for n in (1, 2, 3))
PLAN_A = PreorderPlan("gid://shopify/SellingPlan/10", "Ships in spring", "EXACT_TIME", None)
PLAN_B = PreorderPlan(
    "gid://shopify/SellingPlan/20", None, "EXACT_TIME", datetime(2027, 3, 5, 12, tzinfo=UTC)
)


def line(n: int, variant: str | None, plan: str | None = None) -> LineItem:
    return LineItem(f"gid://shopify/LineItem/{n}", variant, plan)


def fo_line(n: int, variant: str | None, remaining: int = 1) -> FulfillmentOrderLine:
    return FulfillmentOrderLine(
        f"gid://shopify/FulfillmentOrderLineItem/{n}",
        f"gid://shopify/LineItem/{n}",
        variant,
        None,
        remaining,
    )


def order(
    name: str = "#EXC-1001",
    tags: tuple[str, ...] = (),
    lines: tuple[LineItem, ...] = (),
    fos: tuple[FulfillmentOrder, ...] = (),
    exchange_ids: frozenset[str] = frozenset(),
) -> Order:
    return Order(
        id="gid://shopify/Order/1",
        legacy_id=1,
        name=name,
        created_at=T0,
        tags=tags,
        line_items=lines,
        fulfillment_orders=fos,
        exchange_line_item_ids=exchange_ids,
    )


OURS = Hold("gid://shopify/FulfillmentHold/1", HOLD_HANDLE, True)
THEIRS = Hold("gid://shopify/FulfillmentHold/2", "", False, "Loop")
OTHER_APP_LOOPSYNC_HANDLE = Hold("gid://shopify/FulfillmentHold/3", HOLD_HANDLE, False, "x")


@pytest.mark.parametrize(
    ("name", "tags", "kwargs", "expected"),
    [
        ("#EXC-1001", (), {}, "separate"),
        ("EXC-1001-1", (), {}, "separate"),
        ("#exc-1001", (), {}, "separate"),
        ("#1001", (), {}, None),
        ("#1001", ("Loop Exchange",), {}, "native"),
        ("#1001", ("loop exchange",), {}, "native"),
        ("#1001", ("  Loop   Exchange ",), {}, "native"),
        ("#1001", ("Loop Exchanges",), {}, None),
        ("#1001", ("LE:Exchange",), {}, None),
        ("#R-55", (), {"name_prefix": "R-"}, "separate"),
        ("#EXC-55", (), {"name_prefix": "R-"}, None),
        ("#1001", ("exchange-order",), {"exchange_tag": "Exchange-Order"}, "separate"),
        ("#1001", (), {"exchange_tag": "exchange-order"}, None),
        ("#EXC-1", ("Loop Exchange",), {}, "separate"),  # a separate order is all exchange items
        ("#1001", ("Loop Exchange",), {"native_tag": None}, None),
        ("#EXC-1", (), {"name_prefix": None}, None),
        ("#EXC-1", (), {"name_prefix": ""}, None),
    ],
)
def test_exchange_kind(name, tags, kwargs, expected):
    assert detect.exchange_kind(order(name, tags), **kwargs) == expected


def test_exchange_line_items_by_kind():
    lines = (line(1, V1), line(2, V2), line(3, V3))
    o = order(lines=lines, exchange_ids=frozenset({lines[1].id}))
    assert detect.exchange_line_items(o, "separate") == lines
    assert detect.exchange_line_items(o, "native") == (lines[1],)
    assert detect.exchange_line_items(o, None) == ()


def vinfo(vid: str, *plans: PreorderPlan, metafield: str | None = None, exists: bool = True) -> VariantInfo:
    return VariantInfo(vid, exists, preorder_plans=plans, shipping_window_metafield=metafield)


def test_preorder_lines_sources_and_windows():
    lines = (line(1, V1), line(2, V2, plan=PLAN_B.id), line(3, V3), line(4, None))
    o = order(lines=lines)
    variants = {V1: vinfo(V1, PLAN_A), V2: vinfo(V2, PLAN_A, PLAN_B), V3: vinfo(V3)}
    result = detect.preorder_lines(o, "separate", variants, {V3: "Late June"})
    assert [(p.line_item.id, p.source, p.window, p.plan_id) for p in result] == [
        (lines[0].id, "selling_plan_group", "Ships in spring", PLAN_A.id),
        (lines[1].id, "line_item_selling_plan", "5 March 2027", PLAN_B.id),
        (lines[2].id, "override", "Late June", None),
    ]


def test_stale_line_item_plan_does_not_keep_an_item_on_preorder():
    # The line was bought under PLAN_A, but the variant has left every PRE_ORDER group:
    # it is no longer on pre-order, otherwise its hold could never be released.
    o = order(lines=(line(1, V1, plan=PLAN_A.id),))
    assert detect.preorder_lines(o, "separate", {V1: vinfo(V1)}, {}) == []
    # A plan the variant is no longer in does not choose the window either.
    result = detect.preorder_lines(o, "separate", {V1: vinfo(V1, PLAN_B)}, {})
    assert [(p.source, p.plan_id) for p in result] == [("selling_plan_group", PLAN_B.id)]


def test_native_orders_only_count_exchange_items():
    lines = (line(1, V1), line(2, V2))
    o = order("#1001", ("Loop Exchange",), lines, exchange_ids=frozenset({lines[1].id}))
    variants = {V1: vinfo(V1, PLAN_A), V2: vinfo(V2, PLAN_A)}
    assert [p.line_item.id for p in detect.preorder_lines(o, "native", variants, {})] == [lines[1].id]
    assert detect.preorder_lines(o, None, variants, {}) == []


def test_deleted_variant_is_not_preorder_and_missing_lookup_is_an_error():
    o = order(lines=(line(1, V1),))
    assert detect.preorder_lines(o, "separate", {V1: vinfo(V1, PLAN_A, exists=False)}, {}) == []
    with pytest.raises(detect.MissingVariantInfo):
        detect.preorder_lines(o, "separate", {}, {})
    # An override needs no lookup.
    assert len(detect.preorder_lines(o, "separate", {}, {V1: "Soon"})) == 1


@pytest.mark.parametrize(
    ("info", "override", "preferred", "expected"),
    [
        (vinfo(V1, PLAN_A, metafield="Week 12"), "Late June", None, "Late June"),
        (vinfo(V1, PLAN_A, metafield="  Week\n12 "), None, None, "Week 12"),
        (vinfo(V1, PLAN_A, metafield="   "), None, None, "Ships in spring"),
        (vinfo(V1, PLAN_A, PLAN_B), None, PLAN_B.id, "5 March 2027"),
        (vinfo(V1, PLAN_A, PLAN_B), None, None, "Ships in spring"),
        (vinfo(V1, PLAN_B, PLAN_A), None, "gid://shopify/SellingPlan/999", "5 March 2027"),
        (vinfo(V1, PreorderPlan("p", None, "UNKNOWN", None)), None, None, "to be confirmed"),
        (vinfo(V1, PreorderPlan("p", " ", "UNKNOWN", None)), None, None, "to be confirmed"),
        (vinfo(V1), None, None, "to be confirmed"),
        (None, None, None, "to be confirmed"),
        (None, "  ", None, "to be confirmed"),
        (
            vinfo(V1, PreorderPlan("p", "d", "EXACT_TIME", datetime(2027, 12, 31, tzinfo=UTC))),
            None,
            None,
            "31 December 2027",
        ),
    ],
)
def test_shipping_window(info, override, preferred, expected):
    assert detect.shipping_window(info, override, preferred) == expected


FO_ID = "gid://shopify/FulfillmentOrder/1"


def fo(status: str, lines, holds=(), actions=frozenset()) -> FulfillmentOrder:
    return FulfillmentOrder(FO_ID, status, tuple(lines), tuple(holds), frozenset(actions))


PRE = {"gid://shopify/LineItem/1", "gid://shopify/LineItem/2"}


@pytest.mark.parametrize(
    ("the_fo", "action", "line_items", "reason_part"),
    [
        (fo("OPEN", [fo_line(1, V1)]), "hold_whole", (), "every item"),
        (fo("OPEN", [fo_line(1, V1), fo_line(2, V2)]), "hold_whole", (), "every item"),
        # Only the unshipped lines count: an already-shipped in-stock line does not force a split.
        (fo("OPEN", [fo_line(1, V1), fo_line(3, V3, remaining=0)]), "hold_whole", (), "every item"),
        (
            fo("OPEN", [fo_line(1, V1, remaining=2), fo_line(3, V3)]),
            "hold_lines",
            (("gid://shopify/FulfillmentOrderLineItem/1", 2),),
            "only the pre-order",
        ),
        (fo("ON_HOLD", [fo_line(1, V1), fo_line(3, V3)], [THEIRS]), "hold_whole", (), "cannot be split"),
        (fo("ON_HOLD", [fo_line(1, V1)], [THEIRS]), "hold_whole", (), "every item"),
        (fo("ON_HOLD", [fo_line(1, V1), fo_line(3, V3)], [OURS]), "none", (), "already held by loopsync"),
        (fo("ON_HOLD", [fo_line(1, V1)], [OURS, THEIRS]), "none", (), "already held"),
        # Someone else's hold with our handle is not ours.
        (
            fo("ON_HOLD", [fo_line(1, V1), fo_line(3, V3)], [OTHER_APP_LOOPSYNC_HANDLE]),
            "hold_whole",
            (),
            "split",
        ),
        (fo("SCHEDULED", [fo_line(1, V1)]), "hold_whole", (), "every item"),
        (fo("IN_PROGRESS", [fo_line(1, V1)]), "hold_whole", (), "every item"),
        (fo("CLOSED", [fo_line(1, V1)]), "skip", (), "CLOSED"),
        (fo("CANCELLED", [fo_line(1, V1)]), "skip", (), "CANCELLED"),
        (fo("INCOMPLETE", [fo_line(1, V1)]), "skip", (), "INCOMPLETE"),
        (
            fo("OPEN", [fo_line(1, V1)], actions={"CREATE_FULFILLMENT", "HOLD"}),
            "hold_whole",
            (),
            "every item",
        ),
        (fo("IN_PROGRESS", [fo_line(1, V1)], actions={"CANCEL_FULFILLMENT_ORDER"}), "skip", (), "HOLD"),
    ],
)
def test_hold_plan(the_fo, action, line_items, reason_part):
    [decision] = detect.hold_plan(order(fos=(the_fo,)), PRE)
    assert decision.fulfillment_order_id == FO_ID
    assert decision.action == action
    assert decision.line_items == line_items
    assert reason_part in decision.reason
    assert set(decision.preorder_line_item_ids) <= PRE
    assert set(decision.variant_ids) <= {V1, V2}


def test_hold_plan_ignores_fulfillment_orders_without_preorder_items_left():
    fos = (
        fo("OPEN", [fo_line(3, V3)]),
        FulfillmentOrder("gid://shopify/FulfillmentOrder/2", "OPEN", (fo_line(1, V1, remaining=0),)),
        FulfillmentOrder("gid://shopify/FulfillmentOrder/3", "OPEN", (fo_line(2, V2),)),
    )
    decisions = detect.hold_plan(order(fos=fos), PRE)
    assert [(d.fulfillment_order_id, d.action, d.variant_ids) for d in decisions] == [
        ("gid://shopify/FulfillmentOrder/3", "hold_whole", (V2,))
    ]
    assert detect.hold_plan(order(fos=fos), set()) == []


def test_note_text_exact():
    assert (
        detect.note_text("loopsync", "15 March 2027")
        == "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."
    )


@pytest.mark.parametrize("length", [0, 1, 100, 180, 190, 200, 254, 255, 256, 1000])
def test_note_text_fits_loops_limit(length):
    window = "w" * length
    text = detect.note_text("PreProduct", window)
    assert len(text) <= 255
    assert text.startswith("[PreProduct] This exchange item is on pre-order, estimated shipping: ")
    assert text.endswith(".")
    full = f"[PreProduct] This exchange item is on pre-order, estimated shipping: {window}."
    if len(full) <= 255 and length:
        assert text == full
    elif length:
        assert text.endswith("….") and len(text) == 255


def test_note_text_rejects_a_label_that_leaves_no_room():
    with pytest.raises(ValueError):
        detect.note_text("x" * 250, "soon")


@pytest.mark.parametrize(
    ("variant_ids", "variants", "overrides", "expected"),
    [
        ([V1], {V1: vinfo(V1)}, {}, True),
        ([V1], {V1: vinfo(V1, PLAN_A)}, {}, False),
        ([V1, V2], {V1: vinfo(V1), V2: vinfo(V2, PLAN_A)}, {}, False),
        ([V1, V2], {V1: vinfo(V1), V2: vinfo(V2)}, {}, True),
        ([V1], {V1: vinfo(V1)}, {V1: "later"}, False),
        ([V1], {}, {}, False),  # not looked up: keep the hold
        ([V1], {V1: vinfo(V1, exists=False)}, {}, False),  # deleted: leave to a manual release
        ([], {}, {}, False),
    ],
)
def test_release_needed(variant_ids, variants, overrides, expected):
    assert detect.release_needed(variant_ids, variants, overrides) is expected


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        (["15 March 2027"], "15 March 2027"),
        (["15 March 2027", "15 March 2027"], "15 March 2027"),
        (["Late June", " 15 March 2027 ", "Late June"], "Late June; 15 March 2027"),
        ([], "to be confirmed"),
        (["  "], "to be confirmed"),
    ],
)
def test_combined_window(windows, expected):
    assert detect.combined_window(windows) == expected


def test_hold_decision_carries_its_fulfillment_order():
    the_fo = fo("OPEN", [fo_line(1, V1)])
    [decision] = detect.hold_plan(order(fos=(the_fo,)), PRE)
    assert decision.fulfillment_order is the_fo


# --- why: which rule, which window source (what `explain` shows) ----------------------------


@pytest.mark.parametrize(
    ("name", "tags", "expected"),
    [
        ("#EXC-1001", ("Loop Exchange", "exchange"), ("separate", "name_prefix")),
        ("#1001", ("loop  EXCHANGE", "Exchange"), ("separate", "exchange_tag")),
        ("#1001", ("loop  EXCHANGE",), ("native", "native_tag")),
        ("#1001", ("wholesale",), (None, None)),
    ],
)
def test_exchange_rule_names_the_first_rule_that_matches(name, tags, expected):
    found = detect.exchange_rule(order(name, tags), name_prefix="EXC-", exchange_tag="exchange",
                                 native_tag="Loop Exchange")
    assert found == expected
    assert detect.exchange_kind(order(name, tags), name_prefix="EXC-", exchange_tag="exchange",
                                native_tag="Loop Exchange") == expected[0]


@pytest.mark.parametrize(
    ("info", "override", "expected"),
    [
        (VariantInfo(V1, True, (PLAN_B,), "Late March"), "Spring 2027", ("Spring 2027", "override")),
        (VariantInfo(V1, True, (PLAN_B,), "Late March"), None, ("Late March", "metafield")),
        (VariantInfo(V1, True, (PLAN_B,)), None, ("5 March 2027", "selling_plan_date")),
        (VariantInfo(V1, True, (PLAN_A,)), None, ("Ships in spring", "selling_plan_description")),
        (VariantInfo(V1, True, ()), None, ("to be confirmed", "to_be_confirmed")),
        (None, None, ("to be confirmed", "to_be_confirmed")),
    ],
)
def test_window_and_source_says_where_the_window_came_from(info, override, expected):
    assert detect.window_and_source(info, override, None) == expected
    assert detect.shipping_window(info, override, None) == expected[0]


def test_a_preorder_line_carries_its_window_source():
    [found] = detect.preorder_lines(
        order(lines=(line(1, V1),)), "separate", {V1: VariantInfo(V1, True, (PLAN_B,))}, {}
    )
    assert (found.source, found.window, found.window_source) == ("selling_plan_group", "5 March 2027",
                                                                  "selling_plan_date")

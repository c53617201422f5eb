"""The hold guard's decisions (loopsync.guard): pure functions, no sockets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from loopsync import guard
from loopsync.models import FulfillmentOrder, FulfillmentOrderLine, Order

GONE = guard.GoneHold(
    fulfillment_order_status="OPEN",
    still_on_preorder=True,
    released_by_support=False,
    mode="rehold",
    losses_in_window=1,
    limit=3,
)


def test_a_hold_released_outside_loopsync_is_put_back():
    assert guard.when_gone(GONE) == "rehold"


@pytest.mark.parametrize(
    "change",
    [{"mode": "respect"}, {"released_by_support": True}, {"still_on_preorder": False}],
    ids=["respect-setting", "support-released", "no-longer-on-pre-order"],
)
def test_an_outside_release_is_respected_when_the_setting_support_or_the_item_says_so(change):
    assert guard.when_gone(replace(GONE, **change)) == "respect"


@pytest.mark.parametrize("status", ["CLOSED", "CANCELLED", None])
def test_a_hold_that_went_with_its_closed_fulfillment_order_is_not_an_outside_release(status):
    assert guard.when_gone(replace(GONE, fulfillment_order_status=status, mode="respect")) == "closed"


def test_the_fight_is_given_up_only_past_the_limit():
    assert guard.when_gone(replace(GONE, losses_in_window=3)) == "rehold"
    assert guard.when_gone(replace(GONE, losses_in_window=4)) == "give_up"
    assert guard.when_gone(replace(GONE, losses_in_window=2, limit=1)) == "give_up"


def test_the_window_counts_back_from_now():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert guard.window_start(now, timedelta(hours=24)) == datetime(2026, 11, 30, 12, tzinfo=UTC)


def _order(*fos: FulfillmentOrder) -> Order:
    return Order(
        id="gid://shopify/Order/1", legacy_id=1, name="EXC-1-1", created_at=datetime(2026, 1, 1, tzinfo=UTC),
        tags=(), line_items=(), fulfillment_orders=fos,
    )


def _fo(fo_id: str, status: str, *lines: tuple[str, int]) -> FulfillmentOrder:
    return FulfillmentOrder(
        id=fo_id, status=status,
        lines=tuple(FulfillmentOrderLine(id=f"{fo_id}/{li}", line_item_id=li, variant_id=None, sku=None,
                                         remaining_quantity=q)
                    for li, q in lines),
    )


@pytest.mark.parametrize(
    ("fos", "nothing"),
    [
        ((_fo("a", "OPEN", ("pre", 1)),), False),
        ((_fo("a", "CLOSED", ("pre", 0)),), True),
        ((_fo("a", "OPEN", ("pre", 0), ("other", 1)),), True),  # removed by an order edit
        ((_fo("a", "CANCELLED", ("pre", 1)),), True),
        ((_fo("a", "CLOSED", ("pre", 0)), _fo("b", "OPEN", ("pre", 1))), False),
    ],
    ids=["open", "shipped", "edited-out", "cancelled", "partly-shipped"],
)
def test_nothing_left_to_ship(fos, nothing):
    assert guard.nothing_left_to_ship(_order(*fos), {"pre"}) is nothing


def test_no_pre_order_items_is_not_nothing_left_to_ship():
    assert guard.nothing_left_to_ship(_order(_fo("a", "CLOSED")), set()) is False


def test_an_order_without_fulfillment_orders_read_is_not_taken_as_shipped():
    assert guard.nothing_left_to_ship(_order(), {"pre"}) is False


def test_the_hold_notes_tell_support_how_to_release_and_stay_short():
    notes = guard.hold_reason_notes("15 March 2027", "loopsync-release")
    assert notes == (
        "Pre-order exchange, ships 15 March 2027. Held by loopsync: add the tag loopsync-release to ship it now."
    )
    long = guard.hold_reason_notes("w" * 300, "t" * 60)
    assert len(long) <= guard.HOLD_NOTES_MAX_LENGTH
    assert long.endswith("…. Held by loopsync: add the tag " + "t" * 60 + " to ship it now.")
    # A tag too long to repeat is left out rather than cut (a cut tag would be the wrong tag).
    longest = guard.hold_reason_notes("w" * 300, "t" * 255)
    assert len(longest) <= guard.HOLD_NOTES_MAX_LENGTH and "t" * 10 not in longest

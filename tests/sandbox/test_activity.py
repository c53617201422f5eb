"""What other actors do to a store (Flow, staff, the warehouse, an order edit), as the sandbox plays it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from loopsync.sandbox import activity
from loopsync.sandbox.builders import add_hold
from loopsync.sandbox.scenarios import ScenarioError, load_data, load_scenario
from loopsync.sandbox.server import Sandbox
from loopsync.sandbox.world import World


@pytest.fixture
def demo() -> World:
    return load_scenario(World(), "demo")


def fos(world: World, name: str):
    order = world.order_by_name(name)
    return [world.fulfillment_orders[i] for i in order.fulfillment_order_ids]


def fo_with(world: World, name: str, sku: str):
    order = world.order_by_name(name)
    line_ids = {li.id for li in order.line_items if li.sku == sku}
    return next(fo for fo in fos(world, name) if any(fl.line_item_id in line_ids for fl in fo.line_items))


def test_flow_releases_every_hold_whoever_placed_it_and_bumps_the_order(demo):
    order = demo.order_by_name("EXC-1092-1")
    fo = fo_with(demo, "EXC-1092-1", "JKT-L-PRE")
    add_hold(demo, fo.id, None, reason="AWAITING_RETURN_ITEMS")  # Shopify's own, as in native mode
    assert len(fo.holds) == 2  # Upsell Guard's and Shopify's
    demo.advance(timedelta(minutes=1))

    released = activity.release_every_hold(demo, "EXC-1092-1")

    assert len(released) == 2 and fo.holds == [] and fo.status == "OPEN"
    assert order.updated_at == demo.now()
    assert any(a.title == "Shopify Flow" for a in demo.apps.values())
    assert activity.release_every_hold(demo, "EXC-1092-1") == []  # nothing left: nothing changes


def test_staff_tags_compare_without_case_and_only_a_change_bumps_the_order(demo):
    order = demo.order_by_name("EXC-1086-1")
    demo.advance(timedelta(minutes=1))
    assert activity.staff_add_tags(demo, "EXC-1086-1", ["loopsync-release"]) is True
    assert order.updated_at == demo.now()
    before = order.updated_at
    demo.advance(timedelta(minutes=1))
    assert activity.staff_add_tags(demo, "EXC-1086-1", ["LOOPSYNC-RELEASE"]) is False
    assert order.updated_at == before
    assert activity.staff_remove_tags(demo, "EXC-1086-1", ["Loopsync-Release"]) is True
    assert "loopsync-release" not in [t.lower() for t in order.tags]


def test_shipping_closes_an_open_fulfillment_order_and_refuses_a_held_one(demo):
    held = fo_with(demo, "EXC-1092-1", "JKT-L-PRE")
    with pytest.raises(activity.ActivityError, match="on hold"):
        activity.ship(demo, held.id)
    assert held.status == "ON_HOLD"

    fo = fo_with(demo, "EXC-1086-1", "JKT-L-PRE")
    shipped = activity.ship(demo, fo.id)
    assert shipped.status == "CLOSED" and all(fl.remaining_quantity == 0 for fl in fo.line_items)
    with pytest.raises(activity.ActivityError, match="already closed"):
        activity.ship(demo, fo.id)


def test_an_order_edit_that_removes_the_only_line_closes_its_fulfillment_order_with_its_holds(demo):
    fo = fo_with(demo, "EXC-1092-1", "JKT-L-PRE")
    activity.remove_line(demo, "EXC-1092-1", "JKT-L-PRE")
    line = next(li for li in demo.order_by_name("EXC-1092-1").line_items if li.sku == "JKT-L-PRE")
    assert line.quantity == 0 and fo.status == "CLOSED" and fo.holds == []
    with pytest.raises(activity.ActivityError, match="no line with SKU"):
        activity.remove_line(demo, "EXC-1092-1", "JKT-L-PRE")


def test_removing_one_of_two_lines_leaves_the_fulfillment_order_open_for_the_other(demo):
    fo = fo_with(demo, "EXC-1091-1", "BOOT-10-PRE")
    assert len(fo.line_items) == 2  # the boots and the tee ship together
    activity.remove_line(demo, "EXC-1091-1", "BOOT-10-PRE")
    assert fo.status == "OPEN"
    assert [fl.remaining_quantity > 0 for fl in fo.line_items] == [False, True]


def test_cancelling_cancels_every_open_fulfillment_order(demo):
    activity.cancel(demo, "EXC-1092-1")
    order = demo.order_by_name("EXC-1092-1")
    assert order.cancelled_at == demo.now() and order.closed
    assert {fo.status for fo in fos(demo, "EXC-1092-1")} <= {"CANCELLED", "CLOSED"}
    assert all(fo.holds == [] for fo in fos(demo, "EXC-1092-1"))


def test_a_scenario_lists_what_happened_after_setup_in_order(demo):
    world = load_scenario(World(), "demo")
    load_data(world, {"activity": [
        {"do": "add_tags", "order": "EXC-1086-1", "tags": ["loopsync-release"]},
        {"do": "release_every_hold", "order": "EXC-1092-1"},
        {"do": "ship", "order": "EXC-1092-1", "sku": "JKT-L-PRE"},
    ]})
    assert "loopsync-release" in world.order_by_name("EXC-1086-1").tags
    assert fo_with(world, "EXC-1092-1", "JKT-L-PRE").status == "CLOSED"


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ({"do": "fly"}, "needs 'do'"),
        ({"do": "ship"}, "needs 'order'"),
        ({"do": "cancel", "order": "EXC-9"}, "no order named 'EXC-9'"),
    ],
)
def test_a_bad_activity_in_a_scenario_names_its_place(action, fragment):
    with pytest.raises(ScenarioError, match=r"activity\[0\]") as caught:
        load_data(World(), {"activity": [action]})
    assert fragment in str(caught.value)


def test_the_activity_route_over_http():
    with Sandbox(scenario="demo") as sb:
        url = f"{sb.url}/_sandbox/activity"
        ok = requests.post(url, json={"do": "release_every_hold", "order": "EXC-1092-1"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["done"] == "release_every_hold"
        assert fo_with(sb.world, "EXC-1092-1", "JKT-L-PRE").holds == []
        refused = requests.post(url, json={"do": "ship", "order": "EXC-404"}, timeout=10)
        assert refused.status_code == 422 and "EXC-404" in refused.json()["error"]

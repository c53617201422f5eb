"""When loopsync lifts its own holds: only on positive evidence that the pre-order shipped."""

from __future__ import annotations

from loopsync.sandbox.world import World


def _our_handles(world: World, order_name: str) -> list[str]:
    order = world.order_by_name(order_name)
    return [
        h.handle
        for fo_id in order.fulfillment_order_ids
        for h in world.fulfillment_orders[fo_id].holds
        if h.handle == "loopsync-preorder"
    ]


def _variant(world: World, sku: str) -> str:
    return next(v for v, variant in world.variants.items() if variant.sku == sku)


def test_a_deleted_preorder_variant_keeps_the_hold(connected, cli, sandbox):
    world = sandbox.world
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == ["loopsync-preorder"]
    jacket = _variant(world, "JKT-L-PRE")
    with world.lock:  # the merchant deletes the variant: no evidence it shipped
        product = world.products[world.variants[jacket].product_id]
        product.variant_ids.remove(jacket)
        del world.variants[jacket]
    result = cli(["scan", "--db", str(connected), "--json"])
    assert result.code == 0, result.output
    assert _our_handles(world, "EXC-1086-1") == ["loopsync-preorder"]


def test_an_override_keeps_a_shipped_variant_held_until_it_is_removed(connected, cli, sandbox):
    world = sandbox.world
    assert cli(["scan", "--db", str(connected)]).code == 0
    jacket = _variant(world, "JKT-L-PRE")
    assert cli(["preorders", "add", jacket, "--window", "April 2027", "--db", str(connected)]).code == 0
    world.take_off_preorder(jacket)
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == ["loopsync-preorder"]
    assert cli(["preorders", "remove", jacket, "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == []

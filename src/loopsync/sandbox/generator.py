"""Large synthetic stores for benchmarks and scale tests.

``generate_store(world, orders=10_000)`` adds its own small catalogue (SKUs starting
``GEN-``, half the sizes on pre-order), ``orders`` orders in total over the last 30
days, and Loop exchanges on a share of them, in both of Loop's modes, each with its
Loop return. The same arguments and seed always give the same store (ids depend on
what the world already holds, names and contents do not).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loopsync.sandbox import builders
from loopsync.sandbox.scenarios.exchanges import DEFAULT_PREFIX, add_loop_return, loop_exchange
from loopsync.sandbox.world import Order, World

_PRODUCTS = ("Trail Parka", "Canvas Tote", "Merino Beanie", "Rain Shell", "Wool Socks", "Field Boots")
_SIZES = ("S", "M", "L", "XL")
_STATES = ("open", "open", "open", "open", "closed", "review")


@dataclass
class GeneratedStore:
    """What was generated, for assertions and benchmark reports."""

    orders: list[str] = field(default_factory=list)  # order names, in creation order
    separate_exchanges: list[str] = field(default_factory=list)  # EXC- order names
    native_exchanges: list[str] = field(default_factory=list)  # original order names that got exchange items
    preorder_exchanges: list[str] = field(default_factory=list)  # exchanges (either mode) into a pre-order variant
    loop_return_ids: list[int] = field(default_factory=list)
    preorder_variant_ids: list[str] = field(default_factory=list)
    instock_variant_ids: list[str] = field(default_factory=list)


def _catalogue(world: World) -> tuple[list[str], list[str]]:
    """Products with in-stock and pre-order variants; returns (in_stock_ids, preorder_ids)."""
    in_stock: list[str] = []
    preorder: list[str] = []
    for p, title in enumerate(_PRODUCTS):
        variants = [
            {"title": size if i % 2 == 0 else f"{size} / Pre-order",
             "sku": f"GEN-{p:02d}-{size}{'-PRE' if i % 2 else ''}", "price": f"{40 + 15 * p}.00"}
            for i, size in enumerate(_SIZES)
        ]
        product = builders.add_product(world, title, variants)
        pre = [v for i, v in enumerate(product.variant_ids) if i % 2]
        in_stock.extend(v for i, v in enumerate(product.variant_ids) if i % 2 == 0)
        preorder.extend(pre)
        trigger = "EXACT_TIME" if p % 2 == 0 else "UNKNOWN"
        exact = world.now() + timedelta(days=60 + 10 * p) if trigger == "EXACT_TIME" else None
        builders.add_selling_plan_group(
            world, f"{title} pre-order",
            [{"name": f"{title} pre-order", "fulfillment_trigger": trigger, "fulfillment_exact_time": exact}],
            variant_ids=pre, merchant_code=f"gen-preorder-{p}",
        )
    return in_stock, preorder


def _first_free_number(world: World) -> int:
    numbers = [int(o.name[1:]) for o in world.orders.values() if o.name[:1] == "#" and o.name[1:].isdigit()]
    return max([*numbers, 19_999]) + 1


def generate_store(
    world: World,
    orders: int = 1000,
    exchange_share: float = 0.1,
    preorder_share: float = 0.5,
    seed: int = 0,
) -> GeneratedStore:
    """Add ``orders`` orders; ``exchange_share`` of them carry a Loop exchange, ``preorder_share`` of
    those into a pre-order variant. Exchanges alternate between separate EXC- orders (which count
    toward ``orders``) and native exchanges on the original."""
    if orders < 0 or not 0 <= exchange_share <= 1 or not 0 <= preorder_share <= 1:
        raise ValueError("orders must be >= 0 and the shares between 0 and 1")
    rng = random.Random(seed)
    out = GeneratedStore()
    with world.lock:
        in_stock, preorder = _catalogue(world)
        out.instock_variant_ids, out.preorder_variant_ids = in_stock, preorder
        now = world.now()
        n_exchanges = round(orders * exchange_share)
        n_separate = (n_exchanges + 1) // 2  # each separate exchange is an order of its own
        n_plain = orders - n_separate
        if n_exchanges > n_plain:
            raise ValueError("exchange_share too high: every exchange needs an original order")
        first = _first_free_number(world)

        originals = _plain_orders(world, rng, out, in_stock, now, count=n_plain, first_number=first)
        for k, original in enumerate(rng.sample(originals, n_exchanges)):
            into_preorder = rng.random() < preorder_share
            variant = rng.choice(preorder if into_preorder else in_stock)
            # Even picks get a separate EXC- order, odd ones a native exchange, so both modes are at scale.
            _exchange(world, rng, out, original, variant, now, separate=k % 2 == 0,
                      into_preorder=into_preorder)
    return out


def _plain_orders(world: World, rng: random.Random, out: GeneratedStore, in_stock: list[str], now: datetime, *,
                  count: int, first_number: int) -> list[Order]:
    """``count`` ordinary orders of in-stock items in the 30 days before ``now``, numbered from ``first_number``."""
    originals: list[Order] = []
    for i in range(count):
        lines = [{"variant_id": rng.choice(in_stock), "quantity": rng.randint(1, 3)}
                 for _ in range(rng.randint(1, 3))]
        created = now - timedelta(seconds=rng.randint(3 * 86_400, 30 * 86_400))
        # Older orders are mostly shipped already.
        status = "CLOSED" if rng.random() < 0.7 else "OPEN"
        order = builders.add_order(world, f"#{first_number + i}", lines, created_at=created,
                                   fulfillment_orders=[{"status": status, "lines": list(range(len(lines)))}])
        originals.append(order)
        out.orders.append(order.name)
    return originals


def _exchange(world: World, rng: random.Random, out: GeneratedStore, original: Order, variant: str,
              now: datetime, *, separate: bool, into_preorder: bool) -> None:
    """One Loop exchange of ``original`` into ``variant`` in the two days before ``now``, with its Loop return."""
    created = now - timedelta(seconds=rng.randint(60, 2 * 86_400))
    number = original.name[1:]
    if separate:
        exchange = builders.add_order(
            world, f"{DEFAULT_PREFIX}{number}-1", [{"variant_id": variant}], tags=[number],
            created_at=created, source_name="loop-exchange", app_name="Loop Returns & Exchanges",
        )
        link, name = exchange, exchange.name
        out.separate_exchanges.append(name)
        out.orders.append(name)
        if "LE:Exchange" not in original.tags:
            original.tags.append("LE:Exchange")
            world.changed()
    else:
        ret = builders.add_native_exchange(world, original.id, variant)
        ret.created_at = created
        world.fulfillment_orders[original.fulfillment_order_ids[-1]].created_at = created
        original.updated_at = created
        original.tags.append("Loop Exchange")
        world.changed()
        link, name = original, original.name
        out.native_exchanges.append(name)
    if into_preorder:
        out.preorder_exchanges.append(name)
    loop_return = add_loop_return(
        world, original, [loop_exchange(world, variant, link)],
        state=rng.choice(_STATES), customer=f"buyer{number}@example.com",
        created_at=created - timedelta(minutes=30),
    )
    out.loop_return_ids.append(loop_return.id)

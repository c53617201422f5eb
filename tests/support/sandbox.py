"""Reaching a running sandbox: the environment `connect` needs, and what its world saw."""

from __future__ import annotations

from loopsync.sandbox.server import Sandbox


def sandbox_env(sb: Sandbox, **extra: str) -> dict[str, str]:
    """The environment `loopsync connect` needs to reach this sandbox with its demo credentials."""
    creds = sb.credentials
    env = {
        "LOOPSYNC_SHOP": creds["shop_domain"],
        "LOOPSYNC_SHOPIFY_API_URL": sb.url,
        "LOOPSYNC_LOOP_API_URL": sb.url,
        "LOOPSYNC_SHOPIFY_TOKEN": creds["shopify_token"],
        "LOOPSYNC_LOOP_API_KEY": creds["loop_api_key"],
        "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
    }
    env.update(extra)
    return env


class WorldProbe:
    """Reads a running sandbox's world the way the end-to-end tests assert on it."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.world = sb.world

    def mark(self) -> int:
        with self.world.lock:
            return len(self.world.log)

    def entries(self, since: int = 0):
        with self.world.lock:
            return list(self.world.log[since:])

    def mutations(self, since: int = 0) -> list[str]:
        return [m for e in self.entries(since) for m in e.mutations]

    def loop_posts(self, since: int = 0) -> list[str]:
        return [e.path for e in self.entries(since) if e.api == "loop" and e.method != "GET"]

    def loop_requests(self, since: int = 0) -> list[str]:
        return [e.path for e in self.entries(since) if e.api == "loop"]

    def order(self, name: str):
        order = self.world.order_by_name(name)
        assert order is not None, f"no order {name} in the sandbox"
        return order

    def fulfillment_orders(self, name: str):
        order = self.order(name)
        return [self.world.fulfillment_orders[i] for i in order.fulfillment_order_ids]

    def holds(self, name: str):
        return [h for fo in self.fulfillment_orders(name) for h in fo.holds]

    def our_holds(self, name: str):
        return [h for h in self.holds(name) if h.handle.startswith("loopsync")]

    def variant(self, sku: str) -> str:
        return next(v.id for v in self.world.variants.values() if v.sku == sku)

    def sku_of_line(self, line_item_id: str) -> str | None:
        for order in self.world.orders.values():
            for li in order.line_items:
                if li.id == line_item_id:
                    return li.sku
        return None

    def loop_return_for(self, original: str):
        return next(r for r in self.world.loop_returns.values() if r.order_name == original)

    def notes(self, original: str) -> list[str]:
        return [n.content for n in self.loop_return_for(original).notes]

    def issued_tokens(self) -> list[str]:
        with self.world.lock:
            return [t.token for t in self.world.tokens.values() if t.expires_at is not None]

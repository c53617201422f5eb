"""`loopsync demo`: the whole story against the embedded sandbox, over real HTTP.

Starts the sandbox with the demo store, connects a throwaway state file to it,
scans (holds, tags, notes), shows what Loop's support team now sees, ships one
pre-order, scans again (the hold is released), and scans a third time to show
that a scan with nothing new changes nothing. Then webhook mode: `loopsync serve`
starts as a child process, its subscriptions are installed in the sandbox, Loop
creates one more pre-order exchange, and the sandbox's delivery gets it held with no
scan; the demo prints how long after its creation, and stops serve as systemd would.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from loopsync import render, service
from loopsync.loop import LoopClient
from loopsync.sandbox import activity
from loopsync.sandbox.server import Sandbox
from loopsync.shopify import ShopifyClient


def _step(text: str) -> None:
    render.out().print(f"\n[bold cyan]{escape(text)}[/bold cyan]")


def _notes_table(store, loop: LoopClient) -> Table:
    """What Loop's support team sees: the notes on each return, read back from Loop's API."""
    table = Table(title="Notes on the Loop returns (read back from Loop)")
    table.add_column("Loop return", no_wrap=True)
    table.add_column("Exchange", no_wrap=True)
    table.add_column("Note")
    for order in store.orders.held_orders():
        if order.return_id is None:
            continue
        for note in loop.notes(order.return_id):
            table.add_row(str(order.return_id), escape(order.name), escape(note.content))
    return table


def _shopify_table(shopify: ShopifyClient, order_ids: list[str], title: str) -> Table:
    """What the warehouse sees: every exchange's fulfillment orders and holds, read back from Shopify."""
    table = Table(title=title)
    table.add_column("Exchange", no_wrap=True)
    table.add_column("Fulfillment order", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Holds")
    for order in sorted(filter(None, shopify.fetch_orders(order_ids).values()), key=lambda o: o.name):
        name = escape(order.name)
        for fo in order.fulfillment_orders:
            holds = ", ".join(
                "loopsync" if h.is_loopsync else (h.app_name or "merchant") for h in fo.holds
            )
            items = ", ".join(line.sku or "?" for line in fo.lines)
            table.add_row(name, f"{render.short_gid(fo.id)} ({escape(items)})", fo.status, escape(holds or "-"))
            name = ""
    return table


def _ship_dated_preorder(world) -> str:
    """The demo's dated pre-order (the jacket) ships: the store takes it off pre-order."""
    with world.lock:
        for variant_id in sorted(world.variants):
            plans = world.preorder_plans_for_variant(variant_id)
            if any(p.fulfillment_trigger == "EXACT_TIME" for p in plans):
                world.take_off_preorder(variant_id)
                variant = world.variants[variant_id]
                return f"{world.products[variant.product_id].title} — {variant.title} ({variant_id})"
    raise RuntimeError("the demo scenario has no dated pre-order variant")


def our_hold(world, order_id: str):
    """loopsync's hold on the sandbox order, read from the world (the demo's and the latency benchmark's clock)."""
    with world.lock:
        for fo_id in world.orders[order_id].fulfillment_order_ids:
            for hold in world.fulfillment_orders[fo_id].holds:
                if hold.handle.startswith("loopsync"):
                    return hold
    return None


def _webhook_ending(store, sandbox: Sandbox, db: Path) -> str:
    """serve receives the sandbox's deliveries; one new boots pre-order exchange is held with no scan."""
    from datetime import datetime

    from loopsync.serve.child import ServeChild

    with ServeChild(db, "--scan-every", "0") as served:
        # Its catch-up scan finds nothing left (the third scan just ran): what follows is the webhook's doing.
        served.wait_for(r"catch-up scan (ok|pending)")
        installed = service.webhooks_install(store, served.url)
        render.out().print(
            f"loopsync serve is listening at {served.url}; subscribed {len(installed.created)} topics in the sandbox."
        )
        # The jacket shipped in step 3; the boots are still on pre-order.
        created = activity.create_exchange(sandbox.world, {"sku": "BOOT-10-PRE"})
        deadline = time.monotonic() + 10
        hold = our_hold(sandbox.world, created["order"]["id"])
        while hold is None and time.monotonic() < deadline:
            time.sleep(0.01)
            hold = our_hold(sandbox.world, created["order"]["id"])
        name = created["order"]["name"]
        if hold is None or hold.placed_at is None:
            return f"Webhook: {name} was not held within 10 s of its creation."
        # Both by the sandbox world's clock: when Loop created the order, when Shopify placed the hold.
        waited = (hold.placed_at - datetime.fromisoformat(created["created_at_exact"])).total_seconds()
        return f"Webhook: {name} held {waited:.2f} s after it was created (no scan)."


def connect_to_sandbox(store, sandbox: Sandbox) -> service.ConnectResult:
    """``loopsync connect`` against a running sandbox, with its (fake) static token, Loop key and webhook secrets."""
    creds = sandbox.credentials
    return service.connect(
        store,
        shop=creds["shop_domain"],
        shopify=service.ShopifyCredentials(token=creds["shopify_token"]),
        loop_key=creds["loop_api_key"],
        shopify_api_url=sandbox.url,
        loop_api_url=sandbox.url,
        webhook_secret=creds["webhook_secret"],
        loop_webhook_secret=creds["loop_webhook_secret"],
    )


def run_demo(*, keep_db: Path | None = None) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loopsync-demo-") as tmp, Sandbox(scenario="demo") as sandbox:
        db = keep_db or Path(tmp) / "demo.db"
        _step(f"1. A sandbox Shopify store and Loop account are running at {sandbox.url}")
        store = service.open_store(db)
        result = connect_to_sandbox(store, sandbox)
        render.out().print(
            f"Connected to {result.shop_name} ({result.shop}); Loop API key accepted; "
            f"scopes: {', '.join(result.scopes)}"
        )

        _step("2. First scan: Loop exchanges into pre-order variants are held, tagged and noted in Loop")
        report = service.scan(store)
        render.out().print(render.scan_table(report) or "nothing to do")
        render.out().print(render.scan_summary(report))
        shopify, loop = service.clients(store, store.config.connection())
        exchanges = [o.order_id for o in report.outcomes if o.kind]
        render.out().print(_shopify_table(shopify, exchanges, "In Shopify now (read back through the Admin API)"))
        render.out().print(_notes_table(store, loop))

        _step("3. The jacket's pre-order ships: its variant leaves the PRE_ORDER selling plan")
        shipped = _ship_dated_preorder(sandbox.world)
        render.out().print(f"Took {shipped} off pre-order in the sandbox store.")

        _step(
            "4. Second scan: loopsync lifts its own holds on the jacket exchanges and tells Loop; "
            "other apps' holds stay"
        )
        report = service.scan(store)
        render.out().print(render.scan_table(report) or "nothing to do")
        render.out().print(render.scan_summary(report))
        render.out().print(_shopify_table(shopify, exchanges, "In Shopify after the release"))

        _step("5. Third scan: nothing new, so nothing changes")
        before = sandbox.world.mutation_count()
        report = service.scan(store)
        render.out().print(render.scan_summary(report))
        render.out().print(f"Shopify mutations sent by this scan: {sandbox.world.mutation_count() - before}")

        _step("6. Webhook mode: loopsync serve gets Shopify's deliveries and holds a new exchange in a moment")
        render.out().print(_webhook_ending(store, sandbox, db))
        # Without --keep-db the state file goes with the temporary directory: do not point at it.
        kept = f" State file: {db}" if keep_db else ""
        render.out().print(f"\nDemo finished in {time.monotonic() - started:.1f} s.{kept}")

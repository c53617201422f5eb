"""Everything loopsync shows a person (Rich) or a script (--json).

Data goes to stdout, messages to stderr. ``--json`` prints exactly one document.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loopsync.reconcile import OrderOutcome, ScanReport


def out() -> Console:
    # Built per call so tests that swap sys.stdout see the output.
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def err() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def message(text: str) -> None:
    """A plain line on stderr: no Rich markup, so text from an API prints as it is."""
    err().print(text, markup=False)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=_default) + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def short_gid(gid: str | None) -> str:
    """``gid://shopify/FulfillmentOrder/5001`` → ``5001``: the number Shopify's admin shows."""
    return (gid or "").rsplit("/", 1)[-1]


def when(iso: str | None) -> str:
    """An ISO timestamp as ``2026-11-26 10:14`` (UTC) for tables; JSON keeps the full value."""
    if not iso:
        return ""
    try:
        ts = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return ts.strftime("%Y-%m-%d %H:%M")


# -- scan ---------------------------------------------------------------------


def outcome_json(o: OrderOutcome) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "order": o.order_name,
        "kind": o.kind,
        "decision": o.decision,
        "reason": o.reason,
        "window": o.window,
        "pending": o.pending,
        "actions": [{"kind": a.kind, "target": a.target, "detail": a.detail, "status": a.status} for a in o.actions],
    }


def scan_json(report: ScanReport) -> dict[str, Any]:
    return {
        "scan_id": report.scan_id,
        "dry_run": report.dry_run,
        "since": report.since,
        "orders_seen": report.orders_seen,
        "exchanges_seen": report.exchanges_seen,
        "holds_placed": report.count("hold"),
        "tags_added": report.count("tag"),
        "notes_posted": report.count("note"),
        "holds_released": report.count("release"),
        "pending": len(report.pending),
        "orders": [outcome_json(o) for o in report.outcomes if o.kind or o.actions],
    }


def scan_summary(report: ScanReport) -> str:
    read = f"{report.orders_seen} orders read, {report.exchanges_seen} Loop exchanges"
    if report.dry_run:
        # A plan, not a record: "4 held" would read as if the holds were in place.
        return (
            f"Dry run: {read}; would hold {report.count('hold', 'planned')}, "
            f"tag {report.count('tag', 'planned')}, note {report.count('note', 'planned')} "
            f"and release {report.count('release', 'planned')}; {len(report.pending)} pending."
        )
    return (
        f"Scan: {read}; "
        f"{report.count('hold')} held, {report.count('tag')} tagged, "
        f"{report.count('note')} noted, {report.count('release')} released, "
        f"{len(report.pending)} pending."
    )


_ACTION_WORDS = {"hold": "held", "tag": "tagged", "note": "noted in Loop", "release": "released"}


def scan_table(report: ScanReport) -> Table | None:
    """One row per action (or per pending order): order, what happened, the details."""
    rows = [o for o in report.outcomes if o.actions or o.pending]
    if not rows:
        return None
    table = Table(title="What this scan would do" if report.dry_run else "What this scan did")
    table.add_column("Order", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("Details")
    for o in rows:
        name = escape(o.order_name)
        for a in o.actions:
            word = _ACTION_WORDS.get(a.kind, a.kind)
            if a.status != "done":
                word = f"{a.kind} ({a.status})"
            # API text (notes, order names, Shopify's messages) is data, not Rich markup.
            table.add_row(name, word, escape(a.detail))
            name = ""
        if o.pending:
            table.add_row(name, "[yellow]pending[/yellow]", escape(o.pending))
    return table


def show_scan(report: ScanReport, *, verbose: bool, interactive: bool) -> None:
    """Quiet under cron: off a terminal a scan prints only what needs attention (pending
    orders), unless --verbose. At a terminal it shows what it did."""
    table = scan_table(report) if (verbose or interactive) else None
    if table is not None:
        out().print(table)
    if table is not None or verbose or report.pending:
        err().print(scan_summary(report), markup=False)
    elif interactive:
        # Someone ran it by hand: silence would look like a hang or a failure.
        message(f"Nothing to do: {report.orders_seen} orders read.")
    for o in report.pending:
        message(f"pending: {o.order_name}: {o.pending}")


# -- status -------------------------------------------------------------------


def show_status(doc: dict[str, Any]) -> None:
    c = out()
    conn = doc["connection"]
    if conn is None:
        c.print("Not connected. Run `loopsync connect`.")
    else:
        c.print(f"Shop: [bold]{conn['shop']}[/bold] (Shopify {conn['shopify_auth']}: {conn['shopify_fingerprint']})")
        if conn["loop_connected"]:
            c.print(f"Loop Returns: connected (key {conn['loop_fingerprint']})")
        else:
            c.print("Loop Returns: [yellow]disconnected[/yellow] — existing holds are still released when they ship")
    last = doc["last_scan"]
    if last:
        c.print(f"Last scan: #{last['id']} {when(last['finished_at'] or last['started_at'])} UTC — {last['outcome']}")
    else:
        c.print("Last scan: never")
    if doc["held"]:
        table = Table(title="Held by loopsync")
        for col in ("Order", "Fulfillment order", "Estimated shipping", "Held since (UTC)"):
            table.add_column(col)
        for h in doc["held"]:
            # Windows come from metafields and overrides, names from Shopify: data, not markup.
            table.add_row(
                escape(h["order"]), short_gid(h["fulfillment_order_id"]), escape(h["window"] or ""), when(h["placed_at"])
            )
        c.print(table)
    else:
        c.print("No orders held by loopsync.")
    if doc["pending"]:
        table = Table(title="Pending (retried next scan)")
        table.add_column("Order")
        table.add_column("Why")
        for p in doc["pending"]:
            table.add_row(escape(p["order"] or p["order_id"]), escape(p["reason"] or ""))
        c.print(table)

"""Everything loopsync shows a person (Rich) or a script (--json).

Data goes to stdout, messages to stderr. ``--json`` prints exactly one document.

Why one module of about 520 lines: it is the one place that knows how output looks (the
console, the colours, the table style, the JSON rules), a function or two per command;
split by command, each part would import the same conventions and drift from them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopsync import text

# Rich is imported where output is made, not here: `loopsync --help` and `--version`
# print nothing through it, and importing it costs them about a third of their start-up.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    # Annotations only: importing the reconciler here would make `loopsync --help` load it.
    from loopsync.reconcile import OrderOutcome, ScanReport

#: Text from outside (order names, windows, API messages) is cut to this in tables and messages.
SHOWN_MAX_LENGTH = 300


def out() -> Console:
    from rich.console import Console

    # Built per call so tests that swap sys.stdout see the output.
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def err() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def message(line: str) -> None:
    """One plain line on stderr: no Rich markup, and no control characters or escape
    sequences, so an order name or an API message cannot steer the terminal."""
    err().print(text.one_line(line), markup=False)


def escape(value: str) -> str:
    """Rich's markup escape."""
    from rich.markup import escape as rich_escape

    return rich_escape(value)


def _table(title: str) -> Table:
    from rich.table import Table

    return Table(title=title)


def cell(value: str | None, limit: int = SHOWN_MAX_LENGTH) -> str:
    """Text from outside, for a Rich table: one printable line, cut to ``limit``, markup escaped."""
    return escape(text.clean(value, limit))


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
        "pending": o.attention,
        "note_wait": None if o.note_wait is None else {
            "attempts": o.note_wait.attempts,
            "waiting_since": o.note_wait.first_missed_at,
            "next_retry_at": o.note_wait.next_retry_at,
            "gave_up_at": o.note_wait.gave_up_at,
        },
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
        "holds_reheld": report.reheld,
        "pending": len(report.pending),
        "waiting_for_return": len(report.waiting),
        "interrupted": report.interrupted,
        "left_unheld": len(report.left_unheld),
        "orders": [outcome_json(o) for o in report.outcomes if o.kind or o.actions],
    }


def scan_summary(report: ScanReport) -> str:
    read = f"{report.orders_seen} orders read, {report.exchanges_seen} Loop exchanges"
    waiting = f", {len(report.waiting)} waiting for their Loop return" if report.waiting else ""
    if report.dry_run:
        # A plan, not a record: "4 held" would read as if the holds were in place.
        return (
            f"Dry run: {read}; would hold {report.count('hold', 'planned')}, "
            f"tag {report.count('tag', 'planned')}, note {report.count('note', 'planned')} "
            f"and release {report.count('release', 'planned')}; {len(report.pending)} pending{waiting}."
        )
    reheld = f" ({report.reheld} re-held)" if report.reheld else ""
    return (
        f"Scan: {read}; "
        f"{report.count('hold')} held{reheld}, {report.count('tag')} tagged, "
        f"{report.count('note')} noted, {report.count('release')} released, "
        f"{len(report.pending)} pending{waiting}."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def interrupted_line(report: ScanReport) -> str:
    """The one line a scan stopped by a signal prints: how far it got, and that nothing is lost."""
    if report.dry_run:
        return "Interrupted: nothing was changed (dry run)."
    done = [_count(report.count("hold"), "hold"), _count(report.count("note"), "note")]
    if report.count("release"):
        done.append(_count(report.count("release"), "release"))
    return f"Interrupted: {', '.join(done)} done; the next scan finishes the rest."


_ACTION_WORDS = {"hold": "held", "tag": "tagged", "note": "noted in Loop", "release": "released"}


def scan_table(report: ScanReport) -> Table | None:
    """One row per action (or per pending order): order, what happened, the details."""
    rows = [o for o in report.outcomes if o.actions or o.pending or o.waiting]
    if not rows:
        return None
    table = _table("What this scan would do" if report.dry_run else "What this scan did")
    table.add_column("Order", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("Details")
    for o in rows:
        name = cell(o.order_name)
        for a in o.actions:
            word = _ACTION_WORDS.get(a.kind, a.kind)
            if a.status != "done":
                word = f"{a.kind} ({a.status})"
            # API text (notes, order names, Shopify's messages) is data, not Rich markup.
            table.add_row(name, word, cell(a.detail))
            name = ""
        if o.pending:
            table.add_row(name, "[yellow]pending[/yellow]", cell(o.pending))
        elif o.waiting:
            table.add_row(name, "[yellow]waiting[/yellow]", cell(o.waiting))
    return table


def left_unheld_line(report: ScanReport) -> str | None:
    """One line, shown under cron too: pre-orders that may ship because nothing holds them."""
    n = len(report.left_unheld)
    if not n:
        return None
    things = "pre-order exchange" if n == 1 else "pre-order exchanges"
    return f"{n} new {things} left unheld: Loop is disconnected."


def show_pending(report: ScanReport) -> None:
    """One line per order that needs a person, on stderr, with or without --json: cron mails it."""
    for o in report.pending:
        message(f"pending: {o.order_name}: {o.attention}")


def show_scan(report: ScanReport, *, verbose: bool, interactive: bool) -> None:
    """Quiet under cron: off a terminal a scan prints only what needs attention (pending
    orders, exchanges left unheld), unless --verbose. At a terminal it shows what it did."""
    table = scan_table(report) if (verbose or interactive) else None
    if table is not None:
        out().print(table)
    if table is not None or verbose or report.pending:
        err().print(scan_summary(report), markup=False)
    elif interactive:
        # Someone ran it by hand: silence would look like a hang or a failure.
        message(f"Nothing to do: {report.orders_seen} orders read.")
    show_pending(report)
    unheld = left_unheld_line(report)
    if unheld:
        message(unheld)


# -- progress and JSON logs ------------------------------------------------------
# Both are scan observers (loopsync.reconcile.ScanObserver's methods, duck-typed so that this
# module does not load the reconciler): the scan calls them, they only draw or write.


class ScanProgress:
    """A Rich progress bar on stderr while a scan runs at a terminal: orders read, then exchanges
    reconciled. Transient: once the scan ends the bar is gone and the summary stands alone."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err(), transient=True
        )
        self._read = self._progress.add_task("Orders read", total=None)
        self._done = None

    def __enter__(self) -> ScanProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def order_read(self, orders_seen: int) -> None:
        self._progress.update(self._read, completed=orders_seen)

    def reconciling(self, total: int) -> None:
        self._progress.update(self._read, total=self._progress.tasks[self._read].completed)
        self._done = self._progress.add_task("Exchanges reconciled", total=total)
        self._progress.refresh()

    def reconciled(self, outcome: OrderOutcome, scan_id: int | None) -> None:
        if self._done is not None:
            self._progress.advance(self._done)
            self._progress.refresh()


class JsonLog:
    """``--log-format json``: one JSON object per line on stderr for each action a scan takes, each order
    it leaves pending, and the scan's end (for journald, Loki, CloudWatch). Only what the scan reports
    is written: order names, action details and Shopify's or Loop's messages, never a credential."""

    def __init__(self, now) -> None:
        self._now = now

    def _write(self, **fields: Any) -> None:
        fields = {"ts": self._now(), **fields}
        sys.stderr.write(json.dumps(fields, sort_keys=True, default=_default) + "\n")
        sys.stderr.flush()

    def order_read(self, orders_seen: int) -> None:
        pass

    def reconciling(self, total: int) -> None:
        pass

    def reconciled(self, outcome: OrderOutcome, scan_id: int | None) -> None:
        for a in outcome.actions:
            self._write(
                scan_id=scan_id, order=outcome.order_name, order_id=outcome.order_id, kind=a.kind,
                status=a.status, target=a.target, detail=text.one_line(a.detail),
            )
        if outcome.attention:
            self._write(
                scan_id=scan_id, order=outcome.order_name, order_id=outcome.order_id, kind="pending",
                status="pending", target=outcome.order_id, detail=text.one_line(outcome.attention),
            )

    def finished(self, report: ScanReport, outcome: str) -> None:
        self._write(
            scan_id=report.scan_id, order=None, order_id=None, kind="scan", status=outcome, target=None,
            detail=interrupted_line(report) if report.interrupted else scan_summary(report),
        )


@contextmanager
def scan_observer(log_format: str, *, interactive: bool, now) -> Iterator[ScanProgress | JsonLog | None]:
    """What watches a scan: the JSON log when asked for, else a progress bar at a terminal only
    (nothing animated under cron, systemd or a pipe)."""
    if log_format == "json":
        yield JsonLog(now)
    elif interactive:
        with ScanProgress() as progress:
            yield progress
    else:
        yield None


# -- status -------------------------------------------------------------------


def show_status(doc: dict[str, Any]) -> None:
    c = out()
    _show_status(c, doc)
    for line in doc.get("attention") or ():
        # On stderr too, so a monitoring check that keeps only stderr says what is wrong.
        message(f"needs attention: {line}")


def _show_status(c: Console, doc: dict[str, Any]) -> None:
    _status_connection(c, doc["connection"])
    _status_activity(c, doc)
    if doc["held"]:
        # Windows come from metafields and overrides, names from Shopify: data, not markup.
        _print_rows(c, "Held by loopsync", ("Order", "Fulfillment order", "Estimated shipping", "Held since (UTC)"), [
            (cell(h["order"]), short_gid(h["fulfillment_order_id"]), cell(h["window"]), when(h["placed_at"]))
            for h in doc["held"]
        ])
    else:
        c.print("No orders held by loopsync.")
    unheld = doc.get("unheld") or []
    if unheld:
        n = len(unheld)
        things = "pre-order exchange" if n == 1 else "pre-order exchanges"
        conn = doc["connection"]
        if conn is not None and conn["loop_connected"]:
            title = f"{n} {things} left unheld while Loop was disconnected (the next scan holds them)"
        else:
            title = f"{n} {things} left unheld while Loop is disconnected"
        _print_rows(c, title, ("Order", "Estimated shipping", "Last seen (UTC)"), [
            (cell(u["order"] or u["order_id"]), cell(u["window"] or ""), when(u["seen_at"])) for u in unheld
        ])
    _print_rows(
        c, "Holds put back after a release outside loopsync (Flow or another app)",
        ("Order", "Fulfillment order", "Times re-held", "Last (UTC)"),
        [(cell(r["order"] or r["order_id"]), short_gid(r["fulfillment_order_id"]), str(r["times"]), when(r["last_at"]))
         for r in doc.get("reheld") or []],
    )
    _print_rows(c, "Given up on: needs a person", ("Order", "Why", "Since (UTC)"), [
        (cell(g["order"] or g["order_id"]), cell(g["reason"]), when(g["at"])) for g in doc.get("gave_up") or []
    ])
    _print_rows(c, "Pending", ("Order", "Why", "Attempts", "Next try (UTC)"), [
        (cell(p["order"] or p["order_id"]), cell(p["reason"]), str(p["attempts"]), when(p.get("next_retry_at")) or "next scan")
        for p in doc["pending"]
    ])


def _print_rows(c: Console, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A titled table of ``rows``; nothing at all when there are none."""
    if not rows:
        return
    table = _table(title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    c.print(table)


def _status_connection(c: Console, conn: dict[str, Any] | None) -> None:
    if conn is None:
        c.print("Not connected. Run `loopsync connect`.")
        return
    c.print(f"Shop: [bold]{conn['shop']}[/bold] (Shopify {conn['shopify_auth']}: {conn['shopify_fingerprint']})")
    if conn["loop_connected"]:
        c.print(f"Loop Returns: connected (key {conn['loop_fingerprint']})")
    else:
        c.print("Loop Returns: [yellow]disconnected[/yellow] — existing holds are still released when they ship")
    if conn.get("webhook_secret_fingerprint"):
        rotating = conn.get("webhook_previous_secret_until")
        extra = f"; the previous one verifies until {when(rotating)} UTC" if rotating else ""
        c.print(f"Webhook secret: {conn['webhook_secret_fingerprint']}{extra}")
    if conn.get("loop_webhook_secret_fingerprint"):
        c.print(f"Loop webhook secret: {conn['loop_webhook_secret_fingerprint']}")


def _status_activity(c: Console, doc: dict[str, Any]) -> None:
    """The last scan and the last webhook delivery."""
    last = doc["last_scan"]
    if last:
        error = f" ({escape(last['error'])})" if last.get("error") and last["outcome"] != "ok" else ""
        c.print(
            f"Last scan: #{last['id']} {when(last['finished_at'] or last['started_at'])} UTC — {last['outcome']}{error}"
        )
    else:
        c.print("Last scan: never")
    inbox = doc.get("inbox") or {}
    delivery = inbox.get("last_delivery")
    if delivery:
        # The topic came over the network: data, not markup.
        c.print(
            f"Webhooks: {inbox['depth']} waiting; last delivery {cell(delivery['topic'])} "
            f"{when(delivery['received_at'])} UTC — {delivery['state']}"
        )


# -- explain and history --------------------------------------------------------


def show_explain(doc: dict[str, Any]) -> None:
    """The decision trace, top to bottom in the order a person asks: what is it, what is held, what next."""
    c = out()
    o = doc["order"]
    c.print(f"[bold]{cell(o['name'])}[/bold] ({short_gid(o['id'])})" + (" closed" if o["closed"] else "")
            + (" cancelled" if o["cancelled"] else ""))
    ex = doc["exchange"]
    kind = {"separate": "Loop exchange (separate order)", "native": "Loop exchange (native)"}.get(ex["kind"] or "")
    c.print(f"Exchange: {kind + ': ' if kind else ''}{cell(ex['why'])}")
    c.print(f"Tags: {cell(', '.join(o['tags'])) or '(none)'}")
    table = _table("Line items")
    for col in ("SKU", "Exchange item", "Pre-order", "Why", "Window"):
        table.add_column(col)
    for li in doc["line_items"]:
        window = f"{cell(li['window'])} ({cell(li['window_why'])})" if li["window"] else ""
        table.add_row(
            cell(li["sku"] or short_gid(li["variant_id"]) or short_gid(li["line_item_id"])),
            "yes" if li["exchange_item"] else "no",
            "yes" if li["on_preorder"] else "no",
            cell(li["why"]),
            window,
        )
    c.print(table)
    table = _table("Fulfillment orders and holds")
    for col in ("Fulfillment order", "Status", "Hold", "Held by", "Reason"):
        table.add_column(col)
    for fo in doc["fulfillment_orders"]:
        if not fo["holds"]:
            table.add_row(short_gid(fo["id"]), fo["status"], "none", "", "")
        for h in fo["holds"]:
            by = "loopsync" if h["ours"] else (h["app"] or "the merchant")
            reason = " — ".join(x for x in (h["reason"], h["reason_notes"]) if x)
            table.add_row(short_gid(fo["id"]), fo["status"], short_gid(h["id"]), cell(by), cell(reason))
    c.print(table)
    ret = doc["loop_return"]
    if ret["id"] is not None:
        c.print(f"Loop return: {ret['id']} (found by {ret['found_by']})")
        for note in ret["notes"]:
            c.print(f"  note: {cell(note)}")
        if ret["why_not"]:
            c.print(f"  {cell(ret['why_not'])}")
    else:
        c.print(f"Loop return: none: {cell(ret['why_not'])}")
    led = doc["ledger"]
    c.print(f"Recorded state: {led['state'] or 'never acted on'}"
            + (f" — pending: {cell(led['pending_reason'])}" if led["pending_reason"] else "")
            + (" — released by hand" if led["manual_release"] else ""))
    if led["history"]:
        c.print(history_table(led["history"], title="What loopsync did"))
    nxt = doc["next_scan"]
    c.print(f"Next scan: {nxt['decision']} — {cell(nxt['reason'])}")
    for a in nxt["actions"]:
        target = f" ({short_gid(a['target'])})" if a["target"] else ""
        c.print(f"  {'would ' if a['sends'] else ''}{cell(a['detail'])}{target}")
    if nxt["changes_nothing"]:
        c.print("  It would send nothing to Shopify or Loop.")


def history_table(entries: list[dict[str, Any]], *, title: str) -> Table:
    table = _table(title)
    for col in ("When (UTC)", "Order", "What", "Status", "Details"):
        table.add_column(col)
    for e in entries:
        table.add_row(when(e["at"]), cell(e["order"] or e["order_id"]), e["kind"], e["status"], cell(e["detail"]))
    return table


def show_history(doc: dict[str, Any], *, interactive: bool) -> None:
    """A Rich table at a terminal; tab-separated lines elsewhere, for grep and awk."""
    entries = doc["entries"]
    if not entries:
        err().print("Nothing recorded yet." if not doc["order"] else f"Nothing recorded for {doc['order']}.",
                    markup=False)
        return
    if interactive:
        out().print(history_table(entries, title="What loopsync did (newest first)"))
        return
    for e in entries:
        fields = (e["at"], e["order"] or e["order_id"], e["kind"], e["status"], e["detail"])
        sys.stdout.write("\t".join(text.one_line(str(f or "")) for f in fields) + "\n")


# -- webhook subscriptions ------------------------------------------------------


def subscription_json(sub: Any, state: str | None = None) -> dict[str, Any]:
    from loopsync.subscriptions import topic_name

    doc = {"id": sub.id, "topic": topic_name(sub.topic), "uri": sub.uri, "created_at": sub.created_at}
    if state is not None:
        doc["state"] = state
    return doc


def subscription_lines(rows: list[tuple[str | None, Any]]) -> None:
    """One tab-separated line per subscription on stdout, for `cut`/`awk`: [state,] topic, uri, id, created at."""
    from loopsync.subscriptions import topic_name

    for state, sub in rows:
        fields = [state] if state is not None else []
        fields += [topic_name(sub.topic), text.clean(sub.uri, SHOWN_MAX_LENGTH), sub.id, sub.created_at or ""]
        sys.stdout.write("\t".join(fields) + "\n")

"""The command line: parse arguments, call ``service``, render. Nothing else.

Every failure reaches the user as one sentence on stderr and an exit code from
``ExitCode``; tracebacks only with ``--debug``.

Why one module of about 600 lines: it is one Typer app, and each command is its
options, one ``service`` call and one ``render`` call; the table of commands reads
best in one place (`loopsync --help` is this file, top to bottom).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated

import typer

from loopsync import __version__, render, service
from loopsync.errors import ConfigError, LoopsyncError
from loopsync.exit_codes import ExitCode

app = typer.Typer(
    name="loopsync",
    help="Hold Loop Returns exchange orders that swap into pre-order variants, and release them when they ship.",
    no_args_is_help=True,
    add_completion=False,
    # Locals in a traceback would print API keys.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    # Click's plain help: Typer's Rich panels print a type after every flag ("--json <bool>")
    # and cut a long help text short with "…".
    rich_markup_mode=None,
)
# Each short_help fits its line of `--help` at 80 columns: Click cuts a longer one with "...",
# and stops at the first full stop ("e.g."). The full text stays in the command's own --help.
preorders_app = typer.Typer(
    help="Local pre-order overrides, for stores whose pre-order data lives outside Shopify.",
    short_help="Local overrides: variants to treat as on pre-order.",
)
sandbox_app = typer.Typer(
    help="The local Shopify + Loop sandbox used by the demo and the tests.",
    short_help="The local Shopify + Loop sandbox for the demo and the tests.",
)
config_app = typer.Typer(
    help="Store-wide settings: exchange prefix and tags, note label, metafield, lookback.",
    short_help="Store-wide settings: prefix, tags, note label, lookback.",
)
webhooks_app = typer.Typer(
    help="loopsync's Shopify webhook subscriptions, pointing at `loopsync serve`.",
    short_help="Shopify webhook subscriptions for `loopsync serve`.",
)
app.add_typer(preorders_app, name="preorders")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="State file (env LOOPSYNC_DB; default in your user data directory).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
# Text, not Path: Click turns an empty value into ".", and `--record ""` must be reported as empty.
RecordOption = Annotated[
    str | None,
    typer.Option(
        "--record",
        metavar="FILE",
        help="Write this run's API traffic, credentials scrubbed, to a new cassette file (never replaces one).",
        show_default=False,
    ),
]
ReplayOption = Annotated[
    str | None,
    typer.Option(
        "--replay",
        metavar="FILE",
        help="Answer every API request from a recorded cassette; no network.",
        show_default=False,
    ),
]
AnonymizeOption = Annotated[
    bool, typer.Option("--anonymize", help="With --record: also replace the shop's domain in the cassette.")
]


def _store(ctx: typer.Context, db: Path | None, **how: bool):
    """The command's state file (see ``service.state_file``), closed however the command ends:
    Click closes its context on the way out, exception or not (sqlite-utils' pattern)."""
    store = service.state_file(db, **how)
    if store is not None:
        ctx.call_on_close(store.close)
    return store


def _confirm(yes: bool, verb: str, question: str) -> None:
    """Ask before a change a person should mean; scripts say --yes (no terminal, no guessing)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"Refusing to {verb} without confirmation: pass --yes.")
    typer.confirm(question, abort=True)


def _warn_permissions(store) -> None:
    for warning in store.warnings:
        render.message(f"warning: {warning}")


def _show_version(value: bool) -> None:
    # Eager: Click checks for a missing command before the group's own callback runs.
    if value:
        print(__version__)
        raise typer.Exit(ExitCode.OK)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _root(
    ctx: typer.Context,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="json: one JSON object per action on stderr (for journald, Loki, CloudWatch) instead of a "
            "progress bar.",
        ),
    ] = LogFormat.text,
    debug: Annotated[bool, typer.Option("--debug", help="Add the full traceback to an error; the exit code stays the same.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    # Read by the commands that act (scan): Click hands a group's obj down to its subcommands.
    ctx.obj = {"log_format": log_format.value}


# -- connect / disconnect -----------------------------------------------------


def _ask_secret(what: str) -> str:
    return typer.prompt(what, hide_input=True)


@app.command(short_help="Validate and store the Loop key and the Shopify credentials.")
def connect(
    ctx: typer.Context,
    shop: Annotated[str | None, typer.Option("--shop", help="example.myshopify.com (env LOOPSYNC_SHOP).")] = None,
    loop_key_stdin: Annotated[
        bool,
        typer.Option(
            "--loop-key-stdin",
            help="Read the Loop API key from stdin (its second line if --shopify-token-stdin is also given).",
        ),
    ] = False,
    shopify_token_stdin: Annotated[
        bool, typer.Option("--shopify-token-stdin", help="Read the Shopify Admin API token from the first line of stdin.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    record: RecordOption = None,
    replay: ReplayOption = None,
    anonymize: AnonymizeOption = False,
) -> None:
    """Validate and store the Loop API key and the Shopify credentials. Run again to rotate either or both."""
    # A malformed domain is refused before the state file is created or touched.
    given = service.given_shop(shop)
    store = _store(ctx, db)
    _warn_permissions(store)
    shop, previous = service.shop_to_connect(store, given)
    creds, loop_key = service.connect_credentials(
        previous,
        shopify_token_stdin=shopify_token_stdin,
        loop_key_stdin=loop_key_stdin,
        read_line=sys.stdin.readline,
        ask=_ask_secret if sys.stdin.isatty() else None,
    )
    with service.traffic(record=record, replay=replay, anonymize=anonymize, store=store, shop=shop):
        result = service.connect(
            store,
            shop=shop,
            shopify=creds,
            loop_key=loop_key,
            webhook_secret=service.given_webhook_secret(creds),
            loop_webhook_secret=service.given_loop_webhook_secret(),
            **service.url_overrides(),
        )
    # Not checked against LOOPSYNC_SHOP: a --shop given here wins over it.
    doc = service.status(store, check_env=False)
    if as_json:
        render.print_json(doc)
    else:
        render.message(f"Connected to {result.shop_name or result.shop} and Loop Returns.")
        render.show_status(doc)


@app.command(short_help="Forget the Loop key; existing holds are released as they ship.")
def disconnect(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Forget the Loop key: no new holds or notes; existing holds are still released when they ship."""
    store = _store(ctx, db, create=False)
    service.require_connection(store)
    _confirm(
        yes,
        "disconnect",
        "Disconnect Loop Returns? Existing holds and notes stay and are released when their pre-order ships.",
    )

    def waiting() -> None:
        render.message("A scan is running: waiting for it to stop (it starts no new hold, tag or note)…")

    if service.disconnect(store, on_wait=waiting):
        render.err().print("Loop Returns disconnected. Holds already placed will still be released when they ship.")
    else:
        render.err().print("Loop Returns was already disconnected.")


# -- scan / release / status --------------------------------------------------


@app.command(short_help="Hold, tag and note pre-order exchanges; release shipped ones.")
def scan(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option("--since", help="Look back this far instead of from the cursor: 2h, 3d, or an ISO date.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="If another scan is running, wait for it instead of exiting 3.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print what was done and a summary, even off a terminal (cron).")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    record: RecordOption = None,
    replay: ReplayOption = None,
    anonymize: AnonymizeOption = False,
) -> None:
    """Reconcile recent Loop exchange orders: hold, tag and note pre-orders; release shipped ones."""
    store = _store(ctx, db, create=False)
    _warn_permissions(store)
    log_format = (ctx.obj or {}).get("log_format", LogFormat.text.value)
    watching = render.scan_observer(log_format, interactive=sys.stderr.isatty(), now=service.now)
    try:
        with service.traffic(record=record, replay=replay, anonymize=anonymize, store=store), watching as observer:
            report = service.scan(
                store, since=service.since(since), dry_run=dry_run, wait=wait, observer=observer
            )
    except service.ScanInterrupted as stopped:
        if isinstance(observer, render.JsonLog):
            observer.finished(stopped.report, "interrupted")
        if as_json:
            render.print_json(render.scan_json(stopped.report))
        # Shown under cron too: a stopped service should say how far it got.
        render.message(render.interrupted_line(stopped.report))
        raise typer.Exit(stopped.exit_code) from None
    if isinstance(observer, render.JsonLog):
        observer.finished(report, "pending" if report.pending else "ok")
    if as_json:
        render.print_json(render.scan_json(report))
        render.show_pending(report)
        unheld = render.left_unheld_line(report)
        if unheld:
            render.message(unheld)
    else:
        render.show_scan(report, verbose=verbose or dry_run, interactive=sys.stdout.isatty())
    if report.pending:
        raise typer.Exit(ExitCode.PENDING)


@app.command(short_help="Lift loopsync's holds on one order by hand.")
def release(
    ctx: typer.Context,
    order: Annotated[str, typer.Argument(help="Order name (EXC-1086-1), numeric id or gid.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    record: RecordOption = None,
    replay: ReplayOption = None,
    anonymize: AnonymizeOption = False,
) -> None:
    """Lift loopsync's holds on one order by hand; later scans will not hold it again."""
    store = _store(ctx, db, create=False)
    service.require_connection(store)
    _confirm(yes, "release", f"Release loopsync's holds on {order}? It may then ship before the stock exists.")
    with service.traffic(record=record, replay=replay, anonymize=anonymize, store=store):
        outcome = service.release(store, order)
    if as_json:
        render.print_json(render.outcome_json(outcome))
    else:
        released = [a for a in outcome.actions if a.kind == "release" and a.status == "done"]
        if released:
            render.message(f"Released {len(released)} loopsync hold(s) on {outcome.order_name}.")
        else:
            render.message(f"{outcome.order_name} had no loopsync hold; future scans will not hold it.")
    if outcome.pending:
        render.message(f"Not finished: {outcome.pending}")
        raise typer.Exit(ExitCode.PENDING)


@app.command(short_help="Connection, last scan, held orders and what needs a person.")
def status(ctx: typer.Context, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Connection, last scan, orders held and pending items; exits 1 when something needs a person."""
    # Looking must not create a state file (a typo in --db would leave one behind): none is "not connected".
    store = _store(ctx, db, read_only=True, missing_ok=True)
    if store is not None:
        _warn_permissions(store)
    doc = service.status(store)
    if as_json:
        render.print_json(doc)
    else:
        render.show_status(doc)
    if doc["attention"]:
        # For monitoring: something only a person can settle (see the README's exit codes).
        raise typer.Exit(ExitCode.PENDING)


@app.command(short_help="Why one order is held or not, and what the next scan would do.")
def explain(
    ctx: typer.Context,
    order: Annotated[str, typer.Argument(help="Order name (EXC-1086-1 or #1086), numeric id or gid.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The decision trace for one order, from live Shopify and Loop data and the state file; changes nothing."""
    doc = service.explain(_store(ctx, db, read_only=True), order)
    if as_json:
        render.print_json(doc)
    else:
        render.show_explain(doc)


@app.command(short_help="Every hold, tag, note and release loopsync made, newest first.")
def history(
    ctx: typer.Context,
    order: Annotated[
        str | None, typer.Option("--order", help="Only this order: name, numeric id or gid.", show_default=False)
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only this far back: 2h, 3d, or an ISO date.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many entries.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every action loopsync recorded (holds, re-holds, tags, notes, releases and why, failures, pending
    reasons), newest first, from the state file alone."""
    doc = service.history(_store(ctx, db, read_only=True), order=order, since=service.since(since), limit=limit)
    if as_json:
        render.print_json(doc)
    else:
        render.show_history(doc, interactive=sys.stdout.isatty())


@app.command(short_help="Receive Shopify webhooks: hold pre-order exchanges in seconds.")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="The address to listen on (put HTTPS in front).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on; 0 picks a free one.")] = 8080,
    scan_every: Annotated[
        str, typer.Option("--scan-every", help="Also scan this often, e.g. 45m or 1h; 0 turns it off.")
    ] = "1h",
    db: DbOption = None,
) -> None:
    """Receive Shopify webhooks on POST /webhooks/shopify and reconcile each order they name at once.

    Serves GET /healthz and GET /metrics too; scans at start and every --scan-every. Runs until
    SIGTERM or Ctrl-C, then finishes the order in hand and exits 0.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a number from 0 to 65535 (0 picks a free port), not {port}.")
    every = service.scan_every(scan_every)
    store = _store(ctx, db, create=False)
    _warn_permissions(store)
    service.serve(store, host=host, port=port, scan_every=every)


# -- pre-order overrides ------------------------------------------------------


@preorders_app.command("list")
def preorders_list(ctx: typer.Context, db: DbOption = None, as_json: JsonOption = False) -> None:
    """List variants treated as pre-order by local override."""
    rows = service.overrides(_store(ctx, db, read_only=True))
    if as_json:
        render.print_json([{"variant_id": v, "window": w} for v, w in rows])
        return
    if not rows:
        render.err().print("No local pre-order overrides.")
        return
    # Plain tab-separated lines for `cut`/`awk`: Rich would expand the tabs and read "[...]" as markup.
    for variant, window in rows:
        sys.stdout.write(f"{variant}\t{window}\n")


@preorders_app.command("add")
def preorders_add(
    ctx: typer.Context,
    variant: Annotated[str, typer.Argument(help="Variant gid or numeric id.")],
    window: Annotated[str, typer.Option("--window", help="Shipping window text, e.g. 'Late March 2027'.")],
    db: DbOption = None,
) -> None:
    """Treat a variant as on pre-order, with this shipping window."""
    variant_id, window = service.override(variant, window)
    service.add_override(_store(ctx, db), variant_id, window)
    render.message(f"{variant_id} is now treated as pre-order ({window}).")


@preorders_app.command("remove", short_help="Stop treating a variant as pre-order; the next scan releases it.")
def preorders_remove(
    ctx: typer.Context, variant: Annotated[str, typer.Argument(help="Variant gid or numeric id.")], db: DbOption = None
) -> None:
    """Stop treating a variant as on pre-order; its holds are released on the next scan."""
    variant_id, _ = service.override(variant)
    service.remove_override(_store(ctx, db), variant_id)
    render.message(f"{variant_id} is no longer overridden as pre-order.")


# -- settings -------------------------------------------------------------------


@config_app.command("list")
def config_list(ctx: typer.Context, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show every setting and its value (defaults included)."""
    values = service.setting_values(_store(ctx, db, read_only=True))
    if as_json:
        render.print_json(values)
        return
    for key, value in values.items():
        render.out().print(f"{key}\t{'' if value is None else value}", markup=False)


@config_app.command("set", short_help="Change a setting ('' turns an optional one off).")
def config_set(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A setting name from `loopsync config list`.")],
    value: Annotated[str, typer.Argument(help="The new value.")],
    db: DbOption = None,
) -> None:
    """Change a setting, e.g. `loopsync config set exchange_name_prefix X-` ('' turns an optional one off)."""
    now = service.set_setting(_store(ctx, db), key, value)
    render.message(f"{key} = {now}" if now else f"{key} is off (`loopsync config unset {key}` restores the default)")


@config_app.command("unset")
def config_unset(
    ctx: typer.Context, key: Annotated[str, typer.Argument(help="A setting name.")], db: DbOption = None
) -> None:
    """Put a setting back to its default."""
    now = service.unset_setting(_store(ctx, db), key)
    render.message(f"{key} = {now} (default)" if now else f"{key} is off (default)")


# -- webhook subscriptions ------------------------------------------------------

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        metavar="BASE",
        help="Where `loopsync serve` is reached, e.g. https://hooks.example.com (deliveries go to BASE/webhooks/shopify).",
    ),
]


@webhooks_app.command("install", short_help="Subscribe loopsync's topics at BASE (idempotent).")
def webhooks_install(ctx: typer.Context, url: UrlOption, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Subscribe every topic loopsync needs at BASE/webhooks/shopify; subscriptions already there are kept."""
    base = service.webhooks_base(url)
    installed = service.webhooks_install(_store(ctx, db, create=False), base)
    rows = [("created", s) for s in installed.created] + [("kept", s) for s in installed.kept]
    if as_json:
        render.print_json({"uri": installed.uri,
                           "subscriptions": [render.subscription_json(s, state) for state, s in rows]})
        return
    render.subscription_lines(rows)
    render.message(f"{len(installed.created)} subscription(s) created, {len(installed.kept)} already there.")


@webhooks_app.command("list", short_help="List this app's webhook subscriptions.")
def webhooks_list(ctx: typer.Context, db: DbOption = None, as_json: JsonOption = False) -> None:
    """List this app's webhook subscriptions: topic, address, id, created at."""
    subs = service.webhooks_list(_store(ctx, db, create=False))
    if as_json:
        render.print_json([render.subscription_json(s) for s in subs])
        return
    if not subs:
        render.err().print("No webhook subscriptions.")
        return
    render.subscription_lines([(None, s) for s in subs])


@webhooks_app.command("uninstall", short_help="Delete this app's subscriptions at or under BASE.")
def webhooks_uninstall(ctx: typer.Context, url: UrlOption, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Delete this app's webhook subscriptions at or under BASE; other apps' are never touched."""
    base = service.webhooks_base(url)
    deleted = service.webhooks_uninstall(_store(ctx, db, create=False), base)
    if as_json:
        render.print_json([render.subscription_json(s, "deleted") for s in deleted])
        return
    render.subscription_lines([("deleted", s) for s in deleted])
    render.message(f"{len(deleted)} subscription(s) deleted.")


@webhooks_app.command("toml", short_help="Print the [webhooks] block for the app's TOML.")
def webhooks_toml(url: UrlOption) -> None:
    """Print the [webhooks] block of the app's TOML (for `shopify app deploy`); needs no connection."""
    sys.stdout.write(service.webhooks_toml(service.webhooks_base(url)))


# -- demo and sandbox ---------------------------------------------------------


@app.command(short_help="Run the whole story against the embedded sandbox store.")
def demo(
    keep_db: Annotated[Path | None, typer.Option("--keep-db", help="Keep the demo's state file here.")] = None,
) -> None:
    """Run the whole story against the embedded sandbox store: hold, note, ship, release."""
    service.demo(keep_db=keep_db)


@sandbox_app.command("serve", short_help="Serve a local Shopify + Loop Returns API until Ctrl-C.")
def sandbox_serve(
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="0 picks a free port.")] = 0,
    scenario: Annotated[str, typer.Option("--scenario", help="demo, or a path to a JSON/YAML scenario.")] = "demo",
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            metavar="SPEC",
            help="Inject faults into API requests, each kind with a rate from 0 to 1, comma-separated: "
            "'5xx=0.1, drop=0.05, throttle=0.1, slow=0.1:0.5, malformed=0.05, seed=7' "
            "(slow=RATE:SECONDS).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the faults (unless SPEC has seed=) and the scenario.")] = 0,
    webhooks_to: Annotated[
        str | None,
        typer.Option(
            "--webhooks-to",
            metavar="URL",
            help="Subscribe loopsync's app to every topic the sandbox delivers, at URL "
            "(https://, or http:// on 127.0.0.1 or localhost).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a local Shopify Admin GraphQL + Loop Returns API until Ctrl-C, printing each webhook delivery."""
    service.serve_sandbox(host=host, port=port, scenario=scenario, faults=faults, seed=seed, webhooks_to=webhooks_to)


# -- entry point --------------------------------------------------------------


# Typer ≥ 0.2x runs its own copy of Click, whose exceptions are not click's: a bad
# flag or a declined confirmation would otherwise end as an "unexpected problem".
# Click's own are caught only once something imported it (sqlite-utils does): nothing
# else raises them, and importing Click for them alone costs `--help` about 30 ms.
def _aborts() -> tuple[type[BaseException], ...]:
    click = sys.modules.get("click")
    return tuple({typer.Abort, *((click.exceptions.Abort,) if click else ())})


def _usage_errors() -> tuple[type[BaseException], ...]:
    click = sys.modules.get("click")
    return tuple({typer.TyperException, *((click.ClickException,) if click else ())})


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is honoured wherever it stands, not only before the command.
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    return _run(_command(), args, debug)


@cache
def _command():
    """The Click command tree, built once per process: Typer rebuilds it (resolving every
    annotation) on each call, ~20 ms that every in-process run in the test suite paid."""
    return typer.main.get_command(app)


def _run(command, args: list[str], debug: bool) -> int:
    try:
        result = command.main(args=args, prog_name="loopsync", standalone_mode=False)
    except _aborts():
        render.err().print("Aborted; nothing was changed.")
        return ExitCode.USAGE
    except _usage_errors() as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show(file=sys.stderr)
        else:
            render.message(f"Error: {exc}")
        return ExitCode.USAGE
    except LoopsyncError as exc:
        _traceback_if(debug)
        render.message(f"Error: {exc.message}")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        render.err().print("Interrupted.")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        _traceback_if(debug)
        render.err().print(
            f"Error: loopsync hit an unexpected problem ({type(exc).__name__}). Run again with --debug for details."
        )
        return ExitCode.INTERNAL
    return int(result or ExitCode.OK)


def _traceback_if(debug: bool) -> None:
    """--debug adds the traceback and changes nothing else: scripts see the same exit code either way."""
    if debug:
        # Plain stdlib formatting: no locals, which would print API keys. Imported here:
        # only --debug needs it, and it costs every start-up otherwise.
        import traceback

        traceback.print_exc(file=sys.stderr)

"""The command line: parse arguments, call ``service``, render. Nothing else.

Every failure reaches the user as one sentence on stderr and an exit code from
``ExitCode``; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import click
import typer

from loopsync import __version__, recording, render, service, settings
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
preorders_app = typer.Typer(help="Local pre-order overrides, for stores whose pre-order data lives outside Shopify.")
sandbox_app = typer.Typer(help="The local Shopify + Loop sandbox used by the demo and the tests.")
config_app = typer.Typer(help="Store-wide settings: exchange prefix and tags, note label, metafield, lookback.")
app.add_typer(preorders_app, name="preorders")
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


# State files this command opened; main() closes them however the command ends.
_opened: list = []


def _store(db: Path | None, *, create: bool = True, read_only: bool = False):
    """The state file for this command. ``read_only``: a command that only looks, which must
    work on a file it cannot write and never create or change one (implies ``create=False``)."""
    path = db or settings.default_db_path()
    if (read_only or not create) and not Path(path).expanduser().exists():
        # A typo in --db or a cron job run before `connect`: say so, and leave no empty state file behind.
        raise ConfigError(f"loopsync is not connected yet (no state file at {path}): run `loopsync connect` first.")
    store = service.open_store(path, read_only=True) if read_only else service.open_store(path)
    _opened.append(store)
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
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Add the full traceback to an error; the exit code stays the same.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    pass


# -- connect / disconnect -----------------------------------------------------


def _given_secret(env: str, stdin_flag: bool, what: str) -> str | None:
    """A secret given on stdin (one line) or in the environment; None when not given."""
    if stdin_flag:
        value = sys.stdin.readline().strip()
        if not value:
            raise ConfigError(f"Nothing was read from standard input for the {what}.")
        return value
    return settings.env_value(env)


def _ask_secret(env: str, flag: str, what: str) -> str:
    if not sys.stdin.isatty():
        raise ConfigError(f"No {what} given: set {env} or pipe it in with {flag}.")
    return typer.prompt(what, hide_input=True)


def _given_shopify(token_stdin: bool) -> service.ShopifyCredentials | None:
    # Read before the Loop key: with both --…-stdin options, line 1 is the token, line 2 the key.
    token = _given_secret(settings.ENV_SHOPIFY_TOKEN, token_stdin, "Shopify Admin API access token")
    if token:
        return service.ShopifyCredentials(token=token)
    client_id = settings.env_value(settings.ENV_SHOPIFY_CLIENT_ID)
    client_secret = settings.env_value(settings.ENV_SHOPIFY_CLIENT_SECRET)
    if client_id and client_secret:
        return service.ShopifyCredentials(client_id=client_id, client_secret=client_secret)
    if client_id or client_secret:
        raise ConfigError(
            f"Set both {settings.ENV_SHOPIFY_CLIENT_ID} and {settings.ENV_SHOPIFY_CLIENT_SECRET}, or neither."
        )
    return None


@app.command()
def connect(
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
    shop = shop or settings.env_value(settings.ENV_SHOP)
    if shop:
        shop = settings.validate_shop_domain(shop)
    store = _store(db)
    _warn_permissions(store)
    stored = store.config.connection()
    shop = shop or (stored.shop if stored else None)
    if not shop:
        raise ConfigError("No shop given: pass --shop example.myshopify.com or set LOOPSYNC_SHOP.")
    previous = service.previous_connection(store, shop)

    creds, loop_key = service.credentials_to_keep(
        previous,
        _given_shopify(shopify_token_stdin),
        _given_secret(settings.ENV_LOOP_API_KEY, loop_key_stdin, "Loop Returns API key"),
    )
    if creds is None:
        token = _ask_secret(settings.ENV_SHOPIFY_TOKEN, "--shopify-token-stdin", "Shopify Admin API access token")
        creds = service.ShopifyCredentials(token=token)
    if loop_key is None:
        loop_key = _ask_secret(settings.ENV_LOOP_API_KEY, "--loop-key-stdin", "Loop Returns API key")

    with recording.for_command(record=record, replay=replay, anonymize=anonymize, store=store, shop=shop):
        result = service.connect(
            store,
            shop=shop,
            shopify=creds,
            loop_key=loop_key,
            shopify_api_url=settings.url_override(settings.ENV_SHOPIFY_API_URL),
            loop_api_url=settings.url_override(settings.ENV_LOOP_API_URL),
        )
    # Not checked against LOOPSYNC_SHOP: a --shop given here wins over it.
    doc = service.status(store, check_env=False)
    if as_json:
        render.print_json(doc)
    else:
        render.message(f"Connected to {result.shop_name or result.shop} and Loop Returns.")
        render.show_status(doc)


@app.command()
def disconnect(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Forget the Loop key: no new holds or notes; existing holds are still released when they ship."""
    store = _store(db, create=False)
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


@app.command()
def scan(
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
    store = _store(db, create=False)
    _warn_permissions(store)
    try:
        with recording.for_command(record=record, replay=replay, anonymize=anonymize, store=store):
            since_at = settings.parse_since(since, service.now()) if since else None
            report = service.scan(store, since=since_at, dry_run=dry_run, wait=wait)
    except service.ScanInterrupted as stopped:
        if as_json:
            render.print_json(render.scan_json(stopped.report))
        # Shown under cron too: a stopped service should say how far it got.
        render.message(render.interrupted_line(stopped.report))
        raise typer.Exit(stopped.exit_code) from None
    if as_json:
        render.print_json(render.scan_json(report))
        unheld = render.left_unheld_line(report)
        if unheld:
            render.message(unheld)
    else:
        render.show_scan(report, verbose=verbose or dry_run, interactive=sys.stdout.isatty())
    if report.pending:
        raise typer.Exit(ExitCode.PENDING)


@app.command()
def release(
    order: Annotated[str, typer.Argument(help="Order name (EXC-1086-1), numeric id or gid.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    record: RecordOption = None,
    replay: ReplayOption = None,
    anonymize: AnonymizeOption = False,
) -> None:
    """Lift loopsync's holds on one order by hand; later scans will not hold it again."""
    store = _store(db, create=False)
    service.require_connection(store)
    _confirm(yes, "release", f"Release loopsync's holds on {order}? It may then ship before the stock exists.")
    with recording.for_command(record=record, replay=replay, anonymize=anonymize, store=store):
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


def service_status(store) -> dict:
    return service.status(store)


@app.command()
def status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Connection, last scan, orders held and pending items."""
    path = db or settings.default_db_path()
    if not Path(path).expanduser().exists():
        # Looking must not create a state file (a typo in --db would leave one behind).
        from loopsync.status import not_connected_document

        doc = not_connected_document()
    else:
        store = _store(path, read_only=True)
        _warn_permissions(store)
        doc = service_status(store)
    if as_json:
        render.print_json(doc)
    else:
        render.show_status(doc)


# -- pre-order overrides ------------------------------------------------------


@preorders_app.command("list")
def preorders_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List variants treated as pre-order by local override."""
    rows = _store(db, read_only=True).config.overrides()
    if as_json:
        render.print_json([{"variant_id": v, "window": w} for v, w in sorted(rows.items())])
        return
    if not rows:
        render.err().print("No local pre-order overrides.")
        return
    # Plain tab-separated lines for `cut`/`awk`: Rich would expand the tabs and read "[...]" as markup.
    for variant, window in sorted(rows.items()):
        sys.stdout.write(f"{variant}\t{window}\n")


@preorders_app.command("add")
def preorders_add(
    variant: Annotated[str, typer.Argument(help="Variant gid or numeric id.")],
    window: Annotated[str, typer.Option("--window", help="Shipping window text, e.g. 'Late March 2027'.")],
    db: DbOption = None,
) -> None:
    """Treat a variant as on pre-order, with this shipping window."""
    variant_id = settings.variant_gid(variant)
    window = settings.validate_window(window)
    _store(db).config.add_override(variant_id, window)
    render.message(f"{variant_id} is now treated as pre-order ({window}).")


@preorders_app.command("remove")
def preorders_remove(variant: Annotated[str, typer.Argument(help="Variant gid or numeric id.")], db: DbOption = None) -> None:
    """Stop treating a variant as on pre-order; its holds are released on the next scan."""
    variant_id = settings.variant_gid(variant)
    _store(db).config.remove_override(variant_id)
    render.message(f"{variant_id} is no longer overridden as pre-order.")


# -- settings -------------------------------------------------------------------


@config_app.command("list")
def config_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show every setting and its value (defaults included)."""
    values = _store(db, read_only=True).config.settings()
    if as_json:
        render.print_json(values)
        return
    for key, value in values.items():
        render.out().print(f"{key}\t{'' if value is None else value}", markup=False)


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="A setting name from `loopsync config list`.")],
    value: Annotated[str, typer.Argument(help="The new value.")],
    db: DbOption = None,
) -> None:
    """Change a setting, e.g. `loopsync config set exchange_name_prefix X-` ('' turns an optional one off)."""
    now = service.set_setting(_store(db), key, value)
    render.message(f"{key} = {now}" if now else f"{key} is off (`loopsync config unset {key}` restores the default)")


@config_app.command("unset")
def config_unset(key: Annotated[str, typer.Argument(help="A setting name.")], db: DbOption = None) -> None:
    """Put a setting back to its default."""
    now = service.set_setting(_store(db), key, None)
    render.message(f"{key} = {now} (default)" if now else f"{key} is off (default)")


# -- demo and sandbox ---------------------------------------------------------


@app.command()
def demo(
    keep_db: Annotated[Path | None, typer.Option("--keep-db", help="Keep the demo's state file here.")] = None,
) -> None:
    """Run the whole story against the embedded sandbox store: hold, note, ship, release."""
    from loopsync.demo import run_demo

    run_demo(keep_db=keep_db)


@sandbox_app.command("serve")
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
) -> None:
    """Serve a local Shopify Admin GraphQL + Loop Returns API until Ctrl-C."""
    from loopsync.sandbox.server import serve

    serve(host=host, port=port, scenario=scenario, faults=faults, seed=seed)


# -- entry point --------------------------------------------------------------


# Typer ≥ 0.2x runs its own copy of Click, whose exceptions are not click's: a bad
# flag or a declined confirmation would otherwise end as an "unexpected problem".
_ABORTS: tuple[type[BaseException], ...] = tuple({click.exceptions.Abort, typer.Abort})
_USAGE_ERRORS: tuple[type[BaseException], ...] = tuple(
    {click.ClickException, getattr(typer, "TyperException", click.ClickException)}
)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is honoured wherever it stands, not only before the command.
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        return _run(command, args, debug)
    finally:
        while _opened:
            _opened.pop().close()


def _run(command, args: list[str], debug: bool) -> int:
    try:
        result = command.main(args=args, prog_name="loopsync", standalone_mode=False)
    except _ABORTS:
        render.err().print("Aborted; nothing was changed.")
        return ExitCode.USAGE
    except _USAGE_ERRORS as exc:
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
    return int(result or 0)


def _traceback_if(debug: bool) -> None:
    """--debug adds the traceback and changes nothing else: scripts see the same exit code either way."""
    if debug:
        # Plain stdlib formatting: no locals, which would print API keys.
        traceback.print_exc(file=sys.stderr)

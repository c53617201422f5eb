"""What each command does, as a library: the CLI only parses and renders.

Wires the state file, the stored connection and the two API clients together,
then calls the reconciler. Nothing here prints.

Why one module of about 550 lines: it is the whole surface `cli.py` calls (a test
holds the CLI to it), and each function is a few lines of wiring over a module that
does the work (credentials, subscriptions, explain, history, serve); splitting the
wiring would only scatter the list of what loopsync can do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loopsync import clock, interrupts, settings
from loopsync.credentials import (  # noqa: F401 (re-exported: the command layer's API)
    ShopifyCredentials,
    connect_credentials,
    credentials_to_keep,
    given_loop_webhook_secret,
    given_webhook_secret,
)
from loopsync.errors import ConfigError, CredentialsError, LockHeldError

# The clients, the reconciler and the store are imported where they are used: they
# bring requests, tenacity, graphql-core and sqlite-utils, which `loopsync --help`,
# `--version` and `status` never need (benchmarks/startup.py measures the difference).
if TYPE_CHECKING:
    from loopsync.limits import SharedLimits
    from loopsync.loop import LoopClient
    from loopsync.reconcile import OrderOutcome, Reconciler, ScanReport
    from loopsync.shopify import ShopifyClient
    from loopsync.store import Connection, Store

#: Names the CLI reads from here without importing the reconciler at start-up.
_LAZY = {"ScanInterrupted": "loopsync.reconcile", "ScanReport": "loopsync.reconcile", "OrderOutcome": "loopsync.reconcile"}


def __getattr__(name: str):
    # Module-level __getattr__ (PEP 562): `service.ScanInterrupted` loads the reconciler only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# What loopsync does needs these, in Shopify's terms. A write scope implies its
# read scope, so each need lists every scope that satisfies it.
REQUIRED_SCOPES: dict[str, tuple[str, ...]] = {
    "read orders": ("read_orders", "write_orders"),
    "hold fulfillment orders": (
        "write_merchant_managed_fulfillment_orders",
        "write_third_party_fulfillment_orders",
    ),
    # GUESS: tagsAdd on an Order needs write_orders (Shopify's docs do not say).
    "tag orders": ("write_orders",),
    "read products and selling plans": ("read_products", "write_products"),
}


def missing_scopes(granted: set[str]) -> list[str]:
    return [need for need, any_of in REQUIRED_SCOPES.items() if not granted.intersection(any_of)]


def open_store(db: Path | str, *, read_only: bool = False) -> Store:
    from loopsync.store import Store

    return Store.open(Path(db), read_only=read_only)


def state_file(
    db: Path | str | None, *, create: bool = True, read_only: bool = False, missing_ok: bool = False
) -> Store | None:
    """The state file a command works on (``--db``, else the default path); the caller closes it.

    ``read_only``: a command that only looks, which must work on a file it cannot write
    and never create or change one (implies ``create=False``). ``missing_ok``: no file
    is not an error, and gives ``None`` (only `status` looks at a state file that is not there).
    """
    path = db or settings.default_db_path()
    if (read_only or not create) and not Path(path).expanduser().exists():
        if missing_ok:
            return None
        # A typo in --db or a cron job run before `connect`: say so, and leave no empty state file behind.
        raise ConfigError(f"loopsync is not connected yet (no state file at {path}): run `loopsync connect` first.")
    return open_store(path, read_only=True) if read_only else open_store(path)


def traffic(
    *, record: str | None, replay: str | None, anonymize: bool, store: Store, shop: str | None = None
) -> AbstractContextManager:
    """The context for a command's ``--record``/``--replay``/``--anonymize`` (a no-op without them)."""
    if record is None and replay is None and not anonymize:
        # Without the flags there is nothing to check: the recorder (and YAML) is not even imported.
        return nullcontext()
    from loopsync import recording

    return recording.for_command(record=record, replay=replay, anonymize=anonymize, store=store, shop=shop)


# -- pre-order overrides and settings ---------------------------------------------


def overrides(store: Store) -> list[tuple[str, str]]:
    """The local pre-order overrides as (variant gid, window), in variant order."""
    return sorted(store.config.overrides().items())


def override(variant: str, window: str | None = None) -> tuple[str, str | None]:
    """A variant as typed (gid or number) and its window, checked before any state file is opened."""
    return settings.variant_gid(variant), None if window is None else settings.validate_window(window)


def add_override(store: Store, variant_id: str, window: str) -> None:
    store.config.add_override(variant_id, window)


def remove_override(store: Store, variant_id: str) -> None:
    store.config.remove_override(variant_id)


def setting_values(store: Store) -> dict[str, str | None]:
    """Every setting and the value in force (defaults included)."""
    return store.config.settings()


def options(store: Store) -> settings.Settings:
    """The merchant's settings from the state file, validated (what the reconciler decides with)."""
    return settings.load_settings(store)


def set_setting(store: Store, key: str, value: str | None) -> str | None:
    """Validate and store one setting (None resets it to the default); returns the value now in force."""
    store.config.set_setting(key, settings.validate_change(store.config.settings(), key, value))
    return store.config.get_setting(key)


def unset_setting(store: Store, key: str) -> str | None:
    """Put a setting back to its default; returns the default (None when it is off)."""
    return set_setting(store, key, None)


def _shopify_client(
    shop: str, creds: ShopifyCredentials, api_url: str | None, *, on_new_token=None, cached=None,
    limits: SharedLimits | None = None,
) -> ShopifyClient:
    from loopsync.shopify import ClientCredentials, ShopifyClient, StaticToken

    if creds.token:
        auth = StaticToken(creds.token)
    else:
        token, expires_at = cached or (None, None)
        auth = ClientCredentials(
            creds.client_id,
            creds.client_secret,
            cached_token=token,
            cached_expiry=expires_at,
            on_new_token=on_new_token,
            now=clock.current().now,
        )
    c = clock.current()
    return ShopifyClient(shop, auth, base_url=api_url, sleep=c.sleep, clock=c.monotonic,
                         bucket=limits.shopify if limits else None)


def _loop_client(api_key: str, api_url: str | None, limits: SharedLimits | None = None) -> LoopClient:
    from loopsync.loop import LoopClient

    c = clock.current()
    return LoopClient(api_key, base_url=api_url, now=c.now, clock=c.monotonic, sleep=c.sleep,
                      window=limits.loop if limits else None)


# -- connect / disconnect -------------------------------------------------------


@dataclass(frozen=True)
class ConnectResult:
    shop: str
    shop_name: str | None
    scopes: tuple[str, ...]
    shopify_auth: str
    loop_connected: bool


def connect(
    store: Store,
    *,
    shop: str,
    shopify: ShopifyCredentials,
    loop_key: str,
    shopify_api_url: str | None = None,
    loop_api_url: str | None = None,
    webhook_secret: str | None = None,
    loop_webhook_secret: str | None = None,
) -> ConnectResult:
    """Validate both sets of credentials; store them only if both are accepted.

    ``webhook_secret`` (see :func:`given_webhook_secret`) and ``loop_webhook_secret`` (see
    :func:`given_loop_webhook_secret`): None keeps the stored one.
    """
    shop = settings.validate_shop_domain(shop)
    previous_connection(store, shop)
    if not loop_key:
        raise ConfigError("No Loop API key was given.")
    if not shopify.token and not (shopify.client_id and shopify.client_secret):
        raise ConfigError("No Shopify credentials were given (an Admin API token, or a client id and secret).")

    issued: dict[str, object] = {}

    def keep_token(token: str, expires_at: datetime | None) -> None:
        if expires_at is not None:
            issued["token"], issued["expires_at"] = token, expires_at

    client = _shopify_client(shop, shopify, shopify_api_url, on_new_token=keep_token)
    granted = client.granted_scopes()
    lacking = missing_scopes(granted)
    if lacking:
        raise CredentialsError(
            "The Shopify app is missing access needed to " + ", ".join(lacking) + ": grant "
            + "; ".join(" or ".join(REQUIRED_SCOPES[n]) for n in lacking) + "."
        )
    info = client.shop_info()
    _loop_client(loop_key, loop_api_url).check_key()

    store.config.save_connection(
        shop=shop,
        shopify_auth=shopify.kind,
        shopify_token=shopify.token,
        client_id=shopify.client_id,
        client_secret=shopify.client_secret,
        shopify_api_url=shopify_api_url,
        loop_api_key=loop_key,
        loop_api_url=loop_api_url,
        scopes=sorted(granted),
        webhook_secret=webhook_secret,
        loop_webhook_secret=loop_webhook_secret,
    )
    if issued:
        store.config.save_shopify_access_token(issued["token"], issued["expires_at"])
    return ConnectResult(
        shop=shop,
        shop_name=info.get("name"),
        scopes=tuple(sorted(granted)),
        shopify_auth=shopify.kind,
        loop_connected=True,
    )


def given_shop(shop: str | None) -> str | None:
    """The shop `connect` was given (``--shop``, else LOOPSYNC_SHOP), validated before any state file is touched."""
    shop = shop or settings.env_value(settings.ENV_SHOP)
    return settings.validate_shop_domain(shop) if shop else None


def shop_to_connect(store: Store, given: str | None) -> tuple[str, Connection | None]:
    """The shop `connect` connects (the one given, else the stored one) and the connection it replaces."""
    stored = store.config.connection()
    shop = given or (stored.shop if stored else None)
    if not shop:
        raise ConfigError("No shop given: pass --shop example.myshopify.com or set LOOPSYNC_SHOP.")
    return shop, previous_connection(store, shop)


def url_overrides() -> dict[str, str | None]:
    """The API base URLs `connect` stores: only it reads LOOPSYNC_SHOPIFY_API_URL and LOOPSYNC_LOOP_API_URL."""
    return {
        "shopify_api_url": settings.url_override(settings.ENV_SHOPIFY_API_URL),
        "loop_api_url": settings.url_override(settings.ENV_LOOP_API_URL),
    }


def previous_connection(store: Store, shop: str) -> Connection | None:
    """The connection `connect` replaces: None for a new state file.

    A state file is one store's ledger (its holds, releases and cursor), so it is
    never re-pointed at another shop: that shop gets a state file of its own.
    """
    previous = store.config.connection()
    if previous is not None and previous.shop != shop:
        raise ConfigError(
            f"This state file is connected to {previous.shop}, not {shop}: a state file belongs to one store, "
            f"so connect {shop} with a state file of its own (--db)."
        )
    return previous


def check_environment(conn: Connection, env: Mapping[str, str] | None = None) -> None:
    """Refuse to run when the environment names another shop or API than the stored connection.

    Only `connect` reads LOOPSYNC_SHOP and the two URL variables (into the state file);
    every other command runs with what is stored. A cron line that sets them to
    something else means another store or server, so going on with the stored one
    would act on a store nobody asked for.
    """
    env = os.environ if env is None else env
    shop_text = settings.env_value(settings.ENV_SHOP, env)
    if shop_text is not None:
        shop = settings.validate_shop_domain(shop_text)
        if shop != conn.shop:
            raise ConfigError(
                f"This state file is connected to {conn.shop}, not {shop} ({settings.ENV_SHOP}): "
                f"use the state file for {shop} (--db), or unset {settings.ENV_SHOP}."
            )
    for name, stored, default in (
        (settings.ENV_SHOPIFY_API_URL, conn.shopify_api_url, settings.default_shopify_api_url(conn.shop)),
        (settings.ENV_LOOP_API_URL, conn.loop_api_url, settings.DEFAULT_LOOP_API_URL),
    ):
        wanted = settings.url_override(name, env)
        if wanted is not None and wanted != (stored or default).rstrip("/"):
            # Neither URL is shown: a pasted URL can carry a token.
            raise ConfigError(
                f"{name} is not the URL this state file was connected with: unset it, "
                "or run `loopsync connect` with it to change the stored one."
            )


def require_connection(store: Store) -> Connection:
    """The stored connection, checked against the environment (see :func:`check_environment`)."""
    conn = store.config.connection()
    if conn is None:
        raise ConfigError("loopsync is not connected yet: run `loopsync connect` first.")
    check_environment(conn)
    return conn


def status(store: Store | None, *, check_env: bool = True) -> dict:
    """The status document; a connected state file is first checked against the environment.

    ``store`` None: there is no state file yet (`status` never creates one).
    """
    from loopsync.status import not_connected_document, status_document

    if store is None:
        return not_connected_document()
    conn = store.config.connection()
    if conn is not None and check_env:
        check_environment(conn)
    return status_document(store)


#: How long `disconnect` waits for a running scan to stop.
DISCONNECT_WAIT = 300.0


def disconnect(store: Store, *, on_wait: Callable[[], None] | None = None, timeout: float = DISCONNECT_WAIT) -> bool:
    """Forget the Loop key, then wait for a running scan (and any order in hand) to stop. False when
    Loop was not connected.

    The key goes first: a running scan reads the connection before each hold, tag
    and note, so it starts none after this. Waiting for its lock then covers the
    call it had in flight: once this returns, nothing more is done.
    """
    conn = require_connection(store)
    if not conn.loop_api_key:
        return False
    store.config.forget_loop_key()
    try:
        # A scan, and `loopsync serve`'s worker, each hold an order's lock while acting on
        # it; serve holds no scan lock between scans, so the whole order range is waited for too.
        with store.scan_lock(wait=True, timeout=timeout, on_wait=on_wait), store.every_order_lock(
            timeout=timeout, on_wait=on_wait
        ):
            pass
    except LockHeldError:
        raise LockHeldError(
            f"Loop Returns is disconnected, but the scan running on {store.path} did not stop within "
            f"{timeout:g} s; it starts no new hold, tag or note."
        ) from None
    return True


# -- clients from the stored connection ---------------------------------------


def _cached_token(conn: Connection) -> tuple[str | None, datetime | None]:
    """The cached client-credentials token and its expiry as the client wants them.

    The state file keeps the expiry as ISO text; the Shopify client compares it
    with a datetime. A token whose expiry cannot be read is not used: a fresh
    one is only a grant away.
    """
    if not conn.access_token or not conn.access_token_expires_at:
        return None, None
    try:
        expires_at = datetime.fromisoformat(conn.access_token_expires_at)
    except ValueError:
        return None, None
    return conn.access_token, expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)


def clients(
    store: Store, conn: Connection, *, keep_token: bool = True, limits: SharedLimits | None = None
) -> tuple[ShopifyClient, LoopClient | None]:
    """``keep_token`` False: a read-only command, which must not write a renewed token either.
    ``limits``: rate limits shared with other clients of this process (serve's worker threads)."""
    creds = ShopifyCredentials(conn.shopify_token, conn.client_id, conn.client_secret)

    def persist(token: str, expires_at: datetime | None) -> None:
        # A token without a stated lifetime is not cached: the next run asks
        # for a fresh one rather than trusting it forever.
        if expires_at is not None and keep_token:
            store.config.save_shopify_access_token(token, expires_at)

    shopify = _shopify_client(
        conn.shop,
        creds,
        conn.shopify_api_url,
        on_new_token=persist,
        cached=_cached_token(conn),
        limits=limits,
    )
    # Disconnect wins over everything: no key in the state file, no Loop client.
    loop = _loop_client(conn.loop_api_key, conn.loop_api_url, limits) if conn.loop_api_key else None
    return shopify, loop


def reconciler(store: Store, *, dry_run: bool = False, limits: SharedLimits | None = None) -> Reconciler:
    from loopsync.reconcile import Reconciler

    conn = require_connection(store)
    shopify, loop = clients(store, conn, limits=limits)
    return Reconciler(store, shopify, loop, options(store), dry_run=dry_run, clock=clock.current().now)


def scan(
    store: Store,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    wait: bool = False,
    observer=None,
) -> ScanReport:
    """``observer``: a ``reconcile.ScanObserver`` (progress bar, JSON log) the scan reports to as it goes."""
    rec = reconciler(store, dry_run=dry_run)
    # Signals are caught only once the lock is ours: a scan still queueing for it has
    # nothing to finish, and Ctrl-C or SIGTERM end it as they end any program.
    with store.scan_lock(wait=wait), interrupts.stop_on_signals() as stop:
        return rec.scan(since, stop=stop.check, observer=observer)


def release(store: Store, ref: str) -> OrderOutcome:
    rec = reconciler(store)
    with store.scan_lock(wait=True):
        return rec.release_by_hand(ref)


def explain(store: Store, ref: str) -> dict:
    """The decision trace for one order (see ``loopsync.explain``); reads only, on a read-only state file."""
    from loopsync.explain import explain_order

    conn = require_connection(store)
    shopify, loop = clients(store, conn, keep_token=False)
    return explain_order(store, shopify, loop, options(store), ref, now=now())


def history(store: Store, *, order: str | None = None, since: datetime | None = None, limit: int | None = None) -> dict:
    """Every action loopsync recorded, newest first, from the state file alone (no API call)."""
    from loopsync import history as ledger_history

    order_id = None
    if order is not None:
        order_id = ledger_history.recorded_order(store, order)
    entries = ledger_history.entries(store, order_id=order_id, since=since, limit=limit)
    return {"order": order, "since": since, "limit": limit, "entries": entries}


def scan_every(text: str) -> float:
    """`serve --scan-every` in seconds (0: no periodic scan), checked before the state file is opened."""
    return settings.parse_scan_every(text)


def serve(store: Store, *, host: str, port: int, scan_every: float) -> None:
    """`loopsync serve`: the webhook receiver, until SIGTERM or SIGINT (see loopsync.serve.runner)."""
    require_connection(store)
    path = store.path
    # The runner opens its own connections, one per thread: this one is not kept open meanwhile.
    store.close()
    from loopsync.serve.runner import run

    run(path, host=host, port=port, scan_every=scan_every)


def now() -> datetime:
    return clock.current().now()


def since(text: str | None) -> datetime | None:
    """`scan --since` (2h, 3d, an ISO date) as an instant; read inside a replay, whose clock is the cassette's."""
    return settings.parse_since(text, now()) if text else None


# -- webhook subscriptions --------------------------------------------------------


def webhooks_base(url: str) -> str:
    """``--url`` checked before any state file is opened (see ``subscriptions.base_url``)."""
    from loopsync.subscriptions import base_url

    return base_url(url)


def _shopify_of(store: Store) -> ShopifyClient:
    conn = require_connection(store)
    shopify, _loop = clients(store, conn)
    return shopify


def webhooks_install(store: Store, base: str):
    """Subscribe loopsync's topics at ``base``/webhooks/shopify (``subscriptions.Installed``)."""
    from loopsync import subscriptions

    return subscriptions.install(_shopify_of(store), base)


def webhooks_list(store: Store):
    from loopsync import subscriptions

    return subscriptions.subscriptions(_shopify_of(store))


def webhooks_uninstall(store: Store, base: str):
    from loopsync import subscriptions

    return subscriptions.uninstall(_shopify_of(store), base)


def webhooks_toml(base: str) -> str:
    from loopsync import subscriptions

    return subscriptions.toml(base)


# -- demo and sandbox -------------------------------------------------------------


def demo(*, keep_db: Path | None = None) -> None:
    # The sandbox is imported only here and by `sandbox serve`: the product never needs it otherwise.
    from loopsync.demo import run_demo

    run_demo(keep_db=keep_db)


def serve_sandbox(*, host: str, port: int, scenario: str, faults: str | None, seed: int,
                  webhooks_to: str | None = None) -> None:
    from loopsync.sandbox.server import serve

    serve(host=host, port=port, scenario=scenario, faults=faults, seed=seed, webhooks_to=webhooks_to)

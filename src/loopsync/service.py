"""What each command does, as a library: the CLI only parses and renders.

Wires the state file, the stored connection and the two API clients together,
then calls the reconciler. Nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loopsync import clock, interrupts, settings
from loopsync.errors import ConfigError, CredentialsError, LockHeldError
from loopsync.loop import LoopClient
from loopsync.reconcile import OrderOutcome, Reconciler, ScanInterrupted, ScanReport  # noqa: F401 - for the CLI
from loopsync.shopify import ClientCredentials, ShopifyClient, StaticToken
from loopsync.store import Connection, Store

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


@dataclass(frozen=True)
class ShopifyCredentials:
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    @property
    def kind(self) -> str:
        return "token" if self.token else "client_credentials"


def open_store(db: Path | str, *, read_only: bool = False) -> Store:
    return Store.open(Path(db), read_only=read_only)


def options(store: Store) -> settings.Settings:
    """The merchant's settings from the state file, validated (what the reconciler decides with)."""
    return settings.load_settings(store)


def set_setting(store: Store, key: str, value: str | None) -> str | None:
    """Validate and store one setting (None resets it to the default); returns the value now in force."""
    store.set_setting(key, settings.validate_change(store.settings(), key, value))
    return store.get_setting(key)


def _shopify_client(
    shop: str, creds: ShopifyCredentials, api_url: str | None, *, on_new_token=None, cached=None
) -> ShopifyClient:
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
    return ShopifyClient(shop, auth, base_url=api_url, sleep=c.sleep, clock=c.monotonic)


def _loop_client(api_key: str, api_url: str | None) -> LoopClient:
    c = clock.current()
    return LoopClient(api_key, base_url=api_url, now=c.now, clock=c.monotonic, sleep=c.sleep)


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
) -> ConnectResult:
    """Validate both sets of credentials; store them only if both are accepted."""
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

    store.save_connection(
        shop=shop,
        shopify_auth=shopify.kind,
        shopify_token=shopify.token,
        client_id=shopify.client_id,
        client_secret=shopify.client_secret,
        shopify_api_url=shopify_api_url,
        loop_api_key=loop_key,
        loop_api_url=loop_api_url,
        scopes=sorted(granted),
    )
    if issued:
        store.save_shopify_access_token(issued["token"], issued["expires_at"])
    return ConnectResult(
        shop=shop,
        shop_name=info.get("name"),
        scopes=tuple(sorted(granted)),
        shopify_auth=shopify.kind,
        loop_connected=True,
    )


def previous_connection(store: Store, shop: str) -> Connection | None:
    """The connection `connect` replaces: None for a new state file.

    A state file is one store's ledger (its holds, releases and cursor), so it is
    never re-pointed at another shop: that shop gets a state file of its own.
    """
    previous = store.connection()
    if previous is not None and previous.shop != shop:
        raise ConfigError(
            f"This state file is connected to {previous.shop}, not {shop}: a state file belongs to one store, "
            f"so connect {shop} with a state file of its own (--db)."
        )
    return previous


def credentials_to_keep(
    previous: Connection | None, shopify: ShopifyCredentials | None, loop_key: str | None
) -> tuple[ShopifyCredentials | None, str | None]:
    """What `connect` runs with when only one of the two credentials was given.

    Rotating one key must not need the other: the stored one is checked again with
    the new one and kept. When neither is given nothing is kept (the caller asks for
    both), and a Loop key forgotten by `disconnect` is not there to keep.
    """
    if previous is None or (shopify is None and loop_key is None):
        return shopify, loop_key
    if shopify is None:
        shopify = ShopifyCredentials(previous.shopify_token, previous.client_id, previous.client_secret)
    return shopify, loop_key or previous.loop_api_key


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
    conn = store.connection()
    if conn is None:
        raise ConfigError("loopsync is not connected yet: run `loopsync connect` first.")
    check_environment(conn)
    return conn


def status(store: Store, *, check_env: bool = True) -> dict:
    """The status document; a connected state file is first checked against the environment."""
    from loopsync.status import status_document

    conn = store.connection()
    if conn is not None and check_env:
        check_environment(conn)
    return status_document(store)


#: How long `disconnect` waits for a running scan to stop.
DISCONNECT_WAIT = 300.0


def disconnect(store: Store, *, on_wait: Callable[[], None] | None = None, timeout: float = DISCONNECT_WAIT) -> bool:
    """Forget the Loop key, then wait for a running scan to stop. False when Loop was not connected.

    The key goes first: a running scan reads the connection before each hold, tag
    and note, so it starts none after this. Waiting for its lock then covers the
    call it had in flight: once this returns, nothing more is done.
    """
    conn = require_connection(store)
    if not conn.loop_api_key:
        return False
    store.forget_loop_key()
    try:
        with store.scan_lock(wait=True, timeout=timeout, on_wait=on_wait):
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


def clients(store: Store, conn: Connection) -> tuple[ShopifyClient, LoopClient | None]:
    creds = ShopifyCredentials(conn.shopify_token, conn.client_id, conn.client_secret)

    def persist(token: str, expires_at: datetime | None) -> None:
        # A token without a stated lifetime is not cached: the next run asks
        # for a fresh one rather than trusting it forever.
        if expires_at is not None:
            store.save_shopify_access_token(token, expires_at)

    shopify = _shopify_client(
        conn.shop,
        creds,
        conn.shopify_api_url,
        on_new_token=persist,
        cached=_cached_token(conn),
    )
    # Disconnect wins over everything: no key in the state file, no Loop client.
    loop = _loop_client(conn.loop_api_key, conn.loop_api_url) if conn.loop_api_key else None
    return shopify, loop


def reconciler(store: Store, *, dry_run: bool = False) -> Reconciler:
    conn = require_connection(store)
    shopify, loop = clients(store, conn)
    return Reconciler(store, shopify, loop, options(store), dry_run=dry_run, clock=clock.current().now)


def scan(
    store: Store,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    wait: bool = False,
) -> ScanReport:
    rec = reconciler(store, dry_run=dry_run)
    # Signals are caught only once the lock is ours: a scan still queueing for it has
    # nothing to finish, and Ctrl-C or SIGTERM end it as they end any program.
    with store.scan_lock(wait=wait), interrupts.stop_on_signals() as stop:
        return rec.scan(since, stop=stop.check)


def release(store: Store, ref: str) -> OrderOutcome:
    rec = reconciler(store)
    with store.scan_lock(wait=True):
        return rec.release_by_hand(ref)


def now() -> datetime:
    return clock.current().now()

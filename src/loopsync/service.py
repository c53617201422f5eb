"""What each command does, as a library: the CLI only parses and renders.

Wires the state file, the stored connection and the two API clients together,
then calls the reconciler. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loopsync import clock, settings
from loopsync.errors import ConfigError, CredentialsError
from loopsync.loop import LoopClient
from loopsync.reconcile import OrderOutcome, Reconciler, ScanReport
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
    store.set_setting(key, None if value is None else settings.validate_setting(key, value))
    return store.setting(key)


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


def require_connection(store: Store) -> Connection:
    conn = store.connection()
    if conn is None:
        raise ConfigError("loopsync is not connected yet: run `loopsync connect` first.")
    return conn


def disconnect(store: Store) -> bool:
    """Forget the Loop key. Returns False when Loop was not connected."""
    conn = require_connection(store)
    if not conn.loop_api_key:
        return False
    store.forget_loop_key()
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
    progress: Callable[[str], None] | None = None,
) -> ScanReport:
    rec = reconciler(store, dry_run=dry_run)
    with store.scan_lock(wait=wait):
        return rec.scan(since, progress=progress)


def release(store: Store, ref: str) -> OrderOutcome:
    rec = reconciler(store)
    with store.scan_lock(wait=True):
        return rec.release_by_hand(ref)


def now() -> datetime:
    return clock.current().now()

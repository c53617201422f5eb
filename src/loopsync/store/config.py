"""Configuration records: the connection (secrets included, hence the file's mode 0600), the
merchant's settings and the local pre-order overrides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from loopsync.errors import ConfigError, NotFoundError, StateFileError
from loopsync.settings import SETTING_DEFAULTS
from loopsync.store.errors import sql_errors
from loopsync.store.part import Part, iso, parse_iso, utcnow

#: How long a replaced webhook secret keeps verifying. Shopify's docs say deliveries may be signed
#: with the old secret for up to an hour after a rotation; twice that leaves room for retries.
WEBHOOK_ROTATION_GRACE = timedelta(hours=2)


@dataclass(frozen=True)
class Connection:
    shop: str
    shopify_auth: str  # "token" | "client_credentials"
    shopify_token: str | None
    client_id: str | None
    client_secret: str | None
    access_token: str | None  # cached client-credentials token
    access_token_expires_at: str | None
    shopify_api_url: str | None
    loop_api_key: str | None  # None after `disconnect`
    loop_api_url: str | None
    scopes: tuple[str, ...]
    connected_at: str
    loop_disconnected_at: str | None
    updated_at: str
    webhook_secret: str | None = None
    #: The secret a rotation replaced: it still verifies until previous_webhook_secret_until.
    previous_webhook_secret: str | None = None
    previous_webhook_secret_until: str | None = None
    #: What Loop signs its webhook deliveries with (`serve`'s /webhooks/loop); None: not set up.
    loop_webhook_secret: str | None = None

    @property
    def loop_connected(self) -> bool:
        return self.loop_api_key is not None and self.loop_disconnected_at is None

    def __repr__(self) -> str:  # keep secrets out of reprs, logs and tracebacks
        return f"Connection(shop={self.shop!r}, shopify_auth={self.shopify_auth!r}, loop_connected={self.loop_connected})"


@dataclass(frozen=True)
class Override:
    variant_id: str
    window: str
    added_at: str


def _webhook_secrets(
    existing: dict | None, given: str | None, now: datetime
) -> tuple[str | None, str | None, str | None]:
    """(current, previous, previous until) after a `connect` that was given ``given``."""
    current = existing["webhook_secret"] if existing else None
    previous = existing["previous_webhook_secret"] if existing else None
    until = existing["previous_webhook_secret_until"] if existing else None
    if given is None or given == current:
        return current, previous, until
    if current is None:
        return given, None, None
    return given, current, iso(now + WEBHOOK_ROTATION_GRACE)


def _check_setting(key: str) -> None:
    if key not in SETTING_DEFAULTS:
        raise ConfigError(f"Unknown setting {key!r} (known: {', '.join(SETTING_DEFAULTS)}).")


class Config(Part):
    """The connection, settings and overrides of one state file."""

    # -- connection ------------------------------------------------------------------

    @sql_errors
    def save_connection(
        self,
        *,
        shop: str,
        shopify_auth: str,
        shopify_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        shopify_api_url: str | None = None,
        loop_api_key: str | None,
        loop_api_url: str | None = None,
        scopes: list[str] | tuple[str, ...] = (),
        webhook_secret: str | None = None,
        loop_webhook_secret: str | None = None,
        at: datetime | str | None = None,
    ) -> Connection:
        """Store (or rotate) the connection; clears any cached access token and the disconnect mark.

        A new ``webhook_secret`` keeps the one it replaces verifying for
        :data:`WEBHOOK_ROTATION_GRACE` (Shopify signs with the old one for a while after a
        rotation); ``None`` keeps the stored one. ``loop_webhook_secret`` is replaced outright
        (Loop documents no rotation); ``None`` keeps it too.
        """
        if shopify_auth not in ("token", "client_credentials"):
            raise ValueError(f"unknown shopify_auth {shopify_auth!r}")
        if shopify_auth == "token" and not shopify_token:
            raise ValueError("shopify_auth='token' needs shopify_token")
        if shopify_auth == "client_credentials" and not (client_id and client_secret):
            raise ValueError("shopify_auth='client_credentials' needs client_id and client_secret")
        now = iso(at)
        with self.transaction():
            existing = self._one(
                "SELECT connected_at, webhook_secret, previous_webhook_secret, previous_webhook_secret_until, "
                "loop_webhook_secret FROM connection WHERE id = 1"
            )
            secrets = _webhook_secrets(existing, webhook_secret, parse_iso(now))
            self.db.execute("DELETE FROM connection WHERE id = 1")
            self.db.execute(
                """INSERT INTO connection (id, shop, shopify_auth, shopify_token, client_id, client_secret,
                       access_token, access_token_expires_at, shopify_api_url, loop_api_key, loop_api_url,
                       scopes, connected_at, loop_disconnected_at, updated_at,
                       webhook_secret, previous_webhook_secret, previous_webhook_secret_until,
                       loop_webhook_secret)
                   VALUES (1, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    shop,
                    shopify_auth,
                    shopify_token if shopify_auth == "token" else None,
                    client_id if shopify_auth == "client_credentials" else None,
                    client_secret if shopify_auth == "client_credentials" else None,
                    shopify_api_url,
                    loop_api_key,
                    loop_api_url,
                    json.dumps(sorted(set(scopes))),
                    existing["connected_at"] if existing else now,
                    None if loop_api_key else now,
                    now,
                    *secrets,
                    loop_webhook_secret or (existing["loop_webhook_secret"] if existing else None),
                ],
            )
        connection = self.connection()
        assert connection is not None
        return connection

    @sql_errors
    def connection(self) -> Connection | None:
        """The stored connection, or ``None`` before the first ``connect``."""
        row = self._one("SELECT * FROM connection WHERE id = 1")
        if row is None:
            return None
        return Connection(
            shop=row["shop"],
            shopify_auth=row["shopify_auth"],
            shopify_token=row["shopify_token"],
            client_id=row["client_id"],
            client_secret=row["client_secret"],
            access_token=row["access_token"],
            access_token_expires_at=row["access_token_expires_at"],
            shopify_api_url=row["shopify_api_url"],
            loop_api_key=row["loop_api_key"],
            loop_api_url=row["loop_api_url"],
            scopes=tuple(json.loads(row["scopes"] or "[]")),
            connected_at=row["connected_at"],
            loop_disconnected_at=row["loop_disconnected_at"],
            updated_at=row["updated_at"],
            webhook_secret=row["webhook_secret"],
            previous_webhook_secret=row["previous_webhook_secret"],
            previous_webhook_secret_until=row["previous_webhook_secret_until"],
            loop_webhook_secret=row["loop_webhook_secret"],
        )

    @sql_errors
    def replace_webhook_secrets(self, current: str | None, previous: str | None, loop: str | None) -> None:
        """Overwrite the webhook secrets as they are, the previous one's deadline kept (a
        scrubbed copy of the state file puts placeholders in their place)."""
        with self.transaction():
            self.db.execute(
                """UPDATE connection SET webhook_secret = ?, previous_webhook_secret = ?,
                       previous_webhook_secret_until = CASE WHEN ? IS NULL THEN NULL
                           ELSE previous_webhook_secret_until END,
                       loop_webhook_secret = ?
                   WHERE id = 1""",
                [current, previous, previous, loop],
            )

    @sql_errors
    def forget_loop_key(self, *, at: datetime | str | None = None) -> bool:
        """`disconnect`: drop the Loop key and mark the time. False if there was no connection."""
        now = iso(at)
        with self.transaction():
            cursor = self.db.execute(
                """UPDATE connection SET loop_api_key = NULL, loop_webhook_secret = NULL,
                       loop_disconnected_at = COALESCE(loop_disconnected_at, ?), updated_at = ?
                   WHERE id = 1""",
                [now, now],
            )
        return cursor.rowcount > 0

    @sql_errors
    def save_shopify_access_token(self, token: str | None, expires_at: datetime | str | None) -> None:
        """Cache (or, with ``None``, drop) the client-credentials access token and its expiry."""
        if token is not None and expires_at is None:
            raise ValueError("a cached access token needs its expiry")
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE connection SET access_token = ?, access_token_expires_at = ?, updated_at = ? WHERE id = 1",
                [token, None if expires_at is None else iso(expires_at), utcnow()],
            )
            if cursor.rowcount == 0:
                raise StateFileError(f"The state file {self.path} holds no connection to cache a token for.")

    # -- settings ---------------------------------------------------------------------

    @sql_errors
    def get_setting(self, key: str) -> str | None:
        """The stored value, else the default (``None`` for unset optional settings)."""
        _check_setting(key)
        row = self._one("SELECT value FROM settings WHERE key = ?", [key])
        return row["value"] if row else SETTING_DEFAULTS[key]

    @sql_errors
    def set_setting(self, key: str, value: str | None) -> None:
        """Store a setting; ``None`` removes it so the default applies again."""
        _check_setting(key)
        with self.transaction():
            if value is None:
                self.db.execute("DELETE FROM settings WHERE key = ?", [key])
            else:
                self.db.execute(
                    """INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
                       ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
                    [key, value, utcnow()],
                )

    @sql_errors
    def settings(self) -> dict[str, str | None]:
        """Every known setting with its effective value (stored or default)."""
        stored = {r["key"]: r["value"] for r in self._all("SELECT key, value FROM settings")}
        return {key: stored.get(key, default) for key, default in SETTING_DEFAULTS.items()}

    # -- overrides ----------------------------------------------------------------------------

    @sql_errors
    def add_override(self, variant_id: str, window: str, *, at: datetime | str | None = None) -> Override:
        """Mark a variant as on pre-order locally (replacing its window if already there)."""
        if not window.strip():
            raise ValueError("an override needs a shipping window")
        with self.transaction():
            self.db.execute(
                """INSERT INTO overrides (variant_id, window, added_at) VALUES (?, ?, ?)
                   ON CONFLICT(variant_id) DO UPDATE SET window = excluded.window""",
                [variant_id, window.strip(), iso(at)],
            )
        row = self._one("SELECT * FROM overrides WHERE variant_id = ?", [variant_id])
        assert row is not None
        return Override(**row)

    @sql_errors
    def remove_override(self, variant_id: str) -> None:
        with self.transaction():
            cursor = self.db.execute("DELETE FROM overrides WHERE variant_id = ?", [variant_id])
            if cursor.rowcount == 0:
                raise NotFoundError(f"There is no pre-order override for variant {variant_id}.")

    @sql_errors
    def overrides(self) -> dict[str, str]:
        """``{variant_id: window}``, the shape ``detect`` takes."""
        return {r["variant_id"]: r["window"] for r in self._all("SELECT variant_id, window FROM overrides")}

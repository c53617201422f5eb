"""Where configuration comes from: flags > environment > state file > defaults.

Also the parsing and validation of what users type (shop domains, ``--since``,
API base URLs) and the one safe way to show a secret (:func:`fingerprint`).
Nothing here touches the network; the only I/O is reading the environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from loopsync.errors import ConfigError
from loopsync.store import SETTING_DEFAULTS, Connection, Store

# --- environment variable names (documented in the README) -----------------------

ENV_DB = "LOOPSYNC_DB"
ENV_SHOP = "LOOPSYNC_SHOP"
ENV_SHOPIFY_TOKEN = "LOOPSYNC_SHOPIFY_TOKEN"
ENV_SHOPIFY_CLIENT_ID = "LOOPSYNC_SHOPIFY_CLIENT_ID"
ENV_SHOPIFY_CLIENT_SECRET = "LOOPSYNC_SHOPIFY_CLIENT_SECRET"
ENV_LOOP_API_KEY = "LOOPSYNC_LOOP_API_KEY"
ENV_SHOPIFY_API_URL = "LOOPSYNC_SHOPIFY_API_URL"
ENV_LOOP_API_URL = "LOOPSYNC_LOOP_API_URL"
ENV_VARS = (
    ENV_DB,
    ENV_SHOP,
    ENV_SHOPIFY_TOKEN,
    ENV_SHOPIFY_CLIENT_ID,
    ENV_SHOPIFY_CLIENT_SECRET,
    ENV_LOOP_API_KEY,
    ENV_SHOPIFY_API_URL,
    ENV_LOOP_API_URL,
)
SECRET_ENV_VARS = (ENV_SHOPIFY_TOKEN, ENV_SHOPIFY_CLIENT_SECRET, ENV_LOOP_API_KEY)

DEFAULT_LOOP_API_URL = "https://api.loopreturns.com"

#: Longest note label we accept: the note must fit Loop's 255 characters with room for the window.
MAX_NOTE_LABEL = 40


def env_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """An environment variable, stripped; unset and blank are both ``None``."""
    value = (os.environ if env is None else env).get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


# --- shop domains ----------------------------------------------------------------

# Shopify shop handles: lowercase letters, digits and hyphens, starting with a letter or digit.
_SHOP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")


def validate_shop_domain(value: str) -> str:
    """Normalise ``name``, ``name.myshopify.com`` or ``https://name.myshopify.com/`` to ``name.myshopify.com``."""
    text = (value or "").strip()
    host = text.lower()
    if "://" in host:
        parts = urlsplit(host)
        if (
            parts.scheme not in ("http", "https")
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise _bad_shop(text)
        if parts.username or parts.password or parts.port:
            raise _bad_shop(text)
        host = parts.hostname or ""
    else:
        host = host.rstrip("/")
    if host.endswith(".myshopify.com"):
        name = host[: -len(".myshopify.com")]
    elif "." not in host:
        name = host
    else:
        raise _bad_shop(text)
    if not _SHOP_NAME.match(name) or name.endswith("-"):
        raise _bad_shop(text)
    return f"{name}.myshopify.com"


def _bad_shop(text: str) -> ConfigError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return ConfigError(
        f"'{shown}' is not a Shopify shop domain (expected something like example.myshopify.com)."
    )


# --- API base URLs ------------------------------------------------------------------


def validate_api_url(value: str, *, what: str) -> str:
    """An http(s) base URL without a trailing slash; ``what`` names the variable in the error."""
    text = (value or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is not echoed: a pasted URL can carry a token.
        raise ConfigError(f"{what} must be an http:// or https:// URL with a host name.")
    if parts.username or parts.password:
        raise ConfigError(f"{what} must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what} must not contain a query string or fragment.")
    return text.rstrip("/")


def url_override(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The validated URL in environment variable ``name`` (e.g. ``LOOPSYNC_LOOP_API_URL``), or None if unset."""
    value = env_value(name, env)
    return None if value is None else validate_api_url(value, what=name)


def default_shopify_api_url(shop: str) -> str:
    return f"https://{shop}"


# --- the state file location ---------------------------------------------------------


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """``$LOOPSYNC_DB``, else the platform's per-user data directory + ``loopsync/state.db``."""
    env = os.environ if env is None else env
    explicit = env_value(ENV_DB, env)
    if explicit:
        return Path(explicit).expanduser()
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or env.get("APPDATA") or home / "AppData" / "Local")
    else:
        xdg = env_value("XDG_DATA_HOME", env)
        # The XDG spec says relative paths are invalid and must be ignored.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / "loopsync" / "state.db"


def resolve_db_path(flag: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """``--db`` if given, else :func:`default_db_path`."""
    if flag is not None and str(flag).strip():
        return Path(flag).expanduser()
    return default_db_path(env)


# --- times ------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``"45m"``, ``"2h"``, ``"3d"``, ``"1w"``, ``"30s"`` → timedelta (must be positive)."""
    match = _DURATION.match(text or "")
    if not match:
        raise ConfigError(f"'{text}' is not a valid {what} (use a number and a unit, such as 45m, 2h or 3d).")
    amount = int(match.group(1))
    if amount <= 0:
        raise ConfigError(f"'{text}' is not a valid {what} (it must be more than zero).")
    try:
        return timedelta(**{_UNITS[match.group(2).lower()]: amount})
    except OverflowError:
        raise ConfigError(f"'{text}' is not a valid {what} (too large).") from None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration before ``now`` (``2h``, ``3d``, ``45m``) or an ISO date/datetime.

    A date means midnight UTC; a datetime without an offset is taken as UTC.
    Returns an aware UTC datetime, never later than ``now``.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    value = (text or "").strip()
    if _DURATION.match(value):
        since = now - parse_duration(value, what="--since value")
    else:
        since = _parse_iso_moment(value)
        if since is None:
            raise ConfigError(
                f"'{text}' is not a valid --since value (use a duration such as 2h or 3d, or an ISO date "
                "such as 2026-11-01 or 2026-11-01T09:30:00Z)."
            )
    if since > now:
        raise ConfigError(f"--since {text} is in the future.")
    return since


def _parse_iso_moment(value: str) -> datetime | None:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            return None
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", value, re.I
    ):
        return None
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


# --- secrets ------------------------------------------------------------------------------


def fingerprint(secret: str | None) -> str:
    """A display form that identifies a secret without revealing it: ``…wxyz (sha256:1a2b3c4d)``.

    At most the last 4 characters are shown, and only for secrets of 16+ characters
    (for a short secret 4 characters would be a large share of it).
    """
    if not secret:
        return "(not set)"
    digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
    if len(secret) >= 16:
        return f"…{secret[-4:]} (sha256:{digest})"
    return f"(sha256:{digest})"


# --- merchant settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Typed, validated merchant settings (stored with ``Store.set_setting``)."""

    exchange_name_prefix: str | None = "EXC-"
    exchange_tag: str | None = None
    native_exchange_tag: str | None = "Loop Exchange"
    preorder_tag: str = "pre-order"
    note_label: str = "loopsync"
    metafield_namespace: str = "preorder"
    metafield_key: str = "shipping_window"
    lookback: timedelta = timedelta(days=7)
    overlap: timedelta = timedelta(minutes=10)
    # Post "[label] The pre-order item is ready: the hold was released." when loopsync lifts its hold.
    release_note: bool = True
    # `loopsync release` adds it; a scan never holds an order that carries it.
    release_tag: str = "loopsync-release"


_SWITCH = {"on": "on", "true": "on", "yes": "on", "1": "on", "off": "off", "false": "off", "no": "off", "0": "off"}
#: Settings that name a tag; the release tag must differ from the others or it would undo them.
_TAG_SETTINGS = ("preorder_tag", "exchange_tag", "native_exchange_tag")


def validate_setting(key: str, value: str | None) -> str | None:
    """Check one raw setting value before it is stored; returns it stripped (``None``/blank = unset)."""
    if key not in SETTING_DEFAULTS:
        raise ConfigError(f"Unknown setting '{key}' (known: {', '.join(SETTING_DEFAULTS)}).")
    if value is None or not value.strip():
        if key in ("exchange_tag", "exchange_name_prefix", "native_exchange_tag"):
            return None
        raise ConfigError(f"The setting {key} cannot be empty.")
    value = value.strip()
    if key in ("lookback", "overlap"):
        parse_duration(value, what=key)
    elif key == "note_label":
        if len(value) > MAX_NOTE_LABEL or any(c in value for c in "[]\n\r"):
            raise ConfigError(
                f"The note label must be at most {MAX_NOTE_LABEL} characters, without brackets or line breaks."
            )
    elif key in ("metafield_namespace", "metafield_key"):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ConfigError(f"The setting {key} must be 1-64 letters, digits, '-' or '_'.")
    elif key in (*_TAG_SETTINGS, "release_tag"):
        # tagsAdd takes a comma-separated string too, so a comma would add two tags.
        if "," in value or len(value) > 255:
            raise ConfigError(f"The setting {key} must be one tag: no commas, at most 255 characters.")
    elif key == "release_note":
        if value.lower() not in _SWITCH:
            raise ConfigError(f"The setting {key} must be on or off, not '{value}'.")
        value = _SWITCH[value.lower()]
    return value


def _same_tag(a: str | None, b: str | None) -> bool:
    # Shopify compares tags without regard to case (see detect._norm_tag).
    return a is not None and b is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def check_settings(values: Mapping[str, str | None]) -> None:
    """Rules between settings: the release tag says "never hold", so no other tag may share its name."""
    for other in _TAG_SETTINGS:
        if _same_tag(values.get("release_tag"), values.get(other)):
            raise ConfigError(
                f"The settings release_tag and {other} must be different tags (both are '{values[other]}')."
            )


def validate_change(current: Mapping[str, str | None], key: str, value: str | None) -> str | None:
    """:func:`validate_setting` (``None``: back to the default), then the rules between settings
    as they would be after the change."""
    if key not in SETTING_DEFAULTS:
        raise ConfigError(f"Unknown setting '{key}' (known: {', '.join(SETTING_DEFAULTS)}).")
    checked = None if value is None else validate_setting(key, value)
    after = dict(current)
    after[key] = SETTING_DEFAULTS[key] if value is None else checked
    check_settings(after)
    return checked


def load_settings(store: Store | None, **flags: str | None) -> Settings:
    """Merge flags (non-``None`` values win) over the state file over defaults, validated."""
    unknown = set(flags) - set(SETTING_DEFAULTS)
    if unknown:
        raise ConfigError(f"Unknown setting '{sorted(unknown)[0]}' (known: {', '.join(SETTING_DEFAULTS)}).")
    raw = dict(SETTING_DEFAULTS) if store is None else store.settings()
    raw.update({k: v for k, v in flags.items() if v is not None})
    values = {key: validate_setting(key, value) for key, value in raw.items()}
    check_settings(values)
    return Settings(
        exchange_name_prefix=values["exchange_name_prefix"],
        exchange_tag=values["exchange_tag"],
        native_exchange_tag=values["native_exchange_tag"],
        preorder_tag=values["preorder_tag"] or "pre-order",
        note_label=values["note_label"] or "loopsync",
        metafield_namespace=values["metafield_namespace"] or "preorder",
        metafield_key=values["metafield_key"] or "shipping_window",
        lookback=parse_duration(values["lookback"] or "7d", what="lookback"),
        overlap=parse_duration(values["overlap"] or "10m", what="overlap"),
        release_note=(values["release_note"] or "on") == "on",
        release_tag=values["release_tag"] or "loopsync-release",
    )


# --- the connection in effect ----------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedConnection:
    """What a command should connect with, and where each part came from."""

    shop: str
    shopify_auth: str  # "token" | "client_credentials"
    shopify_token: str | None
    client_id: str | None
    client_secret: str | None
    shopify_api_url: str
    loop_api_key: str | None  # None: Loop disconnected (or never connected): place no holds, post no notes
    loop_api_url: str
    # The cached client-credentials token, only when the credentials came from the state file
    # (a token minted for the stored client is no use to a client id given in the environment).
    access_token: str | None = None
    access_token_expires_at: str | None = None
    # Where each value came from: "flag" | "env" | "state" | "default".
    sources: dict[str, str] = field(default_factory=dict)
    stored: Connection | None = None

    @property
    def loop_connected(self) -> bool:
        return self.loop_api_key is not None

    def __repr__(self) -> str:  # secrets stay out of reprs and tracebacks
        return (
            f"ResolvedConnection(shop={self.shop!r}, shopify_auth={self.shopify_auth!r}, "
            f"loop_connected={self.loop_connected})"
        )


def resolve_connection(
    stored: Connection | None,
    *,
    shop_flag: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedConnection:
    """The connection a command runs with (not ``connect``, which reads its own inputs).

    Precedence: flag > environment > state file. Two rules override it:
    the stored credentials are only used for the shop they were stored for, and a
    `disconnect` recorded in the state file beats ``LOOPSYNC_LOOP_API_KEY``.
    """
    env = os.environ if env is None else env
    sources: dict[str, str] = {}

    shop_text, sources["shop"] = _first(
        (shop_flag, "flag"), (env_value(ENV_SHOP, env), "env"), (stored.shop if stored else None, "state")
    )
    if shop_text is None:
        raise ConfigError("No shop is connected: run `loopsync connect` first (or set LOOPSYNC_SHOP).")
    shop = validate_shop_domain(shop_text)
    usable = stored if stored is not None and stored.shop == shop else None

    env_token = env_value(ENV_SHOPIFY_TOKEN, env)
    env_client_id = env_value(ENV_SHOPIFY_CLIENT_ID, env)
    env_client_secret = env_value(ENV_SHOPIFY_CLIENT_SECRET, env)
    token = client_id = client_secret = cached_token = cached_expiry = None
    if env_token:
        auth, token, sources["shopify_credentials"] = "token", env_token, "env"
    elif env_client_id and env_client_secret:
        auth, client_id, client_secret = "client_credentials", env_client_id, env_client_secret
        sources["shopify_credentials"] = "env"
    elif env_client_id or env_client_secret:
        raise ConfigError(
            f"Set both {ENV_SHOPIFY_CLIENT_ID} and {ENV_SHOPIFY_CLIENT_SECRET}, or neither (only one is set)."
        )
    elif usable is not None:
        auth = usable.shopify_auth
        token, client_id, client_secret = usable.shopify_token, usable.client_id, usable.client_secret
        if auth == "client_credentials":
            cached_token, cached_expiry = usable.access_token, usable.access_token_expires_at
        sources["shopify_credentials"] = "state"
    elif stored is not None:
        raise ConfigError(
            f"The state file is connected to {stored.shop}, not {shop}: run `loopsync connect` for {shop}."
        )
    else:
        raise ConfigError(f"No Shopify credentials for {shop}: run `loopsync connect` first.")

    shopify_url_text, sources["shopify_api_url"] = _first(
        (env_value(ENV_SHOPIFY_API_URL, env), "env"),
        (usable.shopify_api_url if usable else None, "state"),
        (default_shopify_api_url(shop), "default"),
    )
    loop_url_text, sources["loop_api_url"] = _first(
        (env_value(ENV_LOOP_API_URL, env), "env"),
        (usable.loop_api_url if usable else None, "state"),
        (DEFAULT_LOOP_API_URL, "default"),
    )

    if usable is not None and usable.loop_disconnected_at is not None:
        # `disconnect` is the merchant's explicit word; an env var left in a crontab must not undo it.
        loop_key, sources["loop_api_key"] = None, "state"
    else:
        loop_key, sources["loop_api_key"] = _first(
            (env_value(ENV_LOOP_API_KEY, env), "env"), (usable.loop_api_key if usable else None, "state")
        )

    return ResolvedConnection(
        shop=shop,
        shopify_auth=auth,
        shopify_token=token,
        client_id=client_id,
        client_secret=client_secret,
        shopify_api_url=validate_api_url(shopify_url_text or "", what=ENV_SHOPIFY_API_URL),
        loop_api_key=loop_key,
        loop_api_url=validate_api_url(loop_url_text or "", what=ENV_LOOP_API_URL),
        access_token=cached_token,
        access_token_expires_at=cached_expiry,
        sources=sources,
        stored=stored,
    )


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value is not None and str(value).strip():
            return str(value).strip(), source
    return None, "default"


# --- ids the user types -------------------------------------------------------------------------


def variant_gid(value: str) -> str:
    """``123`` or ``gid://shopify/ProductVariant/123`` → the gid (for `preorders add/remove`)."""
    text = (value or "").strip()
    if re.fullmatch(r"\d+", text):
        return f"gid://shopify/ProductVariant/{text}"
    if re.fullmatch(r"gid://shopify/ProductVariant/\d+", text):
        return text
    raise ConfigError(f"'{text}' is not a variant id (expected 123 or gid://shopify/ProductVariant/123).")

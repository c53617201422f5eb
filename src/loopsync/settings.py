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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from loopsync import text as loopsync_text
from loopsync.errors import ConfigError

if TYPE_CHECKING:
    from loopsync.store import Store

# --- environment variable names (documented in the README) -----------------------

ENV_DB = "LOOPSYNC_DB"
ENV_SHOP = "LOOPSYNC_SHOP"
ENV_SHOPIFY_TOKEN = "LOOPSYNC_SHOPIFY_TOKEN"
ENV_SHOPIFY_CLIENT_ID = "LOOPSYNC_SHOPIFY_CLIENT_ID"
ENV_SHOPIFY_CLIENT_SECRET = "LOOPSYNC_SHOPIFY_CLIENT_SECRET"
ENV_LOOP_API_KEY = "LOOPSYNC_LOOP_API_KEY"
ENV_SHOPIFY_API_URL = "LOOPSYNC_SHOPIFY_API_URL"
ENV_LOOP_API_URL = "LOOPSYNC_LOOP_API_URL"
ENV_SHOPIFY_WEBHOOK_SECRET = "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET"
ENV_LOOP_WEBHOOK_SECRET = "LOOPSYNC_LOOP_WEBHOOK_SECRET"
ENV_VARS = (
    ENV_DB,
    ENV_SHOP,
    ENV_SHOPIFY_TOKEN,
    ENV_SHOPIFY_CLIENT_ID,
    ENV_SHOPIFY_CLIENT_SECRET,
    ENV_LOOP_API_KEY,
    ENV_SHOPIFY_API_URL,
    ENV_LOOP_API_URL,
    ENV_SHOPIFY_WEBHOOK_SECRET,
    ENV_LOOP_WEBHOOK_SECRET,
)
SECRET_ENV_VARS = (ENV_SHOPIFY_TOKEN, ENV_SHOPIFY_CLIENT_SECRET, ENV_LOOP_API_KEY, ENV_SHOPIFY_WEBHOOK_SECRET,
                   ENV_LOOP_WEBHOOK_SECRET)

DEFAULT_LOOP_API_URL = "https://api.loopreturns.com"


def _detect():
    # The limits on note labels and windows are detect's; importing it (and the models) at the
    # top would cost every start-up, `loopsync --help` included, for two validators.
    from loopsync import detect

    return detect


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
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The longest duration loopsync takes (lookback, overlap, --since): a year is more than
#: Shopify shows an app without read_all_orders (60 days), and far from datetime's limits.
MAX_DURATION = timedelta(days=365)
DURATION_RANGE = "between 1s and 365d"


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``"45m"``, ``"2h"``, ``"3d"``, ``"1w"``, ``"30s"`` → timedelta, from 1 second to 365 days."""
    match = _DURATION.match(text or "")
    if not match:
        raise ConfigError(
            f"'{_shown(text)}' is not a valid {what}: use a number and a unit (s, m, h, d or w), "
            f"{DURATION_RANGE}, such as 45m, 2h or 3d."
        )
    digits = match.group(1).lstrip("0") or "0"
    # Whole seconds in int arithmetic, and int() never sees thousands of digits (it refuses them).
    seconds = int(digits) * _UNIT_SECONDS[match.group(2).lower()] if len(digits) <= 12 else -1
    if not 0 < seconds <= MAX_DURATION.total_seconds():
        raise ConfigError(f"'{_shown(text)}' is out of range for {what}: it must be {DURATION_RANGE}.")
    return timedelta(seconds=seconds)


def parse_scan_every(text: str) -> float:
    """`serve --scan-every`: a duration in seconds, or 0 (``0``, ``off``) for no periodic scan."""
    if (text or "").strip().lower() in ("0", "off"):
        return 0.0
    return parse_duration(text, what="--scan-every").total_seconds()


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration before ``now`` (``2h``, ``3d``, ``45m``) or an ISO date/datetime.

    A date means midnight UTC; a datetime without an offset is taken as UTC.
    Returns an aware UTC datetime, not later than ``now`` and at most 365 days before it.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    value = (text or "").strip()
    if _DURATION.match(value):
        return now - parse_duration(value, what="--since")
    since = _parse_iso_moment(value)
    if since is None:
        raise ConfigError(
            f"'{_shown(text)}' is not a valid --since value (use a duration such as 2h or 3d, or an ISO date "
            "such as 2026-11-01 or 2026-11-01T09:30:00Z)."
        )
    if since > now:
        raise ConfigError(f"--since {value} is in the future.")
    if since < now - MAX_DURATION:
        # The scan re-reads from here minus the overlap: a date near year 1 would overflow.
        raise ConfigError(f"--since {value} is too far back: it must be within the last 365 days.")
    return since


def _shown(text: str | None, limit: int = 40) -> str:
    """A value the user typed, short enough to repeat in a one-sentence error."""
    return loopsync_text.shorten((text or "").strip(), limit)


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


#: Settings a merchant may change, as stored (``None`` means "not set"): the one place their
#: defaults live; the state file falls back to these and :func:`load_settings` types them.
SETTING_DEFAULTS: dict[str, str | None] = {
    "exchange_name_prefix": "EXC-",
    "exchange_tag": None,
    "native_exchange_tag": "Loop Exchange",
    "preorder_tag": "pre-order",
    "note_label": "loopsync",
    "metafield_namespace": "preorder",
    "metafield_key": "shipping_window",
    "lookback": "7d",
    "overlap": "10m",
    # Post "[label] The pre-order item is ready: the hold was released." when loopsync lifts its hold.
    "release_note": "on",
    # `loopsync release` adds it; a scan never holds an order that carries it.
    "release_tag": "loopsync-release",
    # A loopsync hold gone at Shopify that loopsync did not lift: put it back (``rehold``)
    # or take it as the merchant's decision (``respect``); see ``loopsync.guard``.
    "external_release": "rehold",
    # Put one hold back at most this many times within rehold_window, then stop and say so.
    "rehold_limit": "3",
    "rehold_window": "24h",
}


@dataclass(frozen=True)
class Settings:
    """Typed, validated merchant settings (stored with ``store.config.set_setting``); build with
    :func:`load_settings`, which fills in :data:`SETTING_DEFAULTS`."""

    exchange_name_prefix: str | None
    exchange_tag: str | None
    native_exchange_tag: str | None
    preorder_tag: str
    note_label: str
    metafield_namespace: str
    metafield_key: str
    lookback: timedelta
    overlap: timedelta
    release_note: bool
    release_tag: str
    external_release: str  # rehold | respect
    rehold_limit: int
    rehold_window: timedelta


_SWITCH = {"on": "on", "true": "on", "yes": "on", "1": "on", "off": "off", "false": "off", "no": "off", "0": "off"}
#: Settings that name a tag; the release tag must differ from the others or it would undo them.
_TAG_SETTINGS = ("preorder_tag", "exchange_tag", "native_exchange_tag")


#: Settings that can be turned off: ``config set KEY ''`` stores "off", ``config unset KEY``
#: brings the default back (for exchange_name_prefix that is ``EXC-``, not off).
OPTIONAL_SETTINGS = ("exchange_name_prefix", "exchange_tag", "native_exchange_tag")


EXTERNAL_RELEASE_CHOICES = ("rehold", "respect")
#: How many outside releases of one hold loopsync undoes within ``rehold_window`` before it stops.
MAX_REHOLD_LIMIT = 100
REHOLD_WINDOW_MIN = timedelta(minutes=1)
REHOLD_WINDOW_MAX = timedelta(days=30)


def validate_setting(key: str, value: str | None) -> str | None:
    """Check one raw setting value before it is stored; returns it stripped.

    ``None`` means "not set" (the default applies). A blank value turns an optional
    setting off and is returned as ``""`` so the store keeps it apart from "not set".
    """
    # Imported here, not at the top: the store brings sqlite-utils, which `loopsync --help` never needs.

    if key not in SETTING_DEFAULTS:
        raise ConfigError(f"Unknown setting '{_shown(key)}' (known: {', '.join(SETTING_DEFAULTS)}).")
    if value is None:
        return None
    if not value.strip():
        if key in OPTIONAL_SETTINGS:
            return ""
        raise ConfigError(f"The setting {key} cannot be empty.")
    value = value.strip()
    problem = loopsync_text.line_problem(value)
    if key in ("lookback", "overlap"):
        parse_duration(value, what=key)
    elif key == "note_label":
        # The longest we accept: the note must fit Loop's 255 characters with room for the window.
        longest = _detect().NOTE_LABEL_MAX_LENGTH
        if problem or len(value) > longest or any(c in value for c in "[]"):
            raise ConfigError(
                f"The note label must be one line of printable text, at most {longest} characters, "
                "without brackets."
            )
    elif key in ("metafield_namespace", "metafield_key"):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ConfigError(f"The setting {key} must be 1-64 letters, digits, '-' or '_'.")
    elif key in (*_TAG_SETTINGS, "release_tag", "exchange_name_prefix"):
        # tagsAdd takes a comma-separated string too, so a comma would add two tags.
        if problem or "," in value or len(value) > 255:
            raise ConfigError(
                f"The setting {key} must be one tag: one line of printable text without commas, at most 255 characters."
            )
    elif key == "release_note":
        if value.lower() not in _SWITCH:
            raise ConfigError(f"The setting {key} must be on or off, not '{value}'.")
        value = _SWITCH[value.lower()]
    elif key == "external_release":
        if value.lower() not in EXTERNAL_RELEASE_CHOICES:
            raise ConfigError(f"The setting {key} must be rehold or respect, not '{_shown(value)}'.")
        value = value.lower()
    elif key == "rehold_limit":
        if not re.fullmatch(r"\d{1,3}", value) or not 1 <= int(value) <= MAX_REHOLD_LIMIT:
            raise ConfigError(f"The setting {key} must be a whole number from 1 to {MAX_REHOLD_LIMIT}.")
        value = str(int(value))
    elif key == "rehold_window":
        window = parse_duration(value, what=key)
        if not REHOLD_WINDOW_MIN <= window <= REHOLD_WINDOW_MAX:
            raise ConfigError(f"'{_shown(value)}' is out of range for {key}: it must be between 1m and 30d.")
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
    # Imported here, not at the top: the store brings sqlite-utils, which `loopsync --help` never needs.

    if key not in SETTING_DEFAULTS:
        raise ConfigError(f"Unknown setting '{key}' (known: {', '.join(SETTING_DEFAULTS)}).")
    checked = None if value is None else validate_setting(key, value)
    after = dict(current)
    after[key] = SETTING_DEFAULTS[key] if value is None else checked
    check_settings(after)
    return checked


def load_settings(store: Store | None, **flags: str | None) -> Settings:
    """Merge flags (non-``None`` values win) over the state file over defaults, validated."""
    # Imported here, not at the top: the store brings sqlite-utils, which `loopsync --help` never needs.

    unknown = set(flags) - set(SETTING_DEFAULTS)
    if unknown:
        raise ConfigError(f"Unknown setting '{sorted(unknown)[0]}' (known: {', '.join(SETTING_DEFAULTS)}).")
    raw = dict(SETTING_DEFAULTS) if store is None else store.config.settings()
    values = {key: _stored_setting(key, value) for key, value in raw.items()}
    values.update({k: validate_setting(k, v) for k, v in flags.items() if v is not None})
    check_settings(values)
    # Blank turns an optional setting off; a required one cannot be blank, so `or` only
    # ever supplies the default to a value that is not set.
    filled: dict[str, str] = {key: values[key] or SETTING_DEFAULTS[key] for key in SETTING_DEFAULTS if key not in OPTIONAL_SETTINGS}
    return Settings(
        exchange_name_prefix=values["exchange_name_prefix"] or None,
        exchange_tag=values["exchange_tag"] or None,
        native_exchange_tag=values["native_exchange_tag"] or None,
        preorder_tag=filled["preorder_tag"],
        note_label=filled["note_label"],
        metafield_namespace=filled["metafield_namespace"],
        metafield_key=filled["metafield_key"],
        lookback=parse_duration(filled["lookback"], what="lookback"),
        overlap=parse_duration(filled["overlap"], what="overlap"),
        release_note=filled["release_note"] == "on",
        release_tag=filled["release_tag"],
        external_release=filled["external_release"],
        rehold_limit=int(filled["rehold_limit"]),
        rehold_window=parse_duration(filled["rehold_window"], what="rehold_window"),
    )


def _stored_setting(key: str, value: str | None) -> str | None:
    """A value from the state file, which an older loopsync may have accepted unchecked."""
    try:
        return validate_setting(key, value)
    except ConfigError as exc:
        raise ConfigError(
            f"The {key} setting stored in this state file is not accepted ({exc.message.rstrip('.')}): "
            f"run `loopsync config unset {key}` to go back to the default, or set a valid value."
        ) from None


# --- the connection in effect ----------------------------------------------------------------


def validate_window(value: str) -> str:
    """A shipping window for `preorders add`: one printable line that fits the Loop note uncut."""
    window = (value or "").strip()
    if not window:
        raise ConfigError("The shipping window must not be empty.")
    problem = loopsync_text.line_problem(window)
    longest = _detect().WINDOW_MAX_LENGTH
    if problem or len(window) > longest:
        why = problem or f"it is {len(window)} characters long"
        raise ConfigError(
            f"The shipping window must be one line of printable text, at most {longest} "
            f"characters ({why})."
        )
    return window


# --- ids the user types -------------------------------------------------------------------------


def variant_gid(value: str) -> str:
    """``123`` or ``gid://shopify/ProductVariant/123`` → the gid (for `preorders add/remove`)."""
    text = (value or "").strip()
    if re.fullmatch(r"\d+", text):
        return f"gid://shopify/ProductVariant/{text}"
    if re.fullmatch(r"gid://shopify/ProductVariant/\d+", text):
        return text
    raise ConfigError(f"'{text}' is not a variant id (expected 123 or gid://shopify/ProductVariant/123).")

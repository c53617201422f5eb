from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loopsync import settings
from loopsync.errors import ConfigError
from loopsync.store import Store

# Pure code: the no-network guard proves these tests stay fast and offline.
pytestmark = pytest.mark.no_network

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example", "example.myshopify.com"),
        ("Example", "example.myshopify.com"),
        ("my-shop-2", "my-shop-2.myshopify.com"),
        ("example.myshopify.com", "example.myshopify.com"),
        (" example.myshopify.com/ ", "example.myshopify.com"),
        ("https://example.myshopify.com/", "example.myshopify.com"),
        ("https://example.myshopify.com", "example.myshopify.com"),
        ("HTTPS://EXAMPLE.MYSHOPIFY.COM/", "example.myshopify.com"),
        ("http://example.myshopify.com", "example.myshopify.com"),
    ],
)
def test_shop_domain_accepted(text, expected):
    assert settings.validate_shop_domain(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "example.com",
        "shop.example.com",
        "example.myshopify.com.evil.com",
        "https://example.myshopify.com/admin",
        "https://example.myshopify.com/?x=1",
        "ftp://example.myshopify.com",
        "https://user:pw@example.myshopify.com",
        "https://example.myshopify.com:8443",
        "exa mple",
        "exa_mple",
        "-example",
        "example-",
        ".myshopify.com",
        "ex/ample",
        "x" * 61,
    ],
)
def test_shop_domain_rejected(text):
    with pytest.raises(ConfigError) as info:
        settings.validate_shop_domain(text)
    assert (
        "is not a Shopify shop domain (expected something like example.myshopify.com)." in info.value.message
    )
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("3d", NOW - timedelta(days=3)),
        ("45m", NOW - timedelta(minutes=45)),
        ("30s", NOW - timedelta(seconds=30)),
        ("1w", NOW - timedelta(weeks=1)),
        (" 2H ", NOW - timedelta(hours=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:30:00Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01T09:30", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01 09:30:15.5", datetime(2026, 11, 1, 9, 30, 15, 500000, tzinfo=UTC)),
        ("2026-11-01T10:30:00+01:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-26T12:00:00Z", NOW),
    ],
)
def test_parse_since(text, expected):
    parsed = settings.parse_since(text, NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "junk",
        "2",
        "h",
        "0h",
        "-2h",
        "2 hours",
        "2y",
        "2026-13-01",
        "2026-02-30",
        "26-11-01",
        "2026-11-01T25:00",
        "2026-11-27",
        "9999999999999d",
        "now",
    ],
)
def test_parse_since_rejects(text):
    with pytest.raises(ConfigError):
        settings.parse_since(text, NOW)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOOPSYNC_DB": "/x/y.db", "HOME": "/home/u"}, Path("/x/y.db")),
        ({"HOME": "/home/u"}, Path("/home/u/.local/share/loopsync/state.db")),
        ({"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, Path("/data/loopsync/state.db")),
        ({"HOME": "/home/u", "XDG_DATA_HOME": "relative"}, Path("/home/u/.local/share/loopsync/state.db")),
        ({"HOME": "/home/u", "LOOPSYNC_DB": "  "}, Path("/home/u/.local/share/loopsync/state.db")),
    ],
)
def test_default_db_path(env, expected, monkeypatch):
    monkeypatch.setattr(settings.sys, "platform", "linux")
    assert settings.default_db_path(env) == expected


def test_resolve_db_path_flag_wins():
    assert settings.resolve_db_path("/a.db", {"LOOPSYNC_DB": "/b.db"}) == Path("/a.db")
    assert settings.resolve_db_path(None, {"LOOPSYNC_DB": "/b.db"}) == Path("/b.db")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://api.loopreturns.com/", "https://api.loopreturns.com"),
        ("http://localhost:9/shop/", "http://localhost:9/shop"),
        ("ftp://x", None),
        ("file:///etc/passwd", None),
        ("127.0.0.1:8080", None),
        ("", None),
        ("https://user:secret@host", None),
        ("https://host/?token=abc", None),
    ],
)
def test_validate_api_url(url, ok):
    if ok is None:
        with pytest.raises(ConfigError) as info:
            settings.validate_api_url(url, what="LOOPSYNC_LOOP_API_URL")
        assert "LOOPSYNC_LOOP_API_URL" in info.value.message
        assert "secret" not in info.value.message and "abc" not in info.value.message
    else:
        assert settings.validate_api_url(url, what="X") == ok


@pytest.mark.parametrize(
    "secret", ["shpat_0123456789abcdef0123456789abcdef", "abcdefghijklmnop", "short", "a", "12345678901234"]  # fake
)
def test_fingerprint_reveals_at_most_four_characters(secret):
    shown = settings.fingerprint(secret)
    assert "sha256:" in shown
    assert shown == settings.fingerprint(secret)  # stable
    assert shown != settings.fingerprint(secret + "x")
    # No run of 5+ characters of the secret appears in the display form.
    for i in range(len(secret) - 4):
        assert secret[i : i + 5] not in shown
    if len(secret) >= 16:
        assert shown.startswith("…" + secret[-4:])
    else:
        assert secret[-4:] not in shown.split("(")[0]


def test_fingerprint_of_nothing():
    assert settings.fingerprint(None) == "(not set)"
    assert settings.fingerprint("") == "(not set)"


def test_env_names_in_one_place():
    assert set(settings.SECRET_ENV_VARS) <= set(settings.ENV_VARS)
    assert all(name.startswith("LOOPSYNC_") for name in settings.ENV_VARS)
    assert len(set(settings.ENV_VARS)) == 10


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


def test_load_settings_precedence(store):
    defaults = settings.Settings(
        exchange_name_prefix="EXC-",
        exchange_tag=None,
        native_exchange_tag="Loop Exchange",
        preorder_tag="pre-order",
        note_label="loopsync",
        metafield_namespace="preorder",
        metafield_key="shipping_window",
        lookback=timedelta(days=7),
        overlap=timedelta(minutes=10),
        release_note=True,
        release_tag="loopsync-release",
        external_release="rehold",
        rehold_limit=3,
        rehold_window=timedelta(hours=24),
    )
    assert settings.load_settings(None) == defaults
    assert settings.load_settings(store) == defaults
    store.config.set_setting("preorder_tag", "preorder-hold")
    store.config.set_setting("lookback", "3d")
    loaded = settings.load_settings(store, preorder_tag=None, note_label="PreProduct")
    assert loaded.preorder_tag == "preorder-hold"
    assert loaded.lookback == timedelta(days=3)
    assert loaded.note_label == "PreProduct"
    assert settings.load_settings(store, preorder_tag="flag-tag").preorder_tag == "flag-tag"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lookback", "forever"),
        ("overlap", "0m"),
        ("note_label", "x" * 41),
        ("note_label", "a]b"),
        ("preorder_tag", "a,b"),
        ("preorder_tag", ""),
        ("metafield_key", "shipping window"),
        ("nonsense", "1"),
    ],
)
def test_validate_setting_rejects(key, value):
    with pytest.raises(ConfigError):
        settings.validate_setting(key, value)


def test_optional_settings_can_be_turned_off_or_unset():
    # Blank is "off", kept apart from None ("not set": the default applies).
    assert settings.validate_setting("exchange_tag", "") == ""
    assert settings.validate_setting("exchange_name_prefix", None) is None
    assert settings.validate_setting("preorder_tag", " pre-order ") == "pre-order"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123", "gid://shopify/ProductVariant/123"),
        (" gid://shopify/ProductVariant/9 ", "gid://shopify/ProductVariant/9"),
    ],
)
def test_variant_gid(text, expected):
    assert settings.variant_gid(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "gid://shopify/Product/1", "12a"])
def test_variant_gid_rejects(text):
    with pytest.raises(ConfigError):
        settings.variant_gid(text)


def test_url_override():
    assert settings.url_override("LOOPSYNC_LOOP_API_URL", {}) is None
    assert settings.url_override(
        "LOOPSYNC_LOOP_API_URL", {"LOOPSYNC_LOOP_API_URL": " http://127.0.0.1:1/ "}
    ) == ("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="LOOPSYNC_LOOP_API_URL"):
        settings.url_override("LOOPSYNC_LOOP_API_URL", {"LOOPSYNC_LOOP_API_URL": "gopher://x"})

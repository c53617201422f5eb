"""Which credentials `connect` runs with: from stdin, the environment, the stored connection or a prompt.

Kept apart from ``service`` because it is the one place that decides where a secret
comes from (and never where it goes): a flag value never carries one, stdin and the
environment do, and a rotation of one key keeps the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopsync import settings
from loopsync.errors import ConfigError

if TYPE_CHECKING:
    from loopsync.store import Connection


@dataclass(frozen=True)
class ShopifyCredentials:
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    @property
    def kind(self) -> str:
        return "token" if self.token else "client_credentials"


def given_webhook_secret(creds: ShopifyCredentials) -> str | None:
    """The secret `loopsync serve` verifies Shopify's webhook signatures with.

    LOOPSYNC_SHOPIFY_WEBHOOK_SECRET, else (client credentials) the client secret,
    which is what Shopify signs a Dev Dashboard app's deliveries with. None: keep the
    stored one (a token-only connect knows no secret to sign with).
    """
    return settings.env_value(settings.ENV_SHOPIFY_WEBHOOK_SECRET) or creds.client_secret


def given_loop_webhook_secret() -> str | None:
    """LOOPSYNC_LOOP_WEBHOOK_SECRET: the secret Loop's Developer Tools page shows, which it signs
    its webhook deliveries with (``serve``'s /webhooks/loop). None: keep the stored one."""
    return settings.env_value(settings.ENV_LOOP_WEBHOOK_SECRET)


#: Where the secrets are asked for: (environment variable, stdin flag, what it is).
_SHOPIFY_TOKEN = (settings.ENV_SHOPIFY_TOKEN, "--shopify-token-stdin", "Shopify Admin API access token")
_LOOP_KEY = (settings.ENV_LOOP_API_KEY, "--loop-key-stdin", "Loop Returns API key")


def connect_credentials(
    previous: Connection | None,
    *,
    shopify_token_stdin: bool,
    loop_key_stdin: bool,
    read_line: Callable[[], str],
    ask: Callable[[str], str] | None,
) -> tuple[ShopifyCredentials, str]:
    """The credentials `connect` runs with, from stdin, the environment, the stored connection or a prompt.

    ``read_line`` reads one line of stdin; ``ask`` prompts for a secret with hidden
    input, and is None when there is no terminal to ask at.
    """
    creds, loop_key = credentials_to_keep(
        previous,
        _given_shopify(shopify_token_stdin, read_line),
        _given_secret(_LOOP_KEY, loop_key_stdin, read_line),
    )
    if creds is None:
        creds = ShopifyCredentials(token=_asked(_SHOPIFY_TOKEN, ask))
    if loop_key is None:
        loop_key = _asked(_LOOP_KEY, ask)
    return creds, loop_key


def _given_secret(source: tuple[str, str, str], stdin_flag: bool, read_line: Callable[[], str]) -> str | None:
    """A secret given on stdin (one line) or in the environment; None when not given."""
    env, _flag, what = source
    if stdin_flag:
        value = read_line().strip()
        if not value:
            raise ConfigError(f"Nothing was read from standard input for the {what}.")
        return value
    return settings.env_value(env)


def _asked(source: tuple[str, str, str], ask: Callable[[str], str] | None) -> str:
    env, flag, what = source
    if ask is None:
        raise ConfigError(f"No {what} given: set {env} or pipe it in with {flag}.")
    return ask(what)


def _given_shopify(token_stdin: bool, read_line: Callable[[], str]) -> ShopifyCredentials | None:
    # Read before the Loop key: with both --…-stdin options, line 1 is the token, line 2 the key.
    token = _given_secret(_SHOPIFY_TOKEN, token_stdin, read_line)
    if token:
        return ShopifyCredentials(token=token)
    client_id = settings.env_value(settings.ENV_SHOPIFY_CLIENT_ID)
    client_secret = settings.env_value(settings.ENV_SHOPIFY_CLIENT_SECRET)
    if client_id and client_secret:
        return ShopifyCredentials(client_id=client_id, client_secret=client_secret)
    if client_id or client_secret:
        raise ConfigError(
            f"Set both {settings.ENV_SHOPIFY_CLIENT_ID} and {settings.ENV_SHOPIFY_CLIENT_SECRET}, or neither."
        )
    return None


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

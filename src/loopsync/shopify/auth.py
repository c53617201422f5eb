"""How loopsync proves who it is to Shopify: a static token, or client credentials and their grant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests

from loopsync import http
from loopsync.errors import CredentialsError, TransientApiError
from loopsync.models import CallStats

# Renew a client-credentials token this long before Shopify says it expires, so a
# scan that starts just before expiry does not meet a 401 halfway through.
RENEW_MARGIN = timedelta(minutes=5)


class StaticToken:
    """An Admin API access token that never changes (a custom app's token)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an access token is required")
        self._token = token

    @property
    def token(self) -> str:
        return self._token

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class ClientCredentials:
    """A Dev Dashboard app's client id and secret, exchanged for short-lived tokens.

    ``cached_token``/``cached_expiry`` come from the caller's store; ``on_new_token``
    is called with (token, expires_at) after each exchange so it can persist them.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        cached_token: str | None = None,
        cached_expiry: datetime | None = None,
        on_new_token: Callable[[str, datetime | None], None] | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("a client id and a client secret are required")
        self.client_id = client_id
        self._client_secret = client_secret
        self._token = cached_token
        self._expires_at = cached_expiry
        self._on_new_token = on_new_token
        self._now = now

    def usable_token(self) -> str | None:
        """The cached token, unless it is missing or expires within RENEW_MARGIN."""
        if not self._token:
            return None
        if self._expires_at is not None:
            expires = self._expires_at if self._expires_at.tzinfo else self._expires_at.replace(tzinfo=UTC)
            if expires - self._now() <= RENEW_MARGIN:
                return None
        return self._token

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }

    def accept(self, token: str, expires_in: float | None) -> None:
        # GUESS: an answer without expires_in is treated as not expiring; a later 401
        # still renews it.
        self._token = token
        self._expires_at = self._now() + timedelta(seconds=expires_in) if expires_in else None
        if self._on_new_token is not None:
            self._on_new_token(token, self._expires_at)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._client_secret, self._token) if s)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret=<redacted>)"


Auth = StaticToken | ClientCredentials


def grant_token(
    session: requests.Session,
    token_url: str,
    credentials: ClientCredentials,
    *,
    timeout: tuple[float, float],
    stats: CallStats,
) -> str:
    """One client-credentials grant: a new access token, handed to ``credentials`` as well.

    Raises ``http.Retry`` for failures worth trying again (the caller owns the retry
    policy) and CredentialsError when Shopify refuses the credentials.
    """
    stats.count("oauth/access_token")
    try:
        response = session.post(token_url, data=credentials.form(), timeout=timeout)
    except requests.RequestException as exc:
        raise http.Retry(
            TransientApiError(f"Shopify's token endpoint could not be reached: {http.describe_request_error(exc)}.")
        ) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise http.Retry(
            TransientApiError(f"Shopify's token endpoint kept failing (HTTP {response.status_code})."),
            wait=http.parse_retry_after(response.headers.get("Retry-After")),
        )
    ok, body = http.parse_json(response)
    if response.status_code != 200 or not ok or not isinstance(body, dict) or not body.get("access_token"):
        detail = ""
        if isinstance(body, dict):
            description = body.get("error_description") or http.error_message_from_body(body)
            detail = f": {str(description).rstrip('.')}" if description else ""
        message = (
            f"Shopify rejected the app's client credentials (HTTP {response.status_code}){detail}. "
            "Check the client id and secret, and that the app is installed on the store."
        )
        raise CredentialsError(http.redact(message, credentials.secrets()))
    expires_in = body.get("expires_in")
    credentials.accept(body["access_token"], float(expires_in) if isinstance(expires_in, int | float) else None)
    return body["access_token"]

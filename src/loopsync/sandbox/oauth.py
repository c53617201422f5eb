"""``POST /admin/oauth/access_token`` with the client credentials grant.

Shopify (https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/client-credentials-grant)
answers ``{"access_token", "scope", "expires_in"}``; the token lasts 24 hours
(``world.token_ttl`` here). Errors are OAuth-style ``{"error", "error_description"}``
bodies; public reports show 400 with ``app_not_installed`` / ``shop_not_permitted``.
"""

from __future__ import annotations

import secrets
from typing import Any

from loopsync.sandbox.world import IssuedToken, LogEntry, World

TOKEN_PATH = "/admin/oauth/access_token"


def _error(status: int, error: str, description: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return status, {}, {"error": error, "error_description": description}


def _grant(world: World, form: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
    grant_type = form.get("grant_type")
    client_id = form.get("client_id")
    client_secret = form.get("client_secret")
    if not grant_type or not client_id:
        # GUESS: wording; RFC 6749's invalid_request.
        return _error(400, "invalid_request", "The request is missing a required parameter.")
    if grant_type != "client_credentials":
        # GUESS: the sandbox supports only this grant; RFC 6749 names the error.
        return _error(400, "unsupported_grant_type",
                      "The authorization grant type is not supported by the authorization server.")
    with world.lock:
        app = next((a for a in world.apps.values() if a.client_id == client_id), None)
        if app is None or not client_secret or not secrets.compare_digest(app.client_secret or "", client_secret):
            # GUESS: status and wording for unknown client or wrong secret (RFC 6749 invalid_client,
            # which OAuth servers answer with 401). An uninstalled app reads app_not_installed at Shopify.
            return _error(401, "invalid_client",
                          "Client authentication failed due to unknown client, no client authentication "
                          "included, or unsupported authentication method.")
        token = "shpat_" + secrets.token_hex(16)
        world.tokens[token] = IssuedToken(token=token, app_id=app.id, expires_at=world.now() + world.token_ttl)
        return 200, {}, {
            "access_token": token,
            "scope": ",".join(app.scopes),
            "expires_in": int(world.token_ttl.total_seconds()),
        }


def handle_access_token(world: World, form: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Answer the token request; ``form`` is the decoded form (or JSON) body. Secrets are never logged."""
    status, headers, body = _grant(world, form)
    world.record(LogEntry(at=world.now(), api="oauth", method="POST", path=TOKEN_PATH, status=status,
                          operation=form.get("grant_type")))
    return status, headers, body

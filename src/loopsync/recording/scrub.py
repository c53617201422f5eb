"""Credentials out of everything a cassette holds, before anything reaches the disk."""

from __future__ import annotations

import json
import re
from typing import Any

PLACEHOLDER = "[scrubbed]"
SANDBOX_ORIGIN = "http://sandbox.test"
ANONYMOUS_SHOP = "anonymized-shop.myshopify.com"
FORMAT = "loopsync-cassette/1"

# vcrpy's default filters know neither header: each is kept, with its value replaced,
# so a reader sees which credential a request carried but never the credential.
SECRET_HEADERS = ("X-Shopify-Access-Token", "X-Authorization")
SECRET_FORM_FIELDS = ("client_secret",)
SECRET_RESPONSE_KEYS = ("access_token",)
# Only these headers are kept: the rest (Date, Server, User-Agent with our version,
# Content-Length) is noise that would make every re-recording differ.
KEEP_REQUEST_HEADERS = {"content-type", *(h.lower() for h in SECRET_HEADERS)}
KEEP_RESPONSE_HEADERS = {
    "content-type",
    "retry-after",
    "location",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-shopify-shop-api-call-limit",
}
# Shopify token shapes (admin, client secret, custom app, private app), scrubbed wherever they appear.
TOKEN_SHAPE = re.compile(r"\bshp(?:at|ss|ca|pa|ua)_[A-Za-z0-9_]+")
LOOPBACK_ORIGIN = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?", re.IGNORECASE)
SHORTEST_SECRET = 4
MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "loopsync_body")



# --- scrubbing ------------------------------------------------------------------------


class Scrubber:
    """Finds the credentials a run sends and keeps them (and the shop, if asked) out of the cassette.

    Secrets are learned from what goes over the wire (the two auth headers, the form's
    client_secret, the token endpoint's access_token), so nothing has to be told which
    values are secret; token-shaped strings are scrubbed wherever they appear.
    """

    def __init__(self, *, shop: str | None = None, anonymize: bool = False, learn: bool = True) -> None:
        self.secrets: set[str] = set()
        self.shop = shop.lower() if shop else None
        self.anonymize = anonymize
        self.learn = learn

    def harvest(self, key: str, value: Any, request: Any = None) -> str:
        """vcrpy filter callback: remember the value, write the placeholder."""
        if self.learn and isinstance(value, str | bytes):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if len(text) >= SHORTEST_SECRET and text != PLACEHOLDER:
                self.secrets.add(text)
        return PLACEHOLDER

    def text(self, value: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            value = value.replace(secret, PLACEHOLDER)
        value = TOKEN_SHAPE.sub(PLACEHOLDER, value)
        value = LOOPBACK_ORIGIN.sub(SANDBOX_ORIGIN, value)
        if self.anonymize and self.shop:
            value = re.sub(re.escape(self.shop), ANONYMOUS_SHOP, value, flags=re.IGNORECASE)
        return value

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            try:
                return self.text(value.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                return value
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.deep(v) for v in value)
        return value

    def leaks(self, text: str) -> list[str]:
        """Which learned secrets (by position, never by value) or token shapes remain in ``text``."""
        found = [f"secret #{i}" for i, s in enumerate(sorted(self.secrets)) if s in text]
        if TOKEN_SHAPE.search(text):
            found.append("a Shopify token-shaped string")
        return found

    # -- vcrpy hooks --

    def request(self, request: Any) -> Any:
        request.uri = self.text(request.uri)
        request.headers = {k: v for k, v in request.headers.items() if k.lower() in KEEP_REQUEST_HEADERS}
        if request.body:
            request.body = self.deep(request.body)
        return request

    def response(self, response: dict) -> dict:
        headers = response.get("headers") or {}
        response["headers"] = {k: v for k, v in headers.items() if k.lower() in KEEP_RESPONSE_HEADERS}
        body = response.get("body") or {}
        raw = body.get("string")
        if isinstance(raw, bytes | str) and raw:
            ok, parsed = _json(raw)
            if ok and isinstance(parsed, dict) and any(k in parsed for k in SECRET_RESPONSE_KEYS):
                for key in SECRET_RESPONSE_KEYS:
                    if key in parsed:
                        parsed[key] = self.harvest(key, parsed[key])
                raw = json.dumps(parsed, separators=(",", ":")).encode("utf-8")
            body["string"] = self.deep(raw)
        return response


def _json(raw: bytes | str) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False, None



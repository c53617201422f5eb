"""Webhook signatures: base64 of HMAC-SHA256 over the raw body, keyed with the sender's secret.

Shopify's ``X-Shopify-Hmac-Sha256`` (the app's secret) and Loop's ``X-Loop-Signature`` (the
secret on Loop's Developer Tools page) are made the same way.

The raw bytes are hashed exactly as received (never a re-serialised JSON), and the
comparison takes the same time whatever the mismatch, so a caller cannot learn the
signature byte by byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def sign(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verified(body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
    """True when ``signature`` is ``body``'s signature under one of ``secrets``.

    Every secret is tried even after a match: the time taken does not say which one
    (or whether a rotation is under way).
    """
    if not signature:
        return False
    given = signature.strip().encode()
    ok = False
    for secret in secrets:
        if secret and hmac.compare_digest(sign(secret, body).encode(), given):
            ok = True
    return ok

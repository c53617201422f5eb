"""`loopsync serve`: the Shopify webhook receiver, its durable inbox and the worker behind it.

Imported only by that command: Starlette, uvicorn and prometheus-client are never
loaded by a cron `scan` or by `--help`. The parts: ``verify`` (signatures), ``app``
(the HTTP routes: verify, write to the inbox, acknowledge), ``worker`` (inbox rows →
the same per-order reconcile a scan uses), ``metrics`` and ``runner`` (uvicorn, the
periodic scan, signals).
"""
